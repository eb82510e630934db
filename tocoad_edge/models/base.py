"""What every backbone is: ``Backbone`` (a trunk whose named intermediate layers can be read out) and the one
loader of a local weights file. The registry (``backbones.py``) and each backbone module import this; it imports
none of them.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, ResourceError, did_you_mean


class Backbone(nn.Module):
    """Base class: a trunk whose named intermediate layers can be read out."""

    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    # (mean, std) grey levels every input is standardised to first (``models/tone.py``); None: inputs as they come
    tone_reference: tuple[float, float] | None = None

    def layer_names(self) -> list[str]:
        raise NotImplementedError

    def layer_channels(self, name: str) -> int:
        raise NotImplementedError

    def layer_stride(self, name: str) -> int:
        raise NotImplementedError

    def forward_layers(self, x: torch.Tensor, names: list[str]) -> list[torch.Tensor]:
        raise NotImplementedError

    def stage_start(self, name: str) -> str:
        """First layer of the stage that holds ``name``: walking back while the layers keep its channels and
        stride (EfficientNet-Lite0 blocks.10 → blocks.8; WideResNet layer3 → layer3). ToCoAD stage 2 with
        ``trainable_from: auto`` fine-tunes from here (``train/stage2.py``)."""
        self.check_layers([name])
        names = self.layer_names()
        i = names.index(name)
        key = (self.layer_channels(name), self.layer_stride(name))
        while i > 0 and (self.layer_channels(names[i - 1]), self.layer_stride(names[i - 1])) == key:
            i -= 1
        return names[i]

    def parameter_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """Parameters per layer, input to output: ``[("stem", [...]), (layer name, [...]), ...]``."""
        raise NotImplementedError

    def check_layers(self, names: list[str]) -> None:
        known = self.layer_names()
        for n in names:
            if n not in known:
                raise ConfigError(f"backbone has no layer '{n}'" + did_you_mean(n, known), expected=f"one of {known}",
                                  got=n)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise ResourceError(f"backbone weights file not found: {p}", fix="give the path of a local weights file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure is a bad file
        raise ResourceError(f"cannot load weights file {p}",
                            expected="a safetensors file or a torch state dict loadable with weights_only=True",
                            got=f"{type(exc).__name__}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ResourceError(f"weights file {p} holds no state dict", got=type(state).__name__)
    return state
