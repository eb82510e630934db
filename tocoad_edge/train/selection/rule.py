"""The pick rule of ``tocoad-train --select``.

1. The score is the synthetic recall at FPR <= 5 % (image level): what a line running at a 5 % false-call rate
   would catch of G's anomalies on its own held-out normal images.
2. A candidate other than the baseline is eligible only when it beats the baseline's score by at least
   ``margin`` (absolute): a user should not pay for a stage that does not measurably help their line.
3. The eligible candidate with the highest score wins; candidates with equal scores go to the cheaper one
   (fewer training seconds). The baseline is always eligible, so when nothing beats it by the margin it is the pick.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import BASELINE

SCORE_KEY = "recall_at_fpr_5"


@dataclass(frozen=True)
class Scored:
    name: str
    score: float            # synthetic recall at FPR <= 5 %
    train_seconds: float


@dataclass(frozen=True)
class Pick:
    name: str
    reason: str


def rule_text(margin: float) -> str:
    return (f"highest synthetic recall at FPR <= 5 % (image level, G's anomalies on held-out normal images); a "
            f"candidate other than '{BASELINE}' must beat the baseline's by at least {100 * margin:.1f} pt, else the "
            f"baseline is kept; equal scores go to the candidate with fewer training seconds")


def pick(scored: list[Scored], margin: float) -> Pick:
    """Apply the rule (module docstring). ``scored`` must contain the baseline."""
    by_name = {s.name: s for s in scored}
    base = by_name[BASELINE]
    eligible = [s for s in scored if s.name == BASELINE or s.score >= base.score + margin - 1e-12]
    best = max(s.score for s in eligible)
    winner = min((s for s in eligible if s.score >= best - 1e-12), key=lambda s: (s.train_seconds, s.name))
    if winner.name == BASELINE:
        beaten = [s.name for s in scored if s.name != BASELINE and s.score > base.score]
        why = (f"no candidate beats the baseline's {100 * base.score:.1f} % by {100 * margin:.1f} pt"
               + (f" ({', '.join(beaten)} higher, but within the margin)" if beaten else ""))
    else:
        why = (f"{100 * winner.score:.1f} % against the baseline's {100 * base.score:.1f} % "
               f"(+{100 * (winner.score - base.score):.1f} pt >= {100 * margin:.1f} pt margin)")
        ties = [s.name for s in eligible if s.score >= best - 1e-12 and s.name != winner.name]
        if ties:
            why += f"; tied with {', '.join(ties)}, cheaper to train"
    return Pick(winner.name, why)
