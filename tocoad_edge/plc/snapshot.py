"""What the gateway publishes: one immutable, self-consistent snapshot of every handshake signal.

Transports render a snapshot into registers or nodes in one go, so a PLC never reads a result of one
cycle next to the frame id of another.
"""
from __future__ import annotations

from dataclasses import dataclass

from .signals import Fault, Mode, Phase, Quality, Result


@dataclass(frozen=True)
class Outcome:
    """The verdict for one frame, as the worker hands it to the handshake."""

    result: Result
    score: float = 0.0              # normalised image score (> 1.0 ⇔ NG)
    raw_score: float = 0.0
    frame_id: int = 0
    fault: Fault = Fault.NONE       # set when ``result`` is ERROR


@dataclass(frozen=True)
class Snapshot:
    version: int                    # increases on every change
    mode: Mode
    running: bool
    # handshake bits
    trigger: bool                   # last level the PLC wrote
    ack: bool
    ready: bool
    busy: bool
    done: bool
    phase: Phase
    # verdict (valid when done; see quality)
    result: Result
    quality: Quality
    fault: Fault
    fault_detail: str               # why, when the source said (e.g. its connection error); else ""
    score: float
    raw_score: float
    frame_id: int
    result_seq: int                 # number of results published (1 for the first); identifies a result
    latency_ms: float               # trigger (or frame read, free-run) to publication, measured in the gateway
    # liveness and counters
    heartbeat: int                  # increases while healthy, stops on a fault
    trigger_count: int              # trigger rising edges accepted as cycles
    triggers_ignored: int           # rising edges while not Ready (busy, done, release)
    writes_rejected: int            # malformed writes refused by a transport
    late_results: int               # results that arrived after the watchdog had already answered Error
    # identity
    model_id: str
    bundle_hash: str
