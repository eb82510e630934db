"""Thread pools, sized on purpose. ONNX Runtime, BLAS (numpy) and hnswlib each own a pool; left at their
defaults they oversubscribe a small CPU (OpenBLAS spin-waits are catastrophic on a busy 2-core box: a
greedy coreset ran 50× slower). Every pool the runtime uses is set explicitly and can be reported.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_controller: Any = None        # a threadpoolctl.ThreadpoolController (threadpoolctl is untyped)
_blas_libraries: list[Any] | None = None     # its BLAS library controllers


def _blas_controller() -> Any:
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return None
        _controller = ThreadpoolController()
    return _controller


def _blas_libs() -> list[Any]:
    global _blas_libraries
    if _blas_libraries is None:
        ctl = _blas_controller()
        _blas_libraries = list(ctl.select(user_api="blas").lib_controllers) if ctl is not None else []
    return _blas_libraries


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS (OpenBLAS / MKL behind numpy) to ``n`` threads inside the block (None: leave as is).

    Called several times per frame, so it talks to the libraries directly (a get, and a set only where the count
    differs: a microsecond) instead of through ``ThreadpoolController.limit``, which selects and wraps the
    libraries anew on every call (tens of microseconds on the frame's critical path)."""
    if not n:
        yield
        return
    changed = []
    for lib in _blas_libs():
        before = lib.get_num_threads()
        if before != n:
            lib.set_num_threads(int(n))
            changed.append((lib, before))
    try:
        yield
    finally:
        for lib, before in changed:
            lib.set_num_threads(before)


def set_blas_threads(n: int) -> None:
    """Set the BLAS pool size for the whole process (threadpoolctl; a no-op without it)."""
    ctl = _blas_controller()
    if ctl is not None:
        for lib in ctl.select(user_api="blas").lib_controllers:
            lib.set_num_threads(int(n))


def set_opencv_threads(n: int) -> None:
    """Run OpenCV's own loops on ``n`` threads, for the whole process (OpenCV has no other scope). Its pool defaults
    to every core: beside a search that already keeps its own threads busy, its loops in the anomaly map contend
    with them, and with one search thread they take a core the caller did not give the detector."""
    import cv2

    cv2.setNumThreads(int(n))


def opencv_threads() -> int:
    import cv2

    return int(cv2.getNumThreads())


def blas_info() -> list[dict[str, Any]]:
    """BLAS libraries loaded in this process and their thread counts (for reports)."""
    ctl = _blas_controller()
    if ctl is None:
        return [{"note": "threadpoolctl not installed; BLAS threads not controlled"}]
    return [{"library": i.get("internal_api"), "version": i.get("version"), "threads": i.get("num_threads")}
            for i in ctl.info() if i.get("user_api") == "blas"]


# How each search kind spreads one frame over its threads (for reports).
SEARCH_SPLIT = {"exact": "query rows split between the caller and threads - 1 pool workers, one-thread BLAS each "
                         "(search/split.py)",
                "hnsw": "query rows split as for exact; each thread walks its rows (a projected index: and re-ranks "
                        "them; one that lends rows between neighbours cuts them into chunks the threads claim in turn)",
                "refined": "a lending index's first stage in one compiled call per search thread (the threads "
                           "claim blocks of 16 patches: project, walk the graph, rank and lend, then answer), then "
                           "a smoothed-max score's exact re-checks in one compiled loop on the calling thread, the "
                           "other search threads taking chunks of each of its passes over the bank, the first after "
                           "drawing the anomaly map; the workers wait on their CPU between frames for up to 50 ms "
                           "(search/pool.py) (otherwise the index search as for hnsw; a max score's re-checks, or "
                           "the numpy loop's: the bank's rows split over the search threads, one more thread "
                           "drawing the map meanwhile)",
                "graph": "ONNX Runtime intra-op pool (MLAS GEMM)"}


def thread_plan(backbone_threads: int | None, search_threads: int | None, search_kind: str) -> dict[str, Any]:
    """Every pool one frame uses, with its size: what ``Detector.describe()`` and the bench JSON report."""
    spin = ("onnxruntime default" if not backbone_threads else "during a run, stopped at its end"
            if int(backbone_threads) > 1 else "none (one thread)")   # see backends/onnxrt.py session_options
    return {"backbone": backbone_threads, "search": search_threads,
            "onnxruntime": {"intra_op": backbone_threads, "inter_op": 1 if backbone_threads else None,
                            "spin_wait": spin},
            "search_split": SEARCH_SPLIT.get(search_kind, search_kind), "blas": blas_info(),
            "opencv": opencv_threads(),
            "cpus_available": cpu_count()}
