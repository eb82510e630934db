"""Training: feature extraction, ToCoAD stages, memory bank, run folder."""
