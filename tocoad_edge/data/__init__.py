"""Datasets in the MVTec AD folder layout and image loading."""
from .images import IMAGE_EXTENSIONS, read_image, read_mask
from .mvtec import MVTecDataset, TestItem, load_dataset

__all__ = ["IMAGE_EXTENSIONS", "read_image", "read_mask", "MVTecDataset", "TestItem", "load_dataset"]
