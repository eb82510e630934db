"""benchmarks/turns.py: every runner gets every frame once, block by block, who goes first alternating."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from turns import add_block_option, turns  # noqa: E402


def test_turns_alternate_by_block_and_cover_every_frame():
    got = [(r, list(idx)) for r, idx in turns(["a", "b"], 5, 2)]
    assert got == [("a", [0, 1]), ("b", [0, 1]), ("b", [2, 3]), ("a", [2, 3]), ("a", [4]), ("b", [4])]


def test_image_by_image_is_block_one():
    assert [(r, list(idx)) for r, idx in turns(["a", "b"], 2, 1)] == [("a", [0]), ("b", [0]), ("b", [1]),
                                                                       ("a", [1])]


def test_block_below_one_is_refused_with_the_value(capsys):
    p = argparse.ArgumentParser()
    add_block_option(p)
    assert p.parse_args(["--block", "10"]).block == 10 and p.parse_args([]).block == 1
    with pytest.raises(SystemExit):
        p.parse_args(["--block", "0"])
    assert "must be at least 1 frame per turn, got 0" in capsys.readouterr().err
