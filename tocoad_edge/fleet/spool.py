"""Store-and-forward: a bounded on-disk queue of verdicts (SQLite in WAL mode), replayed in order.

``put`` stores a verdict (and its optional JPEG) and gives it the camera's next sequence number in the same
transaction, so sequence numbers survive restarts and a crash never leaves a verdict without one. A verdict
leaves the spool only when the broker has acknowledged it (``ack``); until then ``peek`` hands it out again, oldest
first. WAL with ``synchronous=NORMAL`` loses nothing when the process dies (SIGKILL, a crash); only a power cut
may lose the last commits. ``durability="full"`` syncs every commit as well (slower, safe against power cuts).

Bounds (``SpoolLimits``), applied at each ``put``:

* ``max_bytes``: when verdicts and images together pass it, images are dropped, oldest first (their verdicts
  stay, marked ``image_dropped``); verdicts are never dropped for bytes.
* ``max_verdicts``: the hard cap. At it, the oldest verdict is dropped (``on_full="drop_oldest"``) or the new one
  is refused (``"drop_newest"``). Either way a counter says how many, and the consumer sees a gap in ``seq``.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ResourceError
from ..typed_config import require

COUNTERS = ("enqueued", "acked", "dropped_images", "dropped_verdicts")


@dataclass(frozen=True)
class SpoolLimits:
    max_bytes: int = 256 << 20          # verdict + image bytes before images are dropped (oldest first)
    max_verdicts: int = 1_000_000       # hard cap on verdicts held
    on_full: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    durability: Literal["normal", "full"] = "normal"

    def __post_init__(self) -> None:
        require(self.max_bytes > 0, "spool.max_bytes", "an integer > 0", self.max_bytes)
        require(self.max_verdicts > 0, "spool.max_verdicts", "an integer > 0", self.max_verdicts)


@dataclass(frozen=True)
class Entry:
    id: int
    camera: str
    seq: int
    payload: bytes            # the verdict as JSON (with seq)
    image: bytes | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, camera TEXT NOT NULL, seq INTEGER NOT NULL,
                                   payload BLOB NOT NULL, image BLOB);
CREATE TABLE IF NOT EXISTS cameras (camera TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Spool:
    """Thread-safe: the inspection thread puts, the publisher thread peeks and acks."""

    def __init__(self, path: str | Path, limits: SpoolLimits = SpoolLimits()):
        self.path = Path(path)
        self.limits = limits
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if limits.durability == 'full' else 'NORMAL'}")
            self._db.execute("PRAGMA journal_size_limit=8388608")   # the WAL shrinks back after checkpoints
            self._db.executescript(_SCHEMA)
            for name in COUNTERS:
                self._db.execute("INSERT OR IGNORE INTO counters VALUES (?, 0)", (name,))
            self._count, self._bytes = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload) + COALESCE(LENGTH(image), 0)), 0) FROM outbox"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise ResourceError(f"cannot open the verdict spool {self.path}", got=f"{type(exc).__name__}: {exc}",
                                fix="check the folder is writable; a damaged spool file can be moved away "
                                    "(its unsent verdicts are lost)") from None

    # -- producer ---------------------------------------------------------------------------------
    def put(self, camera: str, record: dict, image: bytes | None = None) -> int | None:
        """Store ``record`` with the camera's next ``seq`` (written into the record). Returns the seq, or None
        when the hard cap refused it (``on_full="drop_newest"``)."""
        with self._lock, self._transaction():
            if self._count >= self.limits.max_verdicts:
                if self.limits.on_full == "drop_newest":
                    self._bump("dropped_verdicts")
                    return None
                self._drop_oldest_verdict()
            row = self._db.execute("SELECT seq FROM cameras WHERE camera = ?", (camera,)).fetchone()
            seq = (row[0] if row else 0) + 1
            self._db.execute("INSERT OR REPLACE INTO cameras VALUES (?, ?)", (camera, seq))
            payload = json.dumps({**record, "seq": seq}, allow_nan=False, separators=(",", ":")).encode()
            self._db.execute("INSERT INTO outbox (camera, seq, payload, image) VALUES (?, ?, ?, ?)",
                             (camera, seq, payload, image))
            self._count += 1
            self._bytes += len(payload) + len(image or b"")
            self._bump("enqueued")
            self._shed_images()
            return seq

    # -- publisher --------------------------------------------------------------------------------
    def peek(self, limit: int = 100) -> list[Entry]:
        """The oldest ``limit`` verdicts not yet acknowledged, in the order they were put."""
        with self._lock:
            rows = self._db.execute("SELECT id, camera, seq, payload, image FROM outbox ORDER BY id LIMIT ?",
                                    (limit,)).fetchall()
        return [Entry(*r) for r in rows]

    def ack(self, ids: list[int]) -> None:
        """The broker has these verdicts: forget them."""
        if not ids:
            return
        with self._lock, self._transaction():
            marks = ",".join("?" * len(ids))
            gone, size = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload) + COALESCE(LENGTH(image), 0)), 0) FROM outbox "
                f"WHERE id IN ({marks})", ids).fetchone()
            self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", ids)
            self._count -= gone
            self._bytes -= size
            self._bump("acked", gone)

    # -- state --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        """Verdict and image bytes held (the payloads; the file is larger by SQLite's pages and the WAL)."""
        return self._bytes

    def disk_bytes(self) -> int:
        """The spool's files on disk: database + WAL + shared memory."""
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
                   if p.exists())

    def counters(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return {**out, "queued": self._count, "queued_bytes": self._bytes}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- internals ----------------------------------------------------------------------------------
    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, *_):
                db.execute("ROLLBACK" if exc_type else "COMMIT")
        return _Tx()

    def _bump(self, name: str, by: int = 1) -> None:
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (by, name))

    def _drop_oldest_verdict(self) -> None:
        row = self._db.execute("SELECT id, LENGTH(payload) + COALESCE(LENGTH(image), 0) FROM outbox "
                               "ORDER BY id LIMIT 1").fetchone()
        self._db.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
        self._count -= 1
        self._bytes -= row[1]
        self._bump("dropped_verdicts")

    def _shed_images(self) -> None:
        """Drop images oldest first until under ``max_bytes`` (verdicts stay; they say the image was dropped)."""
        while self._bytes > self.limits.max_bytes:
            row = self._db.execute("SELECT id, payload, LENGTH(image) FROM outbox WHERE image IS NOT NULL "
                                   "ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return                   # only verdicts left: they are never dropped for bytes
            record = json.loads(row[1])
            record["image"] = False
            record["image_dropped"] = True
            payload = json.dumps(record, allow_nan=False, separators=(",", ":")).encode()
            self._db.execute("UPDATE outbox SET image = NULL, payload = ? WHERE id = ?", (payload, row[0]))
            self._bytes -= row[2] + len(row[1]) - len(payload)
            self._bump("dropped_images")

