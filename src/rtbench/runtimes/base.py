"""The runtime contract and the one registry.

A runtime is a class registered with ``@register``. One instance serves a *runtime group* (one runtime,
one precision, one device of a sweep): expensive work shared by its cells (ONNX export, a module cast to
the precision) happens once there and is reported in ``setup``. ``session(cell, x)`` prepares one cell
and returns a ``Session`` whose ``call`` is what the timing loop times.

The base class enforces what a runtime declares, once for all and before any expensive work: the
``precisions`` it runs (and what the device can run), the CUDA-graph rule (``graph`` runtimes need the
compute boundary) and an ONNX file's fixed batch. Subclasses implement ``prepare``; they do not repeat
these checks.

Boundaries. ``compute``: the input is placed on the device before timing and the output stays there.
``end-to-end``: every runtime gets the same pageable fp32 NCHW host array, and everything between it and
an fp32 host array of outputs (casts, layout changes, pinning, copies both ways) happens inside ``call``
(``common.end_to_end``).
"""
from __future__ import annotations

import abc
import importlib
import importlib.metadata
import importlib.util
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

from rtbench.spec import PRECISIONS, Cell, Sweep

REGISTRY: dict[str, type["Runtime"]] = {}
PLUGINS_ENV = "RTBENCH_PLUGINS"  # comma-separated modules that register more runtimes, imported in every process


GRAPH_NEEDS_COMPUTE = "CUDA graphs need inputs already on the GPU: use the compute boundary"


class Unsupported(Exception):
    """This runtime cannot run this cell (precision, device, model or size): status ``unsupported``."""


def check_device_precision(device: str, precision: str) -> None:
    """Raise Unsupported for a precision the device cannot run as asked (whatever the runtime)."""
    import torch

    if precision == "tf32" and not device.startswith("cuda"):
        raise Unsupported("tf32 exists only on CUDA GPUs (Ampere or newer)")
    if precision == "tf32" and torch.cuda.get_device_capability(device)[0] < 8:
        raise Unsupported("tf32 needs an Ampere or newer GPU")
    if precision == "bf16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        raise Unsupported("this GPU has no bf16")


@dataclass
class Session:
    """One prepared cell. ``call`` does one inference per the boundary and returns nothing."""

    call: Callable[[], None]
    fetch: Callable[[], np.ndarray]  # the last outputs as a float32 host array, for parity
    stream: object = None  # the runtime group's torch.cuda.Stream, which the work runs on (CUDA events go there)
    info: dict = field(default_factory=dict)  # what really ran: threads, providers, layout, ...
    close: Callable[[], None] = lambda: None


