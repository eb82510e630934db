"""Bundles over MQTT: the archive (``bundle/archive.py``'s tar.gz) in retained chunks, fetched by its sha256.

    {root}/bundles/{sha256}/chunk/{i}   retained, ``chunk_size`` bytes each (the last one shorter)
    {root}/bundles/{sha256}/meta        retained JSON: sha256, size, chunks, chunk_size, model_id

Chunks rather than one message: Mosquitto's default accepts messages up to MQTT's 256 MB limit, but other plant
brokers do not (EMQX's default ``max_packet_size`` is 1 MB), a single large message holds the broker's and the
client's memory at once, and the broker must pass it whole. 256 KiB chunks pass everywhere. Retained, so a gateway
that comes online later (or retries) fetches the same bytes; the archive's sha256 in the topic names the content,
so two bundles never mix. ``tocoad-fleet purge`` clears them from the broker.
"""
from __future__ import annotations

import hashlib
import json
import tarfile
import threading
from pathlib import Path

from ..bundle.archive import verify_bundle_folder
from ..errors import BundleError, ResourceError
from . import topics

DEFAULT_CHUNK = 256 << 10


def pack_bundle(bundle_dir: str | Path, out: str | Path, *, verify: bool = True) -> Path:
    """tar.gz of a bundle folder's files (verified against its manifest first, unless ``verify=False``)."""
    bundle, out = Path(bundle_dir), Path(out)
    if verify:
        verify_bundle_folder(bundle)
    with tarfile.open(out, "w:gz", compresslevel=6) as tf:
        for path in sorted(p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()):
            tf.add(path, arcname=path.relative_to(bundle).as_posix(), recursive=False)
    return out


def publish_archive(link, root: str, archive: str | Path, model_id: str | None, *, chunk_size: int = DEFAULT_CHUNK,
                    timeout_s: float = 120.0) -> dict:
    """Publish ``archive`` as retained chunks + meta; wait for the broker's acks. Returns the meta."""
    data = Path(archive).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    n = max(1, -(-len(data) // chunk_size))
    meta = {"sha256": sha, "size": len(data), "chunks": n, "chunk_size": chunk_size, "model_id": model_id}
    infos = [link.publish(topics.bundle_chunk(root, sha, i), data[i * chunk_size:(i + 1) * chunk_size], retain=True)
             for i in range(n)]
    infos.append(link.publish(topics.bundle_meta(root, sha), json.dumps(meta).encode(), retain=True))
    for info in infos:
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise ResourceError("the broker did not acknowledge the bundle upload", got=f"{sha[:12]}…",
                                fix="check the broker is reachable and accepts messages of the chunk size")
    return meta


def purge_archive(link, root: str, meta: dict, timeout_s: float = 30.0) -> None:
    """Clear a bundle's retained chunks and meta from the broker (an empty retained message deletes one)."""
    infos = [link.publish(topics.bundle_chunk(root, meta["sha256"], i), b"", retain=True)
             for i in range(meta["chunks"])]
    infos.append(link.publish(topics.bundle_meta(root, meta["sha256"]), b"", retain=True))
    for info in infos:
        info.wait_for_publish(timeout_s)


def fetch_archive(link, root: str, sha256: str, out: str | Path, timeout_s: float = 120.0) -> Path:
    """Collect the retained chunks of archive ``sha256`` into ``out``; refuse anything whose hash differs."""
    got: dict[int, bytes] = {}
    meta: dict = {}
    done = threading.Event()
    lock = threading.Lock()
    prefix = f"{root}/bundles/{sha256}/"

    def on_message(topic: str, payload: bytes) -> None:
        with lock:
            rest = topic[len(prefix):]
            if rest == "meta" and payload:
                meta.update(json.loads(payload))
            elif rest.startswith("chunk/"):
                got[int(rest.split("/", 1)[1])] = payload
            if meta and len(got) >= meta["chunks"]:
                done.set()

    link.subscribe(topics.bundle_all(root, sha256), on_message)
    try:
        if not done.wait(timeout_s):
            raise BundleError(f"bundle {sha256[:12]}… did not arrive within {timeout_s:g} s",
                              expected=f"{meta.get('chunks', '?')} chunks and the meta", got=f"{len(got)} chunks",
                              fix="publish it again with 'tocoad-fleet publish' (it may have been purged)")
    finally:
        link.unsubscribe(topics.bundle_all(root, sha256))
    with lock:
        data = b"".join(got[i] for i in range(meta["chunks"]) if i in got)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256 or len(data) != meta["size"]:
        raise BundleError("the bundle archive received does not match its sha256", expected=sha256,
                          got=f"{digest} ({len(data)} of {meta['size']} bytes)",
                          fix="publish the bundle again; check no other tool writes to the bundles topics")
    out = Path(out)
    out.write_bytes(data)
    return out
