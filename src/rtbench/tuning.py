"""``rtbench tune``: the fastest correct way to run a model on this machine, under a latency budget.

The search, within a time budget (each step checks the clock):

1. **Arms.** Every available runtime x precision x its settings (``Runtime.search_space``: channels_last,
   torch.compile mode, threads on a CPU; a CUDA graph is its own runtime). Expensive settings (compile modes
   beyond ``default``) are held back as refinements of the best arm of their runtime (step 4).
2. **Screen.** Each arm is prepared once at the first batch in a worker process of its own (engine.Group: the
   engine's own preparation, parity check and warm-up). What cannot run is pruned there, cheaply: unavailable,
   unsupported, failed, and **parity**: an arm whose outputs fail the check is never recommended. An arm out of
   memory is screened again at an eighth of the batch. For throughput on a GPU the screen batch is SCREEN_BATCH
   (256): at 32 an H200 ranked torch.compile's default mode, which launches every kernel from Python, by its
   launch overhead (about 0.7-1.4 ms a call against 0.5 ms of compute), and the refinement went to the wrong
   precision; at 256 the compute is 4-5 ms.
3. **Batch.** Per surviving arm, the best batch: with a latency budget the largest batch whose latency stays
   within it (latency grows with batch: doubling, then bisection); without one, doubling while images/s stay
   within SLACK of the best batch so far (up to MAX_BATCH). Only the SEARCH_ARMS fastest arms of the screen (and
   none under KEEP of the leader's throughput) get a batch search.
4. **Refine.** The held-back settings of each runtime's best arm, at its best batch and the batches next to it.
   A runtime none of whose arms reached step 3 (under KEEP, or over the latency budget at the screen) is refined
   too, at the leader's batch, from its screened arm with the leader's precision and settings (``stand_in``):
   its held-back modes (CUDA graphs, autotuned kernels) remove the very launch overhead that held it back. On an
   H200 with a 1 ms budget, torch.compile's default mode took 1.1 ms at batch 1, and its CUDA-graph modes were
   never tried.
5. **Race.** The leaders (at most RACE_ARMS) and eager torch fp32 are measured in interleaved rounds (the
   engine and rtbench.rounds: one timing loop); arms significantly slower than the leader (paired CI on
   images/s) are dropped, and the rest of the budget goes to the others in a second race.

Every step prepares its trials in parallel, each in a fresh worker (set-up, compiles, parity: work for the idle
cores; ``prepare_threads``), and only then times them **one at a time** with one short block each (the
engine's timing loop): a trial timed while others compile or warm up on the same device would be timed against
them. Those single blocks order arms and batches and prune; only the race's rounds give intervals, and only
they decide the winner (rtbench.tune_result).
"""
from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from rtbench import stats
from rtbench.engine import Group
from rtbench.errors import UserError
from rtbench.runtimes import base
from rtbench.spec import Cell, Sweep
from rtbench.status import Status
from rtbench.timing import Block, BlockSpec
from rtbench.worker import Worker

DEFERRED = ("compile_mode",)  # settings whose other values cost minutes per shape: tried as refinements
SLACK = 0.1  # without a latency budget, doubling the batch goes on while images/s stay within this share of the best
KEEP = 0.5  # arms under this share of the best screened throughput stop after the screen
SEARCH_ARMS = 4  # at most this many arms get a batch search (each step prepares every one of them)
REFINE_SHARE, REFINE_MAX_S = 0.4, 180.0  # of the search's time left after the screen, kept for step 4
RACE_ARMS = 6  # at most this many arms race (plus eager fp32)
RACE_SHARE = 0.3  # of the whole budget kept for the races (at least RACE_MIN_S, or half a small budget)
RACE_MIN_S = 40.0
MAX_BATCH = {"cuda": 1024, "cpu": 64}
SCREEN_BATCH = 256  # the screen's batch for throughput on a GPU (module docstring, step 2)
OOM_RETRY = 8  # an arm out of memory at the screen is screened again at this fraction of the batch
TIMING = BlockSpec(seconds=0.2, min_calls=3, rewarm_s=0.02)  # the one block that times a trial, alone
MIN_LEFT_S = 5.0  # a trial started with less time left could only time out: it is skipped
BASELINE = ("torch", "fp32")


