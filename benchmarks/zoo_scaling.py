"""Does a zoo scale over the GPUs of one host, and do its cells still agree with one GPU's?

    python benchmarks/zoo_scaling.py --results DIR [--phases single,local,ray,interference,page]
        [--models resnet18,resnet50,...] [--runtimes torch,onnxruntime,torch-compile] [--precision fp16]
        [--sizes 224] [--batches 1,8,32] [--budget 20] [--device cuda|cpu] [--lanes N] [--copy-to DIR]
        [--phase-timeout 570]

Phases, each an `rtbench run` in a fresh process (its wall time from process start to exit), each with its own
store, ONNX export cache and torch.compile caches (TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR), so no phase
reuses another's exports or compiled kernels:

- ``single``: the zoo on one GPU (``--gpus 0 --no-interference``);
- ``local``: the same zoo on every GPU of the host (``--gpus all --no-interference``);
- ``ray``: the same zoo through ``--executor ray`` on a Ray cluster started on this host;
- ``interference``: a zoo of one model per GPU plus one, ``--gpus all --interference``: one reference cell
  alone, and again with every other GPU busy;
- ``page``: reads what the phases stored under DIR and writes DIR/zoo-scaling.md: the date, the machine, the
  commit, each phase's command and wall time, the ratio of each to ``single`` (the target: at most 0.55 on two
  GPUs), every cell of ``local`` and ``ray`` against the same cell of ``single`` (only cells measured on the same
  GPU model are compared), and the interference figures.

Phases already in DIR are kept, so the phases can run in separate commands (the page needs them all). On a CPU
(``--device cpu``) the ``local`` phase uses ``--cpu-lanes N`` and the Ray cluster has one lane per node: a check
that the script and the executors work, not a measure of scaling.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rtbench import zoo_store  # noqa: E402
from rtbench.results import Run  # noqa: E402

PHASES = ("single", "local", "ray", "interference", "page")
MODELS = "resnet18,resnet50,mobilenet_v3_large,efficientnet_b0,convnext_tiny,timm:vit_small_patch16_224"
TARGET = 0.55  # wall time on two GPUs over one GPU's


def phase_args(phase: str, a) -> list[str]:
    """The `rtbench run` arguments of one phase."""
    models = a.models.split(",")
    if phase == "interference":
        models = models[:a.lanes + 1]
    grid = ["--model", ",".join(models), "--runtimes", a.runtimes, "--precision", a.precision, "--sizes", a.sizes,
            "--batches", a.batches, "--device", a.device, "--budget", str(a.budget)]
    cpu = a.device == "cpu"
    where = {"single": ["--cpu-lanes", "1"] if cpu else ["--gpus", "0"],
             "local": ["--cpu-lanes", str(a.lanes)] if cpu else ["--gpus", "all"],
             "ray": ["--executor", "ray"],
             "interference": (["--cpu-lanes", str(a.lanes)] if cpu else ["--gpus", "all"])}[phase]
    return grid + where + (["--interference"] if phase == "interference" else
                           ["--no-interference"] if phase != "ray" else [])


def run_phase(phase: str, a, results: Path) -> dict:
    """Run one phase in a fresh process; returns (and stores as DIR/PHASE/phase.json) its record."""
    d = results / phase
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    args = ["run", *phase_args(phase, a), "--out", str(d)]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(d / "inductor-cache"), "TRITON_CACHE_DIR": str(d / "triton"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    if phase == "ray":  # the cluster this run starts is this host's alone: on the loopback address
        env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    t0 = time.perf_counter()
    with open(d / "stdout.txt", "w") as so, open(d / "stderr.txt", "w") as se:
        p = subprocess.Popen([sys.executable, "-m", "rtbench", *args], stdout=so, stderr=se, env=env,
                             start_new_session=True)
        try:
            code = p.wait(timeout=a.phase_timeout)
        except subprocess.TimeoutExpired:  # Ctrl-C: the zoo is marked interrupted (resumable), then it ends
            os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            code = f"stopped after {a.phase_timeout:g} s"
    wall = time.perf_counter() - t0
    err = (d / "stderr.txt").read_text()
    zoo_id = next((ln.split()[1].rstrip(":") for ln in err.splitlines() if ln.startswith("zoo zoo-")), None)
    rec = {"phase": phase, "command": "rtbench " + shlex.join(args), "wall_s": wall, "returncode": code,
           "zoo": zoo_id, "host": socket.gethostname(), "finished": datetime.now(timezone.utc).isoformat()}
    (d / "phase.json").write_text(json.dumps(rec, indent=1))
    print(f"{phase}: exit {code}, {wall:.1f} s, zoo {zoo_id}", flush=True)
    if code != 0:
        print(err[-3000:], file=sys.stderr)
    return rec


def load_phase(results: Path, phase: str) -> tuple[dict, dict, dict] | None:
    """(phase record, zoo record, {(model, runtime, precision, size, batch): (accelerator, cell)})."""
    f = results / phase / "phase.json"
    if not f.exists():
        return None
    rec = json.loads(f.read_text())
    zoo = zoo_store.load(results / phase, rec["zoo"]) if rec["zoo"] else None
    cells = {}
    for r in (zoo or {}).get("runs", []):
        if r["role"] != "sweep":
            continue
        for c in Run.load(r["run_id"], results / phase).cells:
            cells[(r["model"], *c.cell.key[:4])] = (r["accelerator"], c)
    return rec, zoo, cells


def half(c) -> float:
    return (c.stats["ci_high_ms"] - c.stats["ci_low_ms"]) / 2


def agreement(base: dict, other: dict) -> tuple[list[list[str]], dict]:
    """Each cell measured in both, on the same GPU model: |m - m1| <= sqrt(h1^2 + h^2) (both runs' noise), and
    whether m lies inside the 1-GPU CI; the rows and the counts."""
    rows, n = [], {"compared": 0, "held": 0, "inside": 0, "other_gpu": 0, "status_differs": 0}
    for key, (acc1, c1) in sorted(base.items()):
        if key not in other:
            continue
        acc2, c2 = other[key]
        if acc1 != acc2:
            n["other_gpu"] += 1
            continue
        if c1.status != c2.status:
            n["status_differs"] += 1
            rows.append([*map(str, key), str(c1.status), str(c2.status), "–", "–", "status differs"])
            continue
        if not (c1.measured and c2.measured):
            continue
        m1, m2, h1, h2 = c1.ms, c2.ms, half(c1), half(c2)
        held, inside = abs(m2 - m1) <= math.hypot(h1, h2), c1.stats["ci_low_ms"] <= m2 <= c1.stats["ci_high_ms"]
        n["compared"] += 1
        n["held"] += held
        n["inside"] += inside
        rows.append([*map(str, key), f"{m1:.4f} ±{h1:.4f}", f"{m2:.4f} ±{h2:.4f}", f"{100 * (m2 / m1 - 1):+.1f}%",
                     "yes" if inside else "no", "yes" if held else "**no**"])
    return rows, n


def table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |"
                                                                                   for r in rows])


def machine() -> str:
    import torch

    from rtbench.hardware import cpu_model

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return (f"{socket.gethostname()}: {len(gpus)} GPU(s) {', '.join(gpus) or '(none)'}; CPU {cpu_model()}, "
            f"{os.cpu_count()} logical cores; Python {platform.python_version()}, torch {torch.__version__}")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def write_page(a, results: Path, argv: list[str]) -> Path | None:
    got = {ph: load_phase(results, ph) for ph in PHASES[:-1]}
    missing = [ph for ph, v in got.items() if v is None]
    if got["single"] is None:
        print(f"page: the single phase is missing in {results}; run it first", file=sys.stderr)
        return None
    single = got["single"]
    lines = [f"# Zoo scaling: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}", "",
             f"Machine: {machine()}. rtbench commit {commit()}.", "",
             f"Written by `python benchmarks/zoo_scaling.py {shlex.join(argv)}`." + (
                 f" Phases not run: {', '.join(missing)}." if missing else ""), "",
             "Each phase is one `rtbench run` in a fresh process, with its own store and its own export and "
             "compile caches; wall time from process start to exit, reports included.", "",
             "## Wall time", ""]
    rows = []
    for ph in ("single", "local", "ray", "interference"):
        if got[ph] is None:
            continue
        rec, zoo = got[ph][0], got[ph][1] or {}
        ratio = rec["wall_s"] / single[0]["wall_s"] if ph in ("local", "ray") and rec["returncode"] == 0 \
            and single[0]["returncode"] == 0 else None
        lanes = len((zoo.get("result") or {}).get("lanes", []))
        rows.append([ph, f"`{rec['command']}`", rec["host"], str(lanes), f"{rec['wall_s']:.1f}",
                     f"{ratio:.3f}" + (" (target ≤ 0.55: " + ("met" if ratio <= TARGET else "**not met**") + ")")
                     if ratio is not None else "–", str(rec["returncode"]), zoo.get("status", "–")])
    lines += [table(["phase", "command", "host", "lanes", "wall s", "÷ single", "exit", "zoo"], rows), ""]
    for ph in ("local", "ray"):
        if got[ph] is None:
            continue
        rows, n = agreement(single[2], got[ph][2])
        lines += [f"## Cells of `{ph}` against `single`", "",
                  f"{n['compared']} cells measured in both on the same GPU model: {n['held']} within "
                  f"√(h1² + h2²) of each other (both runs' 95% CI half-widths: the criterion for two runs that each "
                  f"have their own noise), {n['inside']} with the estimate inside the 1-GPU run's CI; "
                  f"{n['status_differs']} cells with another status; {n['other_gpu']} cells on another GPU model "
                  "(not compared).", "",
                  table(["model", "runtime", "precision", "size", "batch", "single ms", f"{ph} ms", "change",
                         "inside 1-GPU CI", "within √(h1²+h2²)"], rows), ""]
    if got["interference"] is not None and got["interference"][1]:
        zoo, out = got["interference"][1], results / "interference"
        md = out / zoo["id"] / "zoo.md"
        text = md.read_text() if md.exists() else ""
        part = text.split("## Interference check", 1)[1].split("\n## ", 1)[0] if "## Interference check" in text else ""
        warn = [ln for ln in text.splitlines() if ln.startswith("- **interference**")]
        lines += ["## Interference", "", part.strip() or "The interference zoo stored no check.", ""] + warn + [""]
    page = results / "zoo-scaling.md"
    page.write_text("\n".join(lines))
    print(page.read_text())
    return page


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", required=True, type=Path)
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--runtimes", default="torch,onnxruntime,torch-compile")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--sizes", default="224")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per model run")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--lanes", type=int, default=None, help="GPUs (or CPU lanes) of the host; default: all")
    ap.add_argument("--copy-to", type=Path, default=None, help="copy the results folder here at the end ($OUT)")
    ap.add_argument("--phase-timeout", type=float, default=570.0, help="seconds a phase may run before it is "
                    "stopped (and marked so on the page): within one device command")
    a = ap.parse_args()
    if a.lanes is None:
        import torch

        a.lanes = torch.cuda.device_count() if a.device != "cpu" else 2
    phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    if bad := [p for p in phases if p not in PHASES]:
        raise SystemExit(f"unknown phase {bad[0]!r}: use {', '.join(PHASES)}")
    a.results.mkdir(parents=True, exist_ok=True)
    for ph in phases:
        if ph != "page":
            run_phase(ph, a, a.results)
    if "page" in phases:
        write_page(a, a.results, sys.argv[1:])
    if a.copy_to is not None:
        shutil.copytree(a.results, a.copy_to / a.results.name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("inductor-cache", "triton", "cache"))


if __name__ == "__main__":
    main()
