"""The tocoad-stream and tocoad-plc console scripts (setup.py): --help, and a short real run of each on a bundle;
the example scripts run the same programs."""
from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading

import pytest

from script_support import ROOT, checkout_env, console_scripts, run_console_script, run_python


def test_both_apps_are_declared_as_console_scripts():
    scripts = console_scripts()
    assert scripts["tocoad-stream"] == "tocoad_edge.stream.app:main"
    assert scripts["tocoad-plc"] == "tocoad_edge.plc.app:main"


@pytest.mark.parametrize("name, options", [
    ("tocoad-stream", ["--bundle", "--source", "--config", "--public-key", "--search", "--max-frames"]),
    ("tocoad-plc", ["CONFIG", "--duration", "--print-config"]),
])
def test_help(name, options):
    out = run_console_script(name, "--help", timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: {name} ")
    for option in options:
        assert option in out.stdout


@pytest.mark.parametrize("example, prog", [("camera_stream.py", "camera_stream.py"),
                                           ("plc_gateway.py", "plc_gateway.py")])
def test_the_examples_are_the_same_programs(example, prog):
    out = run_python(str(ROOT / "examples" / example), "--help", timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: {prog} ")


def test_tocoad_stream_runs_a_bundle_on_a_test_pattern(tiny_bundle, tmp_path):
    results = tmp_path / "results.jsonl"
    out = run_console_script("tocoad-stream", "--bundle", str(tiny_bundle), "--source",
                             "testsrc://?width=96&height=96", "--search", "exact", "--threads", "1",
                             "--max-frames", "5", "--jsonl", str(results), "--log-every-s", "0")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["end_reason"] == "max_frames" and summary["accounted"] is True
    assert summary["processed"] == 5
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(lines) == 5 and all(r["decision"] in ("OK", "NG") for r in lines)


def test_tocoad_stream_refuses_a_bad_detector_value_before_opening_anything(tmp_path):
    cfg = tmp_path / "line.yaml"
    cfg.write_text("source: {uri: 'testsrc://'}\ndetector: {bundle: b, precision: fp16}\n")
    out = run_console_script("tocoad-stream", "--config", str(cfg), timeout=60)
    assert out.returncode == 2
    assert "detector.precision" in out.stderr and "fp16" in out.stderr and "int8" in out.stderr


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)


def _wait_for(lines: queue.Queue, pattern: str, seen: list[str], limit_s: float = 120.0) -> re.Match:
    """Read log lines until one matches (bounded: fails the test rather than hanging it)."""
    import time

    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    raise AssertionError(f"no log line matching {pattern!r}; got:\n{''.join(seen)[-3000:]}")


def test_tocoad_plc_serves_a_real_modbus_client_and_stops_on_sigterm(tiny_bundle, tmp_path):
    pytest.importorskip("pymodbus", reason="the plc extra is not installed (pip install 'tocoad-edge[plc]')")
    from tocoad_edge.plc.cycle_check import modbus_cycles

    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"""
source: {{uri: 'testsrc://?width=96&height=96', options: {{fps: 30}}}}
detector: {{bundle: "{tiny_bundle}", search: exact, threads: 1}}
transport: modbus
handshake: {{deadline_s: 5.0}}
modbus: {{host: 127.0.0.1, port: 0}}
""")
    module, function = console_scripts()["tocoad-plc"].split(":")
    code = f"import sys; sys.argv[0] = 'tocoad-plc'; from {module} import {function}; sys.exit({function}())"
    proc = subprocess.Popen([sys.executable, "-c", code, str(cfg)], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=checkout_env(), cwd=ROOT)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True).start()
    seen: list[str] = []
    try:
        port = int(_wait_for(lines, r"PLC gateway up: modbus 127\.0\.0\.1:(\d+)", seen).group(1))
        report = modbus_cycles("127.0.0.1", port, 5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        stopping = _wait_for(lines, r"stopping: (\d+) triggers, (\d+) results", seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert report.problems == [] and report.seqs == list(range(1, 6))
    assert (int(stopping.group(1)), int(stopping.group(2))) == (5, 5)
