"""Optional Ed25519 signature over the exact bytes of ``manifest.json``.

The manifest holds every file's sha256, so a valid signature over it covers the whole bundle. The signature lives
beside the manifest in ``manifest.sig`` (JSON: algorithm, key id, base64 signature). When a public key is
configured (``Detector.open(..., public_key=...)``), a bundle without a valid signature by that key is refused.

Needs the ``cryptography`` package (``pip install tocoad-edge[signing]``); it is imported only when a key is used.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BundleError, ConfigError, ResourceError

if TYPE_CHECKING:   # the package is optional: imported for real only inside the functions that use a key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from .manifest import Manifest

SIGNATURE_NAME = "manifest.sig"
ALGORITHM = "ed25519"


def _require_crypto() -> None:
    """A clear error instead of an ImportError when the optional package is missing.

    The callers then import what they use themselves, so the type checker sees the real cryptography types."""
    try:
        from cryptography.hazmat.primitives import serialization  # noqa: F401
        from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: F401
    except ImportError as exc:
        raise ResourceError("bundle signatures need the 'cryptography' package", got=str(exc),
                            fix="pip install 'tocoad-edge[signing]'") from None


def generate_key_pair() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as (private PEM, public PEM). Keep the private key off the devices."""
    _require_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def _pem_bytes(key: Any, what: str) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str) and key.lstrip().startswith("-----BEGIN"):
        return key.encode("ascii")
    if isinstance(key, (str, Path)):
        try:
            return Path(key).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} key file {key}", got=str(exc),
                              fix="give a PEM file path, PEM text or bytes") from None
    raise ConfigError(f"{what} key has an unsupported type", expected="PEM bytes, PEM text or a path",
                      got=type(key).__name__)


def load_public_key(key: Any) -> Ed25519PublicKey:
    """PEM bytes / text / file path, or an ``Ed25519PublicKey`` → ``Ed25519PublicKey``."""
    _require_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    try:
        loaded = serialization.load_pem_public_key(_pem_bytes(key, "public"))
    except ValueError as exc:
        raise ConfigError("the configured public key is not a PEM public key", got=str(exc),
                          fix="use the .pub.pem written by 'tocoad-sign --generate-key'") from None
    if not isinstance(loaded, ed25519.Ed25519PublicKey):
        raise ConfigError("the configured public key is not an Ed25519 key", expected="Ed25519",
                          got=type(loaded).__name__)
    return loaded


def _load_private_key(key: Any, password: bytes | None) -> Ed25519PrivateKey:
    _require_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    try:
        loaded = serialization.load_pem_private_key(_pem_bytes(key, "private"), password=password)
    except (ValueError, TypeError) as exc:
        raise ConfigError("the signing key is not a readable PEM private key", got=str(exc),
                          fix="use the .key.pem written by 'tocoad-sign --generate-key' (and its password)") from None
    if not isinstance(loaded, ed25519.Ed25519PrivateKey):
        raise ConfigError("the signing key is not an Ed25519 key", expected="Ed25519", got=type(loaded).__name__)
    return loaded


def key_id(public_key: Any) -> str:
    """First 16 hex digits of the sha256 of the raw public key: names a key in messages and signature files."""
    _require_crypto()
    from cryptography.hazmat.primitives import serialization

    raw = load_public_key(public_key).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_bundle(bundle_dir: str | Path, private_key_pem: Any, *, password: bytes | None = None) -> Path:
    """Check every file against the manifest, then sign the manifest bytes into ``manifest.sig`` (atomically)."""
    from .manifest import MANIFEST_NAME, read_manifest, verify_files

    bundle = Path(bundle_dir)
    verify_files(bundle, read_manifest(bundle))
    return sign_file(bundle, MANIFEST_NAME, SIGNATURE_NAME, private_key_pem, password=password)


