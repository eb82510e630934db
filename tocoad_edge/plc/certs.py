"""Self-signed OPC UA application certificates for commissioning (``tocoad-plc-security make-cert``).

The certificate follows OPC 10000-6 6.2.2 (asyncua's generator, on ``cryptography``): RSA 2048, SHA-256, the
application URI and host names in subjectAltName, key usages for signing and encryption, and CA:true so a
self-signed certificate can be the trust anchor in the peer's trusted folder. For production, a plant PKI can
issue the pair instead; the gateway only reads the two files.
"""
from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from ..errors import ConfigError, ResourceError

DEFAULT_URI = "urn:tocoad-edge:plc:gateway"


def make_self_signed(cert_path: str | Path, key_path: str | Path, *, application_uri: str = DEFAULT_URI,
                     hostnames: tuple[str, ...] = (), common_name: str = "tocoad-edge PLC gateway",
                     client: bool = False, days: int = 3650) -> tuple[Path, Path]:
    """Write a certificate (DER) and its private key (PEM, mode 0600). Refuses to overwrite a key."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509.oid import ExtendedKeyUsageOID
        from asyncua.crypto.cert_gen import (dump_private_key_as_pem, generate_private_key,
                                             generate_self_signed_app_certificate)
    except ImportError as exc:
        raise ResourceError("making OPC UA certificates needs cryptography and asyncua",
                            got=f"{type(exc).__name__}: {exc}", fix="pip install 'tocoad-edge[plc]'") from None
    cert_path, key_path = Path(cert_path), Path(key_path)
    names = list(hostnames) or [socket.gethostname()]
    alt: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    usage = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH,
                                                               ExtendedKeyUsageOID.CLIENT_AUTH]
    key = generate_private_key()
    cert = generate_self_signed_app_certificate(key, common_name, {}, alt, extended=usage, days=days)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{key_path} exists; refusing to overwrite a private key", expected="a new file name",
                          got=str(key_path), fix="choose another --out folder or --name, or move the old pair "
                          "away first (the PLC trusts the old certificate)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return cert_path, key_path


def application_uri_of(cert_der_or_pem: bytes) -> str | None:
    """The URI in a certificate's subjectAltName (the OPC UA application URI), or None."""
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(cert_der_or_pem)
    except ValueError:
        cert = x509.load_pem_x509_certificate(cert_der_or_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
