"""Model sources: a model name -> a torch module (random weights by default) and FLOPs per image."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

from rtbench.errors import UserError

WEIGHT_SEED = 0  # random weights are seeded: every process of a run builds the same model


@dataclass
class Model:
    """A model as runtimes see it: a builder for the fp32 eval-mode torch module and its input."""

    name: str
    source: str
    build: Callable[[], "object"]
    channels: int = 3
    fixed_size: int | None = None
    meta: dict = field(default_factory=dict)
    _flops: dict = field(default_factory=dict, repr=False)

    @functools.cached_property
    def module(self):
        import torch

        torch.manual_seed(WEIGHT_SEED)
        m = self.build()
        return m.eval()

    def check_size(self, size: int) -> str | None:
        """None when the model takes this input size, else the reason it does not."""
        if self.fixed_size is not None and size != self.fixed_size:
            return f"{self.name} takes only {self.fixed_size}x{self.fixed_size} inputs"
        return None

    def flops_per_image(self, size: int) -> float:
        """Forward FLOPs for one image (torch.utils.flop_counter: 2 FLOPs per multiply-add)."""
        if size not in self._flops:
            import torch
            from torch.utils.flop_counter import FlopCounterMode

            x = torch.zeros(1, self.channels, size, size)
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), counter:
                self.module(x)
            self._flops[size] = float(counter.get_total_flops())
        return self._flops[size]


def _torchvision(name: str, weights: str) -> Model:
    import torchvision

    available = set(torchvision.models.list_models(module=torchvision.models))
    if name not in available:
        close = sorted(n for n in available if name[:4] in n)[:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown model {name!r}{hint}: use a torchvision classification model name, "
                        "e.g. resnet18; `rtbench list models` lists them")

    def build():
        if weights == "pretrained":
            return _pretrained(name)
        return torchvision.models.get_model(name, weights=None)

    fixed = 224 if name.startswith(("vit_", "swin_v2")) else None
    return Model(name=name, source="torchvision", build=build, fixed_size=fixed)


def _pretrained(name: str):
    import torchvision

    try:
        return torchvision.models.get_model(name, weights="DEFAULT")
    except Exception as e:  # urllib raises many kinds; all mean the same to the user
        raise UserError(f"could not fetch pretrained weights for {name} ({type(e).__name__}): "
                        "connect to the internet or use --weights random (timing does not depend on weights)") from None


def resolve(name: str, weights: str = "random") -> Model:
    """Turn a --model value into a Model; unknown names raise UserError."""
    name = name.strip()
    if not name:
        raise UserError("--model is empty: give a model name, e.g. --model resnet18")
    if name.startswith("torchvision:"):
        return _torchvision(name.split(":", 1)[1], weights)
    if ":" not in name and not name.endswith(".onnx"):
        return _torchvision(name, weights)
    raise UserError(f"unknown model source in {name!r}: use a torchvision name such as resnet18 "
                    "or torchvision:NAME")


def list_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))
