"""The handshake state machine on its own, with a hand-driven clock: no threads, no network."""
from __future__ import annotations

import pytest

from tocoad_edge.plc import Fault, Handshake, Mode, Outcome, Phase, Quality, Result


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hs(clock: FakeClock) -> Handshake:
    h = Handshake(Mode.TRIGGERED, deadline_s=0.5, model_id="m1", bundle_hash="ab" * 32, clock=clock)
    h.start()
    return h


def run_cycle(hs: Handshake, outcome: Outcome) -> None:
    hs.write_trigger(True)
    cycle = hs.wait_for_cycle(0)
    assert cycle is not None
    assert hs.finish_cycle(cycle, outcome)
    hs.write_trigger(False)
    hs.write_ack(True)
    hs.write_ack(False)


def test_a_cycle_walks_ready_busy_done_release_ready(hs: Handshake, clock: FakeClock) -> None:
    s = hs.snapshot()
    assert (s.ready, s.busy, s.done, s.result, s.quality) == (True, False, False, Result.NONE, Quality.UNCERTAIN)
    hs.write_trigger(True)
    s = hs.snapshot()
    assert (s.ready, s.busy, s.done, s.phase) == (False, True, False, Phase.BUSY)
    cycle = hs.wait_for_cycle(0)
    assert cycle is not None and cycle.number == 1
    assert hs.wait_for_cycle(0) is None            # taken once
    clock.advance(0.02)
    assert hs.finish_cycle(cycle, Outcome(Result.NG, score=1.5, raw_score=3.0, frame_id=42))
    s = hs.snapshot()
    assert (s.done, s.busy, s.result, s.quality, s.frame_id, s.result_seq) == (True, False, Result.NG,
                                                                              Quality.GOOD, 42, 1)
    assert s.latency_ms == pytest.approx(20.0)
    hs.write_ack(True)                              # Ack while Trigger still high: Done drops, not Ready yet
    s = hs.snapshot()
    assert (s.done, s.ready, s.phase) == (False, False, Phase.RELEASE)
    assert s.quality == Quality.UNCERTAIN            # the result is no longer the current one
    hs.write_trigger(False)
    hs.write_ack(False)
    s = hs.snapshot()
    assert (s.ready, s.phase, s.result, s.result_seq) == (True, Phase.IDLE, Result.NG, 1)


def test_trigger_while_not_ready_is_ignored_and_counted(hs: Handshake) -> None:
    hs.write_trigger(True)
    cycle = hs.wait_for_cycle(0)
    hs.write_trigger(False)
    hs.write_trigger(True)                          # second edge while BUSY
    assert hs.snapshot().triggers_ignored == 1
    assert hs.finish_cycle(cycle, Outcome(Result.OK, frame_id=1))
    assert hs.snapshot().result_seq == 1            # still one result for one accepted trigger
    assert hs.snapshot().trigger_count == 1


def test_levels_without_edges_do_nothing(hs: Handshake) -> None:
    hs.write_ack(True)                              # Ack while idle
    hs.write_ack(False)
    hs.write_trigger(False)
    s = hs.snapshot()
    assert (s.ready, s.trigger_count, s.result_seq) == (True, 0, 0)


def test_watchdog_answers_error_past_the_deadline_and_discards_the_late_result(hs: Handshake,
                                                                                clock: FakeClock) -> None:
    hs.write_trigger(True)
    cycle = hs.wait_for_cycle(0)
    clock.advance(0.49)
    hs.check_deadlines()
    assert hs.snapshot().busy                       # not yet past the deadline
    clock.advance(0.02)
    hs.check_deadlines()
    s = hs.snapshot()
    assert (s.done, s.result, s.quality, s.fault) == (True, Result.ERROR, Quality.BAD, Fault.CAMERA_TIMEOUT)
    assert not hs.finish_cycle(cycle, Outcome(Result.OK, frame_id=7))   # too late
    s = hs.snapshot()
    assert (s.result, s.late_results, s.result_seq) == (Result.ERROR, 1, 1)


def test_next_expiry_tells_the_watchdog_when_to_look(hs: Handshake, clock: FakeClock) -> None:
    assert hs.next_expiry() == pytest.approx(clock() + 0.5)          # camera silence deadline
    clock.advance(0.1)
    hs.write_trigger(True)
    assert hs.next_expiry() == pytest.approx(clock() + 0.5)          # the cycle's deadline
    clock.advance(0.51)
    hs.check_deadlines()
    assert hs.next_expiry() is None                                 # faulted: nothing to expire
    hs.stop()
    assert hs.next_expiry() is None


def test_inference_stall_is_named_as_such(hs: Handshake, clock: FakeClock) -> None:
    from tocoad_edge.plc import Stage

    hs.write_trigger(True)
    hs.wait_for_cycle(0)
    hs.set_stage(Stage.INFERRING)
    clock.advance(0.6)
    hs.check_deadlines()
    assert hs.snapshot().fault == Fault.INFERENCE_TIMEOUT


