"""``rtbench.tune(...)``: the search (rtbench.tuning), its races (ordinary runs of the engine), the verdict, the store.

The races are runs like any other (``rtbench report RUN_ID`` renders them); the ``tunes`` table keeps the goal,
the trail of every configuration tried and the result, which names those runs.

There are always two races when time allows, each in fresh worker processes, so every arm of the last race was
also measured in another process: its ``other_process`` entry says whether the two estimates agree within their
intervals. On an H200 one torch.compile configuration ran at 17.8 ms per batch in one process and 25.9 ms in the
next, each tight in its own rounds; no interval of one process shows that, a second process does.
"""
from __future__ import annotations

import json
import math
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from rtbench import stats
from rtbench.errors import UserError
from rtbench.results import Run
from rtbench.status import Status
from rtbench.store import Store, dumps, new_run_id, now
from rtbench.tuning import (BASELINE, RACE_MIN_S, RACE_SHARE, Arm, Goal, Search, Trial, candidates, race_plan, race_sweep,
                          search)

REPORT_RESERVE_S = 8.0  # kept for the tune's report once the races end
RUNG_SHARE = 0.4  # of the race time, the first race's (the second, in fresh processes, gets the rest)
CHEAPER = 0.5  # a tied arm whose set-up takes at most this share of the winner's is named beside it


@dataclass
class TuneResult:
    """What ``rtbench.tune`` found: the winner, its intervals, the switch cost and the trail (``to_dict``)."""

    id: str
    goal: dict
    spec: dict
    arms: list[dict]  # the final race, one entry per arm: estimates, intervals, status
    winner: dict | None
    runner_up: dict | None
    vs_runner_up: dict | None  # paired ratio of images/s, winner over runner-up
    vs_eager: dict | None  # paired ratio of images/s, winner over eager torch fp32
    ties: list[str]  # labels of the arms not significantly slower than the winner
    switch: dict
    reproduce: dict
    races: list[str]  # run ids, first race first
    trail: list[dict]
    wall_s: float
    out_dir: Path = field(default=Path("."))
    note: str = ""

    @property
    def report_dir(self) -> Path:
        return self.out_dir / f"tune-{self.id}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


def per_image_rounds(c) -> dict[int, float]:
    """A race cell's round estimates as ms per image (arms race at different batches)."""
    return {r: ms / c.cell.batch for r, ms in c.round_ms.items()}


def arm_entry(c, goal: Goal, trail: list[Trial]) -> dict:
    """One raced arm: latency and images/s with their 95% CIs (from its rounds), status, and switch-cost figures."""
    e = {"runtime": c.cell.runtime, "precision": c.cell.precision, "batch": c.cell.batch,
         "label": f"{c.cell.runtime} {c.cell.precision} b{c.cell.batch}", "status": str(c.status), "reason": c.reason}
    if (est := estimate(c)) is not None:
        ms, lo, hi = est
        e.update(ms=ms, ms_low=lo, ms_high=hi, rounds=len(c.round_ms), images_s=c.cell.batch * 1e3 / ms,
                 images_s_low=c.cell.batch * 1e3 / hi, images_s_high=c.cell.batch * 1e3 / lo,
                 meets_budget=goal.meets(ms))
    tried = [t for t in trail if t.arm == Arm(c.cell.runtime, c.cell.precision) and t.batch == c.cell.batch]
    setups = [t.setup_s or 0.0 for t in tried]
    e["switch_s"] = max(setups) if setups else c.setup_s() + c.setup.get("first_call_ms", 0) / 1e3
    mem = (c.telemetry or {}).get("mem_used_mib") or {}
    e["peak_mem_mib"] = mem.get("max")
    e["joules_per_image"] = (c.telemetry or {}).get("joules_per_image")
    return e


def estimate(c) -> tuple[float, float, float] | None:
    """A raced cell's ms per batch and 95% CI from its rounds (None under two rounds)."""
    if not c.measured or len(c.round_ms) < 2:
        return None
    return stats.estimate(list(c.round_ms.values()))[:3]


def other_process(c, earlier: Run | None) -> dict | None:
    """The same arm and batch in an earlier race (other worker processes): its estimate, and whether the two agree:
    |m2 - m1| <= sqrt(h1^2 + h2^2) (h: CI half-widths), the test benchmarks/calibration.py applies to re-runs."""
    mine = estimate(c)
    before = next((o for o in (earlier.cells if earlier else []) if o.cell.key == c.cell.key), None)
    theirs = estimate(before) if before is not None else None
    if mine is None or theirs is None:
        return None
    (m2, lo2, hi2), (m1, lo1, hi1) = mine, theirs
    holds = abs(m2 - m1) <= stats.allowed_difference((lo1, hi1), (lo2, hi2))
    # how far apart, and where a re-run may land: both processes' intervals together
    return {"race": earlier.id, "ms": m1, "ms_low": lo1, "ms_high": hi1, "holds": bool(holds),
            "difference": m2 / m1 - 1, "span_ms": [min(lo1, lo2), max(hi1, hi2)]}