@dataclass(frozen=True)
class Arm:
    """One configuration to try: a runtime variant (its settings in its name) and a precision."""

    runtime: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"

    @property
    def family(self) -> str:
        return base.split_variant(self.runtime)[0]


@dataclass(frozen=True)
class Goal:
    """What the tune optimises: images/s, within ``latency_budget_ms`` per batch, or at a fixed batch."""

    objective: str = "throughput"  # throughput, or latency (at --batch, default 1)
    latency_budget_ms: float | None = None
    batch: int | None = None

    def __post_init__(self):
        if self.objective not in ("throughput", "latency"):
            raise UserError(f"unknown objective {self.objective!r}: use throughput or latency")
        if self.latency_budget_ms is not None and not self.latency_budget_ms > 0:
            raise UserError("--latency-budget-ms must be a positive number of milliseconds, e.g. 1")
        if self.batch is not None and self.batch < 1:
            raise UserError("--batch must be a whole number of at least 1")
        if self.batch is not None and self.latency_budget_ms is not None:
            raise UserError("give --latency-budget-ms or --batch, not both: the budget picks the batch")

    @property
    def fixed_batch(self) -> int | None:
        if self.batch is not None:
            return self.batch
        return 1 if self.objective == "latency" and self.latency_budget_ms is None else None

    def meets(self, ms: float) -> bool:
        return self.latency_budget_ms is None or ms <= self.latency_budget_ms


@dataclass
class Trial:
    """One configuration tried at one batch: what its preparation measured, or why it could not run."""

    stage: str
    arm: Arm
    batch: int
    status: str
    reason: str | None = None
    ms: float | None = None  # warm-up latency per call (per batch)
    setup_s: float | None = None  # export, session, compile, first call (a pre-compile's own seconds apart)
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == str(Status.OK) and self.ms is not None

    @property
    def images_s(self) -> float:
        return self.batch * 1e3 / self.ms if self.ok else 0.0

    def to_dict(self) -> dict:
        return {"stage": self.stage, "runtime": self.arm.runtime, "precision": self.arm.precision,
                "batch": self.batch, "status": self.status, "reason": self.reason, "ms": self.ms,
                "images_s": self.images_s if self.ok else None, "setup_s": self.setup_s, **self.info}


def candidates(device: str, runtimes: tuple[str, ...] | None = None) -> tuple[list[Arm], list[Arm], list[Trial]]:
    """(arms to screen, refinements held back, trials of runtimes that are not available here)."""
    names = runtimes or tuple(n for n, c in base.load_all().items()
                              if c.needs_model and (c.is_default(device) or (c.graph and device.startswith("cuda"))))
    first, later, absent = [], [], []
    for name in names:
        cls = base.get(name)
        ok, why = cls.availability(device)
        if not ok:
            absent.append(Trial("screen", Arm(name, "-"), 0, str(Status.UNAVAILABLE), why))
            continue
        space = cls.search_space(device)
        precisions = [p for p in cls.precisions if device.startswith("cuda") or p in ("fp32", "bf16")]
        for values in itertools.product(*space.values()):
            settings = dict(zip(space, values))
            deferred = any(settings.get(k) not in (None, space[k][0]) for k in DEFERRED if k in space)
            for p in precisions:
                (later if deferred else first).append(Arm(base.variant(name, settings), p))
    return first, later, absent


