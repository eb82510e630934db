"""Several cameras through one gateway against one process per camera, on the same machine.

    python benchmarks/multicam.py BUNDLE [--cameras 4] [--fps 25] [--duration-s 30] [--threads 1] [--gateway-threads N]

BUNDLE should be exported with ``tocoad-export bundle --dynamic-batch`` (a batch-1 bundle is run frame by frame).
Every camera is a ``testsrc://`` test pattern paced at ``--fps`` (a camera: frames come whether or not they are
used; a frame the detector is too slow for is dropped and counted). Modes, run back to back for the same duration:

* ``gateway``: one ``tocoad-stream --config`` with a ``cameras:`` list, one shared detector, batched;
* ``gateway_unbatched``: the same with ``run.batch: false`` (frame by frame);
* ``separate``: ``--cameras`` ``tocoad-stream`` processes at once, one camera each.

Each process writes JSON lines; per-camera FPS (processed frames / duration), total FPS, latency (capture →
result) p50 / p99 over every frame, and the captured / dropped counts come from them and from the process
summaries. Prints one JSON line per mode and a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUN_APP = "import sys; from tocoad_edge.stream.app import main; sys.exit(main())"


def _detector(args, threads: int) -> dict:
    return {"bundle": str(args.bundle), "search": args.search, "threads": threads}


def _source(args) -> dict:
    return {"uri": f"testsrc://?width={args.width}&height={args.height}", "fps": args.fps}


def _start(config: dict, folder: Path, name: str) -> subprocess.Popen:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return subprocess.Popen([sys.executable, "-c", RUN_APP, "--config", str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"tocoad-stream failed ({proc.returncode}): {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _rows(path: Path, camera: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [dict(r, camera=camera) for r in rows] if camera is not None else rows


def _summary(mode: str, rows: list[dict], counts: dict[str, dict], duration: float) -> dict:
    lat = np.array([r["latency_ms"] for r in rows])
    per_cam = {cam: round(sum(r["camera"] == cam for r in rows) / duration, 1) for cam in sorted(counts)}
    return {"mode": mode, "fps_per_camera": per_cam, "fps_total": round(len(rows) / duration, 1),
            "latency_ms_p50": round(float(np.percentile(lat, 50)), 1),
            "latency_ms_p99": round(float(np.percentile(lat, 99)), 1),
            "captured": sum(c["captured"] for c in counts.values()),
            "dropped": sum(c["dropped"] for c in counts.values()),
            "accounted": all(c["accounted"] for c in counts.values())}


def run_gateway(args, folder: Path, batch: bool) -> dict:
    mode = "gateway" if batch else "gateway_unbatched"
    jsonl = folder / f"{mode}.jsonl"
    config = {"detector": _detector(args, args.gateway_threads),
              "cameras": [{"id": f"cam{i}", "source": _source(args)} for i in range(args.cameras)],
              "sinks": {"jsonl": str(jsonl)},
              "run": {"duration_s": args.duration_s, "log_every_s": 0, "batch": batch}}
    report = _finish(_start(config, folder, mode))
    out = _summary(mode, _rows(jsonl), report["cameras"], args.duration_s)
    out["backend_batches"], out["batched_frames"] = report["batches"], report["batched_frames"]
    return out


def run_separate(args, folder: Path) -> dict:
    procs = {}
    for i in range(args.cameras):
        config = {"source": _source(args), "detector": _detector(args, args.threads),
                  "sinks": {"jsonl": str(folder / f"cam{i}.jsonl")},
                  "run": {"duration_s": args.duration_s, "log_every_s": 0}}
        procs[f"cam{i}"] = _start(config, folder, f"cam{i}")
    counts = {cam: _finish(p) for cam, p in procs.items()}
    rows = [r for cam in procs for r in _rows(folder / f"{cam}.jsonl", cam)]
    return _summary("separate", rows, counts, args.duration_s)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--fps", type=float, default=25.0, help="each camera's frame rate")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--duration-s", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=1, help="inference threads of each single-camera process")
    p.add_argument("--gateway-threads", type=int, default=1,
                   help="inference threads of the gateway's one detector (more than 1 on a loaded machine makes "
                        "ONNX Runtime's spinning thread pool much slower: docs/streams.md)")
    p.add_argument("--search", default="exact")
    p.add_argument("--modes", default="gateway,separate,gateway_unbatched")
    args = p.parse_args()
    load = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            folder = Path(tmp) / mode
            folder.mkdir()
            result = run_separate(args, folder) if mode == "separate" else run_gateway(args, folder, mode == "gateway")
            print(json.dumps(result), flush=True)
            results.append(result)
    print(f"\nload average before the runs: {load:.1f} (1 min), {os.cpu_count()} CPUs\n")
    print("| mode | FPS per camera | total FPS | latency p50 / p99 (ms) | captured | dropped |")
    print("|---|---|---|---|---|---|")
    for r in results:
        cams = " / ".join(f"{v:g}" for v in r["fps_per_camera"].values())
        print(f"| {r['mode']} | {cams} | {r['fps_total']:g} | {r['latency_ms_p50']:g} / {r['latency_ms_p99']:g} | "
              f"{r['captured']} | {r['dropped']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
