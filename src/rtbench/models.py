"""Model sources: a model name -> a torch module (random weights by default) and FLOPs per image."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
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
    if name.endswith(".onnx"):
        check_onnx_file(name)
        raise UserError(f"{name}: ONNX model files are not supported as --model yet; use a torchvision name "
                        "such as resnet18")
    if ":" not in name and not name.endswith(".onnx"):
        return _torchvision(name, weights)
    raise UserError(f"unknown model source in {name!r}: use a torchvision name such as resnet18 "
                    "or torchvision:NAME")


def check_onnx_file(path: str | Path) -> Path:
    """The path of a complete, valid ONNX model file; a missing, empty, foreign or truncated one raises UserError."""
    p = Path(path).expanduser()
    if not p.is_file():
        why = "is a folder" if p.is_dir() else "does not exist"
        raise UserError(f"model file {p} {why}: check the path (relative paths start in the current folder)")
    if p.stat().st_size == 0:
        raise UserError(f"model file {p} is empty: export the model again (e.g. torch.onnx.export)")
    import onnx

    try:
        onnx.load(str(p), load_external_data=False)  # a truncated or foreign file fails to parse here
        onnx.checker.check_model(str(p))  # by path: models over 2 GB with external data are checked too
    except Exception as e:  # noqa: BLE001 - protobuf, onnx and OS errors all mean the file is unusable
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"model file {p} is not a valid ONNX model ({type(e).__name__}: {first}): "
                        "export it again (e.g. torch.onnx.export) or check the file was copied completely") from None
    return p


def list_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))
