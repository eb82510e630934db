"""One INT8 configuration the calibration search tried: its Q/DQ model and how it did at the accuracy gate."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .gate import GateResult


@dataclass(frozen=True, eq=False)
class Trial:
    description: str                  # how the manifest and the gate failure name it
    method: str                       # activation ranges: max | percentile | entropy
    keep_float: frozenset[str]        # nodes of the layers left in float
    result: GateResult
    embedding_rel_error: float        # ‖INT8 − FP32‖ / ‖FP32‖ of the gate set's embeddings
    model: Any = field(repr=False)    # the Q/DQ onnx.ModelProto

    def rank(self) -> tuple[bool, float, float]:
        """Higher is better: a pass first, then Spearman less the AUROC drop, then the smaller embedding error."""
        r = self.result
        return (r.passed, r.spearman - max(r.auroc_drop, 0.0), -self.embedding_rel_error)

    def to_dict(self) -> dict:
        """The manifest's ``calibration.tried`` entry (without the model)."""
        return {"description": self.description, "keep_float": sorted(self.keep_float),
                "gate": self.result.to_dict(), "embedding_rel_error": self.embedding_rel_error,
                "method": self.method}
