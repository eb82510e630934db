"""The gateway loop through its Python API (no network): what an embedding program relies on."""
from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from plc_helpers import DEADLINE_S, make_gateway, poll
from tocoad_edge.plc import Fault, Gateway, HandshakeConfig, Quality, Result
from tocoad_edge.plc.simulation import FrameMeanDetector, expected_score
from tocoad_edge.runtime import Prediction
from tocoad_edge.stream import Frame, ReadResult, ReadStatus


def test_inspect_once_runs_whole_cycles_and_identifies_the_frame() -> None:
    gateway, _, _ = make_gateway()
    with gateway:
        seen = [gateway.inspect_once() for _ in range(30)]
    after = gateway.snapshot()
    assert [s.result_seq for s in seen] == list(range(1, 31))
    for s in seen:
        assert s.done and s.quality == Quality.GOOD
        assert s.score == expected_score(s.frame_id)
        assert s.result == (Result.NG if s.score > 1.0 else Result.OK)
        assert s.model_id == "simulated-frame-mean"
    assert after.running is False and after.quality == Quality.BAD


def test_inspect_once_during_an_outage_returns_error_at_once_not_a_hang() -> None:
    gateway, camera, _ = make_gateway()
    with gateway:
        camera.unplug()
        poll(gateway.snapshot, lambda s: s.fault != Fault.NONE)
        s = gateway.inspect_once()
        assert (s.result, s.quality, s.fault) == (Result.ERROR, Quality.BAD, Fault.CAMERA_TIMEOUT)
        assert s.latency_ms < DEADLINE_S * 1000        # answered from the fault, without waiting a deadline
        camera.plug()
        poll(gateway.snapshot, lambda s: s.ready)
        assert gateway.inspect_once().result in (Result.OK, Result.NG)


def test_free_run_faults_on_silence_and_on_a_hung_model_then_recovers() -> None:
    gateway, camera, detector = make_gateway(mode="free_run", frame_interval_s=0.002)
    with gateway:
        s, _ = poll(gateway.snapshot, lambda s: s.result_seq >= 5)
        assert s.ready and s.done and s.quality == Quality.GOOD
        camera.unplug()
        s, _ = poll(gateway.snapshot, lambda s: s.fault != Fault.NONE)
        assert (s.fault, s.result, s.quality, s.ready, s.done) == (Fault.CAMERA_TIMEOUT, Result.ERROR, Quality.BAD,
                                                                   False, False)
        camera.plug()
        s, _ = poll(gateway.snapshot, lambda s: s.fault == Fault.NONE and s.done)
        detector.hang()
        s, _ = poll(gateway.snapshot, lambda s: s.fault != Fault.NONE)
        assert s.fault == Fault.INFERENCE_TIMEOUT
        seq = s.result_seq
        detector.heal()
        s, _ = poll(gateway.snapshot, lambda s: s.result_seq > seq + 2)
        assert s.fault == Fault.NONE and s.quality == Quality.GOOD


class RaisingSource:
    """Test double: a source whose read raises (a driver that throws)."""

    def __init__(self):
        self.raising = True

    def read(self, timeout: float) -> ReadResult:
        if self.raising:
            raise OSError("USB device disconnected")
        return ReadResult(ReadStatus.OK, Frame(0, time.time(), time.monotonic(), np.full((4, 4, 3), 50, np.uint8)))


def test_a_raising_source_is_a_camera_error_not_a_crash(caplog) -> None:
    source = RaisingSource()
    gateway = Gateway(source, FrameMeanDetector(), HandshakeConfig(deadline_s=0.2, probe_interval_s=0.02))
    caplog.set_level(logging.ERROR, logger="tocoad_edge.plc")
    with gateway:
        s = gateway.inspect_once()
        assert (s.result, s.fault) == (Result.ERROR, Fault.CAMERA_ERROR)
        assert "USB device disconnected" in s.fault_detail
        assert any("camera error" in r.getMessage() and "USB device disconnected" in r.getMessage()
                   for r in caplog.records)
        source.raising = False
        poll(gateway.snapshot, lambda s: s.ready)
        s = gateway.inspect_once()
        assert s.result == Result.OK and s.score == 0.5 and s.frame_id >= 0


class NanDetector:
    """Test double: a detector that returns a non-finite score."""

    def predict(self, frame):
        return Prediction(score=float("nan"), raw_score=float("nan"), is_anomalous=False,
                          anomaly_map=np.zeros(frame.shape[:2], np.float32))


def test_a_non_finite_score_is_an_inference_error_never_ok() -> None:
    gateway, _, _ = make_gateway()
    gateway.detector = NanDetector()
    with gateway:
        s = gateway.inspect_once()
    assert (s.result, s.fault, s.quality) == (Result.ERROR, Fault.INFERENCE_ERROR, Quality.BAD)


def test_a_stopped_and_restarted_gateway_works_again() -> None:
    gateway, _, _ = make_gateway()
    with gateway:
        assert gateway.inspect_once().result_seq == 1
    assert gateway.snapshot().quality == Quality.BAD
    with gateway:
        poll(gateway.snapshot, lambda s: s.ready)
        assert gateway.inspect_once().result_seq == 2


def test_inspect_once_on_a_stopped_gateway_says_so() -> None:
    gateway, _, _ = make_gateway()
    with pytest.raises(TimeoutError, match="started and Ready"):
        gateway.inspect_once(timeout=0.2)


