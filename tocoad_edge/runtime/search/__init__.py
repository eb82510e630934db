"""Nearest-neighbour search of patch embeddings against the memory bank (exact BLAS or HNSW)."""
