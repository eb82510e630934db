"""tocoad-train --select: the candidates file (strict, did-you-mean), the baseline always a candidate, the
held-out split, and the CLI refusing bad input before anything is trained."""
import pytest

from tocoad_edge.errors import ConfigError, DataError
from tocoad_edge.train.config import TrainConfig
from tocoad_edge.train.selection.config import (BASELINE, MIN_HELDOUT, MIN_TRAIN, SelectConfig, load_select_config,
                                                resolve_candidates)
from tocoad_edge.train.selection.runner import split_for_selection


def _write(tmp_path, text):
    p = tmp_path / "candidates.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_default_candidates_are_baseline_and_full():
    cands = resolve_candidates(TrainConfig(), load_select_config(None))
    assert [c.name for c in cands] == [BASELINE, "full"]
    assert [c.config.stages for c in cands] == ["baseline", "full"]


def test_baseline_is_added_when_the_file_omits_it_and_overrides_merge_over_the_run_config(tmp_path):
    path = _write(tmp_path, "margin: 0.05\ncandidates:\n  short:\n    stage2: {epochs: 1}\n"
                            "  wide:\n    data: {image_size: 320}\n")
    select = load_select_config(path)
    base = TrainConfig(seed=7)
    cands = resolve_candidates(base, select)
    assert select.margin == 0.05
    assert [c.name for c in cands] == [BASELINE, "short", "wide"]
    assert cands[0].config.stages == "baseline" and cands[0].overrides == {"stages": "baseline"}
    short = cands[1].config
    assert short.stage2.epochs == 1 and short.stage2.guide_margin == base.stage2.guide_margin
    assert short.seed == 7 and short.stages == "full"            # what is not overridden is the run's config
    assert cands[2].config.data.image_size == 320


def test_a_listed_baseline_keeps_its_overrides_but_stays_frozen(tmp_path):
    cands = resolve_candidates(TrainConfig(), load_select_config(
        _write(tmp_path, "candidates:\n  baseline: {memory: {coreset_ratio: 0.05}}\n  full: {}\n")))
    assert cands[0].config.stages == "baseline" and cands[0].config.memory.coreset_ratio == 0.05
    with pytest.raises(ConfigError, match="frozen ImageNet backbone"):
        resolve_candidates(TrainConfig(), load_select_config(
            _write(tmp_path, "candidates:\n  baseline: {stages: full}\n")))


@pytest.mark.parametrize("text, words", [
    ("candidates:\n  short:\n    stage2: {epoch: 1}\n", ["candidate 'short'", "stage2.epoch", "did you mean 'epochs'"]),
    ("candidates:\n  lite1:\n    backbon: {name: efficientnet_lite1}\n",
     ["candidate 'lite1'", "did you mean 'backbone'"]),
    ("margn: 0.01\n", ["unknown config key 'margn'", "did you mean 'margin'"]),
    ("holdout_fraction: 1.5\n", ["holdout_fraction", "(0, 1)"]),
    ("candidates:\n  bad/name: {}\n", ["folder name", "bad/name"]),
    ("candidates:\n  full: 3\n", ["'candidates.full' must be a mapping"]),
    ("candidates:\n", ["lists no candidates"]),
    ("candidates:\n  s:\n    stages: fine\n", ["candidate 's'", "one of ['baseline', 'no-guide', 'full']"]),
])
def test_bad_candidates_files_are_clear_errors(tmp_path, text, words):
    with pytest.raises(ConfigError) as info:
        resolve_candidates(TrainConfig(), load_select_config(_write(tmp_path, text)))
    for w in words:
        assert w in str(info.value)


def test_a_tiled_candidate_is_refused_before_anything_is_trained(tmp_path):
    """The synthetic set is drawn at one input size, where tiling cuts no tiles: scoring a tiled candidate there
    would pick or drop it for the wrong reason, so --select says so instead."""
    with pytest.raises(ConfigError) as info:
        resolve_candidates(TrainConfig(), load_select_config(
            _write(tmp_path, "candidates:\n  tiled:\n    data: {tiling: {enabled: true}}\n")))
    assert "candidate 'tiled' is tiled" in str(info.value)
    assert info.value.got == "data.tiling.enabled: true" and "tocoad-eval" in info.value.fix
    from dataclasses import replace

    from tocoad_edge.train.config import TilingConfig

    base = TrainConfig()
    tiled_base = replace(base, data=replace(base.data, tiling=TilingConfig(enabled=True)))
    with pytest.raises(ConfigError, match="candidate 'baseline' is tiled"):
        resolve_candidates(tiled_base, load_select_config(None))


def test_the_held_out_split_is_fixed_by_the_seed_and_refuses_too_few_images():
    names = [f"{i:03d}.png" for i in range(40)]
    held = split_for_selection(names, 0.2, seed=0)
    assert len(held) == 8 and set(held) <= set(names) and held == sorted(held)
    assert split_for_selection(names, 0.2, seed=0) == held
    assert split_for_selection(names, 0.2, seed=1) != held
    with pytest.raises(DataError) as info:
        split_for_selection(names[:MIN_HELDOUT + MIN_TRAIN - 2], 0.2, seed=0)
    text = str(info.value)
    assert "too few normal training images for --select" in text and "held out" in text and "fix:" in text


def test_select_config_defaults_are_the_documented_ones():
    s = SelectConfig()
    assert (s.holdout_fraction, s.synthetic_per_image, s.margin) == (0.2, 3, 0.02)


def test_cli_refuses_a_bad_candidates_file_before_training(tmp_path, sample_dataset, capsys):
    from tocoad_edge.cli.train import main

    out = tmp_path / "run"
    bad = _write(tmp_path, "candidates:\n  short:\n    stage2: {epoch: 1}\n")
    assert main(["--data", str(sample_dataset), "--out", str(out), "--select", "--candidates", str(bad)]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err
    assert not out.exists()
    assert main(["--data", str(sample_dataset), "--out", str(out), "--candidates", str(bad)]) == 2
    assert "--candidates needs --select" in capsys.readouterr().err
    assert main(["--data", str(sample_dataset), "--out", str(out), "--select", "--stages", "full"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_the_example_candidates_file_resolves():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "select_candidates.yaml"
    cands = resolve_candidates(TrainConfig(), load_select_config(example))
    assert cands[0].name == BASELINE and len(cands) >= 3
    assert {c.config.backbone.name for c in cands} >= {"efficientnet_lite0", "efficientnet_lite1"}
