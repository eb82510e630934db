"""Shared pieces of the fleet tests and benchmarks/fleet_delivery.py: a real Mosquitto, real verdicts, and a
gateway process that can be SIGKILLed (``python tests/fleet_helpers.py produce …``)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tocoad_edge.fleet.config import MqttSinkConfig, broker_from_url  # noqa: E402
from tocoad_edge.fleet.consumer import VerdictCollector  # noqa: E402
from tocoad_edge.fleet.local_broker import LocalBroker, mosquitto_binary  # noqa: E402
from tocoad_edge.fleet.mqtt_link import _paho  # noqa: E402
from tocoad_edge.fleet.sink import MqttSink  # noqa: E402
from tocoad_edge.runtime.prediction import Prediction  # noqa: E402
from tocoad_edge.stream.frame import Frame  # noqa: E402
from tocoad_edge.stream.loop import StreamResult  # noqa: E402

HERE = Path(__file__).resolve()


@pytest.fixture
def broker(tmp_path):
    """A real Mosquitto on a free loopback port, in the test's folder."""
    if mosquitto_binary() is None:
        pytest.skip("the mosquitto binary is not installed (apt-get install mosquitto; listed in .ci/apt-packages.txt)")
    b = LocalBroker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def collector(broker):
    c = VerdictCollector(broker_from_url(broker.url, reconnect_initial_s=0.2, reconnect_max_s=1.0),
                         "test-consumer").start()
    assert c.ready.is_set()
    yield c
    c.stop()


def retained(broker, topic: str, timeout_s: float = 5.0) -> dict | None:
    """The retained message on ``topic`` as a fresh subscriber gets it."""
    mqtt = _paho()
    got, done = {}, threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    c.on_connect = lambda cl, *_: cl.subscribe(topic, 1)
    c.on_message = lambda _c, _u, m: (got.update(json.loads(m.payload)), done.set())
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    done.wait(timeout_s)
    c.disconnect()
    c.loop_stop()
    return got or None


def make_result(frame_id: int, ng: bool = False, size: int = 64) -> StreamResult:
    """A StreamResult as run_stream hands it to the sinks: a real frame and a runtime Prediction."""
    rng = np.random.default_rng(frame_id)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    score = 1.5 if ng else 0.25 + frame_id % 7 * 0.01
    pred = Prediction(score=score, raw_score=score * 10, is_anomalous=ng,
                      anomaly_map=np.zeros((size, size), np.float32), timings_ms={"backbone": 1.0})
    now = time.time()
    return StreamResult(Frame(frame_id, now, time.monotonic(), image), pred, 2.0, None, 0.0)  # type: ignore[arg-type]


def sink_config(port: int, spool: Path, **kw) -> MqttSinkConfig:
    broker = broker_from_url(f"mqtt://127.0.0.1:{port}", reconnect_initial_s=0.2, reconnect_max_s=1.0)
    return MqttSinkConfig(**{"line": "line-1", "gateway": "gw-1", "spool": str(spool), "broker": broker,
                             "drain_s": 20.0, **kw})


def poll(read: Callable[[], Any], until: Callable[[Any], bool], limit_s: float = 30.0) -> Any:
    """Read until ``until(value)`` or the limit; returns the last value (a bounded wait, not a timing check)."""
    deadline = time.monotonic() + limit_s
    value = read()
    while not until(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


def produced(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def start_producer(port: int, spool: Path, log: Path, total: int, interval_s: float = 0.0, camera: str = "cam0"
                   ) -> subprocess.Popen:
    """A gateway process writing verdicts ``produced(log) .. total-1`` through an MqttSink (resumes after a kill)."""
    return subprocess.Popen([sys.executable, str(HERE), "produce", "--port", str(port), "--spool", str(spool),
                             "--log", str(log), "--total", str(total), "--interval", str(interval_s),
                             "--camera", camera], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _produce(args) -> int:
    log = Path(args.log)
    start = produced(log)
    sink = MqttSink(sink_config(args.port, Path(args.spool), camera=args.camera, drain_s=120.0))
    with log.open("a", encoding="utf-8") as out:
        for i in range(start, args.total):
            sink.write(make_result(i))
            out.write(f"{i}\n")
            out.flush()           # in the page cache: survives SIGKILL, like the spool's WAL
            if args.interval:
                time.sleep(args.interval)
    sink.close()
    print(json.dumps(sink.counters()))
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["produce"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--spool", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--total", type=int, required=True)
    p.add_argument("--interval", type=float, default=0.0)
    p.add_argument("--camera", default="cam0")
    sys.exit(_produce(p.parse_args()))
