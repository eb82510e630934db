"""The search's compiled loops against its numpy reference, frame by frame, in one process.

    python benchmarks/compiled_vs_numpy.py BUNDLE --data ../shared/data/magnetic_tile_dev [--threads 1,2]

For each thread count one detector; every frame goes through ``predict`` twice, once with the compiled loops
(``runtime/search/_kernels.c``) and once with the numpy code they replace, in alternating order, and the two image
scores must agree (1e-5 relative). Printed per thread count: both p50s and the median of the per-frame differences
(compiled − numpy), which is what to read: the host's drift moves both sides of a pair alike.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def measure(bundle: str, data: str, *, threads: tuple[int, ...] = (1, 2), max_images: int = 100,
            rounds: int = 3, search: str = "refined") -> dict[int, dict[str, Any]]:
    """Per thread count: ``compiled_p50_ms``, ``numpy_p50_ms``, ``paired_median_ms`` (compiled − numpy),
    ``frames`` and ``kernels`` (what each part of the search reports, the compiled loops switched back on).
    Raises ``InputError`` for arguments it cannot use and ``RuntimeError`` where the two paths score a frame
    differently."""
    from tocoad_edge.data import evenly_spread, load_dataset, read_image
    from tocoad_edge.errors import InputError
    from tocoad_edge.runtime import Detector
    from tocoad_edge.runtime.search.kernels import compiled_kernels

    for name, folder in (("bundle", bundle), ("data", data)):
        if not Path(folder).is_dir():
            raise InputError(f"the {name} folder does not exist", expected="an existing folder", got=str(folder))
    if not threads or min(threads) < 1 or rounds < 1 or max_images < 1:
        raise InputError("nothing to measure", expected="threads >= 1, rounds >= 1, max_images >= 1",
                         got=f"threads={threads}, rounds={rounds}, max_images={max_images}")
    kernels = compiled_kernels()
    if kernels is None:
        raise InputError("the compiled loops are not built here", expected="pip install -e . (it compiles them)",
                         got="no tocoad_edge.runtime.search._kernels")
    frames = [read_image(t.path) for t in evenly_spread(list(load_dataset(data, require_test=True).test), max_images)]
    result: dict[int, dict[str, Any]] = {}
    for n in threads:
        with Detector.open(bundle, search=search, threads=n) as det:
            parts = [det.search, getattr(det.search, "approx", None), getattr(det.search, "exact", None)]
            searches = [s for s in parts if s is not None and hasattr(s, "kernels")]

            for f in frames[:3]:
                _timed_predict(det, searches, kernels, f)
                _timed_predict(det, searches, None, f)
            times: dict[bool, list[float]] = {True: [], False: []}
            for r in range(rounds):
                for i, f in enumerate(frames):
                    order = (True, False) if (i + r) % 2 == 0 else (False, True)
                    scores = {}
                    for compiled in order:
                        ms, scores[compiled] = _timed_predict(det, searches, kernels if compiled else None, f)
                        times[compiled].append(ms)
                    if abs(scores[True] - scores[False]) > 1e-5 * max(abs(scores[False]), 1e-12):
                        raise RuntimeError(f"frame {i}: the compiled loops score {scores[True]!r}, numpy "
                                           f"{scores[False]!r}")
            for s in searches:
                s.kernels = kernels
            on, off = np.array(times[True]), np.array(times[False])
            result[n] = {"compiled_p50_ms": float(np.median(on)), "numpy_p50_ms": float(np.median(off)),
                         "paired_median_ms": float(np.median(on - off)), "frames": len(on),
                         "kernels": [s.describe().get("kernels") for s in searches]}
    return result


def _timed_predict(det: Any, searches: list[Any], kernels: Any, frame: np.ndarray) -> tuple[float, float]:
    """``det.predict(frame)`` with each of ``searches`` on ``kernels`` (None: numpy): milliseconds and raw score."""
    for s in searches:
        s.kernels = kernels
    t0 = time.perf_counter()
    score = det.predict(frame).raw_score
    return (time.perf_counter() - t0) * 1e3, score


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--data", required=True, help="an MVTec-layout folder with a test split")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    ap.add_argument("--max-images", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)
    res: dict[Any, Any] = measure(args.bundle, args.data, threads=tuple(int(t) for t in args.threads.split(",")),
                                  max_images=args.max_images, rounds=args.rounds)
    for n, r in res.items():
        print(f"{n} thread(s): compiled p50 {r['compiled_p50_ms']:.2f} ms, numpy p50 {r['numpy_p50_ms']:.2f} ms, "
              f"paired median {r['paired_median_ms']:+.3f} ms ({r['frames']} frames, same scores)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
