"""Anomaly generator G: synthetic defects on normal images (Perlin masks, CutPaste, seamless patches)."""
from .generator import AnomalyGenerator, SynthSample
from .perlin import perlin_mask, perlin_noise
from .textures import FolderTextures, MixedTextures, NormalImageTextures, ProceduralTextures, build_texture_source

__all__ = ["AnomalyGenerator", "SynthSample", "perlin_mask", "perlin_noise", "FolderTextures", "MixedTextures",
           "NormalImageTextures", "ProceduralTextures", "build_texture_source"]
