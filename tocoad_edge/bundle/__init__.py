"""The bundle: everything the runtime needs, as data only (JSON manifest, ONNX, engine, .npy, index)."""
from .manifest import MANIFEST_NAME, SCHEMA_VERSION, Manifest, read_manifest, sha256_file, verify_files

__all__ = ["MANIFEST_NAME", "SCHEMA_VERSION", "Manifest", "read_manifest", "sha256_file", "verify_files"]
