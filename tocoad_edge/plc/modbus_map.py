"""The Modbus register map: a snapshot → 56 holding registers, and the check of every PLC write.

Pure (no pymodbus): ``docs/plc.md`` documents the same table, and ``tests/plc/test_plc_contract.py``
checks the two agree. Addresses are 0-based protocol addresses (PLC tools often show 40001 + address).
32-bit values take two registers, high word first. Text is ASCII, two characters per register,
first character in the high byte, NUL padded.
"""
from __future__ import annotations

from dataclasses import dataclass

from .signals import Result
from .snapshot import Snapshot

MAP_VERSION = 1          # the default map version: what a PLC program written before REVIEW existed reads
MAP_VERSIONS = (1, 2)    # 2: the same registers; ``result`` may also be 4 (REVIEW)

# PLC → gateway (read/write, 0 or 1)
TRIGGER = 0
ACK = 1
WRITABLE = {TRIGGER: "trigger", ACK: "ack"}
# 2..9 reserved: read as 0, writes refused
# gateway → PLC (read only)
READY = 10
BUSY = 11
DONE = 12
RESULT = 13             # 0 none, 1 OK, 2 NG, 3 Error; map version 2 also 4 Review
QUALITY = 14            # 0 good, 1 uncertain, 2 bad
ERROR_CODE = 15         # signals.Fault
HEARTBEAT = 16          # low 16 bits; increases while healthy, stops on a fault
MODE = 17               # 0 triggered, 1 free-run
RESULT_SEQ = 18         # u32 (18 high, 19 low)
FRAME_ID = 20           # u32
SCORE = 22              # round(score × score_scale), saturating in [0, 65535]
SCORE_SCALE = 23
LATENCY_US = 24         # u32, trigger → result measured in the gateway
TRIGGER_COUNT = 26      # u32
TRIGGERS_IGNORED = 28   # u16, saturating
WRITES_REJECTED = 29    # u16, saturating
VERSION = 30            # register map version (1 or 2, modbus.map_version)
PHASE = 31              # signals.Phase
MODEL_ID = 32           # 16 registers: 32 ASCII characters
MODEL_ID_REGS = 16
BUNDLE_HASH = 48        # 8 registers: first 16 hex characters of the bundle's manifest sha256
BUNDLE_HASH_REGS = 8
SIZE = 56               # registers 0..55; anything above is an illegal address

_U16 = 0xFFFF

# (first address, registers, name, access) — the table docs/plc.md documents (a test keeps them equal)
REGISTER_TABLE: tuple[tuple[int, int, str, str], ...] = (
    (TRIGGER, 1, "trigger", "RW"), (ACK, 1, "ack", "RW"),
    (READY, 1, "ready", "R"), (BUSY, 1, "busy", "R"), (DONE, 1, "done", "R"), (RESULT, 1, "result", "R"),
    (QUALITY, 1, "quality", "R"), (ERROR_CODE, 1, "error_code", "R"), (HEARTBEAT, 1, "heartbeat", "R"),
    (MODE, 1, "mode", "R"), (RESULT_SEQ, 2, "result_seq", "R"), (FRAME_ID, 2, "frame_id", "R"),
    (SCORE, 1, "score", "R"), (SCORE_SCALE, 1, "score_scale", "R"), (LATENCY_US, 2, "latency_us", "R"),
    (TRIGGER_COUNT, 2, "trigger_count", "R"), (TRIGGERS_IGNORED, 1, "triggers_ignored", "R"),
    (WRITES_REJECTED, 1, "writes_rejected", "R"), (VERSION, 1, "map_version", "R"), (PHASE, 1, "phase", "R"),
    (MODEL_ID, MODEL_ID_REGS, "model_id", "R"), (BUNDLE_HASH, BUNDLE_HASH_REGS, "bundle_hash", "R"),
)


@dataclass(frozen=True)
class Rejection:
    """Why a write was refused; ``exception`` is the Modbus exception code the PLC receives."""

    exception: str          # "ILLEGAL_ADDRESS" | "ILLEGAL_VALUE" | "ILLEGAL_FUNCTION"
    message: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.message}; expected: {self.expected}; got: {self.got}"


