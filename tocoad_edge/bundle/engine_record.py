"""``engines.json``: the TensorRT engines a device built into a bundle, recorded beside the manifest.

``manifest.json`` (and its ``manifest.sig``) describe the model as exported; an engine built later on the device
(``tocoad-export engine BUNDLE``) must not rewrite it, or a signed bundle would no longer verify. So the device
records each engine here: its fingerprint (which references the sha256 of the manifest's ONNX model it was built
from, so an engine of another model is refused) with the engine file's sha256 and size. The record may be signed
with a device key into ``engines.sig`` (same Ed25519 format as ``manifest.sig``, ``signature.py``).

Trust (``engine_view``): without a bundle key the record is taken on its hashes; when the bundle must be signed
(``public_key``), the record must be signed by the configured ``engine_public_key``, else its engines are not used.
Old bundles list engines in the manifest itself; those stay covered by the manifest's hashes and signature.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BundleError, ConfigError, did_you_mean
from ..typed_config import from_dict, to_dict
from .atomic import write_text_atomically
from .manifest import MANIFEST_NAME, EngineFingerprint, FileEntry, Manifest, safe_member_path
from .signature import SIGNATURE_NAME, public_key_of, sign_file, verified_file_bytes

log = logging.getLogger("tocoad_edge.bundle")

ENGINE_RECORD_NAME = "engines.json"
ENGINE_SIGNATURE_NAME = "engines.sig"
RECORD_SCHEMA_VERSION = 1
_RESERVED = {MANIFEST_NAME, SIGNATURE_NAME, ENGINE_RECORD_NAME, ENGINE_SIGNATURE_NAME}
_FIX = "rebuild the engine on this device: tocoad-export engine BUNDLE"


@dataclass(frozen=True)
class RecordedEngine:
    fingerprint: EngineFingerprint
    sha256: str
    bytes: int


@dataclass(frozen=True)
class EngineRecord:
    schema_version: int
    model_id: str                      # the manifest's model_id the engines were built for
    engines: tuple[RecordedEngine, ...] = ()

    def to_json(self) -> str:
        raw = to_dict(self)
        for e in raw["engines"]:
            # a backbone engine is written exactly as before the search engine existed, so readers of that
            # format (older releases, the native runtime's strict parser) still read backbone-only records
            for key, default in _BACKBONE_DEFAULTS.items():
                if e["fingerprint"].get(key) == default:
                    del e["fingerprint"][key]
        return json.dumps(raw, indent=2, sort_keys=True) + "\n"


ENGINE_ROLES = ("backbone", "search")
_BACKBONE_DEFAULTS = {"role": "backbone", "source_sha256": None, "chunk_entries": None}


def _model_shas(manifest: Manifest) -> dict[str, str]:
    return {manifest.files[m.file].sha256: key for key, m in manifest.models.items() if m.file in manifest.files}


def parse_engine_record(data: bytes, manifest: Manifest, where: str = ENGINE_RECORD_NAME) -> EngineRecord:
    """Parse a record strictly and check it belongs to ``manifest``: same model_id, every engine built from one of
    its ONNX models, engine names that are plain, unique and not the manifest's own files."""
    try:
        raw = json.loads(data.decode("utf-8"))
        record = from_dict(EngineRecord, raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where} is not valid JSON", got=str(exc), fix=_FIX) from None
    except ConfigError as exc:
        raise BundleError(f"{where} does not match the engine record schema: {exc.message}", expected=exc.expected,
                          got=exc.got, fix=_FIX) from None
    if record.schema_version != RECORD_SCHEMA_VERSION:
        raise BundleError(f"{where} has an unsupported schema version", expected=str(RECORD_SCHEMA_VERSION),
                          got=str(record.schema_version), fix=_FIX)
    if record.model_id != manifest.model_id:
        raise BundleError(f"{where} records engines of another model", expected=f"model_id {manifest.model_id}",
                          got=f"model_id {record.model_id}", fix=_FIX)
    shas = _model_shas(manifest)
    seen: set[str] = set()
    for e in record.engines:
        name = e.fingerprint.file
        if name in _RESERVED or name in manifest.files or name in seen:
            raise BundleError(f"{where} names {name}, a file that is not a free engine name",
                              expected="a file name of its own (not a manifest file, not listed twice)", got=name,
                              fix=_FIX)
        seen.add(name)
        if e.fingerprint.role not in ENGINE_ROLES:
            raise BundleError(f"engine {name} has an unknown role '{e.fingerprint.role}'"
                              + did_you_mean(e.fingerprint.role, list(ENGINE_ROLES)),
                              expected=f"one of {list(ENGINE_ROLES)}", got=e.fingerprint.role, fix=_FIX)
        if e.fingerprint.role == "search":
            check_search_source(e.fingerprint, manifest, where)
        elif e.fingerprint.onnx_sha256 not in shas:
            raise BundleError(f"engine {name} was built from an ONNX model this bundle does not have",
                              expected=f"onnx_sha256 of one of the bundle's models {sorted(manifest.models)}",
                              got=e.fingerprint.onnx_sha256, fix=_FIX)
    return record


