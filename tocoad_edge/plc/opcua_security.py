"""OPC UA security for the gateway's asyncua server (``opcua.security`` in the config, docs/plc.md).

* Channel: only the configured policies in Sign or SignAndEncrypt (no None endpoint), with the server
  certificate and key from files.
* Client application: its certificate must be in ``trusted_clients`` (and valid now, with the application URI
  it announces in its subjectAltName), else CreateSession fails with BadCertificateUntrusted / ...Invalid.
* User: user name and password only (anonymous and certificate identity tokens are refused), checked against
  the scrypt password file; a wrong password gets BadUserAccessDenied.
* Role: an ``operator`` may write (only Trigger and Ack are writable at all); a ``viewer``'s write request is
  refused as a whole with BadUserAccessDenied, logged and counted in WritesRejected.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import SimpleRoleRuleset, User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

from ..credentials import PasswordFile
from .certs import application_uri_of
from .config import OPCUA_ROLES, OpcUaSecurityConfig
from .throttled_log import ThrottledLog

log = logging.getLogger("tocoad_edge.plc.opcua")

WRITE_REQUEST = ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)
# Time range, application URI, trusted (directly or by a CA in the folder), not revoked, a client certificate.
# Key-usage bits are not enforced: PLC vendors set them differently, and the trust list is the real gate.
CLIENT_CHECKS = (CertificateValidatorOptions.TIME_RANGE | CertificateValidatorOptions.URI
                 | CertificateValidatorOptions.TRUSTED | CertificateValidatorOptions.REVOKED
                 | CertificateValidatorOptions.PEER_CLIENT)


@dataclass
class GatewayUser(User):
    operator: bool = False


def policy_types(config: OpcUaSecurityConfig) -> list[Any]:
    suffix = "SignAndEncrypt" if config.mode == "sign_and_encrypt" else "Sign"
    return [getattr(ua.SecurityPolicyType, f"{name}_{suffix}") for name in config.policies]


class PasswordUserManager:
    """asyncua user manager over a password file: a user name and the right password, or nobody."""

    def __init__(self, passwords: PasswordFile, refusals: ThrottledLog):
        self.passwords = passwords
        self._refusals = refusals

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is None:
            self._refusals.warning("OPC UA login refused: no user name (anonymous or certificate identity); "
                                   "expected a user of the password file")
            return None
        entry = self.passwords.check(username, password)
        if entry is None:
            self._refusals.warning("OPC UA login refused for user %r: unknown user or wrong password", username)
            return None
        return GatewayUser(role=UserRole.User, name=entry.name, operator=entry.role == "operator")


class OperatorWrites(SimpleRoleRuleset):
    """asyncua's user permissions, plus: only an operator may send a write request."""

    def __init__(self, on_denied: Callable[[Any], None]):
        super().__init__()
        self._on_denied = on_denied

    def check_validity(self, user: Any, action_type_id: Any, body: Any) -> bool:
        if action_type_id == WRITE_REQUEST and not getattr(user, "operator", False):
            self._on_denied(user)
            return False
        allowed: bool = super().check_validity(user, action_type_id, body)   # asyncua is untyped: Any
        return allowed


class ExplainingValidator:
    """A certificate validator that logs which client certificate it refused, why, and the fix."""

    def __init__(self, validator: CertificateValidator, folder: Path, refusals: ThrottledLog):
        self._validator = validator
        self._folder = folder
        self._refusals = refusals

    async def __call__(self, cert: Any, app_description: Any) -> None:
        try:
            await self._validator.validate(cert, app_description)
        except ServiceError as exc:
            name = ua.StatusCode(exc.code).name
            self._refusals.warning("OPC UA client refused: certificate %r of application %r: %s; fix: put the "
                                   "client's certificate into %s if it is yours (and check its validity dates "
                                   "and that its subjectAltName URI is the application URI)",
                                   cert.subject.rfc4514_string(), app_description.ApplicationUri, name, self._folder)
            raise


async def secure(server: Any, config: OpcUaSecurityConfig, on_denied_write: Callable[[Any], None]) -> str:
    """Configure ``server`` (asyncua, before ``start``) per ``config``; returns a line for the start-up log."""
    config.check_files()
    assert config.certificate and config.private_key and config.trusted_clients and config.users
    refusals = ThrottledLog(log)
    passwords = PasswordFile.load(config.users, OPCUA_ROLES)
    await server.load_certificate(str(config.certificate))
    await server.load_private_key(str(config.private_key))
    uri = application_uri_of(config.certificate.read_bytes())
    if uri:                             # clients check that the server's URI is the one in its certificate
        await server.set_application_uri(uri)
    server.set_security_policy(policy_types(config), permission_ruleset=OperatorWrites(on_denied_write))
    server.set_identity_tokens([ua.UserNameIdentityToken])
    server.iserver.set_user_manager(PasswordUserManager(passwords, refusals))
    store = TrustStore([config.trusted_clients], [])
    await store.load()
    server.set_certificate_validator(ExplainingValidator(CertificateValidator(CLIENT_CHECKS, store),
                                                         config.trusted_clients, refusals))
    roles = sorted(e.role for e in passwords.entries.values())
    return (f"security {config.mode} ({', '.join(config.policies)}), trusted clients from {config.trusted_clients}, "
            f"{len(roles)} users ({roles.count('operator')} operators)")
