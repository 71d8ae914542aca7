"""Model sources: a --model value -> a Model (torch module with random weights by default, or an ONNX file).

Sources: ``resnet18`` / ``torchvision:NAME``, ``timm:NAME``, ``path/to/model.onnx`` and
``package.module:function`` (a Python callable returning an ``nn.Module``, imported only because it was named).
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rtbench.errors import UserError

WEIGHT_SEED = 0  # random weights are seeded: every process of a run builds the same model
# BatchNorm statistics of random weights are set from one seeded train-mode pass of this batch and size
BN_CALIBRATION = {"batch": 4, "size": 224, "seed": 7}
OFFLINE_HINT = "connect to the internet or use --weights random (timing does not depend on weights)"


@dataclass
class Model:
    """A model as runtimes see it: a builder for the fp32 eval-mode torch module (or an ONNX file) and its input."""

    name: str
    source: str  # torchvision, timm, entry, onnx
    build: Callable[[], "object"]
    channels: int = 3
    fixed_size: int | None = None
    meta: dict = field(default_factory=dict)
    _flops: dict = field(default_factory=dict, repr=False)
    onnx_path: Path | None = None  # set for an ONNX model file: there is no torch module
    onnx_input: object = None  # rtbench.onnx_file.ImageInput of an ONNX file
    weights: str = "random"  # random (seeded, BatchNorm calibrated), pretrained, or own (an entry point's)

    @property
    def has_module(self) -> bool:
        """Whether a PyTorch module exists (False for an ONNX file)."""
        return self.onnx_path is None

    @property
    def parity_reference(self) -> str:
        """What parity compares against: PyTorch fp32, or ONNX Runtime CPU for an ONNX file."""
        if self.has_module:
            return "PyTorch fp32"
        return f"ONNX Runtime CPU {'fp32' if self.onnx_input.dtype == 'float32' else 'fp16'} (ONNX file: no PyTorch module)"

    @property
    def weights_key(self) -> str:
        """Names the weights a module is built with (cached exports are keyed on it)."""
        if self.weights != "random":
            return self.weights
        return f"random-seed{WEIGHT_SEED}-bn{BN_CALIBRATION['batch']}x{BN_CALIBRATION['size']}s{BN_CALIBRATION['seed']}"

    @functools.cached_property
    def module(self):
        """The fp32 eval-mode module; random weights get BatchNorm statistics from ``calibrate_batchnorm``."""
        if not self.has_module:
            from rtbench.runtimes.base import Unsupported

            raise Unsupported("the model is an ONNX file: there is no PyTorch module")
        import torch

        # on one thread: a run's workers build their models side by side (six on the H200's 16 cores, each on all of
        # them, took 7 s each against 0.2 s alone), and every process, whatever its share of the cores, computes the
        # same BatchNorm statistics
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            torch.manual_seed(WEIGHT_SEED)
            m = self.build()
            if not isinstance(m, torch.nn.Module):
                raise UserError(f"{self.name} returned {type(m).__name__}, not a torch.nn.Module: "
                                "make the function return the model")
            if self.weights == "random":
                calibrate_batchnorm(m, self.channels, self.fixed_size or BN_CALIBRATION["size"])
        finally:
            torch.set_num_threads(threads)
        return m.eval()

    def check_size(self, size: int) -> str | None:
        """None when the model takes this input size, else the reason it does not.

        A fixed input size is checked first; otherwise a torch model is run once at this size (the FLOPs
        count, cached: on the meta device, or the CPU) so a model that rejects the size says so here rather than
        failing in a runtime.
        """
        if self.fixed_size is not None and size != self.fixed_size:
            return f"{self.name} takes only {self.fixed_size}x{self.fixed_size} inputs"
        if self.has_module:
            try:
                self.flops_per_image(size)
            except Exception as e:  # noqa: BLE001 - any error here means the model rejects this size
                first = (str(e).strip().splitlines() or [""])[0][:200]
                return f"{self.name} rejects {size}x{size} inputs ({type(e).__name__}: {first})"
        return None

    def flops_per_image(self, size: int) -> float | None:
        """Forward FLOPs for one image, 2 FLOPs per multiply-add: torch.utils.flop_counter, or the ONNX graph.

        None for an ONNX graph whose matmul/conv shapes cannot be inferred at this size.
        """
        if size not in self._flops:
            self._flops[size] = self._onnx_flops(size) if not self.has_module else self._torch_flops(size)
        return self._flops[size]

    def _torch_flops(self, size: int) -> float:
        """Counted on the meta device: shapes only, nothing computed (on the H200 host twelve workers each running
        the model once on the CPU at once, 16 threads each, took 6-8 s for it); on the CPU, as a forward pass, when
        the module cannot run on the meta device (a tensor it keeps outside its parameters and buffers, say)."""
        try:
            return self._count_flops(size, "meta")
        except Exception:  # noqa: BLE001 - the CPU pass then counts, or raises the module's own error for this size
            return self._count_flops(size, "cpu")

    def _count_flops(self, size: int, device: str) -> float:
        import torch
        from torch.func import functional_call
        from torch.utils.flop_counter import FlopCounterMode

        module = self.module  # built (and its BatchNorm calibrated) outside the count
        x = torch.zeros(1, self.channels, size, size, device=device)
        counter = FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas())
        with torch.no_grad(), counter:
            if device == "cpu":
                module(x)
            else:  # the module's own tensors stay where they are: meta stand-ins of the same shapes take their place
                state = {k: torch.empty_like(v, device=device) for k, v in module.state_dict(keep_vars=True).items()}
                functional_call(module, state, (x,))
        return float(counter.get_total_flops())

    def _onnx_flops(self, size: int) -> float | None:
        from rtbench import onnx_file
        from rtbench.onnx_flops import count_flops

        c = count_flops(self.onnx_path, {self.onnx_input.name: onnx_file.shape(self.onnx_input, 1, size)})
        return None if c.unknown else c.total

    def reference(self, x):
        """fp32 reference outputs on the CPU for host input ``x``, for an ONNX file (torch models: parity.py)."""
        from rtbench import onnx_file

        return onnx_file.reference(self.onnx_path, self.onnx_input, x)


def calibrate_batchnorm(module, channels: int = 3, size: int = 224) -> None:
    """Set BatchNorm running statistics from one seeded train-mode pass over random inputs (in place).

    At their defaults (mean 0, variance 1) a random-weight network's activations drift from layer to layer
    until its outputs barely depend on the input: ResNet18 then predicts one class for every image and a
    wrong input passes an output check. Statistics measured on inputs like the benchmark's keep every layer
    normalised. Seeded: every process builds the same model. No-op for a model without BatchNorm.
    """
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: the pass's own statistics, not a blend with the defaults
    g = torch.Generator().manual_seed(BN_CALIBRATION["seed"])
    x = torch.randn(BN_CALIBRATION["batch"], channels, size, size, generator=g)
    module.train()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):  # train-mode dropout: seeded, caller's RNG kept
        torch.manual_seed(BN_CALIBRATION["seed"])
        module(x)
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    module.eval()


def _extra_flop_formulas() -> dict:
    """Ops torch's flop counter misses: scaled-dot-product attention on the CPU (its flash kernel for CPU)."""
    import torch
    from torch.utils.flop_counter import sdpa_flop_count

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None:
        return {}

    def cpu_flash(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    return {op: cpu_flash}


def _onnx(path_text: str) -> Model:
    from rtbench.onnx_file import image_input

    path = Path(path_text).expanduser().resolve()
    check_onnx_file(path)
    inp = image_input(path)
    return Model(name=path.stem, source="onnx", build=lambda: None, channels=inp.channels, fixed_size=inp.fixed_size,
                 weights="own",
                 meta={"path": str(path), "input": inp.name, "layout": inp.layout, "dtype": inp.dtype,
                       "fixed_batch": inp.fixed_batch}, onnx_path=path, onnx_input=inp)


def _torchvision(name: str, weights: str) -> Model:
    import torchvision

    available = set(torchvision.models.list_models(module=torchvision.models))
    if name not in available:
        close = sorted(n for n in available if name[:4] in n)[:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown model {name!r}{hint}: use a torchvision classification model name, "
                        "e.g. resnet18, or timm:NAME; `rtbench list models` lists them")

    def build():
        if weights == "pretrained":
            return _pretrained(name)
        return torchvision.models.get_model(name, weights=None)

    fixed = 224 if name.startswith(("vit_", "swin_v2")) else None
    return Model(name=name, source="torchvision", build=build, fixed_size=fixed, weights=weights)


def _pretrained(name: str):
    import torchvision

    try:
        return torchvision.models.get_model(name, weights="DEFAULT")
    except Exception as e:  # urllib raises many kinds; all mean the same to the user
        raise UserError(f"could not fetch pretrained weights for {name} ({type(e).__name__}): {OFFLINE_HINT}") from None


def _reachable(host: str, timeout: float = 3.0) -> str | None:
    """None when ``host`` answers on port 443, else why not (checked before a download that would retry for long)."""
    import socket

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return None
    except OSError as e:
        return e.strerror or type(e).__name__


def _timm(name: str, weights: str) -> Model:
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown timm model {name!r}{hint}: use a name from timm.list_models(), e.g. timm:resnet50")
    if weights == "pretrained" and (why := _reachable("huggingface.co")):
        raise UserError(f"could not fetch pretrained weights for timm:{name} (huggingface.co: {why}): {OFFLINE_HINT}")
    cfg = timm.models.get_pretrained_cfg(name)
    channels, height, width = cfg.input_size if cfg is not None else (3, 224, 224)
    fixed = height if cfg is not None and cfg.fixed_input_size and height == width else None

    def build():
        try:
            return timm.create_model(name, pretrained=weights == "pretrained")
        except (OSError, RuntimeError) as e:
            if weights != "pretrained":
                raise
            raise UserError(f"could not fetch pretrained weights for timm:{name} ({type(e).__name__}): "
                            f"{OFFLINE_HINT}") from None

    return Model(name=name, source="timm", build=build, channels=channels, fixed_size=fixed, weights=weights,
                 meta={"input_size": list(cfg.input_size) if cfg is not None else None})


def _entry(spec: str, weights: str) -> Model:
    mod_name, _, fn_name = spec.partition(":")
    if weights == "pretrained":
        raise UserError(f"--weights pretrained applies to torchvision and timm models; {spec} builds its own weights: "
                        "drop --weights or load them in the function")
    import os
    import sys

    if os.getcwd() not in sys.path:  # `rtbench` run as a script: the current folder is importable too, last
        sys.path.append(os.getcwd())
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise UserError(f"cannot import {mod_name!r} for --model {spec} ({type(e).__name__}: {e}): make the module "
                        "importable (install it or add its folder to PYTHONPATH)") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise UserError(f"{mod_name} has no function {fn_name!r} for --model {spec}: name a function that returns "
                        "a torch.nn.Module, as package.module:function")
    return Model(name=spec, source="entry", build=fn, weights="own")


def resolve(name: str, weights: str = "random") -> Model:
    """Turn a --model value into a Model; unknown names raise UserError."""
    name = name.strip()
    if not name:
        raise UserError("--model is empty: give a model name, e.g. --model resnet18")
    if name.lower().endswith(".onnx"):
        return _onnx(name)
    source, sep, rest = name.partition(":")
    if not sep:
        return _torchvision(name, weights)
    if source == "torchvision":
        return _torchvision(rest, weights)
    if source == "timm":
        return _timm(rest, weights)
    if rest.isidentifier() and all(p.isidentifier() for p in source.split(".")):
        return _entry(name, weights)
    raise UserError(f"cannot read --model {name!r}: use a torchvision name (resnet18, torchvision:NAME), timm:NAME, "
                    "a path to a .onnx file, or package.module:function")


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
    """torchvision classification models, then timm models (when timm is installed) as timm:NAME."""
    import importlib.util

    import torchvision

    names = sorted(torchvision.models.list_models(module=torchvision.models))
    if importlib.util.find_spec("timm") is not None:
        import timm

        names += [f"timm:{n}" for n in timm.list_models()]
    return names
