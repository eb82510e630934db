"""Screen: walk the HNSW graph for half of a frame's patches and borrow candidates for the other half.

    python benchmarks/screen_checkerboard_walk.py BUNDLE --data ../shared/data/magnetic_tile_dev [--frames 40]
                                                  [--borrow 2,4,6] [--json OUT.json]

The projected first stage spends most of its time in hnswlib's walk (one per patch), and neighbouring patches of
one image usually have the same or nearby nearest bank rows. Here the walk runs only for the patches of one colour
of a checkerboard over the patch grid. Each of those is re-ranked as today, which also gives its ``--borrow``
best rows. A patch of the other colour is re-ranked over the best rows of its up to four grid neighbours, with no
walk of its own. Every answer is still a true distance to a real bank row, so the refined search's image score
stays exact. Only the map can move, and only upward.

Per setting: ms per frame of the first stage (projection, walk and re-rank; one thread; the settings take turns
on each frame, first one way round and then the other), and the map's mean relative excess over exact search. The
export's rule for a refined map is ``runtime/detector.py``'s ``REFINED_MAX_MAP_ERROR`` (0.5 %). Frames are spread
over the test split; no label is read. This is a screen: the runtime does not do it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tocoad_edge.runtime.search.projected import ProjectedSearch, project

sys.path.insert(0, str(Path(__file__).resolve().parent))
from projected_frames import print_table, projected_frames, time_first_stages  # noqa: E402  (same folder)


def checkerboard(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices of the walked cells, of the borrowing cells, and for each borrowing cell four walked cells
    (its grid neighbours, repeated where it has fewer than four), as row numbers among the walked cells."""
    i, j = np.divmod(np.arange(h * w), w)
    walked, borrowing = np.flatnonzero((i + j) % 2 == 0), np.flatnonzero((i + j) % 2 == 1)
    row_of = np.full(h * w, -1)
    row_of[walked] = np.arange(len(walked))
    neighbours = []
    for cell in borrowing:
        ci, cj = divmod(int(cell), w)
        near = [int(row_of[(ci + di) * w + cj + dj]) for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if 0 <= ci + di < h and 0 <= cj + dj < w]
        neighbours.append((near * 4)[:4])
    return walked, borrowing, np.array(neighbours)


def ranked(search: ProjectedSearch, q: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query's candidate rows sorted by distance (``|b|² − 2q·b``), and the distance to the best one."""
    rank = np.take(search.norms, labels) + np.einsum("nkd,nd->nk", np.take(search.bank, labels, axis=0),
                                                     q * np.float32(-2.0))
    order = np.take_along_axis(labels, np.argsort(rank, axis=1), axis=1)
    diff = np.take(search.bank, order[:, 0], axis=0) - q
    return order, np.sqrt(np.einsum("ij,ij->i", diff, diff))


def first_stage_checkerboard(search: ProjectedSearch, q: np.ndarray, plan, borrow: int) -> np.ndarray:
    walked, borrowing, neighbours = plan
    qw = q[walked]
    labels = search.index.knn_query(project(qw, search.projection), k=search.candidates, num_threads=1)[0]
    order, dist_walked = ranked(search, qw, labels)
    borrowed = order[:, :borrow][neighbours].reshape(len(borrowing), -1)
    _, dist_borrowing = ranked(search, q[borrowing], borrowed)
    out = np.empty(len(q), dtype=np.float32)
    out[walked], out[borrowing] = dist_walked, dist_borrowing
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("--data", required=True)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--borrow", default="2,4,6", help="best rows each walked patch lends its neighbours")
    p.add_argument("--json", default=None)
    a = p.parse_args()

    det, search, embeddings, truth = projected_frames(a.bundle, a.data, a.frames)
    h, w = det.manifest.features.grid
    plan = checkerboard(h, w)
    settings = {"every patch walked (today)": lambda q: search.query(q)}
    for b in (int(v) for v in a.borrow.split(",")):
        settings[f"checkerboard, {b} rows lent"] = lambda q, b=b: first_stage_checkerboard(search, q, plan, b)
    measured = time_first_stages(settings, embeddings, truth)
    print(f"{a.bundle}: {len(embeddings)} frames, {h}×{w} patches, bank {search.entries} × {search.dim}, "
          f"{search.candidates} candidates, ef {search.ef}, one thread")
    rows = print_table("first stage", {name: (name, {"setting": name}) for name in settings}, measured)
    if a.json:
        Path(a.json).write_text(json.dumps({"bundle": a.bundle, "data": a.data, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
