"""The Python API: ``rtbench.run(...)`` returns a Run; ``rtbench.load(run_id, out)`` reads one back;
``rtbench.compare(base, new)`` compares two runs cell by cell."""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

from rtbench.comparison import THRESHOLD_PCT as DEFAULT_THRESHOLD_PCT
from rtbench.errors import UserError
from rtbench.results import Run
from rtbench.spec import (DEFAULT_CELL_TIMEOUT_S, PRECISIONS, SEED_BATCHES, SEED_SIZES, Cell, Sweep, TimingPolicy,
                          parse_list)

# The defaults of a run, here only (the CLI shows and uses these): the seed study's grid on the best device
DEFAULT_OUT = "rtbench-results"
DEFAULT_MODEL = "resnet18"
DEFAULT_PRECISION = "fp32"
DEFAULT_DEVICE = "auto"
DEFAULT_BOUNDARY = "compute"
DEFAULT_WEIGHTS = "random"


def resolve_device(device: str) -> str:
    """'auto' takes the GPU when there is one; 'cuda:N' must exist."""
    import torch

    device = (device or DEFAULT_DEVICE).strip().lower()
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: no CUDA GPU is visible here; use --device cpu or auto")
        idx = device.split(":", 1)[1] if ":" in device else "0"
        if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
            raise UserError(f"--device {device}: this machine has GPUs 0..{torch.cuda.device_count() - 1}; "
                            "use one of those, e.g. --device cuda:0")
        return f"cuda:{idx}"
    raise UserError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def parse_precisions(precision: str | Iterable[str]) -> tuple[str, ...]:
    """'fp32,fp16' (or an iterable) -> ('fp32', 'fp16'); an unknown precision raises UserError."""
    precisions = parse_list(precision, "precision")
    for p in precisions:
        if p not in PRECISIONS:
            raise UserError(f"unknown precision {p!r}: use one of {', '.join(PRECISIONS)}")
    return precisions


def make_sweep(model: str = DEFAULT_MODEL, runtimes: str | Iterable[str] | None = None,
               precision: str | Iterable[str] = DEFAULT_PRECISION, sizes: str | Iterable[int] = SEED_SIZES,
               batches: str | Iterable[int] = SEED_BATCHES, device: str = DEFAULT_DEVICE,
               boundary: str = DEFAULT_BOUNDARY, weights: str = DEFAULT_WEIGHTS, policy: TimingPolicy | None = None,
               options: dict | None = None, load_model: bool = True) -> Sweep:
    """Validate every argument (errors name the fix) and build the Sweep. ``load_model=False`` checks the model's
    name only: in a zoo a model that fails to load fails its own cells (in the workers), not the whole run."""
    from rtbench.models import resolve
    from rtbench.runtimes import base

    dev = resolve_device(device)
    precisions = parse_precisions(precision)
    if runtimes is None or runtimes == "" or runtimes == "all":
        rts = base.default_runtimes(dev)
    else:
        rts = parse_list(runtimes, "runtimes")
        for r in rts:
            base.get(r)
    sweep = Sweep(model=model, runtimes=rts, precisions=precisions, sizes=parse_list(sizes, "sizes", int),
                  batches=parse_list(batches, "batches", int), device=dev, boundary=boundary, weights=weights,
                  policy=policy or default_policy(dev), options=tuple(sorted((options or {}).items())))
    model = resolve(sweep.model, sweep.weights)
    if load_model:
        _check_model(model)  # a bad model fails here, before anything is written
    return sweep


def _check_model(model) -> None:
    """An entry point is called once here: one that fails or returns no nn.Module is bad input, not a sweep of
    failed cells (torchvision and timm names are checked by name; ONNX files when they are read)."""
    if model.source != "entry":
        return
    try:
        model.module
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the user's function raises, the fix is the same
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"--model {model.name}: calling it failed ({type(e).__name__}: {first}): name a function "
                        "that takes no arguments and returns a torch.nn.Module") from None


def policy_with(device: str, rounds: int | None = None, ci_target: float | None = None) -> TimingPolicy | None:
    """The device's default policy with the options given (None when none is): more minimum rounds than the
    default cap raise the cap too."""
    given = {k: v for k, v in (("rounds", rounds), ("ci_target", ci_target)) if v is not None}
    if not given:
        return None
    base = default_policy(resolve_device(device))
    if rounds is not None:
        given["max_rounds"] = max(base.max_rounds, rounds)
    return dataclasses.replace(base, **given)


