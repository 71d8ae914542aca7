"""The command line: arguments -> Sweep -> engine -> store -> report. It parses and prints; the API decides.

Exit codes: 0 done; 2 bad input (one line naming the fix); 3 a run in which no cell could be measured (one
line with the most common reason); ``compare --fail-on-regression``: 4 a regression, 5 inconclusive, 6 not
comparable; 130 interrupted.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from rtbench import api, cli_load
from rtbench.child import keep_bytecode
from rtbench.errors import UserError
from rtbench.spec import DEFAULT_CELL_TIMEOUT_S, SEED_BATCHES, SEED_SIZES

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark vision-model inference across runtimes, precisions, input sizes and batch sizes.")
console = Console()
err = Console(stderr=True)
OUT_HELP = "Output folder: holds rtbench.sqlite and one report folder per run."
PIPED_WIDTH = 400  # a table written to a file or a pipe: its natural width (a terminal's is the terminal's)
EXIT_NOT_MEASURED = 3  # the run finished, but not one cell could be measured


def _csv(values) -> str:
    return ",".join(map(str, values))


@app.command()
def run(
    ctx: typer.Context,
    model: List[str] = typer.Option([api.DEFAULT_MODEL], help="resnet18 / torchvision:NAME, timm:NAME, "
                                    "path/to/model.onnx, or package.module:function returning an nn.Module (random "
                                    "weights); repeated or comma-separated for a zoo (one run per model)."),
    models_file: Optional[str] = typer.Option(None, help="A zoo's models, one --model value per line (# comments)."),
    gpus: Optional[str] = typer.Option(None, help="A zoo on this host's GPUs: all, or indices like 0,1 (one "
                                       "model at a time per GPU)."),
    cpu_lanes: int = typer.Option(1, help="A zoo on a CPU: split the cores into this many lanes."),
    executor: str = typer.Option("local", help="local, or ray (extra rtbench[ray]): the zoo on a Ray cluster."),
    ray_address: Optional[str] = typer.Option(None, help="The Ray cluster: auto or HOST:PORT (default: start one "
                                              "on this host)."),
    max_retries: Optional[int] = typer.Option(None, help="A cell whose worker is lost is tried again this often "
                                              "(default 1 on Ray, 0 locally)."),
    interference: Optional[bool] = typer.Option(None, "--interference/--no-interference", help="Measure one "
                                                "reference cell alone and with the other GPUs busy (default: on "
                                                "with several lanes on one host)."),
    runtimes: str = typer.Option("", help="Comma-separated runtimes; default: every available one."),
    sizes: str = typer.Option(_csv(SEED_SIZES), help="Input sizes in pixels (square)."),
    batches: str = typer.Option(_csv(SEED_BATCHES), help="Batch sizes."),
    precision: str = typer.Option(api.DEFAULT_PRECISION, help="fp32 (strict), tf32, fp16, bf16; comma-separated to "
                                  "sweep several."),
    device: str = typer.Option(api.DEFAULT_DEVICE, help="auto, cpu, cuda or cuda:N."),
    boundary: str = typer.Option(api.DEFAULT_BOUNDARY, help="compute (inputs on device) or end-to-end (host copies "
                                 "included)."),
    weights: str = typer.Option(api.DEFAULT_WEIGHTS, help="random, or pretrained (needs the internet)."),
    out: str = typer.Option(api.DEFAULT_OUT, help=OUT_HELP),
    resume: Optional[str] = typer.Option(None, help="Finish run RUN_ID: cells already measured are skipped."),
    budget: Optional[float] = typer.Option(None, help="Seconds for the whole run, report included (default: 280 on "
                                           "a CPU, 70 on a GPU); cells left wider than the CI target are flagged."),
    rounds: Optional[int] = typer.Option(None, help="Rounds every cell is measured in, at least (default 5)."),
    ci_target: Optional[float] = typer.Option(None, help="A cell gets more rounds while its 95% CI half-width is "
                                              "above this fraction of its estimate (default 0.01)."),
    compile_mode: Optional[str] = typer.Option(None, help="torch.compile mode for the torch-compile runtime."),
    cudnn_search: Optional[str] = typer.Option(None, help="ONNX Runtime cuDNN conv search: EXHAUSTIVE, HEURISTIC, DEFAULT."),
    cell_timeout: float = typer.Option(DEFAULT_CELL_TIMEOUT_S, help="Seconds one cell may take before its worker is "
                                       "killed (status timeout)."),
):
    """Measure a sweep and write its report."""
    if resume:
        _resume_takes_no_grid(ctx)
    if (len(model) > 1 or "," in model[0] or models_file or gpus or cpu_lanes != 1 or executor != "local"
            or (resume or "").startswith("zoo-")):
        return run_zoo(model, models_file, gpus, cpu_lanes, executor, ray_address, max_retries, interference,
                       runtimes=runtimes, sizes=sizes, batches=batches, precision=precision, device=device,
                       boundary=boundary, weights=weights, out=out, resume=resume, budget=budget, rounds=rounds,
                       ci_target=ci_target, compile_mode=compile_mode, cudnn_search=cudnn_search,
                       cell_timeout=cell_timeout)
    model = model[0]
    options = {k: v for k, v in (("compile_mode", compile_mode), ("cudnn_conv_algo_search", cudnn_search)) if v}
    policy = api.policy_with(device, rounds=rounds, ci_target=ci_target)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("left"), TimeRemainingColumn(), console=err, transient=False)
    state = {}

    def on_start(run_id, sweep):
        err.print(f"run id [bold]{run_id}[/bold] — {len(sweep.cells())} cells, store {out}/rtbench.sqlite")
        state["task"] = progress.add_task("starting", total=len(sweep.cells()))
        state["run_id"] = run_id
        progress.start()

    def on_cell(cell, status):
        progress.update(state["task"], advance=1, description=f"{cell.label()} [{status}]")

    def on_round(r, cells):
        progress.update(state["task"], description=f"round {r + 1}: {cells} cells")

    try:
        r = api.run(model=model, runtimes=runtimes or None, precision=precision, sizes=sizes, batches=batches,
                    device=device, boundary=boundary, weights=weights, out=out, resume=resume, policy=policy,
                    options=options, on_start=on_start, progress=on_cell, cell_timeout=cell_timeout,
                    budget=budget, on_round=on_round)
    except KeyboardInterrupt:
        progress.stop()
        err.print(f"interrupted: run {state.get('run_id')} marked interrupted; a partial report was written. "
                  f"Finish it with: rtbench run --resume {state.get('run_id')} --out {out}", soft_wrap=True)
        raise typer.Exit(130)
    finally:
        progress.stop()
    print_table(r)
    print_warnings(r)
    if tb := r.time_breakdown():
        console.print(f"run time {tb['total']:.1f} s: set-up {tb['setup']:.1f} s, measurement {tb['measure']:.1f} s, "
                      f"checks {tb['checks']:.1f} s, the rest {tb['fixed']:.1f} s",
                      highlight=False)
    console.print(f"report: {r.report_dir / 'report.md'}")
    if why := api.not_measured(r):
        err.print(f"rtbench: {why}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_NOT_MEASURED)


def run_zoo(models, models_file, gpus, cpu_lanes, executor, ray_address, max_retries, interference, *, runtimes,
            sizes, batches, precision, device, boundary, weights, out, resume, budget, rounds, ci_target,
            compile_mode, cudnn_search, cell_timeout) -> None:
    """Several models (or several GPUs, or Ray): one run per model and GPU type, and the zoo's report."""
    from rtbench.lanes import parse_gpus
    from rtbench.zoo import Zoo, parse_models
    from rtbench.zoo import run_zoo as measure

    if resume:
        zoo = Zoo(models=(), grid={}, executor=executor, ray_address=ray_address)
    else:
        options = {k: v for k, v in (("compile_mode", compile_mode), ("cudnn_conv_algo_search", cudnn_search)) if v}
        policy = api.policy_with(device, rounds=rounds, ci_target=ci_target)
        grid = {"runtimes": runtimes or None, "precision": precision, "sizes": sizes, "batches": batches,
                "device": device, "boundary": boundary, "weights": weights, "options": options}
        zoo = Zoo(parse_models(models, models_file), grid, policy.to_dict() if policy else None, budget, cell_timeout,
                  executor, parse_gpus(gpus), cpu_lanes, ray_address, max_retries, interference)
    state = {}
    try:
        z = measure(zoo, out, resume=resume, progress=lambda line: err.print(line, highlight=False, soft_wrap=True),
                    on_start=lambda zid: state.setdefault("id", zid))
    except KeyboardInterrupt:
        err.print(f"interrupted: zoo {state.get('id')} marked interrupted. Finish it with: rtbench run --resume "
                  f"{state.get('id')} --out {out}", soft_wrap=True)
        raise typer.Exit(130)
    except RuntimeError as e:
        err.print(f"rtbench: zoo {state.get('id')} stopped ({e}); finish it with: rtbench run --resume "
                  f"{state.get('id')} --out {out}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    t = Table(title=f"zoo {z['id']} ({z['status']}, {z['result'].get('wall_s', 0):.1f} s)")
    for col in ("model", "role", "measured on", "lane", "run id"):
        t.add_column(col, no_wrap=col == "run id")
    for r in z["runs"]:
        t.add_row(r["model"], r["role"], r["accelerator"], r["lane"], r["run_id"])
    show(t)
    console.print(f"report: {Path(out) / z['id'] / 'zoo.md'}")


def print_warnings(r) -> None:
    """The run's fairness warnings, each with its fix (the report lists the same)."""
    from rich.markup import escape

    from rtbench.fairness import fairness_warnings

    for w in fairness_warnings(r):
        console.print(f"[bold yellow]warning[/bold yellow] {w.code}: {escape(w.message)}\n  fix: {escape(w.fix)}",
                      highlight=False)


SWEEP_OPTIONS = ("model", "runtimes", "sizes", "batches", "precision", "device", "boundary", "weights", "rounds",
                 "ci_target", "compile_mode", "cudnn_search")


def _resume_takes_no_grid(ctx: typer.Context) -> None:
    """--resume finishes the stored sweep as it was defined; a grid option beside it would be silently ignored."""
    given = [n for n in SWEEP_OPTIONS if getattr(ctx.get_parameter_source(n), "name", "") == "COMMANDLINE"]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise UserError(f"--resume finishes the run's stored sweep, so {flags} would be ignored: drop {flags}, "
                        "or start a new run without --resume")


def show(table: Table) -> None:
    """Print a table: fitted to the terminal, or whole when piped (a log or CI output would otherwise get 80
    columns and cut the estimates and intervals short)."""
    (console if console.is_terminal else Console(width=PIPED_WIDTH)).print(table)


def print_table(r) -> None:
    """The same numbers as report.md, in the terminal."""
    from rtbench.report.table import _load, _ms, _speedup, fmt
    from rtbench.status import MEASURED

    df = r.to_pandas()
    if df.empty:
        return
    t = Table(title=f"{r.sweep.model} · {r.sweep.device} · boundary {r.sweep.boundary} (ms: estimate ±95% CI)")
    for col in ("runtime", "precision", "size", "batch", "ms", "FPS", "↑ torch", "ms/img", "load %"):
        t.add_column(col, justify="right" if col not in ("runtime", "precision") else "left",
                     no_wrap=col in ("runtime", "precision", "size", "batch"))
    for _, row in df.iterrows():
        d = row.to_dict()
        ok = d["status"] in MEASURED
        t.add_row(d["runtime"], d["precision"], str(d["size"]), str(d["batch"]), _ms(d),
                  fmt(d.get("fps"), 1) if ok else "–", _speedup(d), fmt(d.get("ms_per_image")) if ok else "–", _load(d))
    show(t)


@app.command()
def report(run_id: str = typer.Argument(..., help="The run to render."),
           out: str = typer.Option(api.DEFAULT_OUT, help=OUT_HELP),
           lang: str = typer.Option("en", help="Report language: en or ru."),
           format: str = typer.Option("md,html", "--format", help="Comma-separated: md, html, csv, json.")):
    """Re-render a run's report from the store alone (into <out>/<run-id>/)."""
    from rtbench.report import REPORT_FILES, parse_formats, write_report
    from rtbench.report.i18n import translator
    from rtbench.results import Run

    translator(lang)  # bad --lang / --format fail before the store is read
    fmts = parse_formats(format)
    if run_id.startswith("zoo-"):  # a zoo: its own report (the runs' reports are rendered by their ids)
        from rtbench.report.zoo import write_zoo_report

        console.print(f"report: {write_zoo_report(run_id, out, fmts)}")
        return
    path = write_report(Run.load(run_id, out), lang=lang, formats=fmts)
    for f in fmts:
        console.print(f"report: {path.parent / REPORT_FILES[f]}")


@app.command()
def compare(
    base: str = typer.Argument(..., help="The baseline: a run id in --out, STORE.sqlite:RUN_ID, or a run folder."),
    new: str = typer.Argument(..., help="The run to judge, given the same ways."),
    out: str = typer.Option(api.DEFAULT_OUT, help=OUT_HELP),
    threshold: Optional[str] = typer.Option(None, help="Percent a cell must move, with significance, to be called "
                                            f"slower or faster (default {api.DEFAULT_THRESHOLD_PCT:g})."),
    fail_on_regression: Optional[str] = typer.Option(None, metavar="PCT", help="Gate: exit 4 when a cell is a "
                                                     "significant regression beyond PCT percent (5 inconclusive, 6 "
                                                     "not comparable)."),
    allow_different: str = typer.Option("", help="Comma-separated fields that may differ on purpose, e.g. torch."),
    report_dir: Optional[str] = typer.Option(None, help="Where the report goes (default <out>/compare-BASE-NEW/, "
                                             "<out> being NEW's store folder)."),
    format: str = typer.Option("md,html", "--format", help="Comma-separated: md, html, json."),
    lang: str = typer.Option("en", help="Report language: en or ru."),
):
    """Compare NEW with BASE cell by cell: verdicts with significance, and whether the runs are comparable at all."""
    from rtbench.comparison import comparison, threshold_of
    from rtbench.report import parse_formats
    from rtbench.report.comparison import FORMATS, write_comparison
    from rtbench.report.i18n import translator

    translator(lang)  # bad options fail before any store is read
    fmts = parse_formats(format, FORMATS)
    pct = threshold_of(threshold, fail_on_regression)
    cmp = comparison(base, new, out, pct, allow_different)
    gate = fail_on_regression is not None
    if not gate:
        print_comparison(cmp)
    for f in cmp.fields if gate else []:
        if f.blocking:
            console.print(f"not comparable: {f.key}: {f.base} -> {f.new}", highlight=False, soft_wrap=True)
    for c in (cmp.regressions + cmp.undecided) if gate else []:
        console.print(cell_line(c), highlight=False, soft_wrap=True)
    code = EXIT_GATE[cmp.outcome()] if gate else 0
    console.print(summary_line(cmp) + (f" (exit {code})" if gate else ""), highlight=False, soft_wrap=True)
    for path in write_comparison(cmp, report_dir, lang, fmts):
        err.print(f"report: {path}", highlight=False, soft_wrap=True)
    if code:
        raise typer.Exit(code)


EXIT_GATE = {"pass": 0, "regression": 4, "inconclusive": 5, "not comparable": 6}


def cell_line(c) -> str:
    """One line for a CI log: the cell, its verdict, NEW/BASE with its CI, and why."""
    from rtbench.report.i18n import translator

    ratio = f" x{c.timing.ratio:.3f} ({c.timing.low:.3f}-{c.timing.high:.3f})" if c.timing else ""
    return f"{c.verdict}: {c.label}{ratio}: {c.reason(translator('en'))}"


def summary_line(cmp) -> str:
    """The comparison in one line: the outcome, the count of every verdict, the threshold and the method."""
    counts = ", ".join(f"{n} {v}" for v, n in sorted(cmp.counts().items()))
    head = {"pass": f"no significant regression beyond {cmp.threshold_pct:g}%",
            "regression": f"{len(cmp.regressions)} regression(s) beyond {cmp.threshold_pct:g}%",
            "inconclusive": f"no significant regression beyond {cmp.threshold_pct:g}%, but {len(cmp.undecided)} "
                            "cell(s) could still be one (inconclusive)",
            "not comparable": "not comparable: " + ", ".join(dict.fromkeys(f.key for f in cmp.fields if f.blocking))
            + " differ"}[cmp.outcome()]
    return (f"{cmp.new.id} against {cmp.base.id}: {head}; cells: {counts}; 95% CI: Welch on log round estimates "
            f"with effective rounds, Holm over {cmp.tested} cells")


def print_comparison(cmp) -> None:
    """The verdict table and the environment fields that differ, in the terminal."""
    from rtbench.report.comparison import _cell_ms, _ratio

    t = Table(title=f"{cmp.new.id} against {cmp.base.id}: NEW/BASE > 1 is slower (threshold {cmp.threshold_pct:g}%)")
    for col in ("runtime", "precision", "size", "batch", "BASE ms", "NEW ms", "NEW/BASE (95% CI)", "verdict"):
        t.add_column(col, no_wrap=col in ("runtime", "precision", "size", "batch"))
    for c in cmp.cells:
        style = "bold red" if c.regression else None
        t.add_row(*map(str, c.key), _cell_ms(c.base), _cell_ms(c.new), _ratio(c), c.verdict, style=style)
    show(t)
    for f in cmp.fields:
        effect = "NOT COMPARABLE" if f.blocking else "allowed" if f.speed and f.allowed else "shown only"
        console.print(f"{f.key}: {f.base} -> {f.new} ({effect})", highlight=False, soft_wrap=True)


@app.command()
def tune(
    model: str = typer.Option(api.DEFAULT_MODEL, help="The model, as for rtbench run."),
    size: int = typer.Option(224, help="Input size in pixels (square)."),
    latency_budget_ms: Optional[float] = typer.Option(None, help="Most milliseconds one batch may take: the tune "
                                                      "picks each configuration's largest batch within it."),
    batch: Optional[int] = typer.Option(None, help="A fixed batch instead of a latency budget."),
    objective: str = typer.Option("throughput", help="throughput (images/s), or latency (at --batch, default 1)."),
    budget_min: float = typer.Option(10.0, help="Minutes for the whole search, races and report included."),
    runtimes: str = typer.Option("", help="Comma-separated runtimes to search (default: every available one)."),
    device: str = typer.Option(api.DEFAULT_DEVICE, help="auto, cpu, cuda or cuda:N."),
    out: str = typer.Option(api.DEFAULT_OUT, help=OUT_HELP),
    cell_timeout: float = typer.Option(DEFAULT_CELL_TIMEOUT_S, help="Seconds one configuration may take to prepare."),
):
    """Find the fastest correct way to run the model here: runtime, precision, settings and batch (parity-gated)."""
    from rtbench.tune_run import tune as run_tune

    r = run_tune(model=model, size=size, latency_budget_ms=latency_budget_ms, batch=batch, objective=objective,
                 budget_min=budget_min, runtimes=runtimes or None, device=device, out=out, cell_timeout=cell_timeout,
                 progress=lambda msg: err.print(msg, highlight=False, soft_wrap=True))
    t = Table(title=f"tune {r.id}: last race (images/s: estimate and 95% CI)")
    for col in ("arm", "batch", "ms", "images/s", "status", "another process: ms"):
        t.add_column(col)
    from rich.markup import escape

    from rtbench.report.tune import other_process_text

    for a in r.arms:  # a variant's [settings] are not markup
        t.add_row(escape(f"{a['runtime']} {a['precision']}"), str(a["batch"]), f"{a['ms']:.3f}" if a.get("ms") else "–",
                  f"{a['images_s']:,.0f} ({a['images_s_low']:,.0f}–{a['images_s_high']:,.0f})"
                  if a.get("images_s") else "–", a["status"], other_process_text(a.get("other_process"), True))
    show(t)
    from rtbench.report.tune import answer

    for b in answer(r):
        for line in getattr(b, "items", [getattr(b, "text", "")]):
            console.print(escape(line.replace("**", "")), highlight=False, soft_wrap=True)
    console.print(f"tune {r.id} took {r.wall_s:.0f} s; report: {r.report_dir / 'tune.md'}", highlight=False)
    if r.winner is None:
        raise typer.Exit(EXIT_NOT_MEASURED)


@app.command("list")
def list_(what: str = typer.Argument("runtimes", help="runtimes, runs or models"),
          out: str = typer.Option(api.DEFAULT_OUT, help=OUT_HELP),
          device: str = typer.Option(api.DEFAULT_DEVICE, help="Device to check runtimes against.")):
    """List runtimes (and whether they run here), runs in a store, or models."""
    if what == "runtimes":
        from rtbench.runtimes.base import load_all

        dev = api.resolve_device(device)
        t = Table(title=f"runtimes on {dev}")
        for col in ("runtime", "version", "devices", "precisions", "available", "default", "why not"):
            t.add_column(col)
        for name, cls in sorted(load_all().items()):
            ok, why = cls.availability(dev)
            t.add_row(name, cls.version() or "–", ",".join(cls.devices), ",".join(cls.precisions),
                      "yes" if ok else "no", "yes" if cls.is_default(dev) else "no", why)
        show(t)
    elif what == "runs":
        from rtbench.results import list_runs

        t = Table(title=f"runs in {out}")
        for col in ("run id", "created", "status", "model", "device", "cells"):
            t.add_column(col, no_wrap=col == "run id", min_width=21 if col == "run id" else None)  # copyable ids
        for r in list_runs(out):
            t.add_row(r["id"], r["created"], r["status"], r["sweep"]["model"], r["sweep"]["device"], str(r["cells"]))
        show(t)
    elif what == "models":
        from rtbench.models import list_models

        console.print("\n".join(list_models()))
    else:
        raise UserError(f"cannot list {what!r}: use rtbench list runtimes, runs or models")


@app.command()
def env(device: str = typer.Option(api.DEFAULT_DEVICE, help="Device to describe.")):
    """Print the environment fingerprint stored with every run."""
    from rtbench.env import fingerprint

    console.print_json(json.dumps(fingerprint(api.resolve_device(device)), default=str))


@app.command()
def peak(device: str = typer.Option(api.DEFAULT_DEVICE, help="Device to measure."),
         precision: str = typer.Option(api.DEFAULT_PRECISION, help="Precisions to measure the matmul ceiling for.")):
    """Measure the device's matmul ceiling per precision and its copy bandwidth."""
    from rtbench.hardware import peaks

    console.print_json(json.dumps(peaks(api.resolve_device(device), api.parse_precisions(precision)), default=str))


app.command("load")(cli_load.load)  # rtbench load (rtbench.cli_load)


def main() -> None:
    keep_bytecode()
    try:
        code = app(standalone_mode=False)  # returns the code of a typer.Exit raised in a command
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as e:
        err.print(f"rtbench: error: {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as e:  # click usage errors (typer may bring its own copy of click: match by name)
        if any(c.__name__ == "ClickException" for c in type(e).__mro__):
            err.print(f"rtbench: error: {e.format_message()}", highlight=False, soft_wrap=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
