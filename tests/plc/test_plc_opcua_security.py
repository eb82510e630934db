"""OPC UA security with real asyncua clients on 127.0.0.1: the right certificate and user connect and cycle
(every policy, Sign and SignAndEncrypt); an untrusted certificate, a wrong password, an anonymous client and a
client without security are refused; a viewer reads but its write gets BadUserAccessDenied.

Certificates and the password file are made by ``tocoad-plc-security`` itself, into a temporary folder."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("asyncua", reason="the plc extra is not installed (pip install 'tocoad-edge[plc]')")

from asyncua import Client, ua  # noqa: E402

from plc_helpers import CYCLE_DEADLINE_S, make_gateway  # noqa: E402
from tocoad_edge.errors import ConfigError  # noqa: E402
from tocoad_edge.plc import OpcUaConfig, OpcUaSecurityConfig, OpcUaServer  # noqa: E402
from tocoad_edge.plc.cycle_check import opcua_cycles_async  # noqa: E402
from tocoad_edge.plc.opcua_client import client_security  # noqa: E402
from tocoad_edge.plc.simulation import expected_score  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"plc": "plc-operator-pw", "hmi": "hmi-viewer-pw"}


def tool(*args: str, stdin: str | None = None) -> str:
    """Run tocoad-plc-security from this checkout (python -m, so the working tree's package is used)."""
    out = subprocess.run([sys.executable, "-m", "tocoad_edge.cli.plc_security", *args], input=stdin, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    tool("make-cert", "--out", str(root), "--host", "127.0.0.1")
    (root / "trusted").mkdir()
    tool("make-cert", "--out", str(root / "trusted"), "--client", "--name", "plc")
    tool("make-cert", "--out", str(root), "--client", "--name", "stranger")       # not in trusted/
    (root / "plc_key.pem").write_bytes((root / "trusted" / "plc_key.pem").read_bytes())
    (root / "trusted" / "plc_key.pem").unlink()                                    # only certificates there
    assert "added plc (operator)" in tool("add-user", str(root / "users.txt"), "plc", "--role", "operator",
                                          "--password-stdin", stdin=PASSWORDS["plc"] + "\n")
    tool("add-user", str(root / "users.txt"), "hmi", "--role", "viewer", "--password-stdin",
         stdin=PASSWORDS["hmi"] + "\n")
    return root


def security(pki: Path, mode: str = "sign_and_encrypt") -> OpcUaSecurityConfig:
    return OpcUaSecurityConfig(mode=mode, certificate=pki / "server_cert.der",  # type: ignore[arg-type]
                               private_key=pki / "server_key.pem", trusted_clients=pki / "trusted",
                               users=pki / "users.txt")


@pytest.fixture(scope="module")
def secured(pki):
    gateway, _, _ = make_gateway(deadline_s=CYCLE_DEADLINE_S)
    with gateway, OpcUaServer(gateway.handshake, OpcUaConfig(port=0, security=security(pki))) as server:
        yield gateway, server


def secure_as(pki: Path, user: str | None, password: str | None = None, *, cert: str = "plc",
              mode: str = "sign_and_encrypt", policy: str = "Basic256Sha256"):
    cert_path = pki / "trusted" / f"{cert}_cert.der" if cert == "plc" else pki / f"{cert}_cert.der"
    return client_security(cert_path, pki / f"{cert}_key.pem", pki / "server_cert.der", user=user,
                           password=PASSWORDS.get(user or "", "") if password is None else password,
                           mode=mode, policy=policy)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


@pytest.mark.parametrize("policy", ["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"])
def test_operator_cycles_over_sign_and_encrypt(secured, pki, policy) -> None:
    gateway, server = secured
    start = gateway.snapshot().result_seq
    report = run(opcua_cycles_async(server.endpoint, server.node_id, 10, score_of=expected_score,
                                    secure=secure_as(pki, "plc", policy=policy)))
    assert report.problems == [] and report.cycles == 10
    assert report.seqs == list(range(start + 1, start + 11))


async def _connect(server: OpcUaServer, secure) -> None:
    client = Client(server.endpoint, timeout=10)
    if secure is not None:
        await secure(client)
    async with client:
        await client.get_node(server.node_id("Ready")).read_value()


@pytest.mark.parametrize("who, expected", [
    ("stranger", ua.uaerrors.BadCertificateUntrusted),        # a valid certificate that is not in trusted/
    ("wrong-password", ua.uaerrors.BadUserAccessDenied),
    ("unknown-user", ua.uaerrors.BadUserAccessDenied),
    ("anonymous", ua.uaerrors.BadIdentityTokenRejected),      # the right certificate, no user
])
def test_refused_clients(secured, pki, who, expected) -> None:
    _, server = secured
    secure = {"stranger": secure_as(pki, "plc", cert="stranger"),
              "wrong-password": secure_as(pki, "plc", "not-the-password"),
              "unknown-user": secure_as(pki, "mallory", "plc-operator-pw"),
              "anonymous": secure_as(pki, None)}[who]
    with pytest.raises(expected):
        run(_connect(server, secure))


def test_a_client_without_security_finds_no_endpoint(secured) -> None:
    _, server = secured
    with pytest.raises(Exception) as info:
        run(_connect(server, None))
    assert not isinstance(info.value, AssertionError)

    async def endpoints():
        return await Client(server.endpoint, timeout=10).connect_and_get_server_endpoints()

    offered = run(endpoints())
    assert offered and all(e.SecurityMode == ua.MessageSecurityMode.SignAndEncrypt for e in offered)
    assert {e.SecurityPolicyUri.rsplit("#", 1)[1] for e in offered} == {
        "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"}
    assert all([t.TokenType for t in e.UserIdentityTokens] == [ua.UserTokenType.UserName] for e in offered)


def test_viewer_reads_but_may_not_write(secured, pki) -> None:
    gateway, server = secured
    before = gateway.snapshot()

    async def body():
        client = Client(server.endpoint, timeout=10)
        await secure_as(pki, "hmi")(client)
        async with client:
            ready = await client.get_node(server.node_id("Ready")).read_value()
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                await client.get_node(server.node_id("Trigger")).write_value(True)
            return ready

    assert run(body()) is True
    after = gateway.snapshot()
    assert after.writes_rejected == before.writes_rejected + 1
    assert after.trigger_count == before.trigger_count and not after.trigger


def test_sign_mode_serves_signed_channels(pki) -> None:
    gateway, _, _ = make_gateway(deadline_s=CYCLE_DEADLINE_S)
    with gateway, OpcUaServer(gateway.handshake, OpcUaConfig(port=0, security=security(pki, "sign"))) as server:
        report = run(opcua_cycles_async(server.endpoint, server.node_id, 3, score_of=expected_score,
                                        secure=secure_as(pki, "plc", mode="sign")))
        assert report.problems == [] and report.cycles == 3
        with pytest.raises(Exception) as info:         # SignAndEncrypt is not offered in sign mode
            run(_connect(server, secure_as(pki, "plc", mode="sign_and_encrypt")))
        assert not isinstance(info.value, AssertionError)


def test_missing_security_files_are_refused_before_listening(pki, tmp_path) -> None:
    gateway, _, _ = make_gateway()
    with pytest.raises(ConfigError, match="opcua.security.certificate is not set") as info:
        OpcUaServer(gateway.handshake, OpcUaConfig(port=0)).start()
    assert "tocoad-plc-security make-cert" in str(info.value) and "mode: none" in str(info.value)
    cfg = OpcUaSecurityConfig(certificate=pki / "server_cert.der", private_key=pki / "server_key.pem",
                              trusted_clients=pki / "trusted", users=tmp_path / "absent.txt")
    with pytest.raises(ConfigError, match="opcua.security.users is missing") as info:
        cfg.check_files()
    assert "add-user" in str(info.value)


def test_make_cert_never_overwrites_a_key_and_add_user_checks_the_role(pki) -> None:
    key_before = (pki / "server_key.pem").read_bytes()
    again = subprocess.run([sys.executable, "-m", "tocoad_edge.cli.plc_security", "make-cert", "--out", str(pki)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "refusing to overwrite a private key" in again.stderr
    assert (pki / "server_key.pem").read_bytes() == key_before
    assert oct((pki / "server_key.pem").stat().st_mode & 0o777) == "0o600"
    bad = subprocess.run([sys.executable, "-m", "tocoad_edge.cli.plc_security", "add-user", str(pki / "users.txt"),
                          "eve", "--role", "admin", "--password-stdin"], input="long enough password\n", cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice: 'admin'" in bad.stderr
    assert "eve:" not in (pki / "users.txt").read_text()