def check_search_source(fp: EngineFingerprint, manifest: Manifest, where: str = ENGINE_RECORD_NAME) -> None:
    """A search engine is the distance graph of this bundle's memory bank: its ``source_sha256`` must be the
    manifest's sha256 of the bank file (a re-exported or compressed bank makes it stale)."""
    bank = manifest.files.get(manifest.memory_bank.file)
    if bank is None or fp.source_sha256 != bank.sha256:
        raise BundleError(f"search engine {fp.file} in {where} was built from another memory bank",
                          expected=f"source_sha256 {bank.sha256 if bank else '?'} ({manifest.memory_bank.file})",
                          got=str(fp.source_sha256), fix=_FIX)


def read_engine_record(bundle_dir: str | Path, manifest: Manifest, public_key: Any = None) -> EngineRecord | None:
    """The bundle's record, or None when it has none. With ``public_key`` (a device key), ``engines.sig`` must be
    its valid signature; the bytes verified are the bytes parsed."""
    bundle = Path(bundle_dir)
    path = bundle / ENGINE_RECORD_NAME
    if not path.is_file():
        return None
    if public_key is not None:
        data, _ = verified_file_bytes(bundle, ENGINE_RECORD_NAME, ENGINE_SIGNATURE_NAME, public_key,
                                      subject="engine record", content="engine record",
                                      fix="rebuild the engine with tocoad-export engine BUNDLE --device-key KEY "
                                          "(the key whose public half this device trusts)")
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BundleError(f"cannot read {path}", got=str(exc), fix=_FIX) from None
    return parse_engine_record(data, manifest, str(path))


def with_engine(record: EngineRecord | None, manifest: Manifest, fp: EngineFingerprint,
                entry: FileEntry) -> EngineRecord:
    """``record`` with ``fp`` added (replacing an engine of the same file name)."""
    kept = tuple(e for e in (record.engines if record else ()) if e.fingerprint.file != fp.file)
    return EngineRecord(schema_version=RECORD_SCHEMA_VERSION, model_id=manifest.model_id,
                        engines=kept + (RecordedEngine(fp, entry.sha256, entry.bytes),))


def write_engine_record(bundle_dir: str | Path, record: EngineRecord, *, private_key: Any = None,
                        password: bytes | None = None) -> Path:
    """Write ``engines.json`` atomically, then sign it into ``engines.sig`` with the device key, or remove a
    stale ``engines.sig`` (it could not verify the new bytes anyway). Never touches ``manifest.json``."""
    bundle = Path(bundle_dir)
    out = write_text_atomically(bundle / ENGINE_RECORD_NAME, record.to_json())
    if private_key is not None:
        sign_file(bundle, ENGINE_RECORD_NAME, ENGINE_SIGNATURE_NAME, private_key, password=password)
    else:
        (bundle / ENGINE_SIGNATURE_NAME).unlink(missing_ok=True)
    return out