def sign_file(bundle_dir: str | Path, signed_name: str, signature_name: str, private_key_pem: Any, *,
              password: bytes | None = None) -> Path:
    """Sign the exact bytes of ``bundle_dir/signed_name`` into ``bundle_dir/signature_name`` (atomically).
    The manifest's signature and a device's engine-record signature (``engine_record.py``) are both this."""
    bundle = Path(bundle_dir)
    key = _load_private_key(private_key_pem, password)
    data = (bundle / signed_name).read_bytes()
    record = {"algorithm": ALGORITHM, "key_id": key_id(key.public_key()), "signed_file": signed_name,
              "signature": base64.b64encode(key.sign(data)).decode("ascii")}
    out = bundle / signature_name
    tmp = bundle / f".{signature_name}.tmp-{os.getpid()}"
    try:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def public_key_of(private_key_pem: Any, *, password: bytes | None = None) -> Ed25519PublicKey:
    """The ``Ed25519PublicKey`` of a private key (PEM bytes / text / path)."""
    return _load_private_key(private_key_pem, password).public_key()


def verify_bundle_signature(bundle_dir: str | Path, public_key: Any) -> str:
    """Refuse the bundle unless ``manifest.sig`` is a valid Ed25519 signature of ``manifest.json`` by ``public_key``.

    Returns the key id. Raises ``BundleError`` naming the expected and found key.
    """
    return _verified_manifest_bytes(bundle_dir, public_key)[1]


def read_signed_manifest(bundle_dir: str | Path, public_key: Any) -> Manifest:
    """The manifest parsed from exactly the bytes whose signature was verified (no second read to race with)."""
    from .manifest import read_manifest

    data, _ = _verified_manifest_bytes(bundle_dir, public_key)
    return read_manifest(bundle_dir, data)


def _verified_manifest_bytes(bundle_dir: str | Path, public_key: Any) -> tuple[bytes, str]:
    from .manifest import MANIFEST_NAME

    return verified_file_bytes(bundle_dir, MANIFEST_NAME, SIGNATURE_NAME, public_key, subject="bundle",
                               content="manifest",
                               fix="use a bundle signed with 'tocoad-sign' by the key this device trusts")


def verified_file_bytes(bundle_dir: str | Path, signed_name: str, signature_name: str, public_key: Any, *,
                        subject: str, content: str, fix: str) -> tuple[bytes, str]:
    """(the bytes of ``signed_name``, key id) once ``signature_name`` is a valid signature of exactly those bytes by
    ``public_key``; ``BundleError`` naming the expected and found key otherwise. The bytes are read once, so the
    caller parses what was verified. ``subject`` / ``content`` name what is signed in messages ("bundle" /
    "manifest")."""
    bundle = Path(bundle_dir)
    key = load_public_key(public_key)
    want = key_id(key)
    sig_path = bundle / signature_name
    if not sig_path.is_file():
        raise BundleError(f"{subject} {bundle} is not signed, and this device requires a signature",
                          expected=f"{signature_name} signed by key {want}", got="no signature file", fix=fix)
    try:
        record = json.loads(sig_path.read_text(encoding="utf-8"))
        signature = base64.b64decode(record["signature"], validate=True)
        algorithm, found = record["algorithm"], record.get("key_id", "?")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{sig_path} is damaged", got=f"{type(exc).__name__}: {exc}", fix=fix) from None
    if algorithm != ALGORITHM:
        raise BundleError(f"{subject} signature uses another algorithm", expected=ALGORITHM,
                          got=str(algorithm), fix=fix)
    try:
        data = (bundle / signed_name).read_bytes()
    except OSError as exc:
        raise BundleError(f"no readable {signed_name} in {bundle}", got=str(exc), fix=fix) from None
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, data)
    except InvalidSignature:
        if found != want:
            raise BundleError(f"{subject} is signed by another key", expected=f"key {want}", got=f"key {found}",
                              fix=fix) from None
        raise BundleError(f"{subject} signature does not match its {content} ({content} changed after signing)",
                          expected=f"a valid signature by key {want}", got="an invalid signature", fix=fix) from None
    return data, want
