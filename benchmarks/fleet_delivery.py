"""Full-size delivery check with a real Mosquitto: N verdicts from a gateway process, (1) with the broker stopped
for OUTAGE seconds in the middle and restarted, (2) with the gateway SIGKILLed in the middle and restarted.
Prints JSON per run: verdicts produced / received (after dedup), duplicates, gaps, order, spool disk peak.

    python benchmarks/fleet_delivery.py --verdicts 10000 --outage-s 30 --rate 200
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fleet_helpers import produced, start_producer  # noqa: E402
from tocoad_edge.fleet.config import broker_from_url  # noqa: E402
from tocoad_edge.fleet.consumer import VerdictCollector  # noqa: E402
from tocoad_edge.fleet.local_broker import LocalBroker  # noqa: E402


def _disk(spool: Path) -> int:
    return sum(p.stat().st_size for p in (spool, Path(f"{spool}-wal"), Path(f"{spool}-shm")) if p.exists())


def _run(kind: str, n: int, outage_s: float, rate: float, folder: Path) -> dict:
    broker = LocalBroker(folder / "broker").start()
    consumer = VerdictCollector(broker_from_url(broker.url, reconnect_initial_s=0.2, reconnect_max_s=1.0),
                                f"bench-{kind}").start()
    spool, log = folder / "gw.sqlite", folder / "produced.log"
    peak = 0
    t0 = time.monotonic()
    proc = start_producer(broker.port, spool, log, n, interval_s=1.0 / rate)
    event: dict = {}

    def watch(until) -> None:
        nonlocal peak
        while not until():
            peak = max(peak, _disk(spool))
            time.sleep(0.05)

    watch(lambda: produced(log) >= n // 3)
    if kind == "broker_outage":
        broker.stop()
        event = {"broker_stopped_at_verdict": produced(log)}
        end = time.monotonic() + outage_s
        watch(lambda: time.monotonic() >= end)
        event["spooled_at_restart"] = produced(log) - event["broker_stopped_at_verdict"]
        broker.start()
    else:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        event = {"gateway_killed_at_verdict": produced(log)}
        proc = start_producer(broker.port, spool, log, n, interval_s=1.0 / rate)
    watch(lambda: proc.poll() is not None)
    out = proc.communicate()[0]
    counters = json.loads(out.strip().splitlines()[-1])
    deadline = time.monotonic() + 60
    while len(consumer.snapshot()) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    verdicts = consumer.snapshot()
    seqs = [v["seq"] for v in verdicts]
    frames = [v["frame_id"] for v in verdicts]
    consumer.stop()
    broker.stop()
    missing = sorted(set(range(1, counters["enqueued"] + 1)) - set(seqs))
    return {"missing_seqs": [missing[0], missing[-1], len(missing)] if missing else [],
            "run": kind, **event, "verdicts_produced": produced(log), "spooled_total": counters["enqueued"],
            "received_unique": len(verdicts), "received_messages": consumer.received,
            "duplicates_dropped": consumer.dedup.duplicates, "seq_gaps": consumer.dedup.gaps,
            "seq_contiguous_in_order": seqs == list(range(1, len(seqs) + 1)),
            "every_produced_frame_arrived": set(range(n)) <= set(frames), "frames_in_order": frames == sorted(frames),
            "spool_disk_peak_kib": round(peak / 1024, 1), "dropped_verdicts": counters["dropped_verdicts"],
            "gateway_counters": counters, "elapsed_s": round(time.monotonic() - t0, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--verdicts", type=int, default=10_000)
    p.add_argument("--outage-s", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=200.0, help="verdicts per second from the gateway")
    p.add_argument("--runs", default="broker_outage,gateway_kill")
    args = p.parse_args()
    for kind in args.runs.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(_run(kind, args.verdicts, args.outage_s, args.rate, Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
