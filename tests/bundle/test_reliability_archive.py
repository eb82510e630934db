"""Item 4: bundle archives with '../' paths, absolute paths, links, devices, size bombs or an ONNX external-data
path outside the bundle are rejected; nothing is written outside the staging folder, and the staging folder
itself is removed."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from reliability_fixtures import (assert_no_partial_files, bundle_copy, golden_fingerprint, rel_bundle,  # noqa: F401
                                  rewrite_manifest, serving, tree)
from tocoad_edge.bundle.archive import ArchiveLimits, install_bundle_archive, unpack_bundle_archive
from tocoad_edge.errors import BundleError, ResourceError


def _tar_of(bundle: Path, out: Path, extra=(), mode="w:gz", prefix="bundle", names=None) -> Path:
    """Archive ``bundle`` (or only ``names`` of it: refusals happen while unpacking, before verification)."""
    with tarfile.open(out, mode, **({"compresslevel": 1} if mode == "w:gz" else {})) as tf:
        for p in sorted(bundle.iterdir()):
            if names is None or p.name in names:
                tf.add(p, arcname=f"{prefix}/{p.name}" if prefix else p.name)
        for info, data in extra:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def _info(name, kind=tarfile.REGTYPE, data=b"", linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(data) if kind == tarfile.REGTYPE else 0, linkname
    return info, data if kind == tarfile.REGTYPE else None


@pytest.fixture
def area(tmp_path):
    """install/ receives bundles; victim/ is where an attack would write; both must stay clean."""
    (tmp_path / "install").mkdir()
    (tmp_path / "victim").mkdir()
    return tmp_path


def _assert_refused(archive, area, match, error=BundleError):
    staging = area / "install" / "staging-1"
    with pytest.raises(error, match=match) as info:
        unpack_bundle_archive(archive, staging)
    assert not staging.exists(), "staging folder left behind"
    assert tree(area / "victim") == set(), "something was written outside the staging folder"
    assert not (area / "evil.txt").exists() and not (area / "install" / "evil.txt").exists()
    assert_no_partial_files(area / "install")
    assert "fix:" in str(info.value)
    return info.value


def test_good_archives_unpack_verify_and_swap(rel_bundle, area, serving):
    for suffix, prefix in ((".tar.gz", "bundle"), (".tar", ""), (".zip", "bundle")):
        archive = area / f"good{suffix}"
        if suffix == ".zip":
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                for p in sorted(rel_bundle.iterdir()):
                    zf.write(p, f"{prefix}/{p.name}")
        else:
            _tar_of(rel_bundle, archive, mode="w:gz" if suffix == ".tar.gz" else "w", prefix=prefix)
        root = unpack_bundle_archive(archive, area / "install" / f"s{suffix}")
        assert (root / "manifest.json").is_file()
    report = serving.swap_archive(area / "good.zip", area / "install")
    assert report.new_model_id == serving.model_id
    dest = install_bundle_archive(area / "good.tar", area / "install" / "current")
    assert (dest / "index.hnsw").is_file()
    assert_no_partial_files(area / "install")


@pytest.mark.parametrize("member,match", [
    (_info("bundle/../../evil.txt", data=b"owned"), "climbs out"),
    (_info("../evil.txt", data=b"owned"), "climbs out"),
    (_info("/tmp/evil-abs.txt", data=b"owned"), "absolute path"),
    (_info("bundle\\..\\evil.txt", data=b"owned"), "backslash"),
    (_info("bundle/link", tarfile.SYMTYPE, linkname="../victim"), "symbolic link"),
    (_info("bundle/abslink", tarfile.SYMTYPE, linkname="/etc/passwd"), "symbolic link"),
    (_info("bundle/hard", tarfile.LNKTYPE, linkname="bundle/manifest.json"), "hard link"),
    (_info("bundle/dev", tarfile.CHRTYPE), "device"),
    (_info("bundle/blk", tarfile.BLKTYPE), "device"),
    (_info("bundle/fifo", tarfile.FIFOTYPE), "device, FIFO"),
], ids=["dotdot-nested", "dotdot", "absolute", "backslash", "symlink-rel", "symlink-abs", "hardlink", "chardev",
        "blockdev", "fifo"])
def test_hostile_tar_members_refused(member, match, rel_bundle, area, serving):
    before = golden_fingerprint(serving)
    archive = _tar_of(rel_bundle, area / "hostile.tar", extra=[member], mode="w", names=("manifest.json",))
    _assert_refused(archive, area, match)
    with pytest.raises(BundleError):
        serving.swap_archive(archive, area / "install")
    assert golden_fingerprint(serving) == before
    assert tree(area / "install") == set()


def test_symlink_then_write_through_it_refused(rel_bundle, area):
    """The classic: a link to a folder outside, then a file 'through' the link."""
    archive = _tar_of(rel_bundle, area / "through.tar", mode="w", names=("manifest.json",), extra=[
        _info("bundle/out", tarfile.SYMTYPE, linkname=str(area / "victim")),
        _info("bundle/out/payload.txt", data=b"owned")])
    _assert_refused(archive, area, "symbolic link")


@pytest.mark.parametrize("name,match", [("bundle/../../evil.txt", "climbs out"), ("/evil-abs.txt", "absolute"),
                                        ("C:/evil.txt", "absolute"), ("bundle/a\\..\\..\\evil.txt", "backslash")])
def test_hostile_zip_names_refused(name, match, rel_bundle, area):
    archive = area / "hostile.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(rel_bundle / "manifest.json", "bundle/manifest.json")
        zf.writestr(name, b"owned")
    _assert_refused(archive, area, match)


def test_zip_symlink_refused(rel_bundle, area):
    archive = area / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(rel_bundle / "manifest.json", "bundle/manifest.json")
        info = zipfile.ZipInfo("bundle/coreset.npy")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, str(area / "victim"))
    _assert_refused(archive, area, "symbolic link")


def test_zip_bomb_refused(area):
    archive = area / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bundle/coreset.npy", b"\0" * (64 << 20))       # 64 MiB of zeros → ~64 KiB
    assert archive.stat().st_size < (1 << 20)
    _assert_refused(archive, area, "zip bomb")


def test_tar_gz_bomb_refused_before_inflating(area):
    """A member declaring more than the limit is refused from its header: nothing is inflated."""
    archive = area / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("bundle/coreset.npy")
        info.size = 32 << 20
        tf.addfile(info, io.BytesIO(b"\0" * info.size))
    _assert_refused(archive, area, "size bomb")


def test_member_count_and_duplicates_refused(rel_bundle, area):
    archive = _tar_of(rel_bundle, area / "many.tar", mode="w", names=("manifest.json",),
                      extra=[_info(f"bundle/f{i}", data=b"x") for i in range(20)])
    staging = area / "install" / "s"
    with pytest.raises(BundleError, match="one member too many"):
        unpack_bundle_archive(archive, staging, limits=ArchiveLimits(max_members=10))
    assert not staging.exists()
    dup = _tar_of(rel_bundle, area / "dup.tar", mode="w", names=("manifest.json",),
                  extra=[_info("bundle/manifest.json", data=b"{}")])
    _assert_refused(dup, area, "appears twice")


def test_existing_staging_folder_is_refused_and_kept(rel_bundle, area):
    archive = _tar_of(rel_bundle, area / "good.tar", mode="w", names=("manifest.json",))
    keep = area / "install" / "existing"
    keep.mkdir()
    (keep / "mine.txt").write_text("not yours")
    with pytest.raises(BundleError, match="already exists"):
        unpack_bundle_archive(archive, keep)
    assert (keep / "mine.txt").read_text() == "not yours"


def test_unlisted_extra_file_refused(rel_bundle, area):
    archive = _tar_of(rel_bundle, area / "extra.tar", mode="w", extra=[_info("bundle/run_me.sh", data=b"#!/bin/sh")])
    _assert_refused(archive, area, "does not list: run_me.sh")


def test_not_an_archive_and_damaged_archive(rel_bundle, area):
    junk = area / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b" + os.urandom(4000))
    _assert_refused(junk, area, "not a tar|damaged")
    good = _tar_of(rel_bundle, area / "cut.tar.gz", names=("manifest.json", "coreset.npy"))
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _assert_refused(good, area, "damaged|not a tar")


def _external_data_model(bundle: Path, location: str) -> None:
    """Replace backbone.onnx by a model whose weight 'lives' at ``location``; re-hash so sha256 passes."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 4])
    weight.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "64")):
        entry = weight.external_data.add()
        entry.key, entry.value = k, v
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])], [weight])
    onnx.save_model(helper.make_model(graph), str(bundle / "backbone.onnx"))
    rewrite_manifest(bundle, rehash=["backbone.onnx"])


