"""Training (workstation, torch): feature extraction, ToCoAD stages, memory bank, run folder."""
