"""Evaluation: image/pixel AUROC, AUPRO, F1-max, and a report a person can look at."""
from .metrics import aupro, auroc, f1_max, rankdata, roc_curve, spearman

__all__ = ["aupro", "auroc", "f1_max", "rankdata", "roc_curve", "spearman"]
