"""ctest fixture: a real bundle made by the project's own CLIs, frames, and the Python runtime's answers.

    python make_parity_fixture.py OUT_DIR

Writes OUT_DIR/
    data/            synthetic MVTec-layout dataset (tocoad_edge.synth.sample_set)
    run/             tocoad-train run folder (baseline, image_size 64)
    bundle/          tocoad-export bundle, default options (float16 coreset.npy, projected index.hnsw +
                     search_projection.npy, manifest.json, ...)
    bundle_full/     the same run exported with --search-index full --bank-dtype float32 (the index kind of
                     schema 1 bundles)
    bundle_tiled/    the same data trained with data.tiling (64 px tiles of the 96 px images, overlap 0.25) and
                     data.tone: standardize (the tone runs in the model graph, per tile: OpenCV DNN must run it)
    frames/          test frames as binary PPM (color, stored RGB) / PGM (gray), of several sizes
    reference/       tocoad_edge.runtime.Detector (ONNX Runtime) maps as float32 .npy, per frame and search
    reference.json   per frame: file, format, and per search (hnsw, exact, refined: bundle/; hnsw_full,
                     refined_full: bundle_full/): score, raw_score, decision, map; "bundles": which bundle each
                     search reads; "tiled": the same for bundle_tiled (hnsw, exact, refined; maps in
                     reference/<frame>.tiled.<search>.npy)

The C++ parity test (test_parity.cpp) scores the same frames through the C ABI and compares. The
fixture is reused when OUT_DIR/fixture.stamp matches this script, the package version and the Python sources that
train, export and score it (a change to the exported graph must not leave a stale bundle in a build folder).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

import tocoad_edge
from tocoad_edge.synth.sample_set import make_sample_dataset

CONFIG = """\
seed: 0
stages: baseline
threads: 2
data: {image_size: 64, holdout_images: 3}
memory: {coreset_ratio: 0.25}
scoring: {gaussian_sigma: 2.0}
"""
TILED_CONFIG = CONFIG.replace("holdout_images: 3}",
                              "holdout_images: 3, tone: standardize, tiling: {enabled: true, overlap: 0.25}}")


# the packages whose code makes the fixture's bundles and references (repository layout: native/tests/ → root)
SOURCE_PACKAGES = ("tocoad_edge", "export", "calibration")


def _stamp() -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(tocoad_edge.__version__.encode())
    root = Path(__file__).resolve().parents[2]
    for package in SOURCE_PACKAGES:
        for source in sorted((root / package).rglob("*.py")):
            h.update(source.relative_to(root).as_posix().encode())
            h.update(source.read_bytes())
    return h.hexdigest()


def _write_pnm(path: Path, frame: np.ndarray) -> str:
    """PPM stores RGB; the C++ side reads it as RGB8 (and tests BGR8 by swapping). PGM is gray."""
    if frame.ndim == 2:
        header = f"P5\n{frame.shape[1]} {frame.shape[0]}\n255\n".encode()
        path.write_bytes(header + np.ascontiguousarray(frame).tobytes())
        return "GRAY8"
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    header = f"P6\n{frame.shape[1]} {frame.shape[0]}\n255\n".encode()
    path.write_bytes(header + np.ascontiguousarray(rgb).tobytes())
    return "RGB8"


def _frames(data: Path) -> dict[str, np.ndarray]:
    good = cv2.imread(str(data / "test" / "good" / "000.png"), cv2.IMREAD_COLOR)
    scratch = cv2.imread(str(data / "test" / "scratch" / "000.png"), cv2.IMREAD_COLOR)
    spot = cv2.imread(str(data / "test" / "spot" / "000.png"), cv2.IMREAD_COLOR)
    stain = cv2.imread(str(data / "test" / "stain" / "000.png"), cv2.IMREAD_COLOR)
    rng = np.random.default_rng(7)
    tinted = np.clip(spot.astype(np.int16) + rng.integers(-40, 40, (1, 1, 3)), 0, 255).astype(np.uint8)
    return {
        "good_96x96": good,                                              # frame = training size
        "scratch_96x96": scratch,
        "stain_gray_96x96": cv2.cvtColor(stain, cv2.COLOR_BGR2GRAY),     # gray path
        "spot_tinted_150x100": cv2.resize(tinted, (150, 100), interpolation=cv2.INTER_AREA),  # upscale, non-square
        "good_64x64": cv2.resize(good, (64, 64), interpolation=cv2.INTER_AREA),   # = model input: no resize
        "scratch_41x37": cv2.resize(scratch, (41, 37), interpolation=cv2.INTER_AREA),  # odd, smaller than input
    }


def _references(root: Path, bundles: dict[str, str], frames: dict[str, np.ndarray], tag: str) -> list[dict]:
    """The Python runtime's answers for each frame: ``bundles`` maps an entry name (``hnsw``, ``exact``, ``refined``,
    ``hnsw_full``, ``refined_full``) to the bundle folder it reads; the search is the name's first word."""
    from tocoad_edge.runtime import Detector

    detectors = {key: Detector.open(root / bundle, backend="onnxrt", search=key.split("_")[0])
                 for key, bundle in bundles.items()}
    entries = []
    for name, frame in frames.items():
        suffix = ".pgm" if frame.ndim == 2 else ".ppm"
        entry = {"name": name, "file": f"frames/{name}{suffix}", "format": "GRAY8" if frame.ndim == 2 else "RGB8",
                 "width": int(frame.shape[1]), "height": int(frame.shape[0])}
        for search, det in detectors.items():
            pred = det.predict(frame)
            map_file = f"reference/{name}{tag}.{search}.npy"
            np.save(root / map_file, np.ascontiguousarray(pred.anomaly_map, dtype=np.float32))
            entry[search] = {"score": pred.score, "raw_score": pred.raw_score, "decision": pred.decision,
                             "map": map_file}
        entries.append(entry)
    for det in detectors.values():
        det.close()
    return entries


