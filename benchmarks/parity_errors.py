"""Output errors per runtime and precision, for the right input and for the negative controls.

    PYTHONPATH=src python3 benchmarks/parity_errors.py --out benchmarks/results [--device cpu|cuda]
        [--models resnet18,timm:vit_small_patch16_224,torchvision:mobilenet_v3_large] [--sizes 64,224,384,512]
        [--batch 4] [--runtimes torch,onnxruntime,...] [--precisions fp32,fp16,...] [--safety 4]

For each model (random weights, as rtbench builds them), size, runtime and precision available on the
device, one call of the runtime as rtbench prepares it, compared with the PyTorch fp32 reference by
``rtbench.parity.check``: the error (``parity.METRIC``) for the right input, against the reference for
another input, and against the batch rolled by one sample. Prints, per precision, a suggested tolerance
(``suggest``: --safety times the largest right-input error, below the smallest error of a wrong output:
the controls and, for fp32, every lower precision, so a silent downcast fails). Writes
<out>/parity-errors-<cpu|gpu name>.md with the date, machine, command, suggestions and every cell.
"""
from __future__ import annotations

import argparse
import math
import platform
import re
import shlex
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from rtbench import parity
from rtbench.hardware import device_name
from rtbench.models import resolve
from rtbench.runtimes import base
from rtbench.runtimes.base import Unsupported
from rtbench.runtimes.common import make_input, sync
from rtbench.spec import PRECISIONS, Cell, Sweep

MODELS = "resnet18,timm:vit_small_patch16_224,torchvision:mobilenet_v3_large"
# null does nothing (no outputs); torch-compile compiles per shape and precision (4-15 s on an H200, 7-24 s on
# a small CPU): name it in --runtimes to include it
SKIP = {"null", "torch-compile"}


def default_runtimes(device: str) -> list[str]:
    """Every registered runtime available on ``device`` but those in SKIP."""
    return [n for n, c in sorted(base.load_all().items()) if n not in SKIP and c.availability(device)[0]]


def measure(model_name: str, sizes: list[int], batch: int, device: str, runtimes: list[str],
            precisions: list[str], workdir: Path) -> list[dict]:
    """One row per (size, runtime, precision): the check's figures, or the reason it did not run."""
    try:
        model = resolve(model_name)
    except Exception as e:  # noqa: BLE001 - e.g. timm not installed: the other models still run
        return [_row(model_name, "–", "–", "–", why=_why(e))]
    rows = []
    refs = {}
    for size in sizes:
        if model.check_size(size) is None:
            x = make_input(batch, size, model.channels)
            refs[size] = (x, parity.reference(model, x, device),
                          parity.reference(model, parity.control_input(x), device))
    if not refs:
        return [_row(model_name, s, "–", "–", why=model.check_size(s)) for s in sizes]
    for rt in runtimes:
        cls = base.get(rt)
        for precision in precisions:
            if precision not in cls.precisions:
                continue
            sweep = Sweep(model=model_name, runtimes=(rt,), precisions=(precision,), sizes=tuple(refs),
                          batches=(batch,), device=device)
            try:
                runtime = cls(model, sweep, precision, workdir)
            except Exception as e:  # noqa: BLE001 - a runtime that cannot run here is a row, not a stop
                rows += [_row(model_name, s, rt, precision, why=_why(e)) for s in refs]
                continue
            for size, (x, ref, control_ref) in refs.items():
                rows.append(_one(model_name, runtime, Cell(model_name, rt, precision, size, batch, device),
                                 x, ref, control_ref))
            runtime.close()
    return rows


def _one(model_name: str, runtime, cell: Cell, x, ref, control_ref) -> dict:
    try:
        sess = runtime.session(cell, x)
        sess.call()
        sync(cell.device)
        out = np.asarray(sess.fetch(), dtype=np.float64)
        sess.close()
    except Exception as e:  # noqa: BLE001
        return _row(model_name, cell.size, cell.runtime, cell.precision, why=_why(e))
    res = parity.check(out, ref, cell.precision, control_ref=control_ref)
    other, permuted = (res["control"].get(k, {}) for k in ("other_input", "permuted_batch"))
    old = float(np.abs(out.reshape(ref.shape) - ref).max() / np.abs(ref).max()) if out.size == ref.size else None
    return _row(model_name, cell.size, cell.runtime, cell.precision, error=res.get("max_rel", math.inf),
                other=other.get("max_rel"), permuted=permuted.get("max_rel"), top1=res.get("top1_agree"),
                top1_other=other.get("top1_agree"), old=old, verdict=res["verdict"])


def _why(e: BaseException) -> str:
    kind = "unsupported" if isinstance(e, Unsupported) else type(e).__name__
    first = re.sub(r"\S*/([^/\s]+\.onnx)", r"\1", (str(e).strip().splitlines() or [""])[0])  # a temporary folder
    return f"{kind}: {first[:240]}"


def _row(model: str, size: int | str, runtime: str, precision: str, **figures) -> dict:
    return {"model": model, "size": size, "runtime": runtime, "precision": precision, **figures}


