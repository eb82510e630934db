"""What the projected-index screens work on (``screen_lending.py``, ``screen_checkerboard_walk.py``): a bundle's
projected first stage, the patch embeddings of frames spread over a test split, and the exact nearest-neighbour
distances of each frame's patches. No label is read."""
from __future__ import annotations

import time
from typing import Callable, Hashable

import numpy as np

from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.projected import ProjectedSearch


def projected_frames(bundle: str, data: str, frames: int) -> tuple[Detector, ProjectedSearch, list[np.ndarray],
                                                                    list[np.ndarray]]:
    """The detector (refined search, one thread), its projected first stage, ``frames`` frames' embeddings
    ``[h·w, D]`` and their exact distances ``[h·w]``. Exits with a message for a bundle without a projected index
    or with tiling (a screen takes one patch grid per frame)."""
    det = Detector.open(bundle, search="refined", threads=1)
    search = det.search.approx
    if not isinstance(search, ProjectedSearch):
        raise SystemExit(f"{bundle}: the screen needs a projected index (default export); got {search.name}")
    if det.manifest.input.tiling is not None:
        raise SystemExit(f"{bundle}: a tiled bundle; the screen takes one patch grid per frame")
    ds = load_dataset(data, require_test=True)
    step = max(1, len(ds.test) // frames)
    embeddings = [det.embed(read_image(item.path))[0] for item in ds.test[::step][:frames]]
    exact = ExactSearch(search.bank, threads=1)
    return det, search, embeddings, [exact.query(e) for e in embeddings]


def time_first_stages(settings: dict[Hashable, Callable[[np.ndarray], np.ndarray]], embeddings: list[np.ndarray],
                      truth: list[np.ndarray], rounds: int = 1) -> dict[Hashable, dict[str, float]]:
    """Each setting's first stage over every frame, the settings taking turns on each frame (first one way round,
    then the other), ``rounds`` passes. Per setting: ``ms_p50`` over all passes, and from the first pass the mean
    relative excess of its distances over ``truth`` (``mean_map_error``) and the worst frame's
    (``worst_frame_error``)."""
    times: dict[Hashable, list[float]] = {k: [] for k in settings}
    errors: dict[Hashable, list[float]] = {k: [] for k in settings}
    for r in range(rounds):
        for i, (q, x) in enumerate(zip(embeddings, truth)):
            order = list(settings.items())
            for key, first_stage in (order if (i + r) % 2 == 0 else order[::-1]):
                t0 = time.perf_counter()
                d = first_stage(q)
                times[key].append((time.perf_counter() - t0) * 1e3)
                if r == 0:
                    errors[key].append(float(np.mean((d - x) / x)))
    return {k: {"ms_p50": round(float(np.median(times[k])), 2), "mean_map_error": float(np.mean(errors[k])),
                "worst_frame_error": float(np.max(errors[k]))} for k in settings}


def print_table(head: str, labelled: dict[Hashable, tuple[str, dict]], measured: dict[Hashable, dict[str, float]]
                ) -> list[dict]:
    """Print ``time_first_stages``' results as a markdown table, one row per setting in ``labelled`` (key → its
    label in the first column ``head``, and the fields that describe it), and return the rows (fields and
    figures) for the JSON."""
    print(f"| {head} | first stage ms (p50) | mean map error | worst frame's map error |")
    print("| --- | --- | --- | --- |")
    rows = []
    for key, (label, fields) in labelled.items():
        row = {**fields, **measured[key]}
        rows.append(row)
        print(f"| {label} | {row['ms_p50']} | {100 * row['mean_map_error']:.3f} % | "
              f"{100 * row['worst_frame_error']:.3f} % |")
    return rows