def verdict(run: Run, goal: Goal, trail: list[Trial], earlier: Run | None = None) -> dict:
    """Winner, runner-up, paired ratios, tie group and switch cost from the final race; each arm's estimate in
    ``earlier`` (the race before, other processes) beside its own."""
    cells = {f"{c.cell.runtime} {c.cell.precision} b{c.cell.batch}": c for c in run.cells}
    arms = [{**arm_entry(c, goal, trail), "other_process": other_process(c, earlier)} for c in run.cells]
    ok = sorted((a for a in arms if a["status"] == str(Status.OK) and a.get("meets_budget")),
                key=lambda a: -a["images_s"])
    out = {"arms": arms, "winner": ok[0] if ok else None, "runner_up": ok[1] if len(ok) > 1 else None,
           "vs_runner_up": None, "vs_eager": None, "ties": [], "switch": {}}
    if not ok:
        return out
    w = cells[ok[0]["label"]]
    wr = per_image_rounds(w)

    def ratio(other) -> dict | None:
        return stats.paired_speedup(per_image_rounds(other), wr)

    if out["runner_up"]:
        out["vs_runner_up"] = ratio(cells[ok[1]["label"]])
    out["ties"] = [a["label"] for a in ok[1:] if (r := ratio(cells[a["label"]])) is None or r["speedup_low"] <= 1.0]
    eager = next((c for c in run.cells if (c.cell.runtime, c.cell.precision) == BASELINE and c.measured), None)
    if eager is not None and eager is not w:
        out["vs_eager"] = {**(ratio(eager) or {}), "eager_batch": eager.cell.batch}
        e_ms, w_ms = arms[run.cells.index(eager)].get("ms"), ok[0]["ms"]
        gain_s = (e_ms / eager.cell.batch - w_ms / w.cell.batch) / 1e3 if e_ms else 0.0  # seconds saved per image
        out["switch"]["break_even_images"] = ok[0]["switch_s"] / gain_s if gain_s > 0 else None
    out["switch"].update(setup_s=ok[0]["switch_s"], peak_mem_mib=ok[0]["peak_mem_mib"],
                         joules_per_image=ok[0]["joules_per_image"])
    # as fast (in the tie group) for a fraction of the set-up: on an H200 torch.compile's default mode tied
    # max-autotune at 14 s of compile against 116 s
    tied = [a for a in ok[1:] if a["label"] in out["ties"]]
    cheap = min(tied, key=lambda a: a["switch_s"], default=None)
    if cheap is not None and ok[0]["switch_s"] and cheap["switch_s"] <= CHEAPER * ok[0]["switch_s"]:
        out["switch"]["cheaper_tie"] = {"label": cheap["label"], "setup_s": cheap["switch_s"]}
    return out


def survivors(run: Run) -> list[tuple[Arm, int]]:
    """After the first race: drop arms significantly slower than the leader (paired CI of images/s wholly below
    it); the two fastest and eager fp32 always stay."""
    measured = [c for c in run.cells if c.status is Status.OK and len(c.round_ms) >= 2]
    measured.sort(key=lambda c: c.stats.get("ms", math.inf) / c.cell.batch)
    if not measured:
        return []
    lead = per_image_rounds(measured[0])
    keep = []
    for i, c in enumerate(measured):
        r = stats.paired_speedup(per_image_rounds(c), lead)
        if i < 2 or (c.cell.runtime, c.cell.precision) == BASELINE or r is None or r["speedup_low"] <= 1.0:
            keep.append((Arm(c.cell.runtime, c.cell.precision), c.cell.batch))
    return keep


def reproduce(w: dict, model: str, size: int, device: str) -> dict:
    """The exact command (and Python call) that measures the winner again."""
    args = ["rtbench", "run", "--model", model, "--runtimes", w["runtime"], "--precision", w["precision"],
            "--sizes", str(size), "--batches", str(w["batch"]), "--device", device]
    py = (f"rtbench.run(model={model!r}, runtimes=[{w['runtime']!r}], precision={w['precision']!r}, "
          f"sizes=[{size}], batches=[{w['batch']}], device={device!r})")
    return {"command": " ".join(shlex.quote(a) for a in args), "python": py}


class Racer:
    """Runs races as ordinary stored runs, sharing one fingerprint, harness cost and set of peaks."""

    def __init__(self, store: Store, out: Path, device: str, cell_timeout: float):
        from rtbench import engine
        from rtbench.env import fingerprint

        self.store, self.out, self.device, self.cell_timeout = store, out, device, cell_timeout
        self.env, self.harness, self.peak = fingerprint(device), engine.harness_cost(), None

    def race(self, sweep, size: int, plan: list[tuple[Arm, int]], budget_s: float) -> Run:
        from rtbench import hardware
        from rtbench.engine import Engine

        rs = race_sweep(sweep, size, plan, budget_s)
        if self.peak is None:
            self.peak = hardware.peaks(self.device, rs.precisions)
        run_id = new_run_id()
        self.store.create_run(run_id, rs.to_dict(), self.env, self.harness, self.peak)
        status = "interrupted"
        t0 = time.perf_counter()
        try:
            sched = Engine(rs, self.store, run_id, self.out, self.peak, cell_timeout=self.cell_timeout,
                           deadline=t0 + budget_s).run()
            self.store.set_schedule(run_id, {**sched, "budget_s": budget_s})
            status = "complete"
        finally:
            self.store.add_phases(run_id, {"cells_s": time.perf_counter() - t0, "wall_s": time.perf_counter() - t0})
            self.store.set_status(run_id, status)
        return Run.load(run_id, self.out)


