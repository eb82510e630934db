"""Memory bank construction: greedy k-center coreset selection (numpy only)."""
from .coreset import greedy_coreset

__all__ = ["greedy_coreset"]
