"""Output parity: does a runtime reproduce the PyTorch fp32 reference, and can the check tell a wrong output?

Use, once per (size, batch) for the references and once per cell for the check::

    ref = parity.reference(model, x, device)                          # PyTorch fp32 (an ONNX file: ORT CPU)
    control_ref = parity.reference(model, parity.control_input(x), device)
    result = parity.check(out, ref, precision, model.parity_reference, control_ref)
    result["verdict"]                                                 # "ok", "mismatch" or "inconclusive"

**The error** (``max_rel``) is, per sample, the largest absolute difference divided by the standard
deviation of that sample's reference outputs; the figure is the largest over the batch. The reference's
own spread is the scale because it is what carries the information: an offset shared by all outputs (a
bias) inflates ``max |ref|`` without making outputs easier to tell apart, so an error relative to
``max |ref|`` looks small even for another input's outputs. Per sample rather than over the whole batch so
that one sample with large outputs cannot hide another sample's error, and batch 1 and batch N give the
same figure for the same image. ``max_abs`` (largest absolute difference) and ``top1_agree`` are recorded beside it.

**Negative controls.** The same comparison is made against outputs the runtime must *not* match: the
reference for another input (``control_input``) and, for a batch of several, the reference with its
samples rolled by one. Each control must fail the tolerance; one that passes means this model and input
cannot show a wrong output at this tolerance (e.g. outputs that do not depend on the input), and the
verdict is ``inconclusive`` with the reason, not a fault of the runtime. ``ok`` is True only for ``ok``.
"""
from __future__ import annotations

import copy
import functools

import numpy as np

METRIC = "max |out - ref| / std(ref), per sample"
CONTROL_SEED = 4321

# Largest allowed error (``METRIC``) per precision, each from measurement by benchmarks/parity_errors.py. CPU:
# benchmarks/results/parity-errors-cpu.md (resnet18, vit_small, mobilenet_v3_large; 64-512 px). The H200
# seed grid (benchmarks/results/h200-2026-11-28/seed-grid.sqlite) holds the earlier metric, max abs error
# over max |ref|, which the CPU table shows to be 2.8-5x smaller than this one for these models.
TOLERANCE = {
    # CPU: ONNX Runtime and OpenVINO fp32 at most 1.0e-5 (4.9x room); the smallest fp16/bf16 error is 2.6e-3.
    # H200 fp32, earlier metric: at most 9.9e-7 (so at most about 5e-6 here); fp16 at least 4.9e-4 (at least
    # about 1.4e-3 here), 28x over this bound: a silent fp16 downcast fails strict fp32.
    "fp32": 5e-5,
    # H200 (benchmarks/results/h200-2026-11-30/parity-errors-nvidia-h200.md): torch and ONNX Runtime TF32 at
    # most 1.3e-2; smallest control 3.7e-1 (5.5x room above, 5.2x below).
    "tf32": 7e-2,
    # CPU: torch fp16 at most 2.9e-2, ONNX Runtime's fp16 model 1.7e-2; smallest control 3.7e-1 (3.5x room
    # above, 3.7x below). H200 (same file as tf32): torch fp16 at most 2.4e-2, smallest control 3.7e-1.
    "fp16": 1e-1,
    # CPU: torch and OpenVINO bf16 at most 2.0e-1 (mobilenet_v3_large); smallest control 3.7e-1 (resnet18 at
    # 512 px): tight, 1.5x room above and 1.2x below; a cell whose own control passes is inconclusive. H200: torch
    # bf16 at most 2.2e-1, smallest control 3.7e-1.
    "bf16": 3e-1,
}