def tune(model: str = "resnet18", size: int = 224, latency_budget_ms: float | None = None, batch: int | None = None,
         objective: str = "throughput", budget_min: float = 10.0, runtimes=None, device: str = "auto",
         out: str | Path = "rtbench-results", report: bool = True, cell_timeout: float = 600.0,
         progress: Callable[[str], None] | None = None) -> TuneResult:
    """Search runtime x precision x settings x batch for the most images/s (within ``latency_budget_ms`` per batch,
    or at ``batch``), parity-gated, in ``budget_min`` minutes; see rtbench.tuning for the search."""
    from rtbench import api
    from rtbench.child import start_fork_server
    from rtbench.spec import check_budget, parse_list

    t_start = time.perf_counter()
    say = progress or (lambda msg: None)
    goal = Goal(objective, latency_budget_ms, batch)
    try:
        budget_s = check_budget(float(budget_min) * 60)
    except (UserError, TypeError, ValueError):
        raise UserError(f"--budget-min {budget_min!r} is invalid: give a positive number of minutes, e.g. "
                        "--budget-min 10") from None
    if size < 32:
        raise UserError(f"input size {size} is too small: use --size 32 or more")
    rts = parse_list(runtimes, "runtimes") if runtimes else None
    out = Path(out)
    sweep = api.make_sweep(model, "torch", "fp32", [size], [1], device)  # validates model and device
    api._check_writable(out)
    start_fork_server()
    first, later, absent = candidates(sweep.device, rts)
    spec = {"model": model, "size": size, "device": sweep.device, "budget_s": budget_s, "runtimes": rts,
            "goal": asdict(goal), "arms": len(first) + len(later)}
    store = Store(out)
    tune_id = new_run_id()
    store.db.execute("INSERT INTO tunes (id, created, status, spec) VALUES (?,?,?,?)",
                     (tune_id, now(), "running", dumps(spec)))
    race_s = max(RACE_SHARE * budget_s, min(RACE_MIN_S, 0.5 * budget_s))
    reserve = min(REPORT_RESERVE_S, 0.1 * budget_s)
    srch = Search(sweep, size, goal, out, t_start + budget_s - race_s - reserve, cell_timeout)
    srch.trail += absent
    say(f"tune {tune_id}: {len(first)} arms to screen, {len(later)} refinements held back")
    try:
        best = search(srch, first, later)
    finally:
        srch.close()
    races: list[Run] = []
    plan = race_plan(best)
    racer = Racer(store, out, sweep.device, cell_timeout) if plan else None
    for share in (RUNG_SHARE, 1.0):  # the second race, in fresh processes, also checks the first's estimates
        if not plan or (left := t_start + budget_s - reserve - time.perf_counter()) <= 5:
            break
        say(f"race {len(races) + 1}: {len(plan)} cells, {left * share:.0f} s")
        races.append(racer.race(sweep, size, plan, left * share))
        plan = survivors(races[-1])
    v = (verdict(races[-1], goal, srch.trail, races[-2] if len(races) > 1 else None) if races else
         {"arms": [], "winner": None, "runner_up": None, "vs_runner_up": None, "vs_eager": None, "ties": [],
          "switch": {}})
    note = "" if v["winner"] else ("no configuration ran within the goal and passed parity" if srch.trail else
                                   "nothing could be tried")
    res = TuneResult(tune_id, asdict(goal), spec, v["arms"], v["winner"], v["runner_up"], v["vs_runner_up"],
                     v["vs_eager"], v["ties"], v["switch"],
                     reproduce(v["winner"], model, size, sweep.device) if v["winner"] else {},
                     [r.id for r in races], [t.to_dict() for t in srch.trail], time.perf_counter() - t_start, out, note)
    _save(store, res, "complete")
    store.close()
    if report:
        from rtbench.report.tune import write_tune_report

        write_tune_report(res)
    return res


def _save(store: Store, res: TuneResult, status: str) -> None:
    d = res.to_dict()
    store.db.execute("UPDATE tunes SET status=?, trail=?, result=? WHERE id=?",
                     (status, dumps(d.pop("trail")), dumps(d), res.id))


def load_tune(tune_id: str, out: str | Path = "rtbench-results") -> TuneResult:
    """A stored tune, read back."""
    store = Store(out, create=False)
    try:
        row = store.db.execute("SELECT result, trail FROM tunes WHERE id=?", (tune_id,)).fetchone()
    finally:
        store.close()
    if row is None or row[0] is None:
        raise UserError(f"no finished tune {tune_id!r} in {out}: pass the --out folder the tune wrote to")
    d = json.loads(row[0])
    d["trail"], d["out_dir"] = json.loads(row[1]), Path(d["out_dir"])
    return TuneResult(**d)
