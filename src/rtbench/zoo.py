"""Model zoos: several models in one invocation, spread over the lanes of this host or of a Ray cluster.

A zoo is one run per model and accelerator type (so a model is measured once on every kind of GPU a
heterogeneous cluster has), plus, with several lanes on one host, an interference check. Each lane (one GPU,
a share of the CPU cores, or a Ray bundle: rtbench.lanes, rtbench.ray_lanes) serves one run at a time, taken
from a shared queue of its accelerator type, so lanes that finish early take the next model. A run's cells are
all measured on one lane: its rounds (rtbench.rounds) and paired speedups never cross GPUs, and every
comparison is between cells of the same GPU. This process writes the store (each lane thread through its own
connection), as in a plain run; the zoo's record (rtbench.zoo_store) says which run measured which model where.

Interference check: with several lanes on one host they share CPU, PCIe and power. One reference cell (the
first model's first runtime, precision and size at its smallest batch) is measured alone, before the other lanes
start, and again once every neighbour is in its rounds; both runs are stored, with how much of the second
measurement each neighbour was busy for, and the zoo report warns when the two differ beyond their intervals.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from rtbench import zoo_store
from rtbench.errors import UserError

SWEEP, ALONE, BUSY = "sweep", "interference-alone", "interference-busy"
INTERFERENCE_BUDGET_S = 30.0  # seconds for each of the reference cell's two runs (capped by the zoo's budget)
NEIGHBOURS_WAIT_S = 600.0  # the busy measurement waits at most this long for every neighbour to be in its rounds


@dataclass(frozen=True)
class Zoo:
    """What a zoo measures (``grid``: rtbench.api.make_sweep's arguments but the model) and where."""

    models: tuple[str, ...]
    grid: dict
    policy: dict | None = None  # a TimingPolicy as a dict (None: the device's default)
    budget: float | None = None  # seconds per model run (None: the policy's)
    cell_timeout: float = 600.0
    executor: str = "local"  # local or ray
    gpus: tuple[int, ...] | None = ()  # local GPUs: () the device's own, None every one
    cpu_lanes: int = 1
    ray_address: str | None = None
    max_retries: int | None = None  # a lost worker's cell is tried again this often (None: the executor's)
    interference: bool | None = None  # None: when several lanes share a host

    def __post_init__(self) -> None:
        if self.executor not in ("local", "ray"):
            raise UserError(f"unknown executor {self.executor!r}: use local or ray")
        if self.executor == "ray" and self.gpus != ():
            raise UserError("--gpus is for the local executor; with --executor ray every GPU of the cluster is used")


def parse_models(values: Iterable[str] | str, models_file: str | Path | None = None) -> tuple[str, ...]:
    """Model values from ``--model`` (repeated or comma-separated) and a models file (one per line, ``#``
    comments); each name is checked (not loaded) here, so a typo is bad input naming the line."""
    from rtbench.models import resolve

    items = [(m.strip(), None) for v in ([values] if isinstance(values, str) else values) for m in v.split(",")]
    if models_file is not None:
        try:
            lines = Path(models_file).read_text().splitlines()
        except OSError as e:
            raise UserError(f"--models-file {models_file}: cannot read it ({e.strerror}): give a text file with one "
                            "model per line") from None
        items += [(ln.split("#", 1)[0].strip(), f"{models_file} line {i}") for i, ln in enumerate(lines, 1)]
    models = tuple(dict.fromkeys(m for m, _ in items if m))
    if not models:
        raise UserError("no model given: use --model NAME (repeated or comma-separated) or --models-file FILE")
    where = {m: w for m, w in reversed(items)}
    for m in models:
        try:
            resolve(m)
        except UserError as e:
            raise UserError(f"{where[m]}: {e}" if where[m] else str(e)) from None
    return models


@dataclass
class Job:
    model: str
    accelerator: str
    role: str = SWEEP
    run_id: str | None = None  # set when started (or stored: a resumed job)
    grid: dict = field(default_factory=dict)  # overrides of the zoo's grid (the reference cell's)
    budget: float | None = None


class _Busy:
    """When each lane was in the rounds of a run (for the interference check's neighbours)."""

    def __init__(self, lanes) -> None:
        self.since: dict[str, float | None] = {lane.name: None for lane in lanes}
        self.spans: dict[str, list[tuple[float, float]]] = {lane.name: [] for lane in lanes}
        self.done: dict[str, threading.Event] = {lane.name: threading.Event() for lane in lanes}
        self.in_rounds: dict[str, threading.Event] = {lane.name: threading.Event() for lane in lanes}

    def rounds(self, lane) -> None:
        if self.since[lane.name] is None:
            self.since[lane.name] = time.time()
            self.in_rounds[lane.name].set()

    def end(self, lane) -> None:
        if (t0 := self.since[lane.name]) is not None:
            self.spans[lane.name].append((t0, time.time()))
        self.since[lane.name] = None
        self.in_rounds[lane.name].clear()

    def share(self, name: str, t0: float, t1: float) -> float:
        """The share of [t0, t1] in which lane ``name`` was in a run's rounds."""
        spans = self.spans[name] + ([(self.since[name], t1)] if self.since[name] is not None else [])
        busy = sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in spans)
        return busy / (t1 - t0) if t1 > t0 else 0.0


