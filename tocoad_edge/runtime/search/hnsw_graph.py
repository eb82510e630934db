"""An hnswlib index file read as arrays, for the compiled first stage's own walk (``_kernels.c``, ``tk_first_stage``).

hnswlib 0.8 saves its index as a header of 13 fields (``saveIndex``), then each element's base-layer record
(``size_data_per_element`` bytes: the list size as a 32-bit word whose low 16 bits count the links and whose third
byte marks a deleted element, ``maxM0`` 32-bit links, the vector, the 64-bit label), then for each element a 32-bit
byte count and its upper layers' lists (``maxM`` links plus the size word per layer). Every number the C walk will
follow is checked here, once, when the search opens: link and entry-point ids below the element count, list sizes
within their capacity, labels below the bank's row count. The walk then reads no index it was not given.

``read_hnsw_graph`` returns None where the file is not laid out this way (another hnswlib version's format, an index
with deleted elements, a vector length the walk does not replicate): the search then walks with hnswlib itself.
A file that is laid out this way but whose numbers break these rules is damaged, and a ``BundleError`` says so.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_HEADER = np.dtype([("offset_level0", "<u8"), ("max_elements", "<u8"), ("count", "<u8"), ("per_element", "<u8"),
                    ("label_at", "<u8"), ("data_at", "<u8"), ("max_level", "<i4"), ("entry", "<u4"),
                    ("max_m", "<u8"), ("max_m0", "<u8"), ("m", "<u8"), ("mult", "<f8"), ("ef_construction", "<u8")])


@dataclass(frozen=True)
class HnswGraph:
    """The arrays ``tk_first_stage`` walks (see the module's docstring for their layout)."""
    level0: np.ndarray          # uint8 [count, per_element]
    upper: np.ndarray           # uint8 [bytes]: the upper layers' lists, element after element
    upper_at: np.ndarray        # int64 [count]: where each element's lists start in ``upper``, -1 for none
    count: int
    per_element: int
    data_at: int
    label_at: int
    per_upper: int              # bytes per upper-layer list
    dim: int
    max_level: int
    entry: int


class _NotThisLayout(Exception):
    """The file is not laid out as this module reads it (not damage: the walk is left to hnswlib)."""


def read_hnsw_graph(path: str | Path, dim: int, entries: int) -> HnswGraph | None:
    """The index at ``path`` (``dim`` floats per vector, labels ``0 .. entries − 1``) as arrays, or None where the
    walk cannot follow it (the reason is logged)."""
    try:
        return _read(np.fromfile(path, dtype=np.uint8), Path(path).name, dim, entries)
    except _NotThisLayout as why:
        log.info("the index %s is walked by hnswlib: %s", Path(path).name, why)
        return None


def _read(raw: np.ndarray, name: str, dim: int, entries: int) -> HnswGraph:
    from ...errors import BundleError

    if dim % 4:
        raise _NotThisLayout(f"{dim}-dimensional vectors (the compiled walk replicates hnswlib's distance for "
                             "multiples of 4)")
    if len(raw) < _HEADER.itemsize:
        raise _NotThisLayout("no hnswlib 0.8 header")
    h = raw[:_HEADER.itemsize].view(_HEADER)[0]
    count, per_element = int(h["count"]), int(h["per_element"])
    max_m, max_m0, max_level = int(h["max_m"]), int(h["max_m0"]), int(h["max_level"])
    links0 = 4 + 4 * max_m0
    if (int(h["offset_level0"]) != 0 or int(h["data_at"]) != links0 or int(h["label_at"]) != links0 + 4 * dim
            or per_element != links0 + 4 * dim + 8 or not 0 < max_m <= 0xffff or not 0 < max_m0 <= 0xffff
            or count != entries or not 0 <= max_level < 64):
        raise _NotThisLayout("a header this walk does not read (another hnswlib version, dimension or size)")
    start = _HEADER.itemsize
    end = start + count * per_element
    if len(raw) < end:
        raise _NotThisLayout("shorter than its header says")
    level0 = raw[start:end].reshape(count, per_element)
    sizes = level0[:, :4].copy().view("<u4")[:, 0]
    if np.any(sizes >> 16):
        raise _NotThisLayout("it holds deleted elements")
    per_upper = 4 + 4 * max_m
    upper_at = np.full(count, -1, dtype=np.int64)
    levels = np.zeros(count, dtype=np.int64)
    blocks, at, pos = [], 0, end
    for i in range(count):                      # each element's byte count, then its lists
        if pos + 4 > len(raw):
            raise _NotThisLayout("shorter than its link lists")
        size = int(raw[pos:pos + 4].view("<u4")[0])
        pos += 4
        if size:
            if size % per_upper or pos + size > len(raw):
                raise _NotThisLayout("link lists of a size this walk does not read")
            upper_at[i], levels[i] = at, size // per_upper
            blocks.append(raw[pos:pos + size])
            at += size
            pos += size
    if pos != len(raw):
        raise _NotThisLayout(f"{len(raw) - pos} bytes after its link lists (another hnswlib version's format)")
    upper = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.uint8)

    def damaged(what: str, expected: str, got: str) -> BundleError:
        return BundleError(f"the HNSW index {name} is damaged: {what}", expected=expected, got=got,
                           fix="re-export the bundle")

    links = level0[:, 4:links0].copy().view("<u4")
    counts = sizes & 0xffff
    if np.any(counts > max_m0):
        raise damaged("a base-layer list holds more links than it has room for", f"at most {max_m0}",
                      f"{int(counts.max())}")
    used = np.arange(max_m0)[None, :] < counts[:, None]
    if np.any(links[used] >= count):
        raise damaged("a base-layer link points past the last element", f"ids below {count}",
                      f"{int(links[used].max())}")
    labels = level0[:, links0 + 4 * dim:].copy().view("<u8")[:, 0]
    if np.any(labels >= entries):
        raise damaged("a label is not a bank row", f"labels below {entries}", f"{int(labels.max())}")
    if upper.size:
        lists = upper.view("<u4").reshape(-1, 1 + max_m)
        up_counts = lists[:, 0] & 0xffff
        if np.any(lists[:, 0] >> 16) or np.any(up_counts > max_m):
            raise damaged("an upper-layer list holds more links than it has room for", f"at most {max_m}",
                          f"{int(up_counts.max())}")
        up_used = np.arange(max_m)[None, :] < up_counts[:, None]
        targets = lists[:, 1:][up_used]
        if np.any(targets >= count):
            raise damaged("an upper-layer link points past the last element", f"ids below {count}",
                          f"{int(targets.max())}")
        # a link on layer l must lead to an element that has layer l (the walk reads that element's list there)
        owner = np.repeat(np.arange(count), levels)
        layer = np.concatenate([np.arange(1, n + 1) for n in levels[levels > 0]]) if np.any(levels) else owner
        target_layers = np.repeat(layer, up_counts.astype(np.int64))
        if np.any(levels[targets] < target_layers):
            raise damaged("an upper-layer link leads to an element without that layer",
                          "links within the layers their targets have", "a link below them")
        del owner
    entry = int(h["entry"])
    if count and (entry >= count or int(levels[entry]) != max_level):
        raise damaged("the entry point is not an element of the top layer", f"an element with {max_level} upper "
                      "layers", f"element {entry}")
    return HnswGraph(level0=level0, upper=upper, upper_at=upper_at, count=count, per_element=per_element,
                     data_at=links0, label_at=links0 + 4 * dim, per_upper=per_upper, dim=dim, max_level=max_level,
                     entry=entry)