class Runtime(abc.ABC):
    """Base class. Subclasses set the class attributes and implement ``prepare``."""

    name: ClassVar[str]
    package: ClassVar[str | None] = None  # import name checked by availability(); version reported
    distribution: ClassVar[str | None] = None  # pip distribution name, when it differs
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS  # checked by the base class
    precisions_note: ClassVar[str] = ""  # why the others are missing, added to the one refusal
    graph: ClassVar[bool] = False  # replays a CUDA graph: needs the compute boundary (checked by the base class)
    default: ClassVar[bool] = True  # part of "every available runtime" (see is_default)
    needs_torch_module: ClassVar[bool] = True  # False: runs an ONNX model file too
    needs_model: ClassVar[bool] = True  # False: gets model=None and no parity (the null runtime)
    install_hint: ClassVar[str] = ""
    compiles: ClassVar[bool] = False  # per-shape compilation worth doing ahead in other processes (rtbench.precompile)
    # the runtime's settings (sweep options): name -> the values it takes (empty: any). A variant such as
    # ``torch-compile[compile_mode=max-autotune]`` sets them for one runtime group (see ``variant``).
    settings: ClassVar[dict[str, tuple[str, ...]]] = {"threads": ()}

    @classmethod
    def search_space(cls, device: str) -> dict[str, tuple[str, ...]]:
        """The settings ``rtbench tune`` tries on ``device`` (each value a variant of this runtime)."""
        n = os.cpu_count() or 1
        return {"threads": tuple(dict.fromkeys((str(n), str(max(1, n // 2)))))} if device == "cpu" and n > 1 else {}

    def __init__(self, model, sweep: Sweep, precision: str, workdir: Path):
        self.model = model
        self.sweep = sweep
        self.precision = precision
        self.device = sweep.device
        self.workdir = Path(workdir)
        self.setup: dict = {}  # group-level setup seconds (export, build), reported with the first cell
        if self.needs_torch_module and model is not None and not getattr(model, "has_module", True):
            raise Unsupported(f"{self.name} needs a PyTorch module; the model is an ONNX file")
        if precision not in self.precisions:
            note = f": {self.precisions_note}" if self.precisions_note else ""
            raise Unsupported(f"{self.name} runs {', '.join(self.precisions)}, not {precision}{note}")
        check_device_precision(self.device, precision)
        self._check_boundary(sweep.boundary)
        if threads := sweep.option("threads"):  # process-wide: every group has a worker process of its own
            import torch

            torch.set_num_threads(int(threads))
        self.stream = None  # on CUDA: the group's own stream, created once (see apply_settings)
        if self.device.startswith("cuda"):
            import torch

            self.stream = torch.cuda.Stream(self.device)

    @classmethod
    def is_default(cls, device: str) -> bool:
        """Whether ``rtbench run`` without --runtimes measures it on this device."""
        return cls.default

    @classmethod
    def availability(cls, device: str) -> tuple[bool, str]:
        """Cheap check (imports nothing heavy): can this runtime run on ``device`` here, and if not why."""
        kind = device.split(":")[0]
        if kind not in cls.devices:
            return False, f"runs on {' or '.join(cls.devices)} only, not {kind}"
        if cls.package and importlib.util.find_spec(cls.package) is None:
            hint = cls.install_hint or f"pip install {cls.distribution or cls.package}"
            return False, f"{cls.distribution or cls.package} is not installed ({hint})"
        return True, ""

    @classmethod
    def version(cls) -> str | None:
        dist = cls.distribution or cls.package
        if not dist:
            return None
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    def _check_boundary(self, boundary: str) -> None:
        if self.graph and boundary != "compute":
            raise Unsupported(GRAPH_NEEDS_COMPUTE)

    def check_cell(self, cell: Cell) -> None:
        """Raise Unsupported when this runtime cannot run ``cell`` (boundary, an ONNX file's fixed batch)."""
        if cell is None:  # the harness-cost session of the null runtime (engine.harness_cost) has no cell
            return
        self._check_boundary(cell.boundary)
        inp = getattr(self.model, "onnx_input", None)
        if inp is not None:
            from rtbench.onnx_file import batch_problem

            if why := batch_problem(inp, cell.batch):
                raise Unsupported(why)

    def apply_settings(self) -> dict:
        """Apply this group's process-wide settings and return what they are (recorded in Session.info).

        On CUDA the group's stream becomes the current stream, so the runtime, its input and output
        copies, the parity reference and the clock's CUDA events are all ordered on one non-default
        stream (whose handle ONNX Runtime is given). Subclasses add their own settings (TF32, cuDNN).
        """
        if self.stream is not None:
            import torch

            torch.cuda.set_stream(self.stream)
        return {}

    def session(self, cell: Cell, x) -> Session:
        """Check ``cell``, apply the group's settings, then prepare it for the host fp32 NCHW tensor ``x``.

        Raises Unsupported when the cell cannot run here.
        """
        self.check_cell(cell)
        settings = self.apply_settings()
        s = self.prepare(cell, x)
        s.info = {**settings, **s.info}
        return s

    @abc.abstractmethod
    def prepare(self, cell: Cell, x) -> Session:
        """Prepare a checked ``cell`` for the host fp32 NCHW tensor ``x`` (see the module's boundaries)."""

    def close(self) -> None:
        """Free group-level resources."""


def register(cls: type[Runtime]) -> type[Runtime]:
    """Class decorator: the one place a runtime is made known."""
    REGISTRY[cls.name] = cls
    return cls


VARIANT = re.compile(r"^([^\[\]]+)\[([^\[\]]*)\]$")


def split_variant(name: str) -> tuple[str, dict[str, str]]:
    """``torch-compile[compile_mode=max-autotune,channels_last=on]`` -> ("torch-compile", {...}); a plain name has
    no settings."""
    from rtbench.errors import UserError

    m = VARIANT.match(name.strip())
    if not m:
        return name.strip(), {}
    opts = {}
    for item in filter(None, (x.strip() for x in m.group(2).split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise UserError(f"runtime {name!r}: settings are written key=value, e.g. torch[channels_last=on]")
        opts[key.strip()] = value.strip()
    return m.group(1).strip(), opts


def variant(name: str, settings: dict[str, str]) -> str:
    """The runtime name of ``name`` with ``settings`` (canonical: sorted; the plain name when there are none)."""
    return f"{name}[{','.join(f'{k}={v}' for k, v in sorted(settings.items()))}]" if settings else name


def get(name: str) -> type[Runtime]:
    """The runtime class of ``name`` (a plain name or a variant whose settings the runtime takes)."""
    from rtbench.errors import UserError

    load_all()
    plain, opts = split_variant(name)
    if plain not in REGISTRY:
        raise UserError(f"unknown runtime {plain!r}: use one of {', '.join(sorted(REGISTRY))} "
                        "(`rtbench list runtimes` shows which are available here)")
    cls = REGISTRY[plain]
    for key, value in opts.items():
        if key not in cls.settings:
            raise UserError(f"runtime {plain} has no setting {key!r}: use one of {', '.join(sorted(cls.settings))}")
        if cls.settings[key] and value not in cls.settings[key]:
            raise UserError(f"{plain}[{key}={value}]: use one of {', '.join(cls.settings[key])}")
    return cls


def variant_sweep(sweep: Sweep, name: str) -> Sweep:
    """``sweep`` with the settings of the runtime variant ``name`` over its options (for that group only)."""
    opts = split_variant(name)[1]
    if not opts:
        return sweep
    return dataclasses.replace(sweep, options=tuple(sorted({**dict(sweep.options), **opts}.items())))


def load_all() -> dict[str, type[Runtime]]:
    """Import the runtime modules (cheap: they import their engines lazily), then the user's plugins."""
    from rtbench.runtimes import null, onnxruntime, openvino, tensorrt, torch_eager  # noqa: F401

    load_plugins()
    return REGISTRY


def load_plugins() -> None:
    """Import the modules named in $RTBENCH_PLUGINS (and only those); each registers runtimes with @register.

    Worker processes get the parent's value, so a plugin runtime runs isolated like the built-in ones.
    """
    from rtbench.errors import UserError

    for name in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any failure of the user's module is the user's to fix
            raise UserError(f"{PLUGINS_ENV}: cannot import plugin module {name!r} ({type(e).__name__}: {e}): "
                            f"fix the module or its folder on PYTHONPATH, or unset {PLUGINS_ENV}") from None


def default_runtimes(device: str) -> tuple[str, ...]:
    names = [n for n, c in load_all().items() if c.is_default(device) and c.availability(device)[0]]
    return tuple(sorted(names, key=lambda n: (n != "torch", n)))  # the baseline first