def run_zoo(zoo: Zoo | None = None, out: str | Path = "rtbench-results", resume: str | None = None,
            report: bool = True, progress: Callable[[str], None] | None = None, policy=None,
            model_reports: bool = True, on_start: Callable[[str], None] | None = None) -> dict:
    """Measure a zoo (or finish zoo ``resume``) into ``<out>/rtbench.sqlite``; returns its stored record.

    ``policy`` (a TimingPolicy) is used as is when given; ``progress(line)`` hears of each run as it ends;
    ``on_start(zoo_id)`` once the zoo is stored. ``report`` writes ``<out>/<zoo-id>/zoo.md`` and ``zoo.html``, and
    ``model_reports`` each run's own report too.
    """
    from rtbench import api
    from rtbench.spec import TimingPolicy
    from rtbench.store import new_run_id

    t_start = time.perf_counter()
    out, say = Path(out), progress or (lambda line: None)
    if resume:
        stored = zoo_store.load(out, resume)
        if stored is None:
            raise UserError(f"no zoo {resume!r} in {out}: pass the --out folder the zoo was written to")
        spec = stored["spec"]
        zoo = Zoo(**{**spec, "models": tuple(spec["models"]), "gpus": _gpus(spec["gpus"]),
                     **({"ray_address": zoo.ray_address} if zoo and zoo.ray_address else {})})
        zoo_id, done = resume, stored["runs"]
    else:
        zoo_id, done = "zoo-" + new_run_id(), []
    if policy is None and zoo.policy is not None:
        policy = TimingPolicy.from_dict(zoo.policy)
    template = api.make_sweep(zoo.models[0], **zoo.grid, policy=policy, load_model=False)  # bad input fails here
    lanes = _lanes(zoo, template)
    try:
        if not resume:
            api._check_writable(out)
            zoo_store.create(out, zoo_id, {**asdict(zoo), "policy": policy.to_dict() if policy else zoo.policy})
        if on_start:
            on_start(zoo_id)
        say(f"zoo {zoo_id}: {len(zoo.models)} models on {len(lanes)} lanes "
            f"({', '.join(sorted({lane.accelerator for lane in lanes}))}), store {out}/rtbench.sqlite")
        ctx = _Context(zoo, zoo_id, out, policy, lanes, say, template.device)
        jobs = ctx.jobs(done)
        interference = _interference(zoo, lanes, done)
        status = "interrupted"
        try:
            if interference:
                ctx.reference(lanes[0], ALONE, template)
            ctx.run_lanes(jobs, template if interference else None)
            status = "complete"
        finally:
            zoo_store.set_status(out, zoo_id, status, {"wall_s": time.perf_counter() - t_start, **ctx.result()})
    finally:
        for lane in lanes:
            lane.close()
    if report:
        from rtbench.report.zoo import write_zoo_report

        write_zoo_report(zoo_id, out, model_reports=model_reports)
    return zoo_store.load(out, zoo_id)


def _gpus(v):
    return None if v is None else tuple(v)


def _lanes(zoo: Zoo, template) -> list:
    from rtbench.lanes import local_lanes

    if zoo.executor == "ray":
        from rtbench import ray_lanes

        ray_lanes.connect(zoo.ray_address)
        retries = ray_lanes.DEFAULT_MAX_RETRIES if zoo.max_retries is None else zoo.max_retries
        return ray_lanes.cluster_lanes(template.device, template.precisions, retries)
    lanes = local_lanes(template.device, zoo.gpus, zoo.cpu_lanes)
    for lane in lanes:
        lane.max_retries = zoo.max_retries or 0
    return lanes


def _interference(zoo: Zoo, lanes: list, done: list[dict]) -> bool:
    """Whether to run the check: asked for (or, by default, several lanes on one host) and not stored complete."""
    hosts = [getattr(lane, "node", "local") for lane in lanes]
    shared = hosts.count(hosts[0]) > 1
    if zoo.interference is False or (zoo.interference is None and not shared):
        return False
    if zoo.interference and not shared:
        raise UserError("the interference check needs at least two lanes on one host: e.g. --gpus all")
    complete = {r["role"] for r in done if r["status"] == "complete"}
    return not {ALONE, BUSY} <= complete