def record_engine(bundle_dir: str | Path, manifest: Manifest, fp: EngineFingerprint, entry: FileEntry, *,
                  private_key: Any = None, password: bytes | None = None) -> EngineRecord:
    """Add one built engine to the bundle's record (what ``tocoad-export engine`` does after a build). Engines
    already recorded are kept only if the record verifies (signed by this device key when one is given): an entry
    that cannot be vouched for is not re-signed."""
    try:
        key = public_key_of(private_key, password=password) if private_key is not None else None
        old = read_engine_record(bundle_dir, manifest, key)
    except BundleError as exc:
        log.warning("dropping the engines recorded before in %s: %s", ENGINE_RECORD_NAME, exc)
        old = None
    record = with_engine(old, manifest, fp, entry)
    write_engine_record(bundle_dir, record, private_key=private_key, password=password)
    return record


def engine_view(bundle_dir: str | Path, manifest: Manifest, *, bundle_key: Any = None, engine_key: Any = None,
                strict: bool = False) -> Manifest:
    """The manifest as the engine chooser sees it: its own engines plus the trusted ones of ``engines.json``
    (fingerprints in ``engines``, sha256 + size in ``files``, so the engine is hashed before it is deserialised).

    A record that cannot be trusted (damaged, a bad signature, or unsigned while ``bundle_key`` requires bundles to
    be signed and no ``engine_key`` is configured): ``strict`` (backend="tensorrt") raises ``BundleError``;
    otherwise its engines are left out with a warning, and backend="auto" goes on with ONNX Runtime."""
    try:
        if bundle_key is not None and engine_key is None and (Path(bundle_dir) / ENGINE_RECORD_NAME).is_file():
            raise BundleError("this device requires signed bundles, and no key is configured to verify the engines "
                              f"recorded in {ENGINE_RECORD_NAME}",
                              expected=f"{ENGINE_SIGNATURE_NAME} checked with engine_public_key",
                              got="engine_public_key: null",
                              fix="set engine_public_key to the public half of the --device-key the engine was "
                                  "built with, or use backend='onnxrt'")
        record = read_engine_record(bundle_dir, manifest, engine_key)
    except BundleError as exc:
        if strict:
            raise
        log.warning("engines of %s not used: %s", ENGINE_RECORD_NAME, exc)
        return manifest
    if record is None or not record.engines:
        return manifest
    files = dict(manifest.files)
    files.update({e.fingerprint.file: FileEntry(sha256=e.sha256, bytes=e.bytes) for e in record.engines})
    return dataclasses.replace(manifest, engines=manifest.engines + tuple(e.fingerprint for e in record.engines),
                               files=files)


def read_verified_engine(bundle_dir: str | Path, view: Manifest, name: str) -> bytes:
    """The bytes of engine ``name``, once their size and sha256 match ``view`` (``engine_view``): read once and
    hashed in memory, so the bytes checked are the bytes TensorRT deserialises."""
    entry = view.files.get(name)
    if entry is None:
        raise BundleError(f"engine {name} has no sha256 in the manifest or {ENGINE_RECORD_NAME}",
                          expected=f"one of {sorted(e.file for e in view.engines)}", got=name, fix=_FIX)
    path = safe_member_path(Path(bundle_dir), name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read engine {path}", got=str(exc), fix=_FIX) from None
    if len(data) != entry.bytes:
        raise BundleError(f"engine {name} has the wrong size (truncated or replaced)", expected=f"{entry.bytes} bytes",
                          got=f"{len(data)} bytes", fix=_FIX)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise BundleError(f"engine {name} fails its sha256 check (corrupt or tampered)", expected=entry.sha256,
                          got=digest, fix=_FIX)
    return data
