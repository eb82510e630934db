"""The gateway loop: camera → detector → handshake, with a watchdog. The Python API to embed it.

    from tocoad_edge.plc import Gateway, HandshakeConfig, ModbusServer, ModbusConfig
    with Gateway(source, detector, HandshakeConfig(deadline_s=0.5)) as gw, \\
         ModbusServer(gw.handshake, ModbusConfig(host="0.0.0.0", port=502)):
        ...                                       # the PLC drives it over Modbus TCP

A program that talks to its PLC some other way drives the same loop directly:
``gw.handshake.write_trigger(True)``, ``gw.handshake.wait_for(lambda s: s.done, timeout)``,
``gw.handshake.write_ack(True)`` … or ``gw.inspect_once()`` for a whole cycle.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..runtime.prediction import Predictor
from .config import HandshakeConfig
from .handshake import Cycle, Handshake
from .ports import ERROR, OK, FrameSource, grab, judge
from .signals import Fault, Mode, Result, Stage
from .snapshot import Outcome, Snapshot
from .watchdog import Watchdog

log = logging.getLogger("tocoad_edge.plc")

STALE_WINDOW_S = 60.0   # a frame stamped up to this long before its trigger is a stale buffered frame


def bundle_hash(bundle_dir: str | Path) -> str:
    """sha256 of a bundle's ``manifest.json`` (which holds the sha256 of every other file)."""
    return hashlib.sha256((Path(bundle_dir) / "manifest.json").read_bytes()).hexdigest()


def _require_api(obj: Any, method: str, role: str, expected: str) -> None:
    if not callable(getattr(obj, method, None)):
        raise ConfigError(f"the Gateway's {role} has no {method}() method", expected=expected,
                          got=type(obj).__name__, fix=f"pass {expected.split(', e.g. ')[-1]}")


def _identity(detector: Any) -> tuple[str, str]:
    manifest = getattr(detector, "manifest", None)
    model_id = str(getattr(manifest, "model_id", "") or getattr(detector, "model_id", "") or "")
    digest = str(getattr(detector, "bundle_hash", "") or "")
    if not digest:
        folder = getattr(detector, "bundle_dir", None)
        if folder is not None and (Path(folder) / "manifest.json").is_file():
            digest = bundle_hash(folder)
    return model_id, digest