def main(out: str) -> int:
    root = Path(out)
    stamp = root / "fixture.stamp"
    if stamp.is_file() and stamp.read_text() == _stamp() and (root / "reference.json").is_file():
        print(f"parity fixture up to date: {root}")
        return 0
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)

    from tocoad_edge.cli.train import main as train_main
    from tocoad_edge.export.cli import main as export_main

    make_sample_dataset(root / "data", n_train=10, n_test_good=1, n_test_defect=1, size=96, color=True)
    for suffix, config in (("", CONFIG), ("_tiled", TILED_CONFIG)):
        (root / f"config{suffix}.yaml").write_text(config)
        if train_main(["--data", str(root / "data"), "--out", str(root / f"run{suffix}"), "--config",
                       str(root / f"config{suffix}.yaml"), "--quiet"]) != 0:
            return 1
        if export_main(["bundle", str(root / f"run{suffix}"), "--out", str(root / f"bundle{suffix}")]) != 0:
            return 1
    if export_main(["bundle", str(root / "run"), "--out", str(root / "bundle_full"), "--search-index", "full",
                    "--bank-dtype", "float32"]) != 0:
        return 1

    (root / "frames").mkdir()
    (root / "reference").mkdir()
    frames = _frames(root / "data")
    plain = {"hnsw": "bundle", "exact": "bundle", "refined": "bundle", "hnsw_full": "bundle_full",
             "refined_full": "bundle_full"}
    tiled = {"hnsw": "bundle_tiled", "exact": "bundle_tiled", "refined": "bundle_tiled"}
    entries = _references(root, plain, frames, "")
    for e in entries:
        suffix = ".pgm" if e["format"] == "GRAY8" else ".ppm"
        _write_pnm(root / "frames" / (e["name"] + suffix), frames[e["name"]])
    manifest = json.loads((root / "bundle" / "manifest.json").read_text())
    (root / "reference.json").write_text(json.dumps({
        "bundle": "bundle", "bundles": plain, "input": [manifest["input"]["width"], manifest["input"]["height"]],
        "image_threshold": manifest["scoring"]["image_threshold"], "frames": entries,
        "tiled": {"bundle": "bundle_tiled", "bundles": tiled, "frames": _references(root, tiled, frames, ".tiled")}},
        indent=2))
    stamp.write_text(_stamp())
    print(f"parity fixture written: {root} ({len(entries)} frames)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
