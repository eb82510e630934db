"""Shared pieces of the PLC tests: a gateway on a simulated camera and detector, bounded polling."""
from __future__ import annotations

import time
from typing import Any, Callable

from tocoad_edge.plc import Gateway, HandshakeConfig
from tocoad_edge.plc.simulation import FrameMeanDetector, SimulatedCamera

DEADLINE_S = 0.3          # fault tests: short, so an Error comes quickly
CYCLE_DEADLINE_S = 2.0    # cycle-count tests: long, so a busy CI machine cannot turn a slow cycle into an Error
HEARTBEAT_S = 0.05


def make_gateway(mode: str = "triggered", detector_delay_s: float = 0.0, frame_interval_s: float = 0.0,
                 deadline_s: float = DEADLINE_S) -> tuple[Gateway, SimulatedCamera, FrameMeanDetector]:
    camera = SimulatedCamera(frame_interval_s=frame_interval_s)
    detector = FrameMeanDetector(delay_s=detector_delay_s)
    config = HandshakeConfig(mode=mode, deadline_s=deadline_s, probe_interval_s=0.02,  # type: ignore[arg-type]
                             heartbeat_interval_s=HEARTBEAT_S)
    return Gateway(camera, detector, config, bundle_hash="0123456789abcdef" * 4), camera, detector


def poll(read: Callable[[], Any], until: Callable[[Any], bool], limit_s: float = 10.0) -> tuple[Any, float]:
    """Read until ``until(value)``; returns (value, seconds waited). A bounded loop, not a timing assertion."""
    start = time.monotonic()
    while True:
        value = read()
        if until(value):
            return value, time.monotonic() - start
        if time.monotonic() - start > limit_s:
            raise AssertionError(f"condition not reached within {limit_s} s; last value: {value!r}")
        time.sleep(0.002)
