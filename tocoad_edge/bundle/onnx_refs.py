"""Find the external-data files an ONNX model refers to, without the ``onnx`` package and without loading weights.

An ONNX tensor may keep its weights in another file (``data_location = EXTERNAL``, ``external_data`` entries
``location`` / ``offset`` / ``length``). ONNX Runtime opens that file relative to the model. A hostile model could
name ``../../etc/shadow`` or an absolute path, so every location is checked before any loader sees the model:
it must be a plain relative path inside the bundle, a regular file, and (when the manifest is given) listed in
the manifest so its sha256 was checked too.

The protobuf wire format is walked directly: only the message fields that can hold a tensor are descended
into (graphs, nodes, attributes, functions, training info, sparse tensors); ``raw_data`` is skipped, never copied.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from ..errors import BundleError

# message → {field number: child message}; numbers from onnx.proto (checked against onnx in the tests)
_CHILDREN: dict[str, dict[int, str]] = {
    "Model": {7: "Graph", 20: "TrainingInfo", 25: "Function"},
    "TrainingInfo": {1: "Graph", 2: "Graph"},
    "Graph": {1: "Node", 5: "Tensor", 15: "Sparse"},
    "Node": {5: "Attribute"},
    "Function": {7: "Node", 11: "Attribute"},
    "Attribute": {5: "Tensor", 6: "Graph", 10: "Tensor", 11: "Graph", 22: "Sparse", 23: "Sparse"},
    "Sparse": {1: "Tensor", 2: "Tensor"},
}
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_MAX_DEPTH = 64


def _malformed(path: Path, why: str) -> BundleError:
    return BundleError(f"{path.name} is not a valid ONNX model", got=why, fix="re-export the bundle")


def _varint(buf: memoryview, pos: int, path: Path) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _malformed(path, "truncated or overlong varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


# a varint field's value, or a length-delimited field's bytes: the type says the wire type to the callers
_Value = Union[int, memoryview]


def _fields(buf: memoryview, path: Path) -> Iterator[tuple[int, _Value]]:
    """Yield (field number, value): value is an int (varint) or a memoryview (length-delimited)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos, path)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, path)
            yield number, value
        elif wire == 2:
            length, pos = _varint(buf, pos, path)
            if pos + length > end:
                raise _malformed(path, "a field runs past the end of the file (truncated?)")
            yield number, buf[pos:pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise _malformed(path, "truncated fixed-width field")
        else:
            raise _malformed(path, f"unsupported protobuf wire type {wire}")


def _entry(buf: memoryview, path: Path) -> tuple[str, str]:
    key = value = ""
    for number, v in _fields(buf, path):
        if isinstance(v, memoryview) and number in (1, 2):
            try:
                text = bytes(v).decode("utf-8")
            except UnicodeDecodeError:
                raise _malformed(path, "external_data entry is not UTF-8") from None
            key, value = (text, value) if number == 1 else (key, text)
    return key, value


def _tensor_refs(buf: memoryview, path: Path) -> list[dict[str, str]]:
    name, external = "", False
    entries: dict[str, str] = {}
    for number, v in _fields(buf, path):
        if number == _TENSOR_NAME and isinstance(v, memoryview):
            name = bytes(v).decode("utf-8", "replace")
        elif number == _TENSOR_EXTERNAL_DATA and isinstance(v, memoryview):
            k, val = _entry(v, path)
            entries[k] = val
        elif number == _TENSOR_DATA_LOCATION and isinstance(v, int):
            external = v == 1
    if not external and not entries:
        return []
    return [dict(entries, tensor=name)]


def _walk(buf: memoryview, kind: str, path: Path, depth: int, out: list[dict[str, str]]) -> None:
    if depth > _MAX_DEPTH:
        raise _malformed(path, f"graphs nested deeper than {_MAX_DEPTH}")
    children = _CHILDREN.get(kind, {})
    for number, v in _fields(buf, path):
        child = children.get(number)
        if child is None or not isinstance(v, memoryview):
            continue
        if child == "Tensor":
            out.extend(_tensor_refs(v, path))
        else:
            _walk(v, child, path, depth + 1, out)


def external_data_refs(model_path: str | Path) -> list[dict[str, str]]:
    """Every tensor of the model stored outside it: ``[{"tensor", "location", "offset"?, "length"?}]``."""
    path = Path(model_path)
    out: list[dict[str, str]] = []
    _walk(memoryview(path.read_bytes()), "Model", path, 0, out)
    return out


def _check_location(bundle: Path, model: Path, ref: dict[str, str], listed: set[str] | None) -> str:
    loc = ref.get("location", "")
    what = f"{model.name}: tensor {ref.get('tensor', '?')!r} keeps its data in {loc!r}"
    p = Path(loc)
    if not loc or p.is_absolute() or ".." in p.parts or "\\" in loc or ":" in loc or "\x00" in loc:
        raise BundleError(f"{what}, outside the bundle", expected="a relative file name inside the bundle folder",
                          got=loc or "(no location)", fix="export the model with its weights inside the ONNX file")
    target = model.parent / p
    if target.is_symlink() or not target.is_file():
        raise BundleError(f"{what}, which is missing or not a regular file", expected="a regular file in the bundle",
                          got=loc, fix="copy the whole bundle folder again")
    root = bundle.resolve()
    if root not in target.resolve().parents:
        raise BundleError(f"{what}, outside the bundle", got=str(target.resolve()))
    rel = target.resolve().relative_to(root).as_posix()
    if listed is not None and rel not in listed:
        raise BundleError(f"{what}, a file the manifest does not list (so its sha256 is not checked)",
                          expected=f"one of {sorted(listed)}", got=loc, fix="re-export the bundle")
    for key in ("offset", "length"):
        if key in ref and (not ref[key].isdigit()):
            raise BundleError(f"{what} with an invalid {key}", expected="a non-negative integer", got=ref[key])
    return rel


def check_external_data(model_path: str | Path, bundle_dir: str | Path, listed: set[str] | None = None) -> list[str]:
    """Refuse a model whose external data leaves ``bundle_dir`` (or is not in ``listed``). Returns the locations."""
    model, bundle = Path(model_path), Path(bundle_dir)
    return sorted({_check_location(bundle, model, ref, listed) for ref in external_data_refs(model)})
