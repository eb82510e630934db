"""Put a finished folder in place of another without ever leaving a half-written one."""
from __future__ import annotations

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
