"""Datasets in the MVTec AD folder layout, image loading, and the normal images a training run kept aside."""
from .images import IMAGE_EXTENSIONS, load_resized, read_image, read_mask, resize_to_input
from .mvtec import MVTecDataset, TestItem, evenly_spread, load_dataset

__all__ = ["IMAGE_EXTENSIONS", "load_resized", "read_image", "read_mask", "resize_to_input", "MVTecDataset",
           "TestItem", "evenly_spread", "load_dataset"]
