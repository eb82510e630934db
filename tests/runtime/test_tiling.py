"""The tile grid (covers every frame with the stated overlap, with no more tiles than needed), cutting tiles, and
stitching known per-tile maps into one frame map (mean where tiles overlap)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tocoad_edge.bundle.manifest import InputSpec, TilingSpec
from tocoad_edge.errors import ConfigError
from tocoad_edge.runtime.tiling import (axis_starts, cut_tiles, overlap_pixels, scaled_size, stitch_tile_maps,
                                        tile_layout, tiled_anomaly_map)


@pytest.mark.parametrize("tile", [64, 224, 97])
@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.25, 0.3, 0.5, 0.75])
def test_grid_covers_every_length_with_the_overlap_and_no_spare_tile(tile: int, overlap: float) -> None:
    o = math.ceil(overlap * tile - 1e-9)
    for length in range(8, 5 * tile + 3):
        starts = axis_starts(length, tile, overlap)
        covered = max(length, tile)             # a frame shorter than a tile is padded to one tile
        assert starts[0] == 0 and starts[-1] + tile == covered, (length, starts)
        assert all(b > a for a, b in zip(starts, starts[1:])), (length, starts)
        # neighbours overlap by at least o pixels: no gap, and the stated overlap holds
        assert all(a + tile - b >= o for a, b in zip(starts, starts[1:])), (length, starts)
        if len(starts) > 1:
            # one tile fewer could not cover the length at that overlap (the grid is as small as it can be)
            assert (len(starts) - 2) * (tile - o) + tile < length, (length, starts)


def test_overlap_pixels_rounds_up_and_ignores_float_noise() -> None:
    assert overlap_pixels(224, 0.25) == 56
    assert overlap_pixels(224, 0.3) == 68          # 67.2 → 68
    assert overlap_pixels(10, 0.3) == 3            # 0.3 · 10 = 3.0000000000000004 in floats: still 3


def test_layout_of_a_scaled_frame() -> None:
    lay = tile_layout((1000, 601), (224, 224), TilingSpec(overlap=0.25, scale=0.5))
    assert scaled_size((1000, 601), 0.5) == (500, 301)             # 300.5 rounds half up
    assert lay.scaled_hw == (500, 301)
    assert lay.ys == (0, 138, 276) and lay.xs == (0, 77)
    assert lay.count == 6 and lay.origins()[:3] == [(0, 0), (0, 77), (138, 0)]


def test_cut_tiles_takes_the_frame_at_native_resolution() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
    lay = tile_layout(frame.shape[:2], (64, 64), TilingSpec(overlap=0.25))
    tiles = cut_tiles(frame, lay)
    assert tiles.shape == (lay.count, 64, 64, 3) and tiles.dtype == np.uint8
    for t, (y, x) in zip(tiles, lay.origins()):
        np.testing.assert_array_equal(t, frame[y:y + 64, x:x + 64])


def test_a_frame_smaller_than_a_tile_is_padded_by_reflection() -> None:
    frame = np.arange(40 * 100 * 3, dtype=np.uint32).reshape(40, 100, 3).astype(np.uint8)
    lay = tile_layout((40, 100), (64, 64), TilingSpec(overlap=0.25))
    tiles = cut_tiles(frame, lay)
    assert lay.ys == (0,) and lay.xs == (0, 36)
    np.testing.assert_array_equal(tiles[0, :40], frame[:, :64])
    np.testing.assert_array_equal(tiles[0, 40:64], frame[38:14:-1, :64])     # reflect-101: row 40 mirrors row 38


def test_stitching_known_tile_maps_takes_the_mean_where_tiles_overlap() -> None:
    lay = tile_layout((64, 100), (64, 64), TilingSpec(overlap=0.25))
    assert lay.xs == (0, 36)
    maps = np.stack([np.full((64, 64), 2.0, np.float32), np.full((64, 64), 6.0, np.float32)])
    m = stitch_tile_maps(maps, lay)
    assert m.shape == (64, 100)
    assert np.all(m[:, :36] == 2.0) and np.all(m[:, 36:64] == 4.0) and np.all(m[:, 64:] == 6.0)


def test_stitching_cuts_the_padding_off() -> None:
    lay = tile_layout((30, 50), (64, 64), TilingSpec(overlap=0.25))
    maps = np.arange(64 * 64, dtype=np.float32).reshape(1, 64, 64)
    m = stitch_tile_maps(maps, lay)
    np.testing.assert_array_equal(m, maps[0, :30, :50])


def test_tiled_map_puts_each_tiles_distances_where_the_tile_lies() -> None:
    # 2 × 2 tiles of a 4 × 4 patch grid; one hot patch in the last tile's grid → hottest pixel inside that tile only
    lay = tile_layout((100, 100), (64, 64), TilingSpec(overlap=0.25))
    assert lay.origins() == [(0, 0), (0, 36), (36, 0), (36, 36)]
    d = np.zeros((4, 4, 4), np.float32)
    d[3, 3, 3] = 8.0                    # bottom-right patch of the bottom-right tile
    m = tiled_anomaly_map(d.ravel(), (4, 4), lay, sigma=0.0)
    assert m.shape == (100, 100)
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    assert y >= 64 and x >= 64                                  # where only that tile reaches: not averaged
    assert m.max() == pytest.approx(8.0) and m[:36, :36].max() == 0.0


def test_tiled_map_of_a_scaled_frame_has_the_frame_size() -> None:
    lay = tile_layout((300, 200), (64, 64), TilingSpec(overlap=0.25, scale=0.5))
    d = np.ones(lay.count * 16, np.float32)
    m = tiled_anomaly_map(d, (4, 4), lay, sigma=2.0)
    assert m.shape == (300, 200) and np.allclose(m, 1.0, atol=1e-5)


def test_tiling_spec_is_checked_and_untiled_manifests_stay_as_before(tiny_bundle) -> None:
    with pytest.raises(ConfigError, match="tiling.overlap"):
        TilingSpec(overlap=0.9)
    with pytest.raises(ConfigError, match="tiling.scale"):
        TilingSpec(scale=0.0)
    from tocoad_edge.bundle.manifest import read_manifest

    m = read_manifest(tiny_bundle)
    assert m.input.tiling is None
    assert "tiling" not in json.loads(m.to_json())["input"]       # older runtimes read an untiled bundle unchanged
    assert InputSpec(64, 64, tiling=TilingSpec()).tiling == TilingSpec(0.25, 1.0, "mean")
