"""WideResNet-50-2 in plain torch (no torchvision), loading torchvision's state-dict format.

Same module names as ``torchvision.models.wide_resnet50_2`` (``conv1``, ``bn1``, ``layer1``…``layer4``,
``downsample.0/1``), so the user's ``wide_resnet50_2-*.pth`` loads with ``strict`` key checking. Only the trunk is
built: ``avgpool``/``fc`` keys in the file are ignored. ImageNet normalisation.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ResourceError
from .base import Backbone, load_state_dict


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, width_per_group: int = 128):
        super().__init__()
        width = int(planes * (width_per_group / 64.0))
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class WideResNetBackbone(Backbone):
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)
    _LAYERS = {"layer1": (4, 256), "layer2": (8, 512), "layer3": (16, 1024), "layer4": (32, 2048)}

    def __init__(self, blocks: tuple[int, int, int, int] = (3, 4, 6, 3), width_per_group: int = 128):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for i, (n, planes) in enumerate(zip(blocks, (64, 128, 256, 512))):
            layer = []
            for j in range(n):
                layer.append(Bottleneck(inplanes, planes, stride=(1 if i == 0 or j > 0 else 2),
                                        width_per_group=width_per_group))
                inplanes = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))

    def layer_names(self) -> list[str]:
        return list(self._LAYERS)

    def layer_channels(self, name: str) -> int:
        self.check_layers([name])
        return self._LAYERS[name][1]

    def layer_stride(self, name: str) -> int:
        self.check_layers([name])
        return self._LAYERS[name][0]

    def forward_layers(self, x: torch.Tensor, names: list[str]) -> list[torch.Tensor]:
        self.check_layers(names)
        last = max(int(n[-1]) for n in names)
        outs: dict[str, torch.Tensor] = {}
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, last + 1):
            x = getattr(self, f"layer{i}")(x)
            outs[f"layer{i}"] = x
        return [outs[n] for n in names]

    def parameter_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        stem = [*self.conv1.parameters(), *self.bn1.parameters()]
        return [("stem", stem)] + [(n, list(getattr(self, n).parameters())) for n in self._LAYERS]

    def load_weights(self, path: str | Path) -> None:
        state = load_state_dict(path)
        state = {k: v for k, v in state.items() if not k.startswith(("fc.", "avgpool."))}
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # same keys, other shapes
            raise ResourceError(f"weights file {path} does not fit WideResNet-50-2",
                                expected="torchvision's wide_resnet50_2 state dict",
                                got=str(exc).splitlines()[-1].strip()[:300],
                                fix="give the wide_resnet50_2 .pth from torchvision (not resnet50 or another model)"
                                ) from None
        if missing or unexpected:
            raise ResourceError(f"weights file {path} does not fit WideResNet-50-2",
                                expected="torchvision's wide_resnet50_2 state dict "
                                         "(keys conv1.weight, layer1.0.conv1.weight, ...)",
                                got=f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                                    f"(e.g. {unexpected[:3]})",
                                fix="give the wide_resnet50_2 .pth from torchvision (IMAGENET1K_V1 or V2)")
