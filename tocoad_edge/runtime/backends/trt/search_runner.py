"""``search: graph`` on TensorRT: the memory-bank search engine (``search_engine.py``) run beside the backbone.

``graph_search_engine`` picks the bundle's search engine for this device: its fingerprint is compared with the
device, its source with the manifest's sha256 of the bank (``engine_record.check_search_source``) and its bytes
with their recorded sha256, all BEFORE TensorRT deserialises anything. Used by ``Detector.open(backend="tensorrt",
search="graph")``; when no engine fits, the caller falls back to ONNX Runtime's graph search (``search/graph.py``)
with the reason logged, or raises when the engine recorded for this device cannot be used with
``backend="tensorrt"`` (as the backbone engine choice does).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ....bundle.engine_record import check_search_source, read_verified_engine
from ....bundle.manifest import EngineFingerprint, Manifest
from ....errors import BundleError, EngineIncompatibleError, TocoadError
from ...arrays import Float32Array
from ...search.base import NearestNeighbourSearch
from ...search.distance_graph import FP16_INPUT_NAME, OUTPUT_NAME, center_and_scale
from . import runner
from .fingerprint import DeviceInfo, check_engine, mismatches, query_mismatches

log = logging.getLogger("tocoad_edge.runtime")


def search_engine_for(manifest: Manifest, device: DeviceInfo) -> EngineFingerprint:
    """The bundle's search engine for this device and this bank, or an error naming every candidate's
    differences (``BundleError`` when the bundle has none)."""
    candidates = [e for e in manifest.engines if e.role == "search"]
    if not candidates:
        raise BundleError("this bundle has no TensorRT search engine", expected="a search.<id>.engine in engines.json",
                          got=f"engines: {[e.file for e in manifest.engines] or 'none'}",
                          fix="build it on this device: tocoad-export engine BUNDLE (without --no-search-engine)")
    patches = int(np.prod(manifest.features.grid))
    reasons = []
    for e in candidates:
        diff = mismatches(e, device) + query_mismatches(e, manifest.memory_bank.dim, patches)
        try:
            check_search_source(e, manifest)
        except BundleError as exc:
            diff.append(exc.message)
        if not diff:
            return e
        reasons.append(f"{e.file}: {'; '.join(diff)}")
    raise EngineIncompatibleError("no TensorRT search engine of this bundle fits this device and bank",
                                  expected=f"a search engine for {device.describe()} and this bank",
                                  got=" | ".join(reasons),
                                  fix="rebuild it on this device: tocoad-export engine BUNDLE")


class TensorRTGraphSearch(NearestNeighbourSearch):
    """Exact nearest-neighbour distances from the FP16 search engine (tolerance: docs/int8_and_tensorrt.md).
    The queries are centred and scaled on the host in float32 (``center_and_scale`` of the same bank the engine
    was built from); ``|q̂|²``, the scale and the square root are applied to the engine's row minima here."""

    name = "graph"

    def __init__(self, bank: np.ndarray, bundle_dir: Path, view: Manifest, fp: EngineFingerprint,
                 device: DeviceInfo, threads: int | None = None):
        super().__init__(bank, threads)
        check_engine(fp, device)                                     # BEFORE any byte is deserialised
        check_search_source(fp, view)
        data = read_verified_engine(bundle_dir, view, fp.file)      # the sha256 of the bytes deserialised
        from .engine_session import EngineSession

        mean, scale = center_and_scale(bank)
        self._mean, self._scale = mean, np.float32(scale)
        self.engine_file = fp.file
        self._session: Any = EngineSession(data, fp.file, device)
        try:
            s = self._session
            if (s.input_name, s.outputs) != (FP16_INPUT_NAME, [OUTPUT_NAME]) or s.input_shape != (-1, self.dim):
                raise EngineIncompatibleError(f"engine {fp.file} is not this bank's search graph",
                                              expected=f"{FP16_INPUT_NAME} [-1, {self.dim}] → {OUTPUT_NAME}",
                                              got=f"{s.input_name} {list(s.input_shape)} → {s.outputs}",
                                              fix="rebuild it on this device: tocoad-export engine BUNDLE")
            s.allocate()
        except BaseException:
            self._session.close()
            raise
        self._rows = int(self._session.max_shape[0])

    def _query_impl(self, q: Float32Array) -> Float32Array:
        if self._session is None:
            raise TocoadError("this TensorRT graph search is closed", fix="open the bundle again")
        qs = (q - self._mean) / self._scale
        # more rows than the profile's max (a larger batch than the engine was built for) run in slices
        part = [self._session.run(qs[s:s + self._rows])[OUTPUT_NAME] for s in range(0, len(qs), self._rows)]
        best: Float32Array = np.concatenate(part).astype(np.float32, copy=False)
        best += np.einsum("ij,ij->i", qs, qs)
        best *= self._scale * self._scale
        np.maximum(best, 0.0, out=best)
        return np.sqrt(best)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "engine": self.engine_file, "precision": "fp16", "runs_on": "tensorrt"}

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def graph_search_on_tensorrt(bank: np.ndarray, bundle_dir: Path, view: Manifest, threads: int | None,
                             *, strict: bool) -> NearestNeighbourSearch | None:
    """The TensorRT graph search, or None (with the reason logged) when the bundle has no search engine, or, unless
    ``strict``, when its engine does not fit this device / bank. ``strict`` (``backend="tensorrt"``): a recorded
    search engine that cannot be used is an error, as a backbone engine that cannot be used is."""
    try:
        device = runner.current_device()
        fp = search_engine_for(view, device)
        return TensorRTGraphSearch(bank, bundle_dir, view, fp, device, threads)
    except TocoadError as exc:
        if strict and any(e.role == "search" for e in view.engines):
            raise
        log.info("search graph: ONNX Runtime, as the TensorRT search engine cannot be used: %s", exc)
    return None
