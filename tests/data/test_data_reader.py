import cv2
import numpy as np
import pytest

from tocoad_edge.data import load_dataset, read_image, read_mask
from tocoad_edge.errors import DataError


def _img(path, shape, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    cv2.imwrite(str(path), a if color else a[..., 0])


def test_layout_formats_and_masks(tmp_path):
    _img(tmp_path / "train/good/a.png", (40, 50, 3), True)
    _img(tmp_path / "train/good/b.jpg", (60, 30, 3), False)
    _img(tmp_path / "train/good/c.bmp", (20, 20, 3), True)
    (tmp_path / "train/good/notes.txt").write_text("x")
    _img(tmp_path / "test/good/g.png", (40, 40, 3), True)
    _img(tmp_path / "test/crack/k.png", (40, 40, 3), True)
    m = np.zeros((40, 40), np.uint8)
    m[5:10, 5:10] = 255
    (tmp_path / "ground_truth/crack").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "ground_truth/crack/k_mask.png"), m)
    ds = load_dataset(tmp_path)
    assert [p.name for p in ds.train] == ["a.png", "b.jpg", "c.bmp"]
    assert {(t.defect, t.label) for t in ds.test} == {("good", 0), ("crack", 1)}
    crack = [t for t in ds.test if t.label][0]
    assert crack.mask_path.name == "k_mask.png"
    gray = read_image(tmp_path / "train/good/b.jpg")
    assert gray.shape == (60, 30, 3) and gray.dtype == np.uint8
    mask = read_mask(crack.mask_path, (80, 80))
    assert mask.shape == (80, 80) and mask.sum() > 0
    assert read_mask(None, (4, 5)).sum() == 0


def test_no_training_images_names_path(tmp_path):
    (tmp_path / "train/good").mkdir(parents=True)
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert str(tmp_path / "train" / "good") in str(e.value)


def test_missing_folder_names_path(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "absent")
    assert "absent" in str(e.value)


def test_unreadable_image_names_path(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError) as e:
        read_image(bad)
    assert "broken.png" in str(e.value)


def test_real_magnetic_tile_layout(shared_data):
    ds = load_dataset(shared_data / "magnetic_tile_dev")
    assert len(ds.train) == 350
    assert set(ds.defect_types) == {"blowhole", "crack", "fray"}
    assert all(t.mask_path is not None for t in ds.test if t.label)


def test_evenly_spread_keeps_the_ends_and_both_classes(sample_dataset):
    from tocoad_edge.data import evenly_spread, load_dataset

    items = list(load_dataset(sample_dataset, require_test=True).test)     # the good ones first, then defects
    picked = evenly_spread(items, 4)
    assert len(picked) == 4 and picked[0] is items[0] and picked[-1] is items[-1]
    assert {t.label for t in picked} == {0, 1}
    positions = [items.index(t) for t in picked]
    assert positions == sorted(set(positions))                              # in order, none twice
    assert evenly_spread(items, 100) == items and evenly_spread(items, len(items)) == items
