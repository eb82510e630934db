"""Inference backends. One folder-module per backend; heavy imports happen inside it, when chosen."""
from .base import Backend, TensorSpec
from .registry import available_backends, create_backend, register_backend

__all__ = ["Backend", "TensorSpec", "available_backends", "create_backend", "register_backend"]
