"""Worker processes: each measures the cells of one runtime group and sends every Outcome to the parent.

The parent (engine.Engine) is the only writer of the store; a worker only measures. Workers are forked
from a multiprocessing fork server that has imported torch, torchvision and rtbench once, so a fresh
worker (a new group, or a replacement after a crash or timeout) starts in milliseconds instead of
re-importing them. Native runtimes (onnxruntime, openvino, ...) are imported by the workers that use
them only, never by the parent or the fork server.

Protocol over one duplex Pipe: the worker sends ``("ready", info, group_outcome)`` once its runtime is
set up (``group_outcome`` is an Outcome for every cell when the group cannot run at all, else None);
the parent then sends requests one at a time and receives one answer for each: ``("prepare", cell)`` ->
Outcome (``measuring`` when ready), ``("block", cell, BlockSpec)`` -> timing.Block or a failure Outcome,
``("finish", cell)`` -> the cell's telemetry, ``("compile", cell)`` -> an Outcome (a pre-compile: the session is
built, called once and closed), ``("load", cells, point)`` -> a load point's loadgen.Trace (or a failure Outcome);
``None`` ends the worker.
"""
from __future__ import annotations

import contextlib
import faulthandler
import gc
import os
import re
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (preloaded by the fork server: workers start without re-importing it)
import torchvision  # noqa: F401

from rtbench import loadgen, parity, telemetry, timing
from rtbench.child import worker_context
from rtbench.runtimes import base
from rtbench.runtimes.base import Unsupported
from rtbench.spec import Cell, Sweep
from rtbench.status import Status
from rtbench.timing import BlockSpec, CudaEventClock, HostClock


