"""The client side of a secured gateway, for commissioning checks, tests and benchmarks (asyncua ``Client``).

    secure = client_security("plc_cert.der", "plc_key.pem", "server_cert.der", user="plc", password=...)
    report = opcua_cycles(endpoint, node_id, 100, secure=secure)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable

from .certs import application_uri_of


def client_security(certificate: str | Path, private_key: str | Path, server_certificate: str | Path, *,
                    user: str | None, password: str | None, mode: str = "sign_and_encrypt",
                    policy: str = "Basic256Sha256") -> Callable[[Any], Awaitable[None]]:
    """An async ``secure(client)`` that sets the channel security, the application URI (from the client
    certificate) and the user of an asyncua ``Client`` before it connects."""

    async def secure(client: Any) -> None:
        from asyncua import ua
        from asyncua.crypto import security_policies

        uri = application_uri_of(Path(certificate).read_bytes())
        if uri:                 # the server checks it against the certificate's subjectAltName
            client.application_uri = uri
        await client.set_security(getattr(security_policies, f"SecurityPolicy{policy}"), str(certificate),
                                  str(private_key), server_certificate=str(server_certificate),
                                  mode=ua.MessageSecurityMode.SignAndEncrypt if mode == "sign_and_encrypt"
                                  else ua.MessageSecurityMode.Sign)
        if user is not None:
            client.set_user(user)
            client.set_password(password or "")

    return secure