def prepare_threads() -> int:
    """How many trials prepare at once: $RTBENCH_TUNE_THREADS, else half the cores beyond two, 1 to 8."""
    given = os.environ.get("RTBENCH_TUNE_THREADS", "").strip()
    return max(1, int(given) if given.isdigit() else min(8, ((os.cpu_count() or 1) - 2) // 2))


class Search:
    """Tries arms at batches in worker processes, keeping every trial (the trail)."""

    def __init__(self, sweep: Sweep, size: int, goal: Goal, workdir: Path, deadline: float, cell_timeout: float):
        self.sweep, self.size, self.goal, self.workdir = sweep, size, goal, Path(workdir)
        self.deadline, self.timeout_cap = deadline, cell_timeout
        self.refs_dir = self.workdir / "cache" / f"refs-tune-{int(time.time() * 1e3)}"
        self.trail: list[Trial] = []
        self.max_batch = MAX_BATCH["cuda" if sweep.device.startswith("cuda") else "cpu"]
        self.new_worker, self.max_retries = Worker, 0  # what engine.Group asks of its engine: workers on this host
        self.threads = prepare_threads()
        self.started = time.perf_counter()  # what engine.Group asks of its engine: when preparations are timed from

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def worker_options(self, runtime: str) -> dict:  # what engine.Group asks of its engine: a trial's worker is alone
        return {}

    @property
    def cell_timeout(self) -> float:
        """What engine.Group allows one request: the cell timeout, or the time left when that is less."""
        return max(1.0, min(self.timeout_cap, self.left()))

    def cell(self, arm: Arm, batch: int) -> Cell:
        s = self.sweep
        return Cell(s.model, arm.runtime, arm.precision, self.size, batch, s.device, s.boundary)

    def try_all(self, stage: str, plan: list[tuple[Arm, int]]) -> list[Trial]:
        """Prepare every (arm, batch) of ``plan``, ``threads`` at a time, each in a fresh worker; then time each
        prepared one alone (one block) and end its worker. Trials whose time ran out are recorded as ``skipped``."""
        groups = [Group(self, a.runtime, a.precision) for a, _b in plan]
        try:
            with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="rtbench-tune") as pool:
                trials = list(pool.map(lambda p, g: self._prepare(stage, *p, g), plan, groups))
            for t, g in zip(trials, groups):
                if t.status == str(Status.OK):
                    self._time(t, g)
        finally:
            for g in groups:
                g.close()
        self.trail += trials
        return trials

    def _prepare(self, stage: str, arm: Arm, batch: int, g: Group) -> Trial:
        cell = self.cell(arm, batch)
        if self.left() < MIN_LEFT_S:
            return Trial(stage, arm, batch, str(Status.SKIPPED), "the tune's time budget ran out")
        t0 = time.perf_counter()
        got = g.prepare(cell)
        wall = time.perf_counter() - t0
        parts = got.parts
        status, reason = got.status, got.reason
        if status is Status.MEASURING:
            verdict = (parts.get("parity") or {}).get("verdict", "ok")
            status, reason = ((Status.MISMATCH, (parts.get("parity") or {}).get("reason")) if verdict == "mismatch"
                              else (Status.OK, None))
        setup = parts.get("setup") or {}
        warm = (parts.get("stats") or {}).get("per_call_ms")
        info = {"wall_s": wall, "warmup_ms": warm,
                **{k: v for k, v in (parts.get("info") or {}).items() if k in ("compile_s", "compile_cache")}}
        return Trial(stage, arm, batch, str(status), reason, warm if status is Status.MISMATCH else None,
                     sum(v for k, v in setup.items() if k.endswith("_s")) + setup.get("first_call_ms", 0) / 1e3, info)

    def _time(self, t: Trial, g: Group) -> None:
        """One block of the trial's cell with nothing else running: its latency (the block's trimmed mean)."""
        got = g.block(self.cell(t.arm, t.batch), TIMING)
        if isinstance(got, Block) and len(got.primary_ms):
            t.ms = float(stats.trimmed_mean(got.primary_ms))
            t.info["timed_calls"] = len(got.primary_ms)
        else:
            t.status, t.reason = str(got.status), got.reason

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.refs_dir, ignore_errors=True)

    # the batch search ----------------------------------------------------------------------------------
    def first_batch(self) -> int:
        if (b := self.goal.fixed_batch) is not None:
            return b
        return 1 if self.goal.latency_budget_ms is not None or not self.sweep.device.startswith("cuda") else SCREEN_BATCH

    def best_batches(self, arms: list[Arm], start: dict[Arm, Trial]) -> dict[Arm, Trial]:
        """Per arm, its best trial: steps of every arm at once, so the shapes of one step compile in parallel."""
        best = {a: start[a] for a in arms if start[a].ok and self.goal.meets(start[a].ms)}
        if self.goal.fixed_batch is not None:
            return best
        lo = dict(best)  # the largest batch known to be within the budget / still gaining
        hi: dict[Arm, int] = {}  # the smallest batch known to be over the budget (or out of memory)
        while self.left() > 0:
            plan = [(a, self._next(lo[a], hi.get(a))) for a in lo]
            plan = [(a, b) for a, b in plan if b is not None]
            if not plan:
                break
            for (a, b), t in zip(plan, self.try_all("batch", plan)):
                # without a budget: go on while images/s stay within SLACK of the best so far (one noisy step on a
                # busy host must not end the search)
                holds = self.goal.latency_budget_ms is not None or t.images_s >= (1 - SLACK) * best[a].images_s
                if t.ok and self.goal.meets(t.ms) and holds:
                    lo[a] = t
                    if t.images_s > best[a].images_s:
                        best[a] = t
                elif t.status == str(Status.SKIPPED):
                    lo.pop(a)
                else:
                    hi[a] = b
        return best

    def _next(self, lo: Trial, hi: int | None) -> int | None:
        """The next batch to try for an arm: double until something fails; then (with a latency budget) bisect
        while the gap is over an eighth of the batch."""
        if hi is None:
            return lo.batch * 2 if lo.batch * 2 <= self.max_batch else None
        if self.goal.latency_budget_ms is None or hi - lo.batch <= max(1, lo.batch // 8):
            return None
        return (lo.batch + hi) // 2


def tops(best: dict[Arm, Trial]) -> list[Arm]:
    """Each runtime family's fastest arm."""
    out: dict[str, Trial] = {}
    for a, t in best.items():
        if a.family not in out or t.images_s > out[a.family].images_s:
            out[a.family] = t
    return [t.arm for t in out.values()]


def _kept(arm: Arm) -> dict:
    """An arm's settings other than the held-back ones."""
    return {k: v for k, v in base.split_variant(arm.runtime)[1].items() if k not in DEFERRED}


def refinements(later: list[Arm], top: list[Arm]) -> list[Arm]:
    """The held-back settings of the arms ``top`` (one per runtime family): same precision and other settings."""
    return [a for arm in top for a in later
            if a.family == arm.family and a.precision == arm.precision and _kept(a) == _kept(arm)]


def neighbours(batch: int, goal: Goal, max_batch: int) -> list[int]:
    """Batches a refinement is tried at: its parent's, and (without a fixed batch) the next ones around it."""
    if goal.fixed_batch is not None:
        return [batch]
    around = [batch, batch // 2] if goal.latency_budget_ms is not None else [batch, batch * 2, batch // 2]
    return [b for b in dict.fromkeys(around) if 1 <= b <= max_batch]


def search(search: Search, first: list[Arm], later: list[Arm]) -> dict[Arm, Trial]:
    """Steps 2-4 of the module docstring; returns each arm's best trial (ok, parity passed, within the budget)."""
    b0 = search.first_batch()
    screened = dict(zip(first, search.try_all("screen", [(a, b0) for a in first])))
    oom = [a for a, t in screened.items() if t.status == str(Status.OOM) and b0 > 1]
    if oom and search.left() > 0:
        screened.update(zip(oom, search.try_all("screen", [(a, max(1, b0 // OOM_RETRY)) for a in oom])))
    alive = {a: t for a, t in screened.items() if t.ok and search.goal.meets(t.ms)}
    top = max((t.images_s for t in alive.values()), default=0.0)
    chosen = sorted((a for a, t in alive.items() if t.images_s >= KEEP * top), key=lambda a: -alive[a].images_s)
    # the batch search leaves time for step 4, whose compile modes cost minutes per shape
    end = search.deadline
    if refinements(later, tops({a: t for a, t in screened.items() if t.ok})):
        search.deadline -= min(REFINE_SHARE * search.left(), REFINE_MAX_S)
    try:
        best = search.best_batches(chosen[:SEARCH_ARMS], screened)
    finally:
        search.deadline = end
    plan = refine_plan(later, best, screened, search.goal, search.max_batch)
    if plan and search.left() > 0:
        for t in search.try_all("refine", plan):
            if t.ok and search.goal.meets(t.ms) and (t.arm not in best or t.images_s > best[t.arm].images_s):
                best[t.arm] = t
    return best


def refine_plan(later: list[Arm], best: dict[Arm, Trial], screened: dict[Arm, Trial], goal: Goal,
                max_batch: int) -> list[tuple[Arm, int]]:
    """Step 4: (refinement, batch) pairs. Each runtime's best arm of step 3 gives its held-back settings at its own
    batch and the ones next to it; a runtime with no arm there, at the leader's batch (module docstring)."""
    parents = {a: best[a].batch for a in tops(best)}
    lead = max(best.values(), key=lambda t: t.images_s, default=None)
    ran = {a: t for a, t in screened.items() if t.ok}
    for arm in tops(ran):
        if all(p.family != arm.family for p in parents):
            arm = stand_in([a for a in ran if a.family == arm.family], lead.arm if lead else None, ran)
            parents[arm] = lead.batch if lead is not None else screened[arm].batch
    return [(a, b) for p, batch in parents.items() for a in refinements(later, [p])
            for b in neighbours(batch, goal, max_batch)]


def stand_in(own: list[Arm], lead: Arm | None, screened: dict[Arm, Trial]) -> Arm:
    """The arm a runtime that never reached step 3 is refined from: the one with the leader's precision and most of
    its settings, else its fastest. Its screen was launch-bound, so its own order of precisions says nothing of
    their compute: on an H200 at batch 1 torch.compile's tf32 arm came out fastest and the 1 ms tune refined tf32
    (max-autotune timed out, reduce-overhead gained nothing), while fp16 leads at every batch that computes."""
    def likeness(a: Arm) -> tuple:
        if lead is None:
            return 0, 0, screened[a].images_s
        shared = sum(_kept(lead).get(k) == v for k, v in _kept(a).items())
        return a.precision == lead.precision, shared, screened[a].images_s
    return max(own, key=likeness)


def race_plan(best: dict[Arm, Trial]) -> list[tuple[Arm, int]]:
    """The leaders at their batches, and eager torch fp32 at the leader's batch (the reference)."""
    leaders = sorted(best.values(), key=lambda t: -t.images_s)[:RACE_ARMS]
    plan = [(t.arm, t.batch) for t in leaders]
    if leaders and not any(a.runtime == BASELINE[0] and a.precision == BASELINE[1] for a, _b in plan):
        plan.append((Arm(*BASELINE), leaders[0].batch))
    return plan


def race_sweep(sweep: Sweep, size: int, plan: list[tuple[Arm, int]], budget_s: float) -> Sweep:
    """A sweep of exactly the race's cells (each arm at its own batch)."""
    return replace(sweep, runtimes=tuple(dict.fromkeys(a.runtime for a, _b in plan)),
                   precisions=tuple(dict.fromkeys(a.precision for a, _b in plan)), sizes=(size,),
                   batches=tuple(sorted({b for _a, b in plan})),
                   only=tuple((a.runtime, a.precision, size, b) for a, b in plan),
                   policy=replace(sweep.policy, budget_s=max(1.0, budget_s)))
