"""Verdicts over TLS with user and password, against a real Mosquitto: a CA and a server certificate made here with
``cryptography``, a password file made with ``mosquitto_passwd``; a wrong password is refused, the right one
delivers, and a client that does not trust the CA never connects."""
from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest

from fleet_helpers import make_result, poll
from tocoad_edge.fleet.config import BrokerConfig, MqttSinkConfig
from tocoad_edge.fleet.consumer import VerdictCollector
from tocoad_edge.fleet.local_broker import LocalBroker, mosquitto_binary
from tocoad_edge.fleet.mqtt_link import MqttLink
from tocoad_edge.fleet.sink import MqttSink


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_ca_and_server(folder: Path, name: str = "test") -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate it signed for 127.0.0.1 / localhost: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def builder(subject: str, issuer: str, public_key):
        return (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=2)))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (builder(f"{name} CA", f"{name} CA", ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (builder("127.0.0.1", f"{name} CA", key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return (_write_pem(folder / "ca.pem", ca.public_bytes(pem)),
            _write_pem(folder / "server.pem", cert.public_bytes(pem)), _write_pem(folder / "server.key", key_pem))


@pytest.fixture
def tls_broker(tmp_path):
    if mosquitto_binary() is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto and mosquitto_passwd are not installed (apt-get install mosquitto)")
    ca, cert, key = make_ca_and_server(tmp_path / "pki")
    passwords = tmp_path / "passwords"
    for i, (user, password) in enumerate((("gw-1", "s3cret-gw"), ("mes", "s3cret-mes"))):
        subprocess.run(["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwords), user, password],
                       check=True, capture_output=True)
    broker = LocalBroker(tmp_path / "broker", password_file=passwords,
                         extra_config=f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n").start()
    yield broker, ca
    broker.stop()


def _broker(port: int, ca: Path, user: str, password: str) -> BrokerConfig:
    return BrokerConfig(port=port, tls=True, ca_file=str(ca), username=user, password=password,
                        reconnect_initial_s=0.2, reconnect_max_s=1.0)


def _refused(cfg: BrokerConfig) -> str | None:
    """The error a gateway link reports when the broker will not have it (None: it connected)."""
    link = MqttLink(cfg, "probe").start()
    try:
        connected = link.wait_connected(3)
        poll(lambda: link.last_error, lambda e: e is not None, limit_s=10)
        return None if connected else link.last_error
    finally:
        link.stop()


def test_tls_with_password_delivers_and_wrong_password_is_refused(tls_broker, tmp_path, monkeypatch):
    broker, ca = tls_broker
    error = _refused(_broker(broker.port, ca, "gw-1", "wrong"))
    assert error is not None and "Not authorized" in error
    monkeypatch.setenv("TOCOAD_TEST_MQTT_PASSWORD", "s3cret-gw")        # the gateway reads it from its environment
    gateway = BrokerConfig(port=broker.port, tls=True, ca_file=str(ca), username="gw-1",
                           password_env="TOCOAD_TEST_MQTT_PASSWORD", reconnect_initial_s=0.2, reconnect_max_s=1.0)
    consumer = VerdictCollector(_broker(broker.port, ca, "mes", "s3cret-mes"), "mes-consumer").start()
    try:
        assert consumer.ready.is_set()
        sink = MqttSink(MqttSinkConfig(line="line-1", gateway="gw-1", spool=str(tmp_path / "spool.sqlite"),
                                       broker=gateway, drain_s=20.0))
        try:
            assert sink.link.wait_connected(10)
            for i in range(20):
                sink.write(make_result(i, ng=i % 5 == 0))
        finally:
            sink.close()
        got = poll(consumer.snapshot, lambda v: len(v) >= 20)
        assert [v["seq"] for v in got] == list(range(1, 21))
        assert poll(lambda: len(consumer.images), lambda n: n >= 4) == 4      # the NG frames' JPEGs, over TLS too
        assert sink.counters()["acked"] == 20
    finally:
        consumer.stop()


def test_client_that_does_not_trust_the_broker_ca_never_connects(tls_broker, tmp_path):
    broker, _ = tls_broker
    other_ca, _, _ = make_ca_and_server(tmp_path / "other", name="other")
    link = MqttLink(_broker(broker.port, other_ca, "gw-1", "s3cret-gw"), "untrusting").start()
    try:
        assert not link.wait_connected(3) and link.connects == 0
    finally:
        link.stop()