def round_up(v: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above ``v``."""
    k = math.floor(math.log10(v))
    return next(m * 10.0 ** k for m in (1, 2, 5, 10) if m * 10.0 ** k >= v * (1 - 1e-9))


def suggest(rows: list[dict], safety: float) -> list[dict]:
    """Per precision: the largest right-input error, the smallest wrong-output error, a suggested tolerance.

    Wrong outputs: the controls (another input, the rolled batch) and, for fp32, every lower precision's
    outputs (a silent downcast must fail). The suggestion is ``safety`` times the largest error, rounded up,
    when that leaves ``safety`` times room below the smallest wrong-output error; otherwise the geometric
    mean of the two (equal room on both sides, one significant digit), marked tight.
    """
    done = [r for r in rows if "error" in r]
    out = []
    for p in PRECISIONS:
        mine = [r for r in done if r["precision"] == p and math.isfinite(r["error"])]  # NaN outputs: a fault
        if not mine:
            continue
        largest = max(r["error"] for r in mine)
        wrong = [v for r in mine for v in (r["other"], r["permuted"]) if v is not None]
        if p == "fp32":
            wrong += [r["error"] for r in done if r["precision"] != "fp32"]
        smallest = min(wrong, default=math.inf)
        tol, tight = round_up(max(largest, 1e-12) * safety), False
        if tol * safety > smallest:
            tol, tight = float(f"{math.sqrt(largest * smallest):.0e}"), True
        out.append({"precision": p, "largest": largest, "smallest_wrong": smallest, "tolerance": tol,
                    "tight": tight, "separates": largest < tol < smallest, "current": parity.TOLERANCE[p]})
    return out


def _f(v) -> str:
    return "–" if v is None else f"{v:.2e}"


def table(rows: list[dict]) -> list[str]:
    lines = [("| model | size | runtime | precision | error | other input | permuted batch | top-1 agree "
              "(other input) | max abs / max abs ref | verdict at current tolerance |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" not in r:
            lines.append(f"| {r['model']} | {r['size']} | {r['runtime']} | {r['precision']} | {r['why']} "
                         "| | | | | |")
            continue
        top1 = "–" if r["top1"] is None else f"{r['top1']:.2f}"
        top1 += "" if r["top1_other"] is None else f" ({r['top1_other']:.2f})"
        lines.append(f"| {r['model']} | {r['size']} | {r['runtime']} | {r['precision']} | {_f(r['error'])} | "
                     f"{_f(r['other'])} | {_f(r['permuted'])} | {top1} | {_f(r['old'])} | {r['verdict']} |")
    return lines


def suggestion_lines(sugg: list[dict], safety: float) -> list[str]:
    lines = [("| precision | largest error | smallest wrong-output error | suggested tolerance | room above the "
              "largest | room below the smallest | current tolerance |"), "|---|---|---|---|---|---|---|"]
    for s in sugg:
        note = "" if s["separates"] else " (does NOT separate)"
        note += " tight" if s["tight"] else ""
        above, below = s["tolerance"] / max(s["largest"], 1e-30), s["smallest_wrong"] / s["tolerance"]
        lines.append(f"| {s['precision']} | {_f(s['largest'])} | {_f(s['smallest_wrong'])} | "
                     f"{s['tolerance']:.0e}{note} | {above:.1f}x | {below:.1f}x | {s['current']:.0e} |")
    return lines


def machine(device: str) -> str:
    import torch

    facts = [device_name(device), platform.machine(), f"Python {platform.python_version()}",
             f"torch {torch.__version__}"]
    if device.startswith("cuda"):
        facts.append(f"CUDA {torch.version.cuda}")
    facts += [f"{name} {v}" for name in ("onnxruntime", "openvino", "timm", "torchvision") if (v := _version(name))]
    return ", ".join(facts)


def _version(dist: str) -> str | None:
    import importlib.metadata as md

    for d in (dist + "-gpu", dist) if dist == "onnxruntime" else (dist,):
        try:
            return md.version(d)
        except md.PackageNotFoundError:
            continue
    return None


def page(rows: list[dict], args, command: str, name: str, started: datetime, seconds: float, done: bool) -> str:
    """The results page: command, date, machine, suggested tolerances and every cell."""
    sugg = suggest(rows, args.safety)
    return "\n".join([
        f"# Parity errors per runtime and precision ({name})", "",
        f"Command: `{command}`  ",
        f"Date: {started:%Y-%m-%d %H:%M} UTC, {seconds:.0f} s{'' if done else ' (partial: still running)'}  ",
        f"Machine: {machine(args.device)}, device `{args.device}`", "",
        (f"Error = {parity.METRIC} (`rtbench.parity.error`), against the PyTorch fp32 reference on the same "
         f"device, for the right input, for another input (`parity.control_input`) and for the batch of "
         f"{args.batch} rolled by one sample. Random weights as rtbench builds them (BatchNorm statistics "
         "from a seeded pass). Top-1 agree: with the right reference (with the other input's). The last "
         "figure is the earlier metric (max abs error / max abs reference), for comparison with older results."),
        "", "## Suggested tolerances", "", *suggestion_lines(sugg, args.safety), "", "## Every cell", "",
        *table(rows), ""])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results", help="folder for parity-errors-<machine>.md")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--sizes", default="64,224,384,512")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--runtimes", default=None, help="default: every runtime available on the device but "
                    "torch-compile (a compile per shape and precision)")
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--safety", type=float, default=4.0)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", module="onnxconverter_common")  # one line per rounded fp16 weight
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    runtimes = args.runtimes.split(",") if args.runtimes else default_runtimes(args.device)
    precisions = args.precisions.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    cuda = args.device.startswith("cuda")
    name = re.sub(r"[^a-z0-9]+", "-", device_name(args.device).lower()) if cuda else "cpu"
    command = "PYTHONPATH=src python3 benchmarks/parity_errors.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    path = Path(args.out) / f"parity-errors-{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="parity-errors-") as workdir:
        for m in args.models.split(","):
            rows += measure(m, sizes, args.batch, args.device, runtimes, precisions, Path(workdir))
            print(f"{m}: done at {time.perf_counter() - t0:.0f} s", flush=True)
            path.write_text(page(rows, args, command, name, started, time.perf_counter() - t0, done=False))
    path.write_text(page(rows, args, command, name, started, time.perf_counter() - t0, done=True))
    print("\n".join(suggestion_lines(suggest(rows, args.safety), args.safety)))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
