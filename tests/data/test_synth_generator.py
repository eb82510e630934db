"""Anomaly generator G: masks, untouched normal pixels, determinism, each method, texture sources."""
import numpy as np
import pytest

from tocoad_edge.train.config import SynthConfig
from tocoad_edge.errors import ConfigError, DataError
from tocoad_edge.synth import AnomalyGenerator, FolderTextures, ProceduralTextures, perlin_mask, perlin_noise
from tocoad_edge.synth.foreground import foreground_mask


def _images(n=4, size=64, gray=False, seed=0):
    rng = np.random.default_rng(seed)
    imgs = []
    for _ in range(n):
        base = rng.integers(60, 200, (size, size, 1 if gray else 3)).astype(np.uint8)
        imgs.append(np.repeat(base, 3, axis=2) if gray else base)
    return imgs


@pytest.mark.parametrize("method", ["perlin", "cutpaste", "seamless"])
def test_unmasked_pixels_untouched_and_mask_covers_changes(method):
    imgs = _images()
    gen = AnomalyGenerator.from_config(SynthConfig(method=method, anomaly_probability=1.0), imgs, seed=3)
    for k in range(8):
        s = gen.sample(imgs[k % 4], k)
        assert s.image.dtype == np.uint8 and s.image.shape == imgs[0].shape
        assert s.mask.shape == imgs[0].shape[:2] and set(np.unique(s.mask)) <= {0, 1}
        assert s.label == 1 and s.mask.any()
        outside = s.mask == 0
        assert np.array_equal(s.image[outside], s.base[outside])
        assert not np.array_equal(s.image[~outside], s.base[~outside])


def test_perlin_mask_coverage_in_a_sensible_range():
    imgs = _images(size=128)
    cfg = SynthConfig(anomaly_probability=1.0, min_coverage=0.01)
    gen = AnomalyGenerator.from_config(cfg, imgs, seed=0)
    cover = np.array([gen.sample(imgs[0], k).mask.mean() for k in range(40)])
    assert (cover >= 0.01).mean() >= 0.9          # redrawn until it covers at least min_coverage (almost always)
    assert cover.max() < 0.6                       # never the whole image
    assert cover.std() > 0.005                     # many scales: coverages differ


def test_normal_samples_have_empty_mask_and_label_zero():
    imgs = _images()
    gen = AnomalyGenerator.from_config(SynthConfig(anomaly_probability=0.0), imgs, seed=0)
    s = gen.sample(imgs[1], 0)
    assert s.label == 0 and not s.mask.any() and np.array_equal(s.image, s.base)


def test_deterministic_under_seed_and_different_across_seeds():
    imgs = _images()
    a = AnomalyGenerator.from_config(SynthConfig(anomaly_probability=1.0), imgs, seed=7)
    b = AnomalyGenerator.from_config(SynthConfig(anomaly_probability=1.0), imgs, seed=7)
    c = AnomalyGenerator.from_config(SynthConfig(anomaly_probability=1.0), imgs, seed=8)
    sa, sb, sc = a.sample(imgs[0], 5), b.sample(imgs[0], 5), c.sample(imgs[0], 5)
    assert np.array_equal(sa.image, sb.image) and np.array_equal(sa.mask, sb.mask)
    assert not np.array_equal(sa.mask, sc.mask)


def test_grayscale_images_get_grayscale_defects():
    imgs = _images(gray=True)
    gen = AnomalyGenerator(SynthConfig(anomaly_probability=1.0), ProceduralTextures(), seed=1)
    for k in range(5):
        s = gen.sample(imgs[0], k)
        assert np.array_equal(s.image[..., 0], s.image[..., 1]) and np.array_equal(s.image[..., 1], s.image[..., 2])


def test_foreground_mask_keeps_defects_on_the_object():
    img = np.full((96, 96, 3), 10, np.uint8)
    img[24:72, 24:72] = 180  # bright object on a dark background
    fg = foreground_mask(img, "otsu")
    assert fg[48, 48] == 1 and fg[2, 2] == 0
    gen = AnomalyGenerator.from_config(SynthConfig(anomaly_probability=1.0, foreground="otsu", rotation_degrees=0.0,
                                                   rotate90=False), [img], seed=0)
    for k in range(6):
        s = gen.sample(img, k)
        assert s.mask.any() and not (s.mask & (1 - fg)).any()


def test_perlin_noise_any_shape_and_range():
    rng = np.random.default_rng(0)
    n = perlin_noise((50, 70), (4, 8), rng)
    assert n.shape == (50, 70) and np.isfinite(n).all() and np.abs(n).max() <= 1.5
    m, _ = perlin_mask((50, 70), rng)
    assert m.shape == (50, 70) and m.dtype == np.uint8


def test_texture_folder_errors_and_reads(tmp_path):
    with pytest.raises(DataError, match="not found"):
        FolderTextures(tmp_path / "missing")
    with pytest.raises(DataError, match="holds no images"):
        FolderTextures(tmp_path)
    import cv2

    cv2.imwrite(str(tmp_path / "t.png"), np.full((20, 30, 3), 90, np.uint8))
    tex = FolderTextures(tmp_path).sample((40, 40), np.random.default_rng(0))
    assert tex.shape == (40, 40, 3) and tex.dtype == np.uint8


def test_bad_input_and_config_are_clear_errors():
    gen = AnomalyGenerator(SynthConfig(), ProceduralTextures(), seed=0)
    with pytest.raises(DataError, match="uint8 BGR"):
        gen.sample(np.zeros((8, 8), np.float32), 0)
    with pytest.raises(ConfigError, match="beta"):
        SynthConfig(beta_min=0.0)
    with pytest.raises(ConfigError, match="synth.textures"):
        SynthConfig(texture_source="folder")
