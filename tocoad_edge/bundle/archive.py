"""Unpack a bundle archive (``.tar``, ``.tar.gz``/``.tgz``, ``.zip``) safely, then verify it.

Everything is written into one fresh staging folder, and only there:

* member names that are absolute, contain ``..``, backslashes, drive letters or NUL are refused;
* only regular files and folders are unpacked: symbolic links, hard links, devices, FIFOs, sparse and encrypted
  members are refused (files are created with ``O_EXCL | O_NOFOLLOW``, modes from the archive are ignored);
* size bombs are refused: limits on the member count, the unpacked bytes (declared and actually written) and the
  compression ratio, checked while reading, so a bomb is never inflated beyond the limit;
* after unpacking, the manifest is read strictly, every file's sha256 checked, files the manifest does not list
  refused, and every ONNX model's external-data locations checked (``onnx_refs``).

On any failure the staging folder is removed whole and a ``BundleError`` (or ``ResourceError`` for a full disk)
names the member and the rule. ``install_bundle_archive`` then renames the verified bundle into place.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Iterator

from .atomic import replace_dir

from ..errors import BundleError, ResourceError
from .manifest import MANIFEST_NAME, Manifest, read_manifest, verify_files
from .onnx_refs import check_external_data
from .signature import SIGNATURE_NAME

_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 256
    max_total_bytes: int = 8 << 30       # unpacked, all members together
    max_ratio: float = 200.0             # unpacked bytes / archive bytes (zip: per member as well)


@dataclass(frozen=True)
class _Member:
    name: str                            # normalised relative POSIX path
    is_dir: bool
    size: int
    compressed: int | None               # zip only


def _refuse(archive: Path, member: str, why: str, expected: str) -> BundleError:
    return BundleError(f"bundle archive {archive.name}: member {member!r} {why}", expected=expected, got=member,
                       fix="rebuild the archive from the bundle folder written by tocoad-export")


def _safe_name(archive: Path, raw: str) -> str | None:
    """Normalised relative path, or None for the archive root ('.' / './'). Raises on anything unsafe."""
    if "\x00" in raw or "\\" in raw:
        raise _refuse(archive, raw, "has a backslash or NUL in its name", "a plain relative POSIX path")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise _refuse(archive, raw, "is an absolute path", "a path relative to the bundle folder")
    parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, raw, "climbs out of the bundle with '..'", "a path inside the bundle folder")
    return "/".join(parts) or None


# opens one member's data for reading; called only for file members
_Opener = Callable[[], IO[bytes]]


def _tar_data(archive: Path, tf: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    src = tf.extractfile(info)
    if src is None:   # tarfile gives no data only for special members, which _tar_members refused already
        raise _refuse(archive, info.name, "has no file data", "regular files and folders only")
    return src


def _tar_members(archive: Path, tf: tarfile.TarFile) -> Iterator[tuple[_Member, _Opener]]:
    for info in tf:
        name = _safe_name(archive, info.name)
        if info.issym() or info.islnk():
            raise _refuse(archive, info.name, f"is a {'symbolic' if info.issym() else 'hard'} link to "
                          f"{info.linkname!r}", "regular files and folders only")
        if info.isdev() or info.isfifo() or info.issparse() or not (info.isreg() or info.isdir()):
            raise _refuse(archive, info.name, "is a device, FIFO, sparse or other special file",
                          "regular files and folders only")
        if name is not None:
            yield _Member(name, info.isdir(), int(info.size), None), partial(_tar_data, archive, tf, info)


def _zip_members(archive: Path, zf: zipfile.ZipFile, limits: ArchiveLimits) -> Iterator[tuple[_Member, _Opener]]:
    for info in zf.infolist():
        name = _safe_name(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _refuse(archive, info.filename, "is a symbolic link", "regular files and folders only")
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):   # no type bits: a file
            raise _refuse(archive, info.filename, "is a device, FIFO or other special file",
                          "regular files and folders only")
        if info.flag_bits & 0x1:
            raise _refuse(archive, info.filename, "is encrypted", "an unencrypted archive")
        if info.file_size > 0 and info.file_size / max(info.compress_size, 1) > limits.max_ratio:
            raise _refuse(archive, info.filename, f"expands {info.file_size / max(info.compress_size, 1):.0f}×"
                          " (a zip bomb?)", f"a compression ratio ≤ {limits.max_ratio:g}")
        if name is not None:
            yield _Member(name, info.is_dir(), int(info.file_size), int(info.compress_size)), partial(zf.open, info)


def _write_member(dest: Path, src: IO[bytes], member: _Member, budget: int, archive: Path) -> int:
    """Copy ``src`` into a new file; never follows a link, never overwrites. Returns the bytes written."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while True:
            chunk = src.read(_COPY_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > member.size or written > budget:
                raise _refuse(archive, member.name, "holds more bytes than it declares or than the limit allows",
                              f"at most {min(member.size, budget)} bytes")
            out.write(chunk)
    return written


def _unpack_into(archive: Path, staging: Path, limits: ArchiveLimits) -> None:
    packed = max(archive.stat().st_size, 1)
    cap = min(limits.max_total_bytes, int(packed * limits.max_ratio) + (1 << 20))
    container: zipfile.ZipFile | tarfile.TarFile
    members: Iterator[tuple[_Member, _Opener]]
    if zipfile.is_zipfile(archive):
        container = zipfile.ZipFile(archive)
        members = _zip_members(archive, container, limits)
    else:
        try:
            container = tarfile.open(archive, "r:*")
        except (tarfile.TarError, OSError) as exc:
            raise BundleError(f"{archive.name} is not a tar, tar.gz or zip archive", got=str(exc),
                              expected=".tar, .tar.gz/.tgz or .zip",
                              fix="pack the bundle folder with tar or zip") from None
        members = _tar_members(archive, container)
    seen: set[str] = set()
    total = count = 0
    with container:
        for member, open_data in members:
            count += 1
            if count > limits.max_members:
                raise _refuse(archive, member.name, "is one member too many", f"at most {limits.max_members} members")
            if member.name in seen:
                raise _refuse(archive, member.name, "appears twice", "each path once")
            seen.add(member.name)
            dest = staging / member.name
            if member.is_dir:
                dest.mkdir(parents=True, exist_ok=True)
                continue
            if total + member.size > cap:
                raise _refuse(archive, member.name, f"would unpack past {cap} bytes (a size bomb?)",
                              f"at most {cap} unpacked bytes ({limits.max_ratio:g}× the archive, "
                              f"≤ {limits.max_total_bytes})")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open_data() as src:
                total += _write_member(dest, src, member, cap - total, archive)


def bundle_root(staging: Path) -> Path:
    """The folder holding ``manifest.json``: the staging folder itself or its one top-level folder."""
    if (staging / MANIFEST_NAME).is_file():
        return staging
    entries = list(staging.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / MANIFEST_NAME).is_file():
        return entries[0]
    raise BundleError(f"the archive holds no {MANIFEST_NAME} at its top level or in one top-level folder",
                      got=str(sorted(p.name for p in entries)[:10]), fix="archive the bundle folder itself")


def verify_bundle_folder(bundle: Path) -> Manifest:
    """Strict manifest, every sha256, no unlisted files, ONNX external data inside the bundle and listed."""
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    listed = set(manifest.files)
    for path in sorted(bundle.rglob("*")):
        rel = path.relative_to(bundle).as_posix()
        if path.is_symlink() or (path.is_file() and rel not in listed | {MANIFEST_NAME, SIGNATURE_NAME}):
            raise BundleError(f"bundle holds a file its manifest does not list: {rel}",
                              expected=f"only {sorted(listed | {MANIFEST_NAME, SIGNATURE_NAME})}", got=rel,
                              fix="remove the file or re-export the bundle")
    for name in sorted(listed):
        if name.endswith(".onnx"):
            check_external_data(bundle / name, bundle, listed)
    return manifest


def unpack_bundle_archive(archive: str | Path, staging: str | Path, *, limits: ArchiveLimits = ArchiveLimits(),
                          verify: bool = True) -> Path:
    """Unpack ``archive`` into the new folder ``staging`` (must not exist) and verify it. Returns the bundle root.

    On any failure ``staging`` is removed and nothing else was written.
    """
    archive, staging = Path(archive), Path(staging)
    if not archive.is_file():
        raise BundleError(f"bundle archive not found: {archive}", fix="check the path")
    try:
        staging.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise BundleError(f"staging folder {staging} already exists", expected="a new folder",
                          fix="unpack into a folder that does not exist yet") from None
    try:
        _unpack_into(archive, staging, limits)
        root = bundle_root(staging)
        if verify:
            verify_bundle_folder(root)
        return root
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise ResourceError(f"no space left while unpacking {archive.name}", got=str(exc),
                                fix="free disk space on the device, then try again") from None
        if isinstance(exc, (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error)):
            raise BundleError(f"bundle archive {archive.name} is damaged", got=f"{type(exc).__name__}: {exc}",
                              fix="copy the archive again") from None
        raise


def install_bundle_archive(archive: str | Path, dest: str | Path, *,
                           limits: ArchiveLimits = ArchiveLimits()) -> Path:
    """Unpack + verify ``archive`` beside ``dest``, then rename it to ``dest`` (an existing one is replaced whole)."""
    dest = Path(dest)
    staging = dest.parent / f".{dest.name}.staging-{uuid.uuid4().hex[:8]}"
    root = unpack_bundle_archive(archive, staging, limits=limits)
    try:
        replace_dir(root, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
