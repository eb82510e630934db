"""Put a finished folder in place of another without ever leaving a half-written one."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def replace_dir(finished: Path, dest: Path) -> Path:
    """Rename ``finished`` to ``dest``; an existing ``dest`` is moved aside first and removed after."""
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        dest.rename(old)
        finished.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        finished.rename(dest)
    return dest


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to a temp file beside ``path``, fsync it, rename it over ``path``: readers see the old or the
    new content, never a part."""
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
