"""eval.runner.at_eval_resolution: the one place maps and masks are brought to the size metrics are computed at."""
from __future__ import annotations

import numpy as np

from tocoad_edge.eval.runner import at_eval_resolution


def test_large_frame_is_shrunk_to_the_longest_side_and_the_mask_stays_binary():
    mask = np.zeros((600, 300), dtype=bool)
    mask[100:300, 50:150] = True                        # a defect covering 1/9 of the frame
    amap = np.zeros((600, 300), dtype=np.float32)
    amap[100:300, 50:150] = 5.0
    out_map, out_mask = at_eval_resolution(amap, mask, 256)
    assert out_mask.shape == (256, 128) and out_map.shape == (256, 128)
    assert out_mask.dtype == bool
    assert abs(out_mask.mean() - mask.mean()) < 0.01
    # bilinear blurs only the border: the hot region lines up with the shrunk mask
    assert out_map[out_mask].min() > 2.5 and out_map[~out_mask].mean() < 0.1


def test_small_frame_is_kept_and_a_fixed_size_model_map_is_brought_to_it():
    mask = np.zeros((120, 180), dtype=bool)
    mask[:, 90:] = True
    model_map = np.zeros((224, 224), dtype=np.float32)
    model_map[:, 112:] = 1.0                            # right half hot, at the model's own resolution
    out_map, out_mask = at_eval_resolution(model_map, mask, 256)
    assert out_mask.shape == (120, 180) and np.array_equal(out_mask, mask)
    assert out_map.shape == (120, 180)
    assert out_map[:, :85].max() == 0.0 and out_map[:, 95:].min() == 1.0
