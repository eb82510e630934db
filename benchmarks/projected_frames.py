"""What the projected-index screens work on (``screen_lending.py``, ``screen_checkerboard_walk.py``): a bundle's
projected first stage, the patch embeddings of frames spread over a test split, and the exact nearest-neighbour
distances of each frame's patches. No label is read."""
from __future__ import annotations

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
