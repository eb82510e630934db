"""Screen: walk each patch with fewer candidates and let grid neighbours lend each other their best rows.

    python benchmarks/screen_lending.py BUNDLE --data ../shared/data/magnetic_tile_dev [--frames 40]
                                        [--settings 16/16/0,8/8/0,8/8/2,10/10/1] [--json OUT.json]

Each setting is ``candidates/ef/lend`` of ``runtime/search/projected.py``'s ``ProjectedSearch`` over the bundle's own
projected index and bank: ``lend`` 0 is the search without lending (16/16/0 was the export's default before it).
Per setting: ms per frame of the first stage (projection, walk, re-rank and the lent rows' re-rank; one thread;
the settings take turns on each frame, first one way round and then the other), and the map's mean relative excess
over exact search, overall and on the worst frame. The export's rule for a refined map is
``runtime/detector.py``'s ``REFINED_MAX_MAP_ERROR`` (0.5 %). Frames are spread over the test split; no label is
read.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tocoad_edge.runtime.search.projected import ProjectedSearch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from projected_frames import print_table, projected_frames, time_first_stages  # noqa: E402  (same folder)


def parse_settings(text: str) -> list[tuple[int, int, int]]:
    out = []
    for item in text.split(","):
        parts = item.split("/")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise SystemExit(f"--settings: expected candidates/ef/lend triples like 8/8/2, got {item!r}")
        out.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("--data", required=True)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--settings", default="16/16/0,8/8/0,8/8/2,10/10/1")
    p.add_argument("--rounds", type=int, default=3, help="timed passes over the frames (errors from the first)")
    p.add_argument("--json", default=None)
    a = p.parse_args()

    det, base, embeddings, truth = projected_frames(a.bundle, a.data, a.frames)
    grid = tuple(det.manifest.features.grid)
    index = det.manifest.memory_bank.index
    assert index is not None
    index_path = Path(a.bundle) / index.file
    searches = {s: ProjectedSearch(base.bank, index_path, base.projection, ef=s[1], candidates=s[0], lend=s[2],
                                   grid=grid, threads=1) for s in parse_settings(a.settings)}
    load_before = os.getloadavg()
    measured = time_first_stages({s: search.query for s, search in searches.items()}, embeddings, truth, a.rounds)
    load_after = os.getloadavg()
    print(f"{a.bundle}: {len(embeddings)} frames, grid {grid[0]}×{grid[1]}, bank {base.entries} × {base.dim}, "
          f"index {base.dims} dims, one thread, {a.rounds} rounds; load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    rows = print_table("candidates / ef / lend", {s: (f"{s[0]} / {s[1]} / {s[2]}",
                                                       {"candidates": s[0], "ef": s[1], "lend": s[2]})
                                                   for s in searches}, measured)
    if a.json:
        Path(a.json).write_text(json.dumps({"bundle": a.bundle, "data": a.data, "grid": grid, "rows": rows,
                                            "load": [load_before, load_after]}, indent=1))


if __name__ == "__main__":
    main()
