"""``tocoad-export bundle|engine``, and the spellings from before the subcommands (still work, with a notice)."""
from __future__ import annotations

import json

import pytest

from tocoad_edge.export.cli import main, modernise_argv


def test_new_spellings_pass_through_without_a_notice():
    assert modernise_argv(["bundle", "run", "--out", "b"]) == (["bundle", "run", "--out", "b"], None)
    assert modernise_argv(["engine", "b", "--precision", "fp16"]) == (["engine", "b", "--precision", "fp16"], None)


def test_old_spellings_map_onto_the_subcommands():
    new, notice = modernise_argv(["run", "--out", "b", "--int8"])
    assert new == ["bundle", "run", "--out", "b", "--int8"]
    assert "tocoad-export bundle run --out b --int8" in notice and "deprecated" in notice
    new, notice = modernise_argv(["--engine-only", "b", "--precision", "fp16"])
    assert new == ["engine", "b", "--precision", "fp16"]
    assert "tocoad-export engine b --precision fp16" in notice


def test_old_bundle_spelling_still_exports(tmp_path, tiny_run, capsys):
    out = tmp_path / "bundle"
    assert main([str(tiny_run), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"spell it: tocoad-export bundle {tiny_run} --out {out}" in err
    assert json.loads((out / "manifest.json").read_text())["files"]


def test_engine_on_a_machine_without_tensorrt_is_a_clear_error(tmp_path, tiny_bundle, capsys):
    assert main(["engine", str(tiny_bundle), "--precision", "fp16"]) == 2
    err = capsys.readouterr().err
    assert "tocoad-export: error:" in err and "TensorRT" in err


def test_bundle_needs_out(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bundle", "somerun"])
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_lending_more_rows_than_walked_is_refused_before_any_work(tmp_path, tiny_run, capsys):
    out = tmp_path / "bundle"
    assert main(["bundle", str(tiny_run), "--out", str(out), "--search-candidates", "4", "--search-lend", "5"]) == 2
    err = capsys.readouterr().err
    assert "--search-lend is larger than --search-candidates" in err and "expected: 0 .. 4" in err and "got: 5" in err
    assert not out.exists()
    assert main(["bundle", str(tiny_run), "--out", str(out), "--search-lend", "-1"]) == 2
    assert "--search-lend must not be negative" in capsys.readouterr().err
