"""Soak: a long stream run with periodic source restarts and model hot-swaps; RSS, threads and open file
descriptors are sampled and their slope reported. Not a test (it runs for minutes); see docs/reliability.md.

    python benchmarks/soak.py --minutes 10 --out soak.json            # builds a tiny bundle first (needs torch)
    python benchmarks/soak.py --bundle BUNDLE --minutes 10

Every ``--restart-s`` the source is closed and opened again; every ``--swap-s`` the model is hot-swapped to the
other of two bundles, and every third swap is to a bundle that fails its self-test (it must be refused while the
old model serves on). The source is ``tocoad_edge.stream.open_source`` over a folder of frames when the stream
package is installed, else a generator with its own capture thread. Slopes are least squares over the samples
after the warm-up (first 20 % of the run): a leak shows as a steady positive slope, noise as a slope near 0.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from tocoad_edge.errors import BundleError, TocoadError
from tocoad_edge.runtime.hot_swap import HotSwapDetector


# -- process metrics (Linux /proc; the Jetson is Linux) -------------------------------------------------------
def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def slope_per_minute(t_s: list[float], values: list[float]) -> float:
    if len(t_s) < 3:
        return float("nan")
    t = np.asarray(t_s) / 60.0
    v = np.asarray(values, dtype=np.float64)
    return float(np.polyfit(t, v, 1)[0])


# -- sources --------------------------------------------------------------------------------------------------
class GeneratedSource:
    """Frames from a list, delivered by a capture thread through a bounded queue, like a camera source."""

    def __init__(self, frames: list[np.ndarray]):
        self._frames = frames
        self._q: queue.Queue = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            try:
                self._q.put(self._frames[i % len(self._frames)], timeout=0.1)
                i += 1
            except queue.Full:
                continue

    def read(self, timeout: float = 1.0) -> np.ndarray | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


class StreamSource:
    """``tocoad_edge.stream.open_source`` over a folder of frames, looping."""

    def __init__(self, folder: Path):
        from tocoad_edge.stream import open_source

        self._src = open_source(str(folder), {"loop": True})

    def read(self, timeout: float = 1.0) -> np.ndarray | None:
        result = self._src.read(timeout)
        return result.frame.image if result.frame is not None else None

    def close(self) -> None:
        self._src.close()


def open_frames_source(frames: list[np.ndarray], folder: Path):
    try:
        import tocoad_edge.stream  # noqa: F401

        return StreamSource(folder), "tocoad_edge.stream.open_source(folder, loop=True)"
    except ImportError:
        return GeneratedSource(frames), "generator with a capture thread (tocoad_edge.stream not installed)"


# -- bundles --------------------------------------------------------------------------------------------------
def build_bundle(work: Path) -> Path:
    from tocoad_edge.cli.train import main as train_main
    from tocoad_edge.export.cli import main as export_main
    from tocoad_edge.synth.sample_set import make_sample_dataset

    make_sample_dataset(work / "data")
    (work / "config.yaml").write_text("data: {image_size: 64}\n", encoding="utf-8")
    if train_main(["--data", str(work / "data"), "--out", str(work / "run"), "--config", str(work / "config.yaml"),
                   "--quiet"]) != 0:
        raise SystemExit("training failed")
    if export_main(["bundle", str(work / "run"), "--out", str(work / "bundle")]) != 0:
        raise SystemExit("export failed")
    return work / "bundle"


def edit_manifest(bundle: Path, edit) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def make_variants(bundle: Path, work: Path) -> tuple[Path, Path, Path]:
    a, b, bad = work / "A", work / "B", work / "bad"
    for dst in (a, b, bad):
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(bundle, dst)
    edit_manifest(a, lambda d: d.update(model_id=d["model_id"] + "-A"))
    edit_manifest(b, lambda d: d.update(model_id=d["model_id"] + "-B"))

    def off(d):
        d["model_id"] += "-bad"
        d["self_test"]["raw_scores"] = {k: v * 2 for k, v in d["self_test"]["raw_scores"].items()}
    edit_manifest(bad, off)
    return a, b, bad


def soak_frames(size: int = 256, n: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        base = rng.normal(0, 1, (size, size)).astype(np.float32)
        base = cv2.GaussianBlur(base, (0, 0), sigmaX=6.0, sigmaY=0.8)
        img = cv2.normalize(base, None, 60, 200, cv2.NORM_MINMAX).astype(np.uint8)
        if i % 4 == 3:
            cv2.circle(img, (size // 2, size // 3), size // 12, 250, -1)
        frames.append(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    return frames


# -- the run --------------------------------------------------------------------------------------------------
def run(args) -> dict:
    work = Path(args.work or tempfile.mkdtemp(prefix="tocoad-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    bundle = Path(args.bundle) if args.bundle else build_bundle(work)
    a, b, bad = make_variants(bundle, work)
    frames = soak_frames()
    folder = work / "frames"
    folder.mkdir(exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f)

    slot = HotSwapDetector.open(a, search=args.search, threads=args.threads)
    source, source_kind = open_frames_source(frames, folder)
    samples: list[dict] = []
    counts = {"frames": 0, "errors": 0, "empty_reads": 0, "restarts": 0, "swaps": 0, "refused_swaps": 0,
              "unexpected_swap_results": 0}
    t0 = time.monotonic()
    end = t0 + args.minutes * 60.0
    next_sample = next_restart = next_swap = t0
    next_restart += args.restart_s
    next_swap += args.swap_s
    swap_i = 0
    while (now := time.monotonic()) < end:
        if now >= next_sample:
            samples.append({"t_s": now - t0, "rss_mib": rss_mib(), "threads": thread_count(), "fds": fd_count(),
                            "frames": counts["frames"]})
            next_sample += args.sample_s
        if now >= next_restart:
            source.close()
            source, _ = open_frames_source(frames, folder)
            counts["restarts"] += 1
            next_restart += args.restart_s
        if now >= next_swap:
            swap_i += 1
            target = bad if swap_i % 3 == 0 else (b if slot.model_id.endswith("-A") else a)
            try:
                slot.swap(target)
                counts["swaps"] += 1
                counts["unexpected_swap_results"] += target is bad
            except BundleError:
                counts["refused_swaps"] += 1
                counts["unexpected_swap_results"] += target is not bad
            next_swap += args.swap_s
        frame = source.read(timeout=1.0)
        if frame is None:
            counts["empty_reads"] += 1
            continue
        try:
            pred = slot.predict(frame)
            if not np.isfinite(pred.score):
                counts["errors"] += 1
        except TocoadError:
            counts["errors"] += 1
        counts["frames"] += 1
    samples.append({"t_s": time.monotonic() - t0, "rss_mib": rss_mib(), "threads": thread_count(), "fds": fd_count(),
                    "frames": counts["frames"]})
    source.close()
    slot.close()

    warm = [s for s in samples if s["t_s"] >= 0.2 * args.minutes * 60.0]
    late = [s for s in samples if s["t_s"] >= 0.5 * args.minutes * 60.0]
    t = [s["t_s"] for s in warm]
    report = {
        "minutes": args.minutes, "source": source_kind, "search": args.search, "threads": args.threads,
        "restart_every_s": args.restart_s, "swap_every_s": args.swap_s, "counts": counts,
        "fps": counts["frames"] / max(samples[-1]["t_s"], 1e-9),
        "slope_per_minute": {k: slope_per_minute(t, [s[k] for s in warm]) for k in ("rss_mib", "threads", "fds")},
        "slope_per_minute_second_half": {
            k: slope_per_minute([s["t_s"] for s in late], [s[k] for s in late]) for k in ("rss_mib", "threads", "fds")},
        "first": samples[0], "after_warmup": warm[0] if warm else None, "last": samples[-1],
        "max": {k: max(s[k] for s in samples) for k in ("rss_mib", "threads", "fds")},
        "samples": samples,
    }
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", help="bundle to soak (default: build a tiny one from generated data; needs torch)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--restart-s", type=float, default=20.0, help="close and reopen the source this often")
    p.add_argument("--swap-s", type=float, default=30.0, help="hot-swap the model this often")
    p.add_argument("--sample-s", type=float, default=5.0, help="sample RSS / threads / fds this often")
    p.add_argument("--search", default="exact", choices=["exact", "hnsw", "auto"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", help="keep bundles and frames in this folder (default: a temporary one)")
    p.add_argument("--out", help="write the JSON report here")
    args = p.parse_args(argv)
    report = run(args)
    text = json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    ok = report["counts"]["errors"] == 0 and report["counts"]["unexpected_swap_results"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
