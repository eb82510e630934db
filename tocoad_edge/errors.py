"""One error hierarchy for the whole SDK.

Every error says what was expected, what was got, and how to fix it. Callers catch
``TocoadError`` to handle anything the SDK raises on purpose; anything else is a bug.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class TocoadError(Exception):
    """Root of every error tocoad-edge raises on purpose."""

    def __init__(self, message: str, *, expected: str | None = None, got: str | None = None,
                 fix: str | None = None):
        self.message = message
        self.expected = expected
        self.got = got
        self.fix = fix
        parts = [message]
        if expected is not None:
            parts.append(f"expected: {expected}")
        if got is not None:
            parts.append(f"got: {got}")
        if fix is not None:
            parts.append(f"fix: {fix}")
        super().__init__("; ".join(parts))


class ConfigError(TocoadError):
    """A configuration file, flag or value is wrong."""


class DataError(TocoadError):
    """A dataset folder or image file cannot be used."""


class BundleError(TocoadError):
    """A bundle is missing, incomplete, corrupt, tampered with or of another schema."""


class EngineIncompatibleError(BundleError):
    """A TensorRT engine was built for another TensorRT version, GPU or model."""


class InputError(TocoadError):
    """A frame or array given to the runtime has the wrong shape, dtype or values."""


class SourceError(TocoadError):
    """A camera, stream, file or folder source cannot be opened or read."""


class ResourceError(TocoadError):
    """A resource is exhausted or missing: disk, memory, a device, a library."""


class BackendUnavailableError(ResourceError):
    """The requested inference backend cannot run on this machine."""


class ExportError(TocoadError):
    """Export, calibration or the accuracy gate failed."""


class TrainingError(TocoadError):
    """Training diverged, collapsed or cannot start."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``: appended to an error message."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""