class BufferedSource:
    """Test double: a camera with frames buffered before the trigger. After ``arm(n)`` the next ``n``
    reads return frames stamped ``age_s`` in the past (ids 1000 + k); other reads are fresh (ids 0, 1, …)."""

    def __init__(self, age_s: float = 0.5):
        self.age_s = age_s
        self.stale_left = 0
        self.fresh_id = 0
        self.stale_id = 1000

    def arm(self, n: int) -> None:
        self.stale_left = n

    def read(self, timeout: float) -> ReadResult:
        if self.stale_left > 0:
            self.stale_left -= 1
            self.stale_id += 1
            frame = Frame(self.stale_id, 0.0, time.monotonic() - self.age_s, np.full((4, 4, 3), 10, np.uint8))
        else:
            self.fresh_id += 1
            frame = Frame(self.fresh_id, 0.0, time.monotonic(), np.full((4, 4, 3), 20, np.uint8))
        return ReadResult(ReadStatus.OK, frame)


@pytest.mark.parametrize("fresh_frames", [True, False])
def test_triggered_cycles_judge_only_frames_captured_after_the_trigger(fresh_frames: bool) -> None:
    source = BufferedSource()
    gateway = Gateway(source, FrameMeanDetector(), HandshakeConfig(deadline_s=2.0, probe_interval_s=1.0,
                                                                   fresh_frames=fresh_frames))
    with gateway:
        source.arm(3)            # a probe may take one of them; the cycle still meets at least two
        s = gateway.inspect_once()
    if fresh_frames:
        assert s.frame_id < 1000 and s.score == 0.2 and gateway.stale_frames_skipped >= 2
    else:
        assert s.frame_id > 1000 and s.score == 0.1 and gateway.stale_frames_skipped == 0


def test_wrong_objects_are_refused_with_a_fix() -> None:
    from tocoad_edge.errors import ConfigError
    from tocoad_edge.plc.simulation import SimulatedCamera

    with pytest.raises(ConfigError, match="source has no read") as err:
        Gateway(object(), FrameMeanDetector())
    assert "open_source" in str(err.value)
    with pytest.raises(ConfigError, match="detector has no predict") as err:
        Gateway(SimulatedCamera(), "bundle/")
    assert "got: str" in str(err.value) and "Detector.open" in str(err.value)
    with pytest.raises(ConfigError, match="HandshakeConfig"):
        Gateway(SimulatedCamera(), FrameMeanDetector(), {"deadline_s": 1.0})


def test_random_faults_never_break_the_handshake_invariants() -> None:
    """Cycles under random camera / model failures (seeded): every trigger is answered exactly once, the
    result numbering has no gap or repeat, and a Good verdict is always healthy, current and its frame's."""
    import random

    from tocoad_edge.plc import Phase

    rng = random.Random(7)
    gateway, camera, detector = make_gateway(deadline_s=0.08)
    snaps = []
    gateway.handshake.subscribe(snaps.append)
    faults = {"unplug": camera.unplug, "hang_camera": camera.hang, "fail_model": detector.fail,
              "hang_model": detector.hang}
    injected = {k: 0 for k in faults}
    answers = []
    with gateway:
        for _ in range(200):
            roll = rng.random()
            if roll < 0.2:
                name = rng.choice(list(faults))
                faults[name]()
                injected[name] += 1
            elif roll < 0.55:
                camera.plug()
                detector.heal()
                if rng.random() < 0.5:                    # sometimes trigger before recovery is seen
                    poll(gateway.snapshot, lambda s: s.ready)
            answers.append(gateway.inspect_once(timeout=5.0))
        camera.plug()
        detector.heal()
        poll(gateway.snapshot, lambda s: s.ready)
        answers.append(gateway.inspect_once(timeout=5.0))
    print(f"\nchaos: {injected}, results {sum(a.result in (Result.OK, Result.NG) for a in answers)} verdicts / "
          f"{sum(a.result == Result.ERROR for a in answers)} errors, late results {snaps[-1].late_results}")
    assert [a.result_seq for a in answers] == list(range(1, len(answers) + 1))   # one answer per trigger
    assert answers[-1].result in (Result.OK, Result.NG)                           # recovered at the end
    final = snaps[-1]
    assert final.trigger_count == final.result_seq == len(answers) and final.triggers_ignored == 0
    for before, after in zip(snaps, snaps[1:]):
        assert after.version > before.version
        assert after.result_seq - before.result_seq in (0, 1)
    for s in snaps:
        if s.quality == Quality.GOOD:
            assert s.running and s.fault == Fault.NONE and s.done and s.phase == Phase.DONE
            assert s.result in (Result.OK, Result.NG) and s.score == expected_score(s.frame_id)
        if s.fault != Fault.NONE:
            assert s.quality == Quality.BAD and not s.ready
    assert sum(injected.values()) > 10
    assert sum(a.result in (Result.OK, Result.NG) for a in answers) >= 10       # the run exercised both paths
    assert sum(a.result == Result.ERROR for a in answers) >= 10


def test_capture_stamps_from_another_clock_are_not_taken_for_stale_frames(caplog) -> None:
    source = BufferedSource(age_s=1e6)              # e.g. a source stamping with another clock
    gateway = Gateway(source, FrameMeanDetector(), HandshakeConfig(deadline_s=2.0, probe_interval_s=1.0))
    caplog.set_level(logging.WARNING, logger="tocoad_edge.plc")
    with gateway:
        source.arm(50)
        s = gateway.inspect_once()
    assert s.result == Result.OK and s.frame_id > 1000          # judged, not skipped until the deadline
    assert any("another clock" in r.getMessage() for r in caplog.records)