def default_policy(device: str) -> TimingPolicy:
    """Rounds of short blocks within a run budget: 70 s on a GPU, 280 s (with the report, under 5 minutes) on a CPU.

    GPU blocks of 0.05 s after a 0.01 s re-warm: the H200 seed grid then gets about twice the rounds of 0.1 s
    blocks in the same budget, and an interval from more rounds is both narrower and better estimated. CPU blocks
    of 0.2 s (or one call) after a 0.05 s re-warm, where calls of a whole second or more are common.
    """
    if device.startswith("cuda"):
        return TimingPolicy(warmup_min_s=0.2, rounds=5, block_s=0.05, rewarm_s=0.01, ci_target=0.01, budget_s=70.0)
    return TimingPolicy(warmup_min_calls=3, warmup_min_s=0.2, warmup_max_s=2.0, rounds=5, block_s=0.2,
                        rewarm_s=0.05, ci_target=0.01, budget_s=280.0)


def report_reserve_s(n_cells: int) -> float:
    """Seconds kept back from the budget for the report (tables, plots, HTML) once the rounds end."""
    return 3.0 + 0.1 * n_cells


def run(model: str = DEFAULT_MODEL, runtimes=None, precision=DEFAULT_PRECISION, sizes=SEED_SIZES,
        batches=SEED_BATCHES, device: str = DEFAULT_DEVICE, boundary: str = DEFAULT_BOUNDARY,
        weights: str = DEFAULT_WEIGHTS, out: str | Path = DEFAULT_OUT,
        resume: str | None = None, policy: TimingPolicy | None = None, options: dict | None = None,
        report: bool = True, on_start: Callable[[str, Sweep], None] | None = None,
        progress: Callable[[Cell, str], None] | None = None, cell_timeout: float = DEFAULT_CELL_TIMEOUT_S,
        budget: float | None = None, on_round: Callable[[int, int], None] | None = None, lane=None) -> Run:
    """Measure a sweep (or finish run ``resume``) into ``<out>/rtbench.sqlite`` and write its report.

    Each runtime group runs in a worker process; a cell that crashes its worker is stored as ``failed``,
    one that takes longer than ``cell_timeout`` seconds (to prepare, or for one block) as ``timeout``, and
    the sweep goes on. ``budget`` (seconds, the whole run with its report) replaces the policy's
    ``budget_s``; a resumed run gets its budget afresh for what is left. ``progress(cell, status)`` is called
    as each cell ends, ``on_round(round, cells)`` as each round starts. A run in which no cell could be
    measured is returned too, not raised: it is stored and reported like any other, its cells' statuses and
    reasons are the answer, and ``not_measured(run)`` says it in one line. ``lane`` (rtbench.lanes) says where
    the workers run and where the environment and peaks are read: one GPU of the host, a Ray placement (a zoo).
    """
    t_start = time.perf_counter()
    phases: dict[str, float] = {}  # wall-clock seconds of the run's own work, stored with the run
    from rtbench.child import keep_bytecode, start_fork_server, wait_for_fork_server
    from rtbench.spec import check_budget, check_cell_timeout
    from rtbench.store import Store, new_run_id

    cell_timeout = check_cell_timeout(cell_timeout)
    budget = check_budget(budget) if budget is not None else None
    out = Path(out)

    @contextmanager
    def phase(name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - t0

    keep_bytecode()  # before the fork server starts (and this process imports torch)
    if lane is None or lane.forks:
        start_fork_server()  # the workers' fork server imports torch and rtbench while this process checks the input
    if resume:
        store = Store(out, create=False)
        try:
            r = store.run(resume)
        except UserError as e:
            store.close()
            raise UserError(f"{e}; --resume needs the --out folder the run was written to") from None
        sweep, run_id, peak = Sweep.from_dict(r["sweep"]), resume, r["peak"]
    else:
        with phase("prepare_s"):  # every argument checked (the model by name) before any process starts
            sweep = make_sweep(model, runtimes, precision, sizes, batches, device, boundary, weights, policy, options,
                               load_model=False)
            _check_writable(out)
    if not resume and lane is None:
        with phase("prepare_s"):
            from rtbench.models import resolve

            _check_model(resolve(sweep.model, sweep.weights))  # a bad model fails here, before anything is written
    if budget is not None:
        sweep = dataclasses.replace(sweep, policy=dataclasses.replace(sweep.policy, budget_s=budget))
    with phase("imports_s"):
        from rtbench import engine
        from rtbench.lanes import Lane
        lane = lane or Lane()
    if not resume:
        store = Store(out)
        run_id = new_run_id()
        if lane.forks and not sweep.device.startswith("cuda"):  # CPU figures must not share the cores with the
            with phase("fork_server_s"):                          # server's imports
                wait_for_fork_server()
        with ThreadPoolExecutor(1) as aside:  # on a GPU the fingerprint's child interpreter runs beside the
            gpu = sweep.device.startswith("cuda")  # harness and peaks (on a CPU it would take their cores)
            env = aside.submit(lane.fingerprint, sweep.device) if gpu else None
            with phase("harness_s"):
                harness = lane.harness()
            with phase("peaks_s"):
                peak = lane.peaks(sweep.device, sweep.precisions)
            with phase("fingerprint_s"):
                env = env.result() if gpu else lane.fingerprint(sweep.device)
        store.create_run(run_id, sweep.to_dict(), env, harness, peak)
    if on_start:
        on_start(run_id, sweep)
    status = "interrupted"
    try:
        store.set_status(run_id, "running")
        deadline = t_start + sweep.policy.budget_s - report_reserve_s(len(sweep.cells()))
        with phase("cells_s"):
            schedule = engine.Engine(sweep, store, run_id, out, peak, progress, cell_timeout, deadline, on_round,
                                     lane).run()
        store.set_schedule(run_id, {**schedule, "budget_s": sweep.policy.budget_s})
        status = "complete"
    finally:
        store.add_phases(run_id, phases | {"wall_s": time.perf_counter() - t_start})
        store.set_status(run_id, status)
        store.close()
        if report:
            from rtbench.report import write_report

            t0 = time.perf_counter()
            write_report(Run.load(run_id, out))
            report_s = time.perf_counter() - t0
            store = Store(out, create=False)
            try:
                store.add_phases(run_id, {"report_s": report_s, "wall_s": report_s})
            finally:
                store.close()
    return Run.load(run_id, out)


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".rtbench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to output folder {out} ({e.strerror}): pass a writable --out folder") from None


