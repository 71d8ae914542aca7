"""What to measure: Cell, Sweep and TimingPolicy, validated with errors that name the fix."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Iterable

from rtbench.errors import UserError

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
BOUNDARIES = ("compute", "end-to-end")
SEED_SIZES = (224, 256, 384, 512)
SEED_BATCHES = (1, 4, 8, 16)
MIN_SIZE = 32


DEFAULT_CELL_TIMEOUT_S = 600.0
ROUNDS_SHARE = 0.5  # the rounds get at least this share of the budget, even when set-up took the rest


def _seconds(value, what: str, flag: str, example: float) -> float:
    """``value`` as a finite number of seconds above zero; else a UserError naming the fix."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        t = math.nan
    if not (math.isfinite(t) and t > 0):
        raise UserError(f"{what} {value!r} is invalid: give a positive number of seconds, e.g. {flag} {example:g}")
    return t


def check_cell_timeout(value) -> float:
    """The per-cell timeout in seconds: a finite number above zero."""
    return _seconds(value, "cell timeout", "--cell-timeout", DEFAULT_CELL_TIMEOUT_S)


def check_budget(value) -> float:
    """A run budget in seconds: a finite number above zero."""
    return _seconds(value, "run budget", "--budget", 300)


@dataclass(frozen=True)
class TimingPolicy:
    """How cells are timed: a full warm-up on a cell's first visit, then interleaved rounds of short blocks.

    Every cell is measured in at least ``rounds`` rounds. A round is one block of every cell still being
    measured, in a seeded shuffled order (rtbench.rounds); a block is ``rewarm_s`` of untimed calls, then
    timed calls for ``block_s`` (at least ``block_min_calls``). Rounds continue, up to ``max_rounds``, while
    the run's ``budget_s`` (seconds, the whole run) lasts, so that they span it; blocks grow up to
    ``max_block_s`` when ``max_rounds`` rounds would not fill it, and shrink (down to one call) when the
    minimum rounds would not fit. When time runs short, cells whose 95% CI half-width is above ``ci_target``
    (relative to the estimate) get it first; cells left above it are flagged.
    """

    warmup_min_calls: int = 5
    warmup_min_s: float = 0.2
    warmup_max_s: float = 3.0
    warmup_window: int = 5
    warmup_tolerance: float = 0.05
    rounds: int = 5
    max_rounds: int = 40
    block_s: float = 0.1
    max_block_s: float = 1.0
    block_min_calls: int = 1
    rewarm_s: float = 0.02
    ci_target: float = 0.01
    budget_s: float = 300.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("warmup_min_calls", "warmup_window", "block_min_calls"):
            if getattr(self, name) < 1:
                raise UserError(f"timing policy: {name} must be at least 1 (got {getattr(self, name)})")
        for name in ("warmup_min_s", "warmup_max_s", "block_s", "max_block_s", "rewarm_s"):
            if not getattr(self, name) >= 0:
                raise UserError(f"timing policy: {name} must be >= 0 seconds (got {getattr(self, name)})")
        if not 2 <= self.rounds <= self.max_rounds:
            raise UserError(f"timing policy: rounds must be at least 2 and at most max_rounds ({self.max_rounds}); "
                            f"got {self.rounds}: e.g. --rounds 5")
        if self.max_block_s < self.block_s:
            raise UserError(f"timing policy: max_block_s ({self.max_block_s}) must be >= block_s ({self.block_s})")
        if not 0 < self.ci_target < 1:
            raise UserError(f"timing policy: ci_target is a fraction in (0, 1), e.g. 0.01 for 1% (got {self.ci_target})")
        check_budget(self.budget_s)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TimingPolicy":
        """A stored policy; fields of older rtbench versions (per-cell stop rule) are dropped."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Cell:
    """One measured point of a sweep."""

    model: str
    runtime: str
    precision: str
    size: int
    batch: int
    device: str
    boundary: str = "compute"

    @property
    def key(self) -> tuple:
        return (self.runtime, self.precision, self.size, self.batch, self.boundary)

    def label(self) -> str:
        return f"{self.runtime} {self.precision} {self.size}px b{self.batch}"


@dataclass(frozen=True)
class Sweep:
    """The grid of one invocation plus its timing policy and runtime options."""

    model: str = "resnet18"
    runtimes: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ("fp32",)
    sizes: tuple[int, ...] = SEED_SIZES
    batches: tuple[int, ...] = SEED_BATCHES
    device: str = "cpu"
    boundary: str = "compute"
    weights: str = "random"
    policy: TimingPolicy = field(default_factory=TimingPolicy)
    options: tuple[tuple[str, str], ...] = ()
    # when given, only these cells of the grid, as (runtime, precision, size, batch): e.g. the arms of a tune
    # race, each at its own batch
    only: tuple[tuple[str, str, int, int], ...] = ()

    def __post_init__(self) -> None:
        for p in self.precisions:
            if p not in PRECISIONS:
                raise UserError(f"unknown precision {p!r}: use one of {', '.join(PRECISIONS)}")
        if self.boundary not in BOUNDARIES:
            raise UserError(f"unknown boundary {self.boundary!r}: use one of {', '.join(BOUNDARIES)}")
        if self.weights not in ("random", "pretrained"):
            raise UserError(f"unknown weights {self.weights!r}: use random or pretrained")
        for s in self.sizes:
            if s < MIN_SIZE:
                raise UserError(f"input size {s} is too small: use sizes of at least {MIN_SIZE} px")
        for b in self.batches:
            if b < 1:
                raise UserError(f"batch size {b} is invalid: use whole numbers of at least 1")
        if not (self.runtimes and self.precisions and self.sizes and self.batches):
            raise UserError("empty sweep: give at least one runtime, precision, size and batch")

    def option(self, name: str, default: str | None = None) -> str | None:
        return dict(self.options).get(name, default)

    def cells(self) -> list[Cell]:
        """Cells in run order: runtime, precision, size, then ascending batch (for the OOM rule)."""
        only = set(self.only)
        return [
            Cell(self.model, rt, p, s, b, self.device, self.boundary)
            for rt in self.runtimes
            for p in self.precisions
            for s in self.sizes
            for b in sorted(self.batches)
            if not only or (rt, p, s, b) in only
        ]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["options"] = dict(self.options)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Sweep":
        d = dict(d)
        d["policy"] = TimingPolicy.from_dict(d.get("policy", {}))
        d["options"] = tuple(sorted(d.get("options", {}).items()))
        for k in ("runtimes", "precisions", "sizes", "batches"):
            d[k] = tuple(d[k])
        d["only"] = tuple(tuple(c) for c in d.get("only", ()))
        return cls(**d)


def parse_list(text: str | Iterable, what: str, kind: type = str) -> tuple:
    """Parse '224,256' (or an iterable) into a tuple; bad items raise UserError naming the fix."""
    # commas inside a runtime variant's brackets (torch[channels_last=on,threads=1]) do not split
    items = [x.strip() for x in re.split(r",(?![^\[]*\])", text)] if isinstance(text, str) else list(text)
    items = [x for x in items if x != ""]
    if not items:
        raise UserError(f"--{what} is empty: give a comma-separated list, e.g. --{what} {_example(what)}")
    if kind is int:
        out = []
        for x in items:
            try:
                out.append(int(x))
            except (TypeError, ValueError):
                raise UserError(f"--{what}: {x!r} is not a whole number; use e.g. --{what} {_example(what)}") from None
        return tuple(dict.fromkeys(out))
    return tuple(dict.fromkeys(str(x) for x in items))


def _example(what: str) -> str:
    return {"sizes": "224,256", "batches": "1,4,8", "precision": "fp32,fp16", "runtimes": "torch,onnxruntime"}.get(
        what, "a,b"
    )
