"""The OPC UA node set: one variable per handshake signal, under ``Objects/<object_name>``.

Pure (no asyncua): ``docs/plc.md`` documents the same table. NodeIds are strings
``ns=<namespace_uri>;s=<object_name>.<Name>``. Nodes marked ``verdict`` carry the status code of the
result (Good / Uncertain / Bad, see ``verdict_status``); the others are facts about the gateway and are
always Good.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .signals import FAULT_TEXT, Fault, Quality
from .snapshot import Snapshot

_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class NodeSpec:
    name: str
    variant: str                        # asyncua VariantType name
    value: Callable[[Snapshot], Any]
    writable: bool = False              # only Trigger and Ack
    verdict: bool = False               # status code follows the result quality
    doc: str = ""


NODES: tuple[NodeSpec, ...] = (
    NodeSpec("Trigger", "Boolean", lambda s: s.trigger, writable=True,
             doc="PLC → gateway. Rising edge while Ready starts a cycle (triggered mode)."),
    NodeSpec("Ack", "Boolean", lambda s: s.ack, writable=True,
             doc="PLC → gateway. Rising edge while Done acknowledges the result."),
    NodeSpec("Ready", "Boolean", lambda s: s.ready, doc="Idle, healthy, waiting for Trigger."),
    NodeSpec("Busy", "Boolean", lambda s: s.busy, doc="Grabbing a frame and inferring."),
    NodeSpec("Done", "Boolean", lambda s: s.done, doc="A result is published and waits for Ack."),
    NodeSpec("Result", "Int32", lambda s: int(s.result), verdict=True, doc="0 none, 1 OK, 2 NG, 3 Error, 4 Review."),
    NodeSpec("ResultText", "String", lambda s: s.result.name, verdict=True, doc="NONE, OK, NG, ERROR or REVIEW."),
    NodeSpec("Score", "Double", lambda s: s.score, verdict=True, doc="Normalised image score; > 1.0 is NG."),
    NodeSpec("RawScore", "Double", lambda s: s.raw_score, verdict=True, doc="Image score before normalisation."),
    NodeSpec("FrameId", "UInt32", lambda s: s.frame_id & _U32, verdict=True, doc="Id of the judged frame."),
    NodeSpec("LatencyMs", "Double", lambda s: s.latency_ms, verdict=True,
             doc="Trigger (free-run: frame read) to result, measured in the gateway."),
    NodeSpec("ResultSeq", "UInt32", lambda s: s.result_seq & _U32,
             doc="Number of results published; identifies a result (each trigger gets the next one)."),
    NodeSpec("Quality", "Int32", lambda s: int(s.quality), doc="0 good, 1 uncertain, 2 bad (as the status code)."),
    NodeSpec("ErrorCode", "Int32", lambda s: int(s.fault),
             doc="0 none, 1 camera timeout, 2 camera error, 3 inference error, 4 inference timeout, 5 stopped."),
    NodeSpec("ErrorText", "String", lambda s: _fault_text(s),
             doc="The error code in words, with the source's reason when it gave one."),
    NodeSpec("Heartbeat", "UInt32", lambda s: s.heartbeat & _U32, doc="Increases while healthy; stops on a fault."),
    NodeSpec("Mode", "String", lambda s: s.mode.name.lower(), doc="triggered or free_run."),
    NodeSpec("Phase", "String", lambda s: s.phase.name, doc="IDLE, BUSY, DONE or RELEASE."),
    NodeSpec("TriggerCount", "UInt32", lambda s: s.trigger_count & _U32, doc="Trigger edges accepted as cycles."),
    NodeSpec("TriggersIgnored", "UInt32", lambda s: s.triggers_ignored & _U32,
             doc="Trigger edges while not Ready (PLC protocol errors)."),
    NodeSpec("WritesRejected", "UInt32", lambda s: s.writes_rejected & _U32,
             doc="Malformed writes refused (read-only node, wrong type)."),
    NodeSpec("LateResults", "UInt32", lambda s: s.late_results & _U32,
             doc="Results that came after the watchdog had answered Error (discarded)."),
    NodeSpec("ModelId", "String", lambda s: s.model_id, doc="model_id from the bundle manifest."),
    NodeSpec("BundleHash", "String", lambda s: s.bundle_hash, doc="sha256 of the bundle's manifest.json."),
)


def _fault_text(snap: Snapshot) -> str:
    text = FAULT_TEXT[snap.fault]
    return f"{text} ({snap.fault_detail})" if snap.fault_detail else text


def verdict_status(snap: Snapshot) -> str:
    """The asyncua StatusCodes name for the verdict nodes of ``snap``."""
    if snap.quality == Quality.GOOD:
        return "Good"
    if snap.quality == Quality.UNCERTAIN:
        return "UncertainInitialValue" if snap.result_seq == 0 else "UncertainLastUsableValue"
    if not snap.running or snap.fault == Fault.STOPPED:
        return "BadShutdown"
    if snap.fault.is_camera:
        return "BadSensorFailure"
    return "BadDeviceFailure"