def load(run_id: str, out: str | Path = DEFAULT_OUT) -> Run:
    return Run.load(run_id, out)


def not_measured(run: Run) -> str | None:
    """None when at least one cell of the run was measured, else one line with the most common reason."""
    if any(c.measured for c in run.cells):
        return None
    if not run.cells:
        return "no cell was measured: the run has no cells"
    (status, reason), n = Counter((c.status.value, c.reason) for c in run.cells).most_common(1)[0]
    return f"no cell was measured: {n} of {len(run.cells)} cells {status}: {reason or 'no reason recorded'}"


def compare(base, new, out: str | Path = DEFAULT_OUT, threshold_pct: float = DEFAULT_THRESHOLD_PCT,
            allow_different=()):
    """Compare run ``new`` with run ``base``: a DataFrame with one row per cell of either run.

    Each side is a Run, a run id in ``out``, ``"PATH.sqlite:RUN_ID"`` or a run folder ``"DIR/RUN_ID"``. Columns:
    the ratio NEW/BASE of the estimates with its 95% CI (Welch on the log round estimates with effective rounds),
    the one-sided p-value of "beyond the threshold" and its Holm-adjusted value, the verdict (slower, faster, same,
    inconclusive, now failed/mismatch/oom/timeout, not comparable, only in base/new, not compared), whether it
    is a regression, the reason, both statuses and estimates. ``df.attrs`` holds the environment fields that
    differ, whether the runs are comparable, and the gate's outcome. ``allow_different`` names fields that may
    differ on purpose (e.g. ``["torch"]``).
    """
    from rtbench.comparison import comparison

    return comparison(base, new, out, threshold_pct, allow_different).to_pandas()
