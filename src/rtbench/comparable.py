"""Can two runs be compared? Their sweeps and environment fingerprints as named fields, and what differs.

A difference makes the runs *not comparable* when the field changes speed, both runs recorded it, and it was
not named in ``--allow-different``. The fields that change speed:

- the sweep: ``model``, ``device``, ``boundary`` and each runtime option (``option.NAME``, e.g. the compile mode);
- the host: ``cpu`` (its model), ``cpu_cores_usable``, ``torch_threads``, ``torch_interop_threads``,
  ``float32_matmul_precision`` and every environment variable the fingerprint records (``env.NAME``: thread
  counts, TF32 overrides, allocator settings) except which GPU is visible (the ``gpu`` field says that);
- when either run is on a GPU: ``gpu`` (its model), ``driver``, ``cuda``, ``cudnn``, TF32 state (``tf32_matmul``,
  ``tf32_cudnn``) and the clocks policy as NVML recorded it (``gpu_power_limit_w``, ``gpu_sm_clock_max_mhz``,
  ``gpu_mem_clock_max_mhz``);
- the inference engines' versions: ``torch``, ``onnxruntime``, ``onnxruntime-gpu``, ``openvino``, ``tensorrt``,
  ``torch-tensorrt`` (comparing two versions is often the point: say so with e.g. ``--allow-different torch``);
- per cell: ``precision_ran`` (TF32 in an fp32 cell, OpenVINO's inference precision) and ``threads``.

Everything else recorded (rtbench's version and commit, Python, platform, other packages, weights...) is shown
when it differs and never blocks. A field that only one run recorded (an older fingerprint, no NVML) is shown
and does not block: what was not recorded cannot be compared.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from rtbench.errors import UserError
from rtbench.results import CellResult, Run, ran_precision

SWEEP = ("model", "device", "boundary")
HOST = ("cpu", "cpu_cores_usable", "torch_threads", "torch_interop_threads", "float32_matmul_precision")
GPU = ("gpu", "driver", "cuda", "cudnn", "tf32_matmul", "tf32_cudnn", "gpu_power_limit_w", "gpu_sm_clock_max_mhz",
       "gpu_mem_clock_max_mhz")
ENGINES = ("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "torch-tensorrt")
CELL = ("precision_ran", "threads")
SPEED_KEYS = SWEEP + HOST + GPU + ENGINES + CELL
NOT_SPEED_ENV = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")
SHOWN = ("cpu_cores", "rtbench", "git_commit", "python", "platform", "executable")  # fingerprint fields shown only


@dataclass(frozen=True)
class FieldDiff:
    """One field whose value differs between BASE and NEW (None: not recorded in that run)."""

    key: str
    base: str | None
    new: str | None
    speed: bool  # the field changes speed
    allowed: bool  # named in --allow-different
    cells: tuple[str, ...] = ()  # a cell field: the cells where it differs

    @property
    def blocking(self) -> bool:
        """Whether it makes the runs not comparable."""
        return self.speed and not self.allowed and self.base is not None and self.new is not None

    def to_dict(self) -> dict:
        return {"key": self.key, "base": self.base, "new": self.new, "changes_speed": self.speed,
                "allowed": self.allowed, "blocking": self.blocking, "cells": list(self.cells)}


def changes_speed(key: str, on_gpu: bool) -> bool:
    """Whether a difference in this field can change the measured speed (see the module's docstring)."""
    if key.startswith("option."):
        return True
    if key.startswith("env."):
        return key[4:] not in NOT_SPEED_ENV
    return key in SWEEP + HOST + ENGINES + CELL or (on_gpu and key in GPU)


def fields_of(run: Run) -> dict[str, str | None]:
    """A run's sweep and fingerprint as flat named fields (strings; None where not recorded)."""
    env, s = run.env, run.sweep
    nvml = env.get("nvml") or {}
    index = int(s.device.split(":")[1]) if s.device.startswith("cuda:") else 0
    gpu = next((g for g in nvml.get("gpus") or [] if g.get("index") == index), {})
    out = {"model": s.model, "device": s.device, "boundary": s.boundary, "weights": s.weights,
           **{f"option.{k}": v for k, v in s.options},
           **{k: env.get(k) for k in HOST + ("gpu", "cuda", "cudnn", "tf32_matmul", "tf32_cudnn", "torch") + SHOWN},
           "driver": nvml.get("driver"), "cuda_driver": nvml.get("cuda_driver"),
           **{f"gpu_{k}": gpu.get(k) for k in ("power_limit_w", "sm_clock_max_mhz", "mem_clock_max_mhz",
                                               "persistence_mode")},
           **{k: v for k, v in (env.get("packages") or {}).items() if k != "torch"},
           **{f"env.{k}": v for k, v in (env.get("env") or {}).items()}}
    return {k: None if v is None else str(v) for k, v in out.items()}


def _absent(key: str) -> str | None:
    """What a field missing from one run means: an unset option or variable is a recorded state."""
    return "default" if key.startswith("option.") else "unset" if key.startswith("env.") else None


def run_differences(base: Run, new: Run, allowed: Iterable[str]) -> list[FieldDiff]:
    """Every run-level field that differs, speed-relevant ones first."""
    fb, fn = fields_of(base), fields_of(new)
    on_gpu = any(r.sweep.device.startswith("cuda") for r in (base, new))
    allowed = set(allowed)
    out = []
    for k in list(fb) + [k for k in fn if k not in fb]:
        b, n = fb.get(k, _absent(k)), fn.get(k, _absent(k))
        if b != n:
            out.append(FieldDiff(k, b, n, changes_speed(k, on_gpu), k in allowed))
    return sorted(out, key=lambda d: not d.speed)


def _cell_fields(c: CellResult) -> dict[str, str | None]:
    if not c.info:
        return {"precision_ran": None, "threads": None}
    ran = ran_precision(c.cell.precision, c.info)
    if ov := c.info.get("inference_precision_ran"):
        ran += f" (OpenVINO {ov})"
    threads = c.info.get("threads")
    return {"precision_ran": ran, "threads": None if threads is None else str(threads)}


def cell_differences(base: CellResult, new: CellResult, allowed: Iterable[str]) -> list[FieldDiff]:
    """Cell-level fields that differ between a cell of BASE and the same cell of NEW."""
    fb, fn = _cell_fields(base), _cell_fields(new)
    return [FieldDiff(k, fb[k], fn[k], True, k in set(allowed), (base.label,)) for k in CELL if fb[k] != fn[k]]


def check_allowed(keys: str | Iterable[str], base: Run, new: Run) -> tuple[str, ...]:
    """``--allow-different`` as a tuple of field names; a name no run records and rtbench does not know is bad
    input (a typo would otherwise allow nothing)."""
    items = [k.strip() for k in (keys.split(",") if isinstance(keys, str) else keys)]
    items = [k for k in items if k]
    known = set(SPEED_KEYS) | set(fields_of(base)) | set(fields_of(new))
    bad = [k for k in items if k not in known and not k.startswith(("option.", "env."))]
    if bad:
        raise UserError(f"--allow-different: unknown field {', '.join(map(repr, bad))}: use field names such as "
                        f"{', '.join(SPEED_KEYS)}, option.NAME or env.NAME")
    return tuple(dict.fromkeys(items))
