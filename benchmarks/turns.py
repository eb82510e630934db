"""Whose turn it is in an interleaved benchmark: every runner times the same frames, ``block`` in a row per turn,
and who goes first alternates block by block, so the host's slow and fast stretches fall on all runners alike."""
from __future__ import annotations

import argparse
from typing import Iterator, Sequence, TypeVar

R = TypeVar("R")


def add_block_option(parser: argparse.ArgumentParser) -> None:
    """``--block N``: frames each runner times in a row before the next takes its turn (default 1)."""
    parser.add_argument("--block", type=_frames_per_turn, default=1,
                        help="frames each runner times in a row before the next takes its turn (1: image by image)")


def turns(runners: Sequence[R], frames: int, block: int) -> Iterator[tuple[R, range]]:
    """``(runner, frame indices)`` for each turn over ``frames`` frames, ``block`` per turn."""
    for b, start in enumerate(range(0, frames, block)):
        for runner in (runners if b % 2 == 0 else runners[::-1]):
            yield runner, range(start, min(start + block, frames))


def _frames_per_turn(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 frame per turn, got {n}")
    return n