def _u32(value: int) -> tuple[int, int]:
    value = int(value) & 0xFFFFFFFF
    return value >> 16, value & _U16


def _text(value: str, registers: int) -> list[int]:
    raw = value.encode("ascii", "replace")[: 2 * registers].ljust(2 * registers, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]


def scale_score(score: float, scale: int) -> int:
    scaled = round(score * scale)
    return 0 if scaled < 0 else _U16 if scaled > _U16 else int(scaled)


def result_code(result: Result, map_version: int = MAP_VERSION) -> int:
    """The ``result`` register. Map version 1 knows 0–3 only: a REVIEW part is reported as NG (2) there, so a PLC
    program that predates the review band diverts it rather than passing it as good."""
    if result == Result.REVIEW and map_version < 2:
        return int(Result.NG)
    return int(result)


def render(snap: Snapshot, score_scale: int, map_version: int = MAP_VERSION) -> list[int]:
    """All ``SIZE`` registers for one snapshot, in register map ``map_version`` (1 or 2)."""
    regs = [0] * SIZE
    regs[TRIGGER] = int(snap.trigger)
    regs[ACK] = int(snap.ack)
    regs[READY] = int(snap.ready)
    regs[BUSY] = int(snap.busy)
    regs[DONE] = int(snap.done)
    regs[RESULT] = result_code(snap.result, map_version)
    regs[QUALITY] = int(snap.quality)
    regs[ERROR_CODE] = int(snap.fault)
    regs[HEARTBEAT] = snap.heartbeat & _U16
    regs[MODE] = int(snap.mode)
    regs[RESULT_SEQ:RESULT_SEQ + 2] = _u32(snap.result_seq)
    regs[FRAME_ID:FRAME_ID + 2] = _u32(snap.frame_id)
    regs[SCORE] = scale_score(snap.score, score_scale)
    regs[SCORE_SCALE] = score_scale
    regs[LATENCY_US:LATENCY_US + 2] = _u32(min(round(snap.latency_ms * 1000.0), 0xFFFFFFFF))
    regs[TRIGGER_COUNT:TRIGGER_COUNT + 2] = _u32(snap.trigger_count)
    regs[TRIGGERS_IGNORED] = min(snap.triggers_ignored, _U16)
    regs[WRITES_REJECTED] = min(snap.writes_rejected, _U16)
    regs[VERSION] = map_version
    regs[PHASE] = int(snap.phase)
    regs[MODEL_ID:MODEL_ID + MODEL_ID_REGS] = _text(snap.model_id, MODEL_ID_REGS)
    regs[BUNDLE_HASH:BUNDLE_HASH + BUNDLE_HASH_REGS] = _text(snap.bundle_hash[:16], BUNDLE_HASH_REGS)
    return regs


def check_read(address: int, count: int) -> Rejection | None:
    if address < 0 or count < 1 or address + count > SIZE:
        return Rejection("ILLEGAL_ADDRESS", "read outside the register map",
                              f"registers 0..{SIZE - 1}", f"{address}..{address + count - 1}")
    return None


def check_write(address: int, values: list[int]) -> Rejection | None:
    """None when every register written is writable and every value is 0 or 1."""
    for offset, value in enumerate(values):
        reg = address + offset
        if reg not in WRITABLE:
            what = "read-only status register" if 0 <= reg < SIZE else "an address outside the register map"
            return Rejection("ILLEGAL_ADDRESS", f"write to register {reg} refused: {what}",
                                  "writes to register 0 (trigger) or 1 (ack) only", f"register {reg}")
        if value not in (0, 1):
            return Rejection("ILLEGAL_VALUE", f"write to register {reg} ({WRITABLE[reg]}) refused: "
                                  "value out of range", "0 or 1", str(value))
    return None


def decode_u32(regs: list[int], index: int) -> int:
    """Helper for clients: the u32 at ``index`` of a block read from register 0."""
    return (regs[index] << 16) | regs[index + 1]


def decode_text(regs: list[int], index: int, count: int) -> str:
    raw = b"".join(bytes([r >> 8, r & 0xFF]) for r in regs[index:index + count])
    return raw.rstrip(b"\0").decode("ascii", "replace")