class Gateway:
    """Runs the camera + detector loop against a ``Handshake``; transports attach to ``gateway.handshake``."""

    def __init__(self, source: FrameSource, detector: Predictor, config: HandshakeConfig | None = None, *,
                 model_id: str | None = None, bundle_hash: str | None = None,
                 clock: Callable[[], float] | None = None):
        self.config = config or HandshakeConfig()
        _require_api(source, "read", "source",
                     "a frame source with read(timeout), e.g. tocoad_edge.stream.open_source(uri)")
        _require_api(detector, "predict", "detector", "a detector with predict(frame), e.g. Detector.open(bundle)")
        if not isinstance(self.config, HandshakeConfig):
            raise ConfigError("Gateway config has the wrong type", expected="a tocoad_edge.plc.HandshakeConfig",
                              got=type(self.config).__name__, fix="pass HandshakeConfig(...) (or None for defaults)")
        self.source = source
        self.detector = detector
        found_id, found_hash = _identity(detector)
        kwargs = {"clock": clock} if clock is not None else {}
        self.handshake = Handshake(Mode.FREE_RUN if self.config.mode == "free_run" else Mode.TRIGGERED,
                                   self.config.deadline_s, model_id=model_id if model_id is not None else found_id,
                                   bundle_hash=bundle_hash if bundle_hash is not None else found_hash, **kwargs)
        self._watchdog = Watchdog(self.handshake, self.config.heartbeat_interval_s)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._next_frame_id = 0
        self.stale_frames_skipped = 0       # frames captured before their trigger, not judged
        self._warned_clock = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Gateway":
        if self._worker is not None:
            return self
        self._stop.clear()
        self.handshake.start()
        self._worker = threading.Thread(target=self._run, name="tocoad-plc-worker", daemon=True)
        self._worker.start()
        self._watchdog.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.handshake.stop()
        self._watchdog.stop(timeout)
        if self._worker is not None:
            self._worker.join(timeout)
            if self._worker.is_alive():
                log.warning("gateway worker still inside a camera or detector call after %.1f s; "
                            "it is a daemon thread and ends with the process", timeout)
            self._worker = None

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> Snapshot:
        return self.handshake.snapshot()

    def inspect_once(self, timeout: float | None = None) -> Snapshot:
        """One whole triggered cycle from Python: Trigger, wait for Done, Ack, wait for Ready or fault."""
        hs = self.handshake
        limit = timeout if timeout is not None else 2.0 * self.config.deadline_s + 1.0
        before = hs.snapshot().result_seq
        hs.write_trigger(True)
        snap = hs.wait_for(lambda s: s.done and s.result_seq > before, limit)
        hs.write_trigger(False)
        if snap is None:
            raise TimeoutError(f"no result within {limit:.2f} s (is the gateway started and Ready?)")
        hs.write_ack(True)
        hs.wait_for(lambda s: not s.done, limit)
        hs.write_ack(False)
        return snap

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        cfg = self.config
        while not self._stop.is_set():
            try:
                if self.handshake.mode == Mode.FREE_RUN:
                    self._free_run_step()
                    continue
                cycle = self.handshake.wait_for_cycle(cfg.probe_interval_s)
                if self._stop.is_set():
                    break
                if not self.handshake.running:
                    self._stop.wait(cfg.probe_interval_s)
                    continue
                if cycle is not None:
                    self._run_cycle(cycle)
                else:
                    self._probe()
            except Exception:  # never let the loop die: log, count as a model fault, go on
                log.exception("gateway worker step failed")
                self.handshake.report_fault(Fault.INFERENCE_ERROR)
                self._stop.wait(cfg.probe_interval_s)

    def _frame_id(self, given: int | None) -> int:
        if given is not None:
            self._next_frame_id = given + 1
            return given
        self._next_frame_id += 1
        return self._next_frame_id - 1

    def _grab_until(self, deadline_at: float, not_before: float | None = None) -> tuple[Any, int | None, Fault]:
        """Read until a frame comes or the deadline passes. Returns (frame, frame_id, fault).

        ``not_before``: skip frames the source stamped as captured earlier (a buffered frame from before
        the trigger may show the previous part).
        """
        hs = self.handshake
        fault = Fault.CAMERA_TIMEOUT
        while not self._stop.is_set():
            remaining = deadline_at - hs.now()
            if remaining <= 0:
                break
            hs.set_stage(Stage.GRABBING)
            g = grab(self.source, remaining)
            if g.status == OK:
                if not_before is not None and g.captured is not None and self._captured_before(g.captured, not_before):
                    self.stale_frames_skipped += 1
                    continue
                return g.frame, g.frame_id, Fault.NONE
            fault = Fault.CAMERA_ERROR if g.status == ERROR or g.detail else Fault.CAMERA_TIMEOUT
            if g.detail:
                log.debug("source read failed: %s", g.detail)
                hs.note_camera_error(g.detail)
            if g.status == ERROR:       # an erroring source may return at once: do not spin on it
                self._stop.wait(min(0.01, max(0.0, deadline_at - hs.now())))
        return None, None, fault

    def _captured_before(self, captured: float, trigger: float) -> bool:
        """True for a frame captured before the trigger. A stamp far older than any buffer holds is taken
        for another clock (not time.monotonic()): warn once and judge such frames as they come."""
        age = trigger - captured
        if age <= 0:
            return False
        if age <= STALE_WINDOW_S:
            return True
        if not self._warned_clock:
            self._warned_clock = True
            log.warning("the source stamps frames %.0f s before the trigger: its 'monotonic' capture time seems to "
                        "come from another clock; fresh-frame checks are off for such frames (fix: stamp frames "
                        "with time.monotonic(), or set handshake.fresh_frames: false)", age)
        return False

    def _run_cycle(self, cycle: Cycle) -> None:
        hs = self.handshake
        not_before = cycle.started if self.config.fresh_frames else None
        frame, given_id, fault = self._grab_until(cycle.started + self.config.deadline_s, not_before)
        if frame is None:
            hs.finish_cycle(cycle, Outcome(Result.ERROR, fault=fault))
            return
        frame_id = self._frame_id(given_id)
        hs.set_stage(Stage.INFERRING)
        hs.finish_cycle(cycle, judge(self.detector, frame, frame_id))

    def _probe(self) -> None:
        """Idle or faulted: check the camera (and the model, when it is the model that failed).

        Pacing comes from ``wait_for_cycle``: a trigger is never kept waiting by anything but one read.
        """
        hs = self.handshake
        fault = hs.fault
        hs.set_stage(Stage.GRABBING)
        g = grab(self.source, self.config.probe_interval_s)
        hs.set_stage(Stage.WAITING)
        if g.frame is None:     # a timeout or an error: an OK grab always carries its frame
            if g.detail:
                log.debug("camera probe failed: %s", g.detail)
                hs.note_camera_error(g.detail)
            if g.status == ERROR:
                self._stop.wait(min(0.01, self.config.probe_interval_s))   # an erroring source returns at once
            return
        if fault.is_model:
            hs.set_stage(Stage.INFERRING)
            outcome = judge(self.detector, g.frame, self._frame_id(g.frame_id))
            hs.set_stage(Stage.WAITING)
            if outcome.result == Result.ERROR:
                return
        if fault == Fault.NONE:
            hs.mark_alive()
        else:
            hs.recover()

    def _free_run_step(self) -> None:
        hs = self.handshake
        started = hs.now()
        frame, given_id, _ = self._grab_until(started + self.config.deadline_s)
        if frame is None:
            return      # the watchdog faults once the camera has been silent for the deadline
        hs.set_stage(Stage.INFERRING)
        outcome = judge(self.detector, frame, self._frame_id(given_id))
        if outcome.result == Result.ERROR:
            hs.report_fault(outcome.fault)
            hs.set_stage(Stage.WAITING)
            self._stop.wait(self.config.probe_interval_s)
            return
        hs.publish(outcome, started)