@dataclass
class Outcome:
    """What preparing or measuring a cell produced, ready for the store: a status, a reason, JSON parts."""

    status: Status
    reason: str | None = None
    parts: dict = field(default_factory=dict)


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def is_oom(e: BaseException) -> bool:
    return isinstance(e, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in str(e).lower()


def _failure(e: BaseException) -> Outcome:
    if isinstance(e, Unsupported):
        return Outcome(Status.UNSUPPORTED, str(e))
    if is_oom(e):
        _free_cuda_memory()
        return Outcome(Status.OOM, one_line(e))
    return Outcome(Status.FAILED, one_line(e))


@dataclass
class _Live:
    """A prepared cell kept alive in the worker between its blocks."""

    session: object
    clock: object
    per_call_ms: float
    sampler: object  # telemetry.Sampler (GPU) or None


class GroupMeasurer:
    """Sets up one runtime group (runtime, precision) and measures its cells, in the current process.

    Every prepared cell keeps its session until ``finish``, so the parent can interleave blocks of every cell
    of the run. When preparing a cell runs out of memory, the other sessions are closed and the preparation
    tried once more; a closed cell is prepared again (and warmed up again) at its next block.
    """

    def __init__(self, sweep: Sweep, runtime: str, precision: str, workdir: Path, refs_dir: Path | None = None):
        self.sweep, self.rt_name, self.precision, self.workdir = sweep, runtime, precision, Path(workdir)
        self.refs_dir = refs_dir  # the run's reference outputs, shared by its workers (None: each computes its own)
        self.model = None
        self.runtime = None
        self.refs: dict = {}
        self.group_setup: dict = {}
        self.live: dict[tuple, _Live] = {}
        self.samplers: dict[tuple, object] = {}  # telemetry per cell, across its blocks (and re-preparations)
        self.calls: dict[tuple, int] = {}  # calls run inside each cell's sampled blocks (energy per image)

    def _model(self):
        if self.model is None:
            from rtbench.models import resolve

            self.model = resolve(self.sweep.model, self.sweep.weights)
        return self.model

    def setup(self) -> Outcome | None:
        """Build the runtime; an Outcome that applies to every cell of the group when it cannot run."""
        try:
            cls = base.get(self.rt_name)
            ok, why = cls.availability(self.sweep.device)
            if not ok:
                return Outcome(Status.UNAVAILABLE, why)
        except Exception as e:  # noqa: BLE001
            return Outcome(Status.FAILED, f"runtime setup failed: {one_line(e)}")
        if cls.needs_model and (why := self._load_model()):
            return Outcome(Status.FAILED, why)
        try:
            sweep = base.variant_sweep(self.sweep, self.rt_name)  # a variant's settings, for this group only
            self.runtime = cls(self._model() if cls.needs_model else None, sweep, self.precision, self.workdir)
        except Exception as e:  # noqa: BLE001 - a runtime that cannot start fails its cells, the sweep goes on
            out = _failure(e)
            if out.status is Status.FAILED:
                out.reason = f"runtime setup failed: {out.reason}"
            return out
        self.group_setup = dict(self.runtime.setup)
        return None

    def _load_model(self) -> str | None:
        """None when the model builds, else the reason (in a zoo, a model that fails to load fails its own cells)."""
        try:
            m = self._model()
            if m.has_module:
                m.module  # noqa: B018 - builds it (cached)
        except Exception as e:  # noqa: BLE001 - whatever the model's code raises
            return f"model {self.sweep.model} failed to load: {one_line(e)}"
        return None

    def handle(self, req: tuple):
        """Answer one request of the parent: ``("prepare", cell)``, ``("block", cell, spec)``, ``("finish", cell)``,
        ``("compile", cell)``, ``("load", cells, point)``."""
        return {"prepare": self.prepare, "block": self.block, "finish": self.finish,
                "compile": self.compile, "load": self.load}[req[0]](*req[1:])

    def close(self) -> None:
        for key in list(self.live):
            self._close(key)
        if self.runtime is not None:
            self.runtime.close()

    def _close(self, key: tuple) -> None:
        live = self.live.pop(key, None)
        if live is not None:
            live.session.close()

    def _references(self, x, cell: Cell) -> tuple[np.ndarray, np.ndarray]:
        """The reference outputs for the cell's input and for the control input, once per (size, batch) and run:
        the first worker to need them stores them in the run's ``refs_dir`` (random weights are seeded, so every
        worker builds the same model), the others read them."""
        key = (cell.size, cell.batch)
        if key in self.refs:
            return self.refs[key]
        path = self.refs_dir / f"ref-{cell.size}-{cell.batch}.npz" if self.refs_dir is not None else None
        if path is not None and path.exists():
            with np.load(path) as f:
                self.refs[key] = (f["ref"], f["control"])
            return self.refs[key]
        m = self._model()
        self.refs[key] = (parity.reference(m, x, cell.device), parity.reference(m, parity.control_input(x), cell.device))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.npz")
            np.savez(tmp, ref=self.refs[key][0], control=self.refs[key][1])
            tmp.replace(path)  # atomic: another worker never reads half a file
        return self.refs[key]

    # the three requests of the parent ------------------------------------------------------------------
    def prepare(self, cell: Cell) -> Outcome:
        """Session, first call, parity, full warm-up. Status ``measuring`` when the cell is ready for blocks."""
        out = self._prepare(cell)
        if out.status is Status.OOM and self.live:  # other cells' sessions may hold the memory: free, retry once
            for key in list(self.live):
                self._close(key)
            _free_cuda_memory()
            out = self._prepare(cell)
            out.parts.setdefault("info", {})["evicted_others"] = True
        if self.group_setup and out.status is Status.MEASURING:  # group set-up is reported with its first cell
            out.parts.setdefault("setup", {}).update(self.group_setup)
            self.group_setup = {}
        return out

    def block(self, cell: Cell, spec: BlockSpec) -> timing.Block | Outcome:
        """One block of ``cell``: re-warm, then timed calls; a cell closed to free memory is prepared again."""
        if cell.key not in self.live:
            again = self.prepare(cell)
            if again.status is not Status.MEASURING:
                return again
        live = self.live[cell.key]
        try:
            with live.sampler or contextlib.nullcontext():
                b = timing.block(live.session.call, live.clock, spec.seconds, spec.min_calls, spec.rewarm_s,
                                 live.per_call_ms)
        except Exception as e:  # noqa: BLE001 - failure is data
            self._close(cell.key)
            return _failure(e)
        self.calls[cell.key] = self.calls.get(cell.key, 0) + b.rewarm_calls + len(b.primary_ms)
        if live.clock.name != "cuda-events":
            b.launch_ms = np.empty(0)  # on the host clock it equals the host time: not stored twice
        return b

    def compile(self, cell: Cell) -> Outcome:
        """Build the cell's session and make its first call, then close it: nothing timed, no parity. What it
        compiles lands in the on-disk caches (rtbench.precompile), so the measuring worker's compile is a hit."""
        from rtbench.runtimes.common import make_input, sync

        model = self.runtime.model
        t0 = time.perf_counter()
        try:
            if model is not None and (why := model.check_size(cell.size)):
                return Outcome(Status.UNSUPPORTED, why)
            sess = self.runtime.session(cell, make_input(cell.batch, cell.size, model.channels if model else 3))
            try:
                sess.call()
                sync(cell.device)
            finally:
                sess.close()
        except Exception as e:  # noqa: BLE001 - the measuring worker meets the same failure and records it
            return _failure(e)
        return Outcome(Status.OK, None, {"info": {**sess.info, "precompile_s": time.perf_counter() - t0}})

    def finish(self, cell: Cell) -> dict:
        """Close the cell's session; its telemetry over every block (empty on the CPU)."""
        self._close(cell.key)
        sampler = self.samplers.pop(cell.key, None)
        calls = self.calls.pop(cell.key, 0)
        return sampler.summary(calls=calls, batch=cell.batch) if sampler is not None else {}

    def load(self, cells: dict[int, Cell], point: loadgen.Point) -> loadgen.Trace | Outcome:
        """One load point over the sessions of ``cells`` (one per batch bucket), served here: no message passes
        between a request and its batch. A cell closed to free memory is prepared again first."""
        for cell in cells.values():
            if cell.key not in self.live and (again := self.prepare(cell)).status is not Status.MEASURING:
                return again
        try:
            return loadgen.serve_point({b: self.live[c.key].session for b, c in cells.items()}, point)
        except Exception as e:  # noqa: BLE001 - failure is data
            for cell in cells.values():
                self._close(cell.key)
            return _failure(e)

    def _prepare(self, cell: Cell) -> Outcome:
        from rtbench.runtimes.common import make_input, sync

        self._close(cell.key)
        runtime = self.runtime
        model = runtime.model
        sess = None
        try:
            if model is not None and (why := model.check_size(cell.size)):
                return Outcome(Status.UNSUPPORTED, why)
            x = make_input(cell.batch, cell.size, model.channels if model else 3)
            t0 = time.perf_counter()
            sess = runtime.session(cell, x)
            setup = {"session_s": time.perf_counter() - t0}
            t0 = time.perf_counter()
            sess.call()
            sync(cell.device)
            setup["first_call_ms"] = (time.perf_counter() - t0) * 1e3
            par = {}
            t0 = time.perf_counter()
            if model is not None:
                ref, control = self._references(x, cell)
                par = parity.check(sess.fetch(), ref, cell.precision, model.parity_reference, control)
            parity_s = time.perf_counter() - t0
            clock = CudaEventClock(sess.stream) if sess.stream is not None else HostClock()
            w = timing.warm_up(sess.call, self.sweep.policy, clock)
            flops = model.flops_per_image(cell.size) if model is not None else None
        except Exception as e:  # noqa: BLE001 - failure is data
            if sess is not None:
                sess.close()
                sess = None
            return _failure(e)
        if cell.key not in self.samplers:
            self.samplers[cell.key] = telemetry.for_device(cell.device)  # NVML over the blocks; None on the CPU
        self.live[cell.key] = _Live(sess, clock, w.per_call_ms, self.samplers[cell.key])
        warm = {"warmup_calls": w.calls, "warmup_s": w.seconds, "warmup_stable": w.stable,
                "per_call_ms": w.per_call_ms, "clock": clock.name}
        if flops is not None:
            warm["flops_per_image"] = flops
        return Outcome(Status.MEASURING, None, {"stats": warm, "setup": setup, "parity": par,
                                                "info": {**sess.info, "parity_s": parity_s}})


def _free_cuda_memory() -> None:
    """After an out-of-memory error: drop what the failed cell held so the next cell starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---- the worker process -----------------------------------------------------------------------------

def serve(conn, job: dict) -> None:
    """Worker entry point: set up the group, then answer the parent's requests until None.

    Requests: ``("prepare", cell)``, ``("block", cell, spec)``, ``("finish", cell)``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    log = os.open(job["log"], os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)  # the parent reads the last error line from here when the worker dies
    faulthandler.enable()  # a fatal signal writes "Fatal Python error: ..." to the log before the process dies
    _exit_with_parent()
    os.environ.update(job.get("env") or {})  # CUDA_VISIBLE_DEVICES of its GPU: before anything initialises CUDA
    if job.get("cpus"):  # a lane's share of the cores, and the same share of torch's threads (runtimes follow it)
        share = len(job["cpus"]) / len(os.sched_getaffinity(0))
        job = {**job, "threads": max(1, round(torch.get_num_threads() * share))}
        os.sched_setaffinity(0, job["cpus"])
    m, info, group = start_group(job)
    conn.send(("ready", info, group))
    try:
        while group is None and (req := conn.recv()) is not None:
            conn.send(m.handle(req))
    except EOFError:
        pass
    finally:
        m.close()


def start_group(job: dict) -> tuple[GroupMeasurer, dict, Outcome | None]:
    """Set up the runtime group a job names, in this process (a worker process or a Ray actor): the measurer,
    what the parent records of this process (pid, set-up seconds, where it runs), and the group's Outcome when it
    cannot run at all (else None)."""
    os.environ[telemetry.RUN_PID_ENV] = str(job["run_pid"])  # the run's process is not "another GPU user"
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    use_compile_caches(Path(job["workdir"]), job.get("compile_threads"))
    sweep = Sweep.from_dict(job["sweep"])
    groups = {(c.runtime, c.precision) for c in sweep.cells()}
    os.environ[telemetry.OWN_CONTEXTS_ENV] = str(1 + len(groups))  # nor are the run's other workers
    if job["plugins"] is None:
        os.environ.pop(base.PLUGINS_ENV, None)
    else:
        os.environ[base.PLUGINS_ENV] = job["plugins"]
    t0 = time.perf_counter()
    m = GroupMeasurer(sweep, job["runtime"], job["precision"], Path(job["workdir"]),
                      Path(job["refs_dir"]) if job.get("refs_dir") else None)
    group = m.setup()
    info = {"pid": os.getpid(), "setup_s": time.perf_counter() - t0,
            "placement": placement(sweep.device) if group is None else {}}
    return m, info, group


def placement(device: str) -> dict:
    """Where this process measures: its host, and its GPU (the visible index, the physical one CUDA_VISIBLE_DEVICES
    names, model name and UUID) or the CPUs it may run on."""
    out: dict = {"node": socket.gethostname()}
    if device.startswith("cuda"):
        idx = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(idx)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        out["gpu"] = {"index": int(visible.split(",")[idx]) if visible and visible.split(",")[idx].isdigit() else idx,
                      "name": props.name, "uuid": f"GPU-{props.uuid}" if getattr(props, "uuid", None) else None,
                      "cuda_visible_devices": visible}
    else:
        out["cpus"] = len(os.sched_getaffinity(0))
    return out


CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def use_compile_caches(workdir: Path, compile_threads: int | None = None) -> None:
    """Inductor's on-disk caches (FX graphs, AOT autograd, Triton kernels, autotuning) in ``<out>/cache/inductor``:
    a later run, or another process of this one, compiles a shape only once. Always there (inductor writes its
    default folder into the environment once it has used it, so a value found here says nothing of the user)."""
    os.environ[CACHE_ENV] = str(Path(workdir).resolve() / "cache" / "inductor")
    os.environ.pop("TRITON_CACHE_DIR", None)  # Triton's kernels then go under it too
    if compile_threads:  # a pre-compile process shares the cores with the others
        import torch._inductor.config as inductor

        inductor.compile_threads = int(compile_threads)


def _exit_with_parent(interval_s: float = 1.0) -> None:
    """A worker never outlives the run that started it (e.g. the parent was killed during a hang).

    The worker's parent is the fork server, which exits when the run's process does.
    """
    ppid = os.getppid()

    def watch() -> None:
        while os.getppid() == ppid:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


# ---- the parent's handle ----------------------------------------------------------------------------

class WorkerLost(Exception):
    """The worker died or did not answer in time; it has been killed. ``status`` is failed or timeout."""

    def __init__(self, status: Status, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class Worker:
    """A worker process serving one runtime group. Raises WorkerLost when it crashes or hangs."""

    def __init__(self, sweep: Sweep, runtime: str, precision: str, workdir: Path, timeout: float,
                 refs_dir: Path | None = None, env: dict | None = None, cpus: list[int] | None = None,
                 compile_threads: int | None = None):
        ctx = worker_context()
        fd, self.log = tempfile.mkstemp(prefix="rtbench-worker-", suffix=".log")
        os.close(fd)
        self.conn, child = ctx.Pipe()
        job = {"sweep": sweep.to_dict(), "runtime": runtime, "precision": precision, "workdir": str(workdir),
               "refs_dir": str(refs_dir) if refs_dir is not None else None,
               "plugins": os.environ.get(base.PLUGINS_ENV), "log": self.log, "run_pid": os.getpid(),
               "env": env or {}, "cpus": cpus, "compile_threads": compile_threads}
        t0 = time.perf_counter()
        self.proc = ctx.Process(target=serve, args=(child, job), name=f"rtbench-{runtime}-{precision}", daemon=True)
        self.proc.start()
        child.close()
        try:
            _, info, self.group_outcome = self._recv(timeout, "runtime setup")
        except WorkerLost:
            self.close()
            raise
        self.pid, self.setup_s = info["pid"], info["setup_s"]  # setup_s: model and runtime set-up in the worker
        self.placement = info.get("placement") or {}  # its host and GPU (or CPUs), recorded with each cell
        self.start_s = max(0.0, time.perf_counter() - t0 - self.setup_s)  # process start + imports

    def request(self, what: str, *args, timeout: float):
        """Send one request (prepare, block, finish, load) and wait for its answer; WorkerLost when it dies or hangs."""
        self.conn.send((what, *args))
        return self._recv(timeout, f"this cell's {what}")

    def _recv(self, timeout: float, what: str):
        if self.conn.poll(timeout):
            try:
                return self.conn.recv()
            except (EOFError, OSError):
                pass
        else:
            self.kill()
            raise WorkerLost(Status.TIMEOUT, f"{what} took longer than the cell timeout of {timeout:g} s; worker killed")
        self.proc.join(5)
        self.kill()
        code = self.proc.exitcode
        how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exited with code {code}")
        last = last_error_line(self.log)
        raise WorkerLost(Status.FAILED, f"worker {how} during {what}" + (f": {last}" if last else ""))

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)

    def close(self) -> None:
        """End the worker (politely, then by force) and remove its log."""
        try:
            if self.proc.is_alive():
                self.conn.send(None)
                self.proc.join(10)
        except OSError:
            pass
        self.kill()
        self.conn.close()
        Path(self.log).unlink(missing_ok=True)


ERROR_LINE = re.compile(r"^\S.*(Error|error|Exception|Fatal|Killed|Aborted)")


def last_error_line(path: str | Path) -> str:
    """The last line of a worker's output that names an error (else its last line), for the cell's reason."""
    try:
        lines = [ln.rstrip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    for ln in reversed(lines):
        if ERROR_LINE.search(ln):
            return ln[:300]
    return lines[-1][:300] if lines else ""
