"""The vocabulary of the PLC handshake: results, faults, phases, quality.

Every transport (Modbus TCP, OPC UA, an embedding program) speaks these values; their integer codes
are the ones written to Modbus registers and documented in ``docs/plc.md``. Never renumber them.
"""
from __future__ import annotations

from enum import IntEnum


class Mode(IntEnum):
    """How frames are taken."""

    TRIGGERED = 0   # the PLC raises Trigger, the gateway grabs one frame, infers, publishes, waits for Ack
    FREE_RUN = 1    # every frame the camera delivers is inferred and published with its id


class Result(IntEnum):
    """The verdict the PLC acts on."""

    NONE = 0        # no result yet
    OK = 1
    NG = 2          # anomalous: drive the reject gate
    ERROR = 3       # no verdict: camera or model failed or stalled (treat the part as not inspected)
    REVIEW = 4      # in the bundle's review band: not NG, not OK, a person decides (Modbus: map version 2 only)


class Fault(IntEnum):
    """Why the gateway cannot give a verdict. ``NONE`` while healthy."""

    NONE = 0
    CAMERA_TIMEOUT = 1      # no frame within the deadline, and the source gave no reason
    CAMERA_ERROR = 2        # the source reported an error (e.g. a lost connection) or end of stream
    INFERENCE_ERROR = 3     # the detector raised or returned a non-finite score
    INFERENCE_TIMEOUT = 4   # the detector did not return within the deadline
    STOPPED = 5             # the gateway is stopped

    @property
    def is_camera(self) -> bool:
        return self in (Fault.CAMERA_TIMEOUT, Fault.CAMERA_ERROR)

    @property
    def is_model(self) -> bool:
        return self in (Fault.INFERENCE_ERROR, Fault.INFERENCE_TIMEOUT)


class Phase(IntEnum):
    """Where a triggered cycle is. Free-run mode stays in ``IDLE``."""

    IDLE = 0        # waiting for a Trigger rising edge (Ready when there is no fault)
    BUSY = 1        # grabbing a frame and inferring
    DONE = 2        # result published, waiting for Ack
    RELEASE = 3     # Ack seen, waiting for Trigger and Ack to drop before Ready again


class Quality(IntEnum):
    """How far the published result can be trusted (OPC UA status class; Modbus ``quality`` register)."""

    GOOD = 0        # the result of the current cycle (triggered) or a fresh frame (free-run), gateway healthy
    UNCERTAIN = 1   # a previous cycle's result, or no result yet: do not act on it
    BAD = 2         # camera or model down, or the gateway stopped: the value is not a verdict


class Stage(IntEnum):
    """What the worker is doing; tells the watchdog whether a stall is the camera's or the model's."""

    WAITING = 0
    GRABBING = 1
    INFERRING = 2


FAULT_TEXT = {
    Fault.NONE: "",
    Fault.CAMERA_TIMEOUT: "camera timeout: no frame within the deadline",
    Fault.CAMERA_ERROR: "camera error: the source reported an error, a lost connection or end of stream",
    Fault.INFERENCE_ERROR: "inference error: the detector raised or returned a non-finite score",
    Fault.INFERENCE_TIMEOUT: "inference timeout: the detector did not return within the deadline",
    Fault.STOPPED: "gateway stopped",
}