@pytest.mark.parametrize("location,match", [("../../victim/secret.bin", "outside the bundle"),
                                            ("/etc/passwd", "outside the bundle"),
                                            ("weights.bin", "missing or not a regular file")])
def test_onnx_external_data_outside_bundle_refused(location, match, bundle_copy, area, serving):
    before = golden_fingerprint(serving)
    (area / "victim" / "secret.bin").write_bytes(b"\0" * 64)
    _external_data_model(bundle_copy, location)
    with pytest.raises(BundleError, match=match) as info:
        serving.swap(bundle_copy)                       # via Detector.open, before ONNX Runtime sees the model
    assert "tensor 'W'" in str(info.value)
    assert golden_fingerprint(serving) == before
    archive = _tar_of(bundle_copy, area / "ext.tar", mode="w")
    (area / "victim" / "secret.bin").unlink()
    _assert_refused(archive, area, match)


def test_onnx_external_data_inside_but_unlisted_refused(bundle_copy, area):
    (bundle_copy / "weights.bin").write_bytes(b"\0" * 64)
    _external_data_model(bundle_copy, "weights.bin")
    from tocoad_edge.runtime import Detector

    with pytest.raises(BundleError, match="does not list"):
        Detector.open(bundle_copy)


def test_external_data_scanner_agrees_with_onnx(tmp_path):
    """The protobuf walker (no onnx needed at runtime) finds what onnx itself reports, in subgraphs too."""
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, external_data_helper, helper, numpy_helper

    from tocoad_edge.bundle.onnx_refs import _CHILDREN, external_data_refs

    then = helper.make_graph([helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
        np.ones((8, 8), np.float32), "inner"))], "then", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT,
                                                                                            [8, 8])])
    node = helper.make_node("If", ["cond"], ["c"], then_branch=then, else_branch=then)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [8, 8])],
                              [numpy_helper.from_array(np.ones((16, 16), np.float32), "top")])
    model = helper.make_model(graph)
    onnx.save_model(model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="w.bin",
                    size_threshold=0, convert_attribute=True)
    refs = external_data_refs(tmp_path / "m.onnx")
    loaded = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    expected = {t.name for t in external_data_helper._get_all_tensors(loaded)
                if external_data_helper.uses_external_data(t)}
    assert {r["tensor"] for r in refs} == expected == {"top", "inner"}
    assert {r["location"] for r in refs} == {"w.bin"}
    # the field numbers the walker uses are onnx's own
    fields = {"Model": onnx.ModelProto, "Graph": onnx.GraphProto, "Node": onnx.NodeProto,
              "Attribute": onnx.AttributeProto, "Function": onnx.FunctionProto,
              "TrainingInfo": onnx.TrainingInfoProto, "Sparse": onnx.SparseTensorProto}
    names = {"Tensor": "TensorProto", "Graph": "GraphProto", "Node": "NodeProto", "Attribute": "AttributeProto",
             "Function": "FunctionProto", "TrainingInfo": "TrainingInfoProto", "Sparse": "SparseTensorProto"}
    for kind, children in _CHILDREN.items():
        by_number = {f.number: f for f in fields[kind].DESCRIPTOR.fields}
        for number, child in children.items():
            assert by_number[number].message_type.name == names[child], (kind, number)


def test_disk_full_while_unpacking_is_a_resource_error(rel_bundle, area):
    """RLIMIT_FSIZE makes writes fail like a full disk: ResourceError, staging removed, nothing left."""
    archive = _tar_of(rel_bundle, area / "good.tar", mode="w", names=("manifest.json", "backbone.onnx"))
    staging = area / "install" / "s"
    script = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        from tocoad_edge.bundle.archive import unpack_bundle_archive
        from tocoad_edge.errors import ResourceError
        try:
            unpack_bundle_archive({str(archive)!r}, {str(staging)!r})
            print("RESULT no-error")
        except ResourceError as exc:
            print("RESULT ResourceError", exc)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "RESULT ResourceError no space left" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert not staging.exists()
    assert_no_partial_files(area / "install")
    assert ResourceError.__mro__[1].__name__ == "TocoadError"
