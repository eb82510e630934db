"""The negative guide of ToCoAD stage 2.

A synthetic-anomaly image ``a`` and the normal image ``x`` it was made from share their geometry, so the patch
embedding at each location of ``a`` has a natural partner: the embedding of ``x`` at the same place. The frozen
discriminator D says where ``a`` is anomalous (weight ``w`` in [0, 1] per location). There the embedding of ``a``
is pushed away from its normal partner (until their cosine is at most ``margin``); elsewhere it is pulled to
it, so normal regions stay aligned. The normal partner is a stop-gradient anchor: the features of normal
images, which the memory bank is built from, are not moved by this term.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def guide_loss(anomalous: torch.Tensor, normal: torch.Tensor, weight: torch.Tensor, margin: float = 0.5,
               normal_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """``anomalous``/``normal``: embeddings ``[N, D, h, w]``; ``weight``: ``[N, 1, h, w]`` or ``[N, h, w]``.

    Returns ``(loss, {"push": ..., "pull": ...})``; ``loss = push + normal_weight · pull`` with
    ``push = Σ w·relu(cos − margin) / Σ w`` and ``pull = Σ (1−w)·(1 − cos) / Σ (1−w)``.
    """
    if weight.dim() == 4:
        weight = weight[:, 0]
    if weight.shape[-2:] != anomalous.shape[-2:]:
        weight = F.interpolate(weight.unsqueeze(1), size=anomalous.shape[-2:], mode="bilinear",
                               align_corners=False)[:, 0]
    weight = weight.detach().clamp(0, 1)
    cos = F.cosine_similarity(anomalous, normal.detach(), dim=1)  # [N, h, w]
    eps = 1e-6
    push = (weight * F.relu(cos - margin)).sum() / (weight.sum() + eps)
    pull = ((1 - weight) * (1 - cos)).sum() / ((1 - weight).sum() + eps)
    loss = push + normal_weight * pull
    return loss, {"push": float(push.detach()), "pull": float(pull.detach())}