class _Context:
    """One zoo's lanes at work: a queue of jobs per accelerator type, a thread per lane."""

    def __init__(self, zoo: Zoo, zoo_id: str, out: Path, policy, lanes: list, say, device: str) -> None:
        self.zoo, self.zoo_id, self.out, self.policy, self.lanes, self.say = zoo, zoo_id, out, policy, lanes, say
        self.device = device
        self.busy = _Busy(lanes)
        self.windows: list[dict] = []
        self.errors: list[str] = []

    def jobs(self, done: list[dict]) -> dict[str, queue.Queue]:
        """A queue per accelerator type: every model not yet complete there (a stored unfinished run resumes)."""
        runs = {(r["model"], r["accelerator"]): r for r in done if r["role"] == SWEEP}
        jobs: dict[str, queue.Queue] = {}
        for acc in dict.fromkeys(lane.accelerator for lane in self.lanes):
            jobs[acc] = queue.Queue()
            for m in self.zoo.models:
                r = runs.get((m, acc))
                if r is None or r["status"] != "complete":
                    jobs[acc].put(Job(m, acc, run_id=r["run_id"] if r else None))
        return jobs

    def run_lanes(self, jobs: dict[str, queue.Queue], template=None) -> None:
        threads = [threading.Thread(target=self._lane, args=(lane, jobs[lane.accelerator],
                                                             template if i == 0 else None),
                                    name=f"rtbench-{lane.name}", daemon=True) for i, lane in enumerate(self.lanes)]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)  # a short wait, so Ctrl-C reaches this thread
        if self.errors:
            raise RuntimeError("; ".join(self.errors))

    def _lane(self, lane, jobs: queue.Queue, reference=None) -> None:
        try:
            if reference is not None:
                self.reference(lane, BUSY, reference)
            while True:
                try:
                    job = jobs.get_nowait()
                except queue.Empty:
                    return
                self.run(lane, job)
        except Exception as e:  # noqa: BLE001 - the other lanes go on; the zoo reports it and can be resumed
            self.errors.append(f"lane {lane.name}: {type(e).__name__}: {e}")
        finally:
            self.busy.done[lane.name].set()

    def run(self, lane, job: Job):
        from rtbench import api

        def on_start(run_id, sweep):
            job.run_id = run_id
            zoo_store.add_run(self.out, self.zoo_id, run_id, job.model, lane.accelerator, job.role, lane.name)

        grid = {**self.zoo.grid, **job.grid, "device": lane.sweep_device(self.device)}
        try:
            r = api.run(model=job.model, **grid, out=self.out, resume=job.run_id, policy=self.policy,
                        report=False, on_start=on_start, cell_timeout=self.zoo.cell_timeout,
                        budget=job.budget or self.zoo.budget, on_round=lambda r, n: self.busy.rounds(lane), lane=lane)
        finally:
            self.busy.end(lane)
        self.say(f"{lane.name}: {job.model} ({job.role}) run {r.id}: "
                 f"{sum(c.measured for c in r.cells)} of {len(r.cells)} cells measured")
        return r

    def reference(self, lane, role: str, template):
        """The interference check's reference cell on ``lane``: alone (the other lanes not started yet) or, for
        ``BUSY``, once every neighbour is in its rounds (or has nothing left to run)."""
        if role == BUSY:
            deadline = time.monotonic() + NEIGHBOURS_WAIT_S
            for other in self.lanes[1:]:
                while not (self.busy.in_rounds[other.name].is_set() or self.busy.done[other.name].is_set()):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
        grid = {"runtimes": [template.runtimes[0]], "precision": [template.precisions[0]],
                "sizes": [template.sizes[0]], "batches": [min(template.batches)]}
        budget = min(INTERFERENCE_BUDGET_S, self.zoo.budget or template.policy.budget_s)
        t0 = time.time()
        r = self.run(lane, Job(template.model, lane.accelerator, role, grid=grid, budget=budget))
        t1 = time.time()
        self.windows.append({"role": role, "run_id": r.id, "lane": lane.name, "start": t0, "end": t1,
                             "neighbours_busy": {o.name: self.busy.share(o.name, t0, t1) for o in self.lanes
                                                 if o is not lane and getattr(o, "node", "local")
                                                 == getattr(lane, "node", "local")}})

    def result(self) -> dict:
        lanes = [{"name": lane.name, "accelerator": lane.accelerator, **lane.describe().get("lane", {})}
                 for lane in self.lanes]
        return {"lanes": lanes, **({"interference": self.windows} if self.windows else {}),
                **({"errors": self.errors} if self.errors else {})}
