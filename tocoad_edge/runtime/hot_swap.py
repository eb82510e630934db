"""Model hot-swap: load a new bundle beside the serving one, self-test it, then swap atomically.

    slot = HotSwapDetector.open("bundles/current", search="exact")
    pred = slot.predict(frame)                  # always served by a model that passed its self-test
    report = slot.swap("bundles/next")          # raises a TocoadError and keeps the old model on any failure

The old model keeps serving while the new one loads and runs its golden-image self-test (``golden.py``).
The swap itself is one reference assignment under a lock. A prediction in flight on the old model finishes
on it; the old model is closed when its last prediction returns. ``predict`` may run in one thread while
``swap`` runs in another; like ``Detector``, one ``predict`` at a time.
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..errors import BundleError, TocoadError
from .detector import Detector
from .golden import DEFAULT_TOLERANCE, SelfTestResult, self_test
from .prediction import Prediction

log = logging.getLogger("tocoad_edge.runtime")


@dataclass(frozen=True)
class SwapReport:
    old_model_id: str | None
    new_model_id: str
    bundle_dir: Path
    self_test: SelfTestResult
    load_ms: float


class _Slot:
    """One loaded model and the predictions running on it."""

    def __init__(self, detector: Detector):
        self.detector = detector
        self.in_flight = 0
        self.retired = False


class HotSwapDetector:
    """A detector whose model can be replaced while it serves. Failed swaps change nothing."""

    def __init__(self, detector: Detector, *, tolerance: float = DEFAULT_TOLERANCE, **open_options: Any):
        self.tolerance = float(tolerance)
        self.open_options = dict(open_options)
        self._lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self._slot = _Slot(detector)
        self._closed = False
        self.swaps = 0
        self.failed_swaps = 0
        self.last_error: TocoadError | None = None

    @classmethod
    def open(cls, bundle_dir: str | Path, *, tolerance: float = DEFAULT_TOLERANCE, **open_options: Any
             ) -> "HotSwapDetector":
        """Open and self-test the first model. ``open_options`` go to ``Detector.open`` now and on every swap."""
        det = _open_tested(Path(bundle_dir), tolerance, open_options)[0]
        return cls(det, tolerance=tolerance, **open_options)

    # -- serving --------------------------------------------------------------------------------
    @property
    def detector(self) -> Detector:
        return self._slot.detector

    @property
    def model_id(self) -> str:
        return self._slot.detector.model_id

    def predict(self, frame: np.ndarray, frame_id: int | None = None) -> Prediction:
        slot = self._acquire()
        try:
            return slot.detector.predict(frame, frame_id)
        finally:
            self._release(slot)

    def predict_batch(self, frames: Sequence[np.ndarray],
                      frame_ids: Sequence[int | None] | None = None) -> list[Prediction]:
        """``Detector.predict_batch`` on the model serving now (the whole batch on the same model)."""
        slot = self._acquire()
        try:
            return slot.detector.predict_batch(frames, frame_ids)
        finally:
            self._release(slot)

    def predict_stream(self, frames: Iterable[np.ndarray]) -> Iterator[Prediction]:
        """Frame by frame, each on the model serving at that moment (a swap applies from the next frame)."""
        for i, frame in enumerate(frames):
            yield self.predict(frame, frame_id=i)

    # -- swapping -------------------------------------------------------------------------------
    def swap(self, bundle_dir: str | Path, **open_options: Any) -> SwapReport:
        """Load ``bundle_dir`` beside the serving model, self-test it, swap. On failure: raise, keep the old."""
        options = {**self.open_options, **open_options}
        with self._swap_lock:
            try:
                det, result, load_ms = _open_tested(Path(bundle_dir), self.tolerance, options)
            except TocoadError as exc:
                self.failed_swaps += 1
                self.last_error = exc
                log.error("hot-swap to %s refused; still serving %s: %s", bundle_dir, self.model_id, exc)
                raise
            with self._lock:
                if self._closed:
                    det.close()
                    raise TocoadError("this HotSwapDetector is closed", fix="open a new one")
                old = self._slot
                self._slot = _Slot(det)
                old.retired = True
                close_old = old.in_flight == 0
            if close_old:
                old.detector.close()
            self.swaps += 1
            self.last_error = None
        log.info("hot-swap: %s → %s (load + self-test %.0f ms)", old.detector.model_id, det.model_id, load_ms)
        return SwapReport(old.detector.model_id, det.model_id, Path(bundle_dir), result, load_ms)

    def reload_decision(self) -> dict[str, Any]:
        """``Detector.reload_decision`` on the serving model (what ``tocoad-threshold`` rewrote in its bundle).
        Held against a concurrent swap: the decision is read into the model that serves after it."""
        with self._swap_lock:
            slot = self._acquire()
            try:
                return slot.detector.reload_decision()
            finally:
                self._release(slot)

    def swap_archive(self, archive: str | Path, install_dir: str | Path, **open_options: Any) -> SwapReport:
        """Unpack + verify a bundle archive into a new folder under ``install_dir``, then ``swap`` to it.

        A refused archive or a failed self-test leaves no new folder behind."""
        from ..bundle.archive import unpack_bundle_archive

        target = Path(install_dir) / f"bundle-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        root = unpack_bundle_archive(archive, target)
        try:
            return self.swap(root, **open_options)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            slot = self._slot
            slot.retired = True
            close_now = slot.in_flight == 0
        if close_now:
            slot.detector.close()

    def __enter__(self) -> "HotSwapDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- leases ---------------------------------------------------------------------------------
    def _acquire(self) -> _Slot:
        with self._lock:
            if self._closed:
                raise TocoadError("this HotSwapDetector is closed", fix="open a new one")
            slot = self._slot
            slot.in_flight += 1
            return slot

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.in_flight -= 1
            close_now = slot.retired and slot.in_flight == 0
        if close_now:
            slot.detector.close()


def _open_tested(bundle: Path, tolerance: float, options: dict[str, Any]) -> tuple[Detector, SelfTestResult, float]:
    t0 = time.perf_counter()
    try:
        det = Detector.open(bundle, **options)
    except TocoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a native loader failure must not take the old model down
        raise BundleError(f"bundle {bundle} cannot be loaded", got=f"{type(exc).__name__}: {exc}",
                          fix="re-export or copy the bundle again") from None
    try:
        result = self_test(det, tolerance=tolerance)
    except BaseException:
        det.close()
        raise
    return det, result, (time.perf_counter() - t0) * 1e3
