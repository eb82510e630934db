"""Backend registry: name → factory. No if/elif chains elsewhere; modules import lazily."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from ...errors import BackendUnavailableError, ConfigError, did_you_mean
from .base import Backend

# name → "module:Class" (imported only when chosen) or a factory callable
_REGISTRY: dict[str, str | Callable[..., Backend]] = {
    "onnxrt": "tocoad_edge.runtime.backends.onnxrt:OnnxRuntimeBackend",
    "tensorrt": "tocoad_edge.runtime.backends.trt.runner:TensorRTBackend",
    "torch": "tocoad_edge.runtime.backends.torch_backend:TorchBackend",
}


def register_backend(name: str, factory: str | Callable[..., Backend]) -> None:
    _REGISTRY[name] = factory


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def _resolve(name: str) -> Callable[..., Backend]:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown backend '{name}'" + did_you_mean(name, _REGISTRY),
                          expected=f"one of {available_backends()}", got=name)
    target = _REGISTRY[name]
    if callable(target):
        return target
    module_name, cls_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailableError(f"backend '{name}' cannot be imported on this machine", got=str(exc),
                                      fix="install its extra (see README: Install) or choose backend='onnxrt'"
                                      ) from None
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigError(f"backend '{name}' names no Backend class", expected=f"{target}: a Backend subclass",
                          got=repr(cls), fix="register_backend(name, 'module:BackendSubclass') or a factory")
    return cls


def create_backend(name: str, model_path: str | Path, **options: Any) -> Backend:
    """Create (not yet loaded) backend ``name`` for ``model_path``."""
    return _resolve(name)(model_path, **options)
