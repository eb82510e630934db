"""Reader for the MVTec AD folder layout.

    ROOT/train/good/*                             normal training images
    ROOT/test/good/*                              normal test images
    ROOT/test/<defect>/*                          defective test images
    ROOT/ground_truth/<defect>/<stem>_mask.png    pixel masks (non-zero = defect)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TypeVar

import numpy as np

from ..errors import DataError
from .images import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class TestItem:
    path: Path
    label: int                  # 0 normal, 1 anomalous
    defect: str                 # "good" or the defect folder name
    mask_path: Path | None      # None for good images (and defects without a mask file)


@dataclass(frozen=True)
class MVTecDataset:
    root: Path
    train: tuple[Path, ...]
    test: tuple[TestItem, ...]

    @property
    def defect_types(self) -> list[str]:
        return sorted({t.defect for t in self.test if t.label == 1})


T = TypeVar("T")


def evenly_spread(items: Sequence[T], n: int) -> list[T]:
    """At most ``n`` of ``items``, evenly spread over the list with its first and last (a test split is listed
    good first, then each defect type: a spread keeps both classes where a prefix would not)."""
    if n >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def _images_in(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)


def _mask_for(root: Path, defect: str, image: Path) -> Path | None:
    gt = root / "ground_truth" / defect
    for cand in (gt / f"{image.stem}_mask.png", gt / f"{image.stem}.png"):
        if cand.is_file():
            return cand
    return None


def load_dataset(root: str | Path, *, require_train: bool = True, require_test: bool = False,
                 extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> MVTecDataset:
    """List a dataset in the MVTec AD layout. Raises ``DataError`` naming the path that is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}", expected="a folder with train/good (MVTec AD layout)",
                        fix="give --data the folder that contains train/ and test/")
    exts = tuple(e.lower() for e in extensions)
    train = _images_in(root / "train" / "good", exts)
    if require_train and not train:
        raise DataError(f"no training images in {root / 'train' / 'good'}",
                        expected=f"normal images ({', '.join(exts)}) in train/good",
                        got="no such folder" if not (root / "train" / "good").is_dir() else "an empty folder",
                        fix="put normal (defect-free) images in ROOT/train/good")
    test: list[TestItem] = []
    test_root = root / "test"
    if test_root.is_dir():
        for defect_dir in sorted(p for p in test_root.iterdir() if p.is_dir()):
            defect = defect_dir.name
            for img in _images_in(defect_dir, exts):
                if defect == "good":
                    test.append(TestItem(img, 0, defect, None))
                else:
                    test.append(TestItem(img, 1, defect, _mask_for(root, defect, img)))
    if require_test and not test:
        raise DataError(f"no test images in {test_root}", expected="test/good and test/<defect> folders",
                        fix="evaluation needs labelled test images in the MVTec AD layout")
    return MVTecDataset(root=root, train=tuple(train), test=tuple(test))