def test_silent_camera_while_idle_faults_and_stops_the_heartbeat_then_recovers(hs: Handshake,
                                                                              clock: FakeClock) -> None:
    hs.beat()
    assert hs.snapshot().heartbeat == 1
    clock.advance(0.4)
    hs.check_deadlines()
    assert hs.snapshot().ready                      # within the deadline
    clock.advance(0.2)
    hs.check_deadlines()
    s = hs.snapshot()
    assert (s.ready, s.result, s.quality, s.fault) == (False, Result.ERROR, Quality.BAD, Fault.CAMERA_TIMEOUT)
    hs.beat()
    assert hs.snapshot().heartbeat == 1             # stopped
    # a trigger during the fault is answered at once with Error: no trigger goes unanswered
    hs.write_trigger(True)
    s = hs.snapshot()
    assert (s.done, s.result, s.result_seq, s.quality) == (True, Result.ERROR, 1, Quality.BAD)
    assert hs.wait_for_cycle(0) is None
    hs.write_trigger(False)
    hs.write_ack(True)
    hs.write_ack(False)
    assert not hs.snapshot().ready
    hs.recover()
    s = hs.snapshot()
    assert (s.ready, s.fault, s.quality) == (True, Fault.NONE, Quality.UNCERTAIN)
    hs.beat()
    assert hs.snapshot().heartbeat == 2             # running again, no restart
    run_cycle(hs, Outcome(Result.OK, frame_id=5))
    assert hs.snapshot().result_seq == 2


def test_model_error_in_a_cycle_faults_until_recovery(hs: Handshake) -> None:
    hs.write_trigger(True)
    cycle = hs.wait_for_cycle(0)
    assert hs.finish_cycle(cycle, Outcome(Result.ERROR, fault=Fault.INFERENCE_ERROR))
    s = hs.snapshot()
    assert (s.done, s.result, s.fault, s.quality) == (True, Result.ERROR, Fault.INFERENCE_ERROR, Quality.BAD)
    hs.write_trigger(False)
    hs.write_ack(True)
    hs.write_ack(False)
    assert not hs.snapshot().ready
    hs.recover()
    assert hs.snapshot().ready


def test_a_result_is_never_good_when_it_is_not_the_current_one(hs: Handshake) -> None:
    run_cycle(hs, Outcome(Result.OK, frame_id=1))
    assert hs.snapshot().quality == Quality.UNCERTAIN
    hs.write_trigger(True)
    s = hs.snapshot()
    assert s.busy and s.quality == Quality.UNCERTAIN and s.result == Result.OK   # previous verdict, not Good


def test_stop_answers_the_open_cycle_and_makes_everything_bad(hs: Handshake) -> None:
    hs.write_trigger(True)
    hs.wait_for_cycle(0)
    hs.stop()
    s = hs.snapshot()
    assert (s.running, s.ready, s.result, s.quality, s.fault) == (False, False, Result.ERROR, Quality.BAD,
                                                                 Fault.STOPPED)
    assert s.result_seq == 1
    hs.write_trigger(False)
    hs.write_trigger(True)
    assert hs.snapshot().trigger_count == 1         # a stopped gateway accepts no trigger


def test_free_run_publishes_every_frame_and_faults_when_the_camera_goes_silent(clock: FakeClock) -> None:
    hs = Handshake(Mode.FREE_RUN, deadline_s=0.5, clock=clock)
    hs.start()
    seen = []
    hs.subscribe(lambda s: seen.append((s.result_seq, s.frame_id)))
    for i in range(5):
        hs.publish(Outcome(Result.OK if i % 2 else Result.NG, frame_id=100 + i), started=clock())
        clock.advance(0.01)
    s = hs.snapshot()
    assert (s.ready, s.done, s.quality, s.result_seq, s.frame_id) == (True, True, Quality.GOOD, 5, 104)
    published = sorted({x for x in seen if x[0] > 0})
    assert published == [(i + 1, 100 + i) for i in range(5)]
    hs.write_trigger(True)                          # ignored in free-run
    assert hs.snapshot().trigger_count == 0
    clock.advance(0.6)
    hs.check_deadlines()
    s = hs.snapshot()
    assert (s.ready, s.done, s.result, s.quality) == (False, False, Result.ERROR, Quality.BAD)
    hs.publish(Outcome(Result.OK, frame_id=200), started=clock())
    s = hs.snapshot()
    assert (s.ready, s.quality, s.fault, s.result_seq) == (True, Quality.GOOD, Fault.NONE, 6)


def test_free_run_result_older_than_the_deadline_is_discarded_not_published(clock: FakeClock) -> None:
    hs = Handshake(Mode.FREE_RUN, deadline_s=0.5, clock=clock)
    hs.start()
    started = clock()
    clock.advance(0.6)                               # e.g. a detector call that hung, then returned
    hs.check_deadlines()
    assert hs.snapshot().fault == Fault.CAMERA_TIMEOUT
    hs.publish(Outcome(Result.OK, frame_id=1), started=started)
    s = hs.snapshot()
    assert (s.result_seq, s.late_results, s.quality) == (0, 1, Quality.BAD)   # no stale Good verdict
    hs.publish(Outcome(Result.OK, frame_id=2), started=clock())
    s = hs.snapshot()
    assert (s.result_seq, s.frame_id, s.quality) == (1, 2, Quality.GOOD)


def test_listener_sees_every_change_in_order_and_a_broken_one_does_not_break_it(hs: Handshake) -> None:
    versions = []
    hs.subscribe(lambda s: versions.append(s.version))
    hs.subscribe(lambda s: 1 / 0)
    run_cycle(hs, Outcome(Result.OK))
    assert versions == sorted(versions) and len(versions) >= 5
    assert hs.snapshot().result_seq == 1


def test_deadline_must_be_positive_and_can_change_while_running(hs: Handshake, clock: FakeClock) -> None:
    from tocoad_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="deadline must be positive"):
        Handshake(deadline_s=0)
    with pytest.raises(ConfigError, match="deadline must be positive"):
        hs.set_deadline(-1.0)
    hs.set_deadline(2.0)
    hs.write_trigger(True)
    clock.advance(1.0)
    hs.check_deadlines()
    assert hs.snapshot().busy                       # the new, longer deadline applies
    hs.set_deadline(0.5)
    hs.check_deadlines()
    assert hs.snapshot().result == Result.ERROR