def error(out: np.ndarray, ref: np.ndarray) -> float:
    """The largest error over the batch, per sample in units of the reference sample's standard deviation.

    Both arrays have the batch first; a sample whose reference outputs are all equal scores ``inf`` unless
    the outputs are equal too (``check`` calls such a reference inconclusive before it gets here).
    """
    out = np.asarray(out, dtype=np.float64).reshape(len(ref), -1)
    ref = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
    diff = np.abs(out - ref).max(axis=1)
    scale = ref.std(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_sample = np.where(diff == 0, 0.0, diff / scale)
    return float(per_sample.max())


def control_input(x):
    """A different input of the same shape, dtype, mean and spread as ``x``, seeded (every process makes it alike)."""
    import torch

    z = torch.randn(tuple(x.shape), generator=torch.Generator().manual_seed(CONTROL_SEED))
    xf = x.float()
    return (z * xf.std() + xf.mean()).to(x.dtype)


def check(out: np.ndarray, ref: np.ndarray, precision: str, against: str = "PyTorch fp32",
          control_ref: np.ndarray | None = None) -> dict:
    """Compare ``out`` with ``ref`` at the tolerance of ``precision``, with the negative controls; a JSON-ready dict.

    ``control_ref`` is the reference for ``control_input(x)``; without it only the rolled-batch control runs
    (batch > 1). Keys: ``verdict`` (ok, mismatch, inconclusive), ``ok``, ``reason`` (unless ok), ``max_abs``,
    ``max_rel`` (the error, ``METRIC``), ``top1_agree``, ``tolerance``, ``reference`` (``against``),
    ``metric`` and ``control`` ({name: {"max_rel", "top1_agree"}} for each control that ran).
    """
    tol = TOLERANCE[precision]
    res: dict = {"tolerance": tol, "reference": against, "metric": METRIC, "control": {}}
    ref = np.asarray(ref, dtype=np.float32)
    out = np.asarray(out, dtype=np.float32)
    if out.size != ref.size:
        return _verdict(res, "mismatch", f"output shape {out.shape} differs from the reference's {ref.shape} "
                                         f"({against})")
    out, ref = out.reshape(len(ref), -1), ref.reshape(len(ref), -1)
    if not np.all(np.isfinite(out)):
        return _verdict(res | {"max_abs": float("inf"), "max_rel": float("inf")}, "mismatch", "output has NaN or Inf")
    res.update(max_abs=float(np.abs(out - ref).max()), top1_agree=_top1(out, ref))
    if not np.all(np.isfinite(ref)):
        return _verdict(res, "inconclusive", f"the reference ({against}) has NaN or Inf: the model overflows")
    if np.any(ref.std(axis=1) == 0):
        return _verdict(res, "inconclusive", f"a sample's reference outputs ({against}) are all equal: "
                                             "they have no spread to measure an error against")
    res["max_rel"] = error(out, ref)
    controls = {}
    if control_ref is not None:
        controls["other_input"] = np.asarray(control_ref, dtype=np.float32).reshape(ref.shape)
    if len(ref) > 1:
        controls["permuted_batch"] = np.roll(ref, 1, axis=0)
    for name, wrong in controls.items():
        res["control"][name] = {"max_rel": error(out, wrong), "top1_agree": _top1(out, wrong)}
    if res["max_rel"] > tol:
        return _verdict(res, "mismatch", f"outputs differ from {against}: error {res['max_rel']:.2e} "
                                         f"> {tol:.0e} ({precision}; {METRIC})")
    passed = [n for n, c in res["control"].items() if c["max_rel"] <= tol]
    if passed:
        closest = min(res["control"][n]["max_rel"] for n in passed)
        return _verdict(res, "inconclusive", f"the check cannot tell a wrong output: compared with the reference "
                        f"for a wrong input ({', '.join(passed)}) the error is {closest:.2e}, within {tol:.0e} "
                        f"({precision}); outputs barely depend on the input for this model")
    return _verdict(res, "ok", None)


def _top1(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean(out.argmax(axis=1) == ref.argmax(axis=1)))


def _verdict(res: dict, verdict: str, reason: str | None) -> dict:
    res.update(verdict=verdict, ok=verdict == "ok")
    if reason:
        res["reason"] = reason
    return res


@functools.lru_cache(maxsize=1)
def _on_device(module, device: str):
    """One fp32 copy of the module on the GPU, reused for every (size, batch) of a worker's cells."""
    return copy.deepcopy(module).to(device)


def reference(model, x, device: str) -> np.ndarray:
    """PyTorch fp32 outputs (TF32 off) for host input ``x`` on ``device``; ONNX Runtime CPU for an ONNX file."""
    if not getattr(model, "has_module", True):
        return model.reference(x)

    import torch

    from rtbench.runtimes.common import set_tf32

    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark
    set_tf32("fp32")
    torch.backends.cudnn.benchmark = False  # one call per shape: autotuning it would cost more than it runs
    try:
        m = model.module if device == "cpu" else _on_device(model.module, device)
        with torch.inference_mode():
            return m(x.to(device)).float().cpu().numpy()
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = flags
