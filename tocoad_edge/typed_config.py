"""Strict conversion of plain YAML/JSON data into frozen dataclasses.

YAML is only ever read with ``yaml.safe_load``. Unknown keys are errors with a did-you-mean,
types are checked, NaN/inf and out-of-range numbers are refused, and every message names the
dotted key that is wrong.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from .errors import ConfigError, did_you_mean

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if errors else ConfigError(f"'{key}' must not be null")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"config key '{key}' has an unsupported value",
                              expected=f"one of {list(choices)}", got=repr(value),
                              fix=f"set '{key}' to one of the expected values"
                              + did_you_mean(str(value), [str(c) for c in choices]))
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list", expected="a list",
                              got=f"{type(value).__name__} {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"config key '{key}' has the wrong length",
                                  expected=f"{len(args)} items", got=f"{len(value)} items")
            return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping", expected="a mapping",
                              got=type(value).__name__)
        _, vt = get_args(tp) or (str, Any)
        return {str(k): _convert(v, vt, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be true or false", expected="a boolean",
                              got=repr(value))
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}' must be an integer", expected="an integer",
                              got=repr(value))
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}' must be a number", expected="a number",
                              got=repr(value))
        if not math.isfinite(float(value)):
            raise ConfigError(f"config key '{key}' must be a finite number",
                              expected="a finite number", got=repr(value))
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}' must be a string", expected="a string",
                              got=repr(value))
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}' must be a path string", expected="a string",
                              got=repr(value))
        return Path(value)
    raise ConfigError(f"config key '{key}' has a type the loader does not know: {_type_name(tp)}")


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, strictly. Missing keys take the field default."""
    where = prefix or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{where}' must be a mapping",
                          expected="a mapping of keys to values", got=f"{type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            raise ConfigError(f"unknown config key '{dotted}'" + did_you_mean(str(key), list(fields)),
                              expected=f"one of {sorted(fields)}", got=repr(key))
        kwargs[key] = _convert(value, hints[key], dotted)
    for name, field in fields.items():
        if name not in kwargs and field.default is dataclasses.MISSING \
                and field.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            dotted = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"missing config key '{dotted}'", fix=f"add '{dotted}' to the config")
    try:
        obj = cls(**kwargs)
    except ConfigError as exc:
        if prefix and not exc.message.startswith("config"):
            raise ConfigError(f"in '{prefix}': {exc.message}", expected=exc.expected, got=exc.got,
                              fix=exc.fix) from None
        raise
    return obj


def to_dict(obj: Any) -> Any:
    """Dataclass → plain data (lists, dicts, str for paths) for YAML/JSON output."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file with ``safe_load`` only; errors name the file."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p} is not UTF-8 text", got=str(exc),
                          fix="save the config as UTF-8 YAML") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}", got=str(exc),
                          fix="check the path and permissions") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid plain YAML (tags and Python objects are refused)",
                          got=str(exc).splitlines()[0], fix="write plain YAML mappings, lists and scalars") from None


def require(cond: bool, key: str, expected: str, got: Any) -> None:
    """Raise a ConfigError for ``key`` unless ``cond`` holds. Used in ``__post_init__`` checks."""
    if not cond:
        raise ConfigError(f"config key '{key}' is out of range", expected=expected, got=repr(got),
                          fix=f"set '{key}' to {expected}")
