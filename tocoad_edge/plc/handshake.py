"""The handshake state machine shared by every transport.

Triggered mode (a four-phase handshake, the PLC owns Trigger and Ack, the gateway owns the rest)::

    IDLE (Ready=1) ──Trigger ↑──▶ BUSY (Busy=1) ──result──▶ DONE (Done=1) ──Ack ↑──▶ RELEASE
      ▲                                                                               │
      └────────────────────────── Trigger = 0 and Ack = 0 ◀───────────────────────────┘

* Every Trigger rising edge accepted in IDLE gets exactly one result, with the next ``result_seq``.
  While a fault is active the answer is immediate: result Error (the part is not inspected).
* A rising edge in BUSY, DONE or RELEASE is a PLC protocol error: ignored, counted, logged.
* The watchdog answers Error for a cycle that passes the deadline; a result the worker delivers later
  is discarded (``late_results``), so a stale verdict is never published as the current one.

Free-run mode publishes every frame with its id; Trigger and Ack are accepted and ignored.

All methods are thread-safe. Listeners are called with each new snapshot, under the lock, in order: they
must return quickly (hand the snapshot to another thread or loop).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError
from .signals import FAULT_TEXT, Fault, Mode, Phase, Quality, Result, Stage
from .snapshot import Outcome, Snapshot
from .throttled_log import ThrottledLog

log = logging.getLogger("tocoad_edge.plc")

Listener = Callable[[Snapshot], None]
_U32 = 1 << 32


def _check_deadline(deadline_s: float) -> None:
    if not (isinstance(deadline_s, (int, float)) and deadline_s > 0):
        raise ConfigError("the handshake deadline must be positive", expected="deadline_s > 0 seconds",
                          got=repr(deadline_s), fix="give the camera + inference time limit, e.g. 1.0")


@dataclass(frozen=True)
class Cycle:
    """One accepted trigger."""

    number: int         # trigger_count when it was accepted (1 for the first)
    started: float      # monotonic time of the Trigger rising edge


class Handshake:
    def __init__(self, mode: Mode = Mode.TRIGGERED, deadline_s: float = 1.0, *, model_id: str = "",
                 bundle_hash: str = "", clock: Callable[[], float] = time.monotonic):
        _check_deadline(deadline_s)
        self.mode = Mode(mode)
        self.deadline_s = float(deadline_s)
        self._clock = clock
        self._cond = threading.Condition()
        self._listeners: list[Listener] = []
        self._version = 0
        self._snap: Snapshot | None = None
        self._running = False
        self._trigger = False
        self._ack = False
        self._phase = Phase.IDLE
        self._fault = Fault.STOPPED
        self._stage = Stage.WAITING
        self._cycle: Cycle | None = None
        self._taken: Cycle | None = None       # the cycle the worker already took
        self._last = Outcome(Result.NONE)
        self._latency_ms = 0.0
        self._result_seq = 0
        self._heartbeat = 0
        self._trigger_count = 0
        self._triggers_ignored = 0
        self._writes_rejected = 0
        self._late_results = 0
        self._last_alive = clock()
        self._camera_error = ""                     # why the last read failed ("" after a good frame)
        self._model_id = model_id
        self._bundle_hash = bundle_hash
        self._protocol_log = ThrottledLog(log)      # PLC protocol errors can repeat every scan cycle

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self._cond:
            self._running = True
            self._fault = Fault.NONE
            self._phase = Phase.IDLE
            self._last_alive = self._clock()
            self._changed()

    def stop(self) -> None:
        with self._cond:
            if self._phase == Phase.BUSY and self._cycle is not None:
                self._publish_cycle(self._cycle, Outcome(Result.ERROR, fault=Fault.STOPPED))
            self._running = False
            self._fault = Fault.STOPPED
            self._changed()

    def set_deadline(self, deadline_s: float) -> None:
        """Change the deadline while running (e.g. for another line speed); applies to the next check."""
        _check_deadline(deadline_s)
        with self._cond:
            self.deadline_s = float(deadline_s)
            self._changed()

    def set_identity(self, model_id: str, bundle_hash: str) -> None:
        with self._cond:
            self._model_id, self._bundle_hash = model_id, bundle_hash
            self._changed()

    # ------------------------------------------------------------------ PLC side
    def write_trigger(self, level: bool) -> None:
        level = bool(level)
        with self._cond:
            rising = level and not self._trigger
            self._trigger = level
            if rising and self._running and self.mode == Mode.TRIGGERED:
                if self._phase == Phase.IDLE:
                    self._accept_trigger()
                else:
                    self._triggers_ignored += 1
                    self._protocol_log.warning(
                        "Trigger rising edge ignored: the gateway is %s, not Ready (ignored so far: %d); "
                        "fix: raise Trigger only while Ready = 1", self._phase.name, self._triggers_ignored)
            self._release_if_dropped()
            self._changed()

    def write_ack(self, level: bool) -> None:
        level = bool(level)
        with self._cond:
            rising = level and not self._ack
            self._ack = level
            if rising and self._phase == Phase.DONE:
                self._phase = Phase.RELEASE
            self._release_if_dropped()
            self._changed()

    def count_rejected_write(self) -> None:
        """A transport refused a malformed write; the handshake itself is untouched."""
        with self._cond:
            self._writes_rejected += 1
            self._changed()

    # ------------------------------------------------------------------ worker side
    def wait_for_cycle(self, timeout: float) -> Cycle | None:
        """Block until a cycle is BUSY and not yet taken by the worker, or ``timeout`` passes."""
        with self._cond:
            self._cond.wait_for(lambda: self._cycle_to_take() is not None or not self._running, timeout)
            cycle = self._cycle_to_take()
            if cycle is not None:
                self._taken = cycle
            return cycle

    def set_stage(self, stage: Stage) -> None:
        with self._cond:
            self._stage = stage

    def mark_alive(self) -> None:
        """The camera delivered a frame (and, when asked, the model answered)."""
        with self._cond:
            self._last_alive = self._clock()
            self._camera_error = ""

    def note_camera_error(self, detail: str) -> None:
        """The source reported an error (not a mere timeout): a stall is then a camera error, with this why."""
        with self._cond:
            self._camera_error = detail or "error"

    def finish_cycle(self, cycle: Cycle, outcome: Outcome) -> bool:
        """Publish the worker's result for ``cycle``. False when the watchdog already answered it."""
        with self._cond:
            self._stage = Stage.WAITING
            if self._phase != Phase.BUSY or self._cycle is not cycle:
                self._late_results += 1
                self._protocol_log.warning("late result for cycle %d discarded (the watchdog already answered "
                                           "Error)", cycle.number)
                self._changed()
                return False
            if outcome.result != Result.ERROR:
                self._last_alive = self._clock()
                self._camera_error = ""
            self._publish_cycle(cycle, outcome)
            self._changed()
            return True

    def publish(self, outcome: Outcome, started: float) -> None:
        """Free-run: publish one frame's verdict. ``started`` is the monotonic time its read began."""
        with self._cond:
            self._stage = Stage.WAITING
            if not self._running:
                return
            now = self._clock()
            if outcome.result == Result.ERROR:
                self._enter_fault(outcome.fault)
            elif now - started > self.deadline_s:
                self._late_results += 1     # the watchdog has faulted meanwhile: a stale verdict, not published
                self._protocol_log.warning("late free-run result for frame %d discarded (%.3f s > deadline %.3f s)",
                                           outcome.frame_id, now - started, self.deadline_s)
            else:
                self._last = outcome
                self._result_seq += 1
                self._latency_ms = (now - started) * 1000.0
                self._last_alive = now
                self._camera_error = ""
                if self._fault != Fault.NONE:
                    self._recovered()
            self._changed()

    def report_fault(self, fault: Fault) -> None:
        """The worker saw the camera or model fail outside a cycle (a probe)."""
        with self._cond:
            if self._running and self._fault == Fault.NONE:
                self._enter_fault(fault)
                self._changed()

    def recover(self) -> None:
        """A probe succeeded: clear the fault without a restart."""
        with self._cond:
            self._last_alive = self._clock()
            self._camera_error = ""
            if self._running and self._fault != Fault.NONE:
                self._recovered()
                self._changed()

    def now(self) -> float:
        """The handshake's clock (monotonic seconds)."""
        return self._clock()

    @property
    def fault(self) -> Fault:
        with self._cond:
            return self._fault

    @property
    def running(self) -> bool:
        with self._cond:
            return self._running

    # ------------------------------------------------------------------ watchdog side
    def check_deadlines(self) -> None:
        """Answer Error for a cycle past the deadline; fault when the camera or model went silent."""
        with self._cond:
            if not self._running:
                return
            now = self._clock()
            if self._stage == Stage.INFERRING:
                stalled = Fault.INFERENCE_TIMEOUT
            else:
                stalled = Fault.CAMERA_ERROR if self._camera_error else Fault.CAMERA_TIMEOUT
            if self._phase == Phase.BUSY and self._cycle is not None:
                if now - self._cycle.started > self.deadline_s:
                    log.error("cycle %d passed the %.3f s deadline while %s: result Error",
                              self._cycle.number, self.deadline_s, self._stage.name.lower())
                    self._publish_cycle(self._cycle, Outcome(Result.ERROR, fault=stalled))
                    self._changed()
            elif self._fault == Fault.NONE and now - self._last_alive > self.deadline_s:
                log.error("no frame or verdict for %.3f s (deadline %.3f s): %s",
                          now - self._last_alive, self.deadline_s, FAULT_TEXT[stalled])
                self._enter_fault(stalled)
                self._changed()

    def next_expiry(self) -> float | None:
        """Monotonic time at which ``check_deadlines`` will answer Error or fault next; None if nothing runs."""
        with self._cond:
            if not self._running:
                return None
            if self._phase == Phase.BUSY and self._cycle is not None:
                return self._cycle.started + self.deadline_s
            if self._fault == Fault.NONE:
                return self._last_alive + self.deadline_s
            return None

    def beat(self) -> None:
        """Advance the heartbeat; it stands still while a fault is active or the gateway is stopped."""
        with self._cond:
            if self._running and self._fault == Fault.NONE:
                self._heartbeat = (self._heartbeat + 1) % _U32
                self._changed()

    # ------------------------------------------------------------------ readers
    def snapshot(self) -> Snapshot:
        with self._cond:
            if self._snap is None:
                self._snap = self._build_snapshot()
            return self._snap

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(snapshot)`` on every change (under the lock: keep it quick). Returns unsubscribe."""
        with self._cond:
            self._listeners.append(listener)
            self._notify(listener, self.snapshot())

        def unsubscribe() -> None:
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe

    def wait_for(self, predicate: Callable[[Snapshot], bool], timeout: float) -> Snapshot | None:
        """Block until ``predicate(snapshot)`` holds; the snapshot, or None after ``timeout`` seconds."""
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self.snapshot()), timeout)
            return self.snapshot() if ok else None

    # ------------------------------------------------------------------ internals (lock held)
    def _cycle_to_take(self) -> Cycle | None:
        if self._phase == Phase.BUSY and self._cycle is not None and self._cycle is not self._taken:
            return self._cycle
        return None

    def _accept_trigger(self) -> None:
        self._trigger_count += 1
        cycle = Cycle(self._trigger_count, self._clock())
        if self._fault != Fault.NONE:
            self._publish_cycle(cycle, Outcome(Result.ERROR, fault=self._fault))
            return
        self._cycle = cycle
        self._phase = Phase.BUSY
        self._cond.notify_all()

    def _publish_cycle(self, cycle: Cycle, outcome: Outcome) -> None:
        now = self._clock()
        self._last = outcome
        self._result_seq += 1
        self._latency_ms = (now - cycle.started) * 1000.0
        self._cycle = None
        self._phase = Phase.DONE
        if outcome.result == Result.ERROR and outcome.fault not in (Fault.NONE, Fault.STOPPED):
            self._enter_fault(outcome.fault)

    def _release_if_dropped(self) -> None:
        if self._phase == Phase.RELEASE and not self._trigger and not self._ack:
            self._phase = Phase.IDLE

    def _enter_fault(self, fault: Fault) -> None:
        if self._fault == Fault.NONE:
            why = f" ({self._camera_error})" if fault.is_camera and self._camera_error else ""
            log.error("gateway fault: %s%s; Ready drops, heartbeat stops, results are Error until it recovers",
                      FAULT_TEXT[fault], why)
        self._fault = fault

    def _recovered(self) -> None:
        log.warning("gateway recovered from: %s", FAULT_TEXT[self._fault])
        self._fault = Fault.NONE

    def _changed(self) -> None:
        self._version += 1
        self._snap = None
        self._cond.notify_all()
        if self._listeners:
            snap = self.snapshot()
            for listener in list(self._listeners):
                self._notify(listener, snap)

    @staticmethod
    def _notify(listener: Listener, snap: Snapshot) -> None:
        try:
            listener(snap)
        except Exception:  # a broken listener must not break the handshake
            log.exception("handshake listener %r failed", listener)

    def _build_snapshot(self) -> Snapshot:
        healthy = self._running and self._fault == Fault.NONE
        last = self._last
        if self.mode == Mode.TRIGGERED:
            done = self._phase == Phase.DONE
            ready = healthy and self._phase == Phase.IDLE
            busy = self._phase == Phase.BUSY
            result = last.result if done or healthy else Result.ERROR
            if not healthy:
                quality = Quality.BAD
            else:
                quality = Quality.GOOD if done else Quality.UNCERTAIN
        else:
            ready = healthy
            busy = False
            done = healthy and self._result_seq > 0
            result = last.result if healthy else Result.ERROR
            quality = Quality.GOOD if done else (Quality.BAD if not healthy else Quality.UNCERTAIN)
        if not self._running:
            quality = Quality.BAD
        fault = self._fault if self._fault != Fault.NONE else last.fault if done else Fault.NONE
        return Snapshot(
            version=self._version, mode=self.mode, running=self._running,
            trigger=self._trigger, ack=self._ack, ready=ready, busy=busy, done=done, phase=self._phase,
            result=result, quality=quality, fault=fault,
            fault_detail=self._camera_error if fault.is_camera else "",
            score=last.score, raw_score=last.raw_score, frame_id=last.frame_id,
            result_seq=self._result_seq, latency_ms=self._latency_ms,
            heartbeat=self._heartbeat, trigger_count=self._trigger_count,
            triggers_ignored=self._triggers_ignored, writes_rejected=self._writes_rejected,
            late_results=self._late_results, model_id=self._model_id, bundle_hash=self._bundle_hash)
