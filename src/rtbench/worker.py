"""Worker processes: each measures the cells of one runtime group and sends every Outcome to the parent.

The parent (engine.Engine) is the only writer of the store; a worker only measures. Workers are forked
from a multiprocessing fork server that has imported torch, torchvision and rtbench once, so a fresh
worker (a new group, or a replacement after a crash or timeout) starts in milliseconds instead of
re-importing them. Native runtimes (onnxruntime, openvino, ...) are imported by the workers that use
them only, never by the parent or the fork server. What a worker does with its group (set-up, prepare, blocks,
load points) is rtbench.measurer's ``GroupMeasurer``; this module is the process around it and the parent's
handle on it.

Protocol over one duplex Pipe: the worker sends ``("ready", info, group_outcome)`` once its runtime is
set up (``group_outcome`` is an Outcome for every cell when the group cannot run at all, else None);
the parent then sends requests one at a time and receives one answer for each: ``("prepare", cell)`` ->
Outcome (``measuring`` when ready), ``("block", cell, BlockSpec)`` -> timing.Block or a failure Outcome,
``("finish", cell)`` -> the cell's telemetry, ``("compile", cell)`` -> an Outcome (a pre-compile: the session is
built, called once and closed), ``("load", cells, point)`` -> a load point's loadgen.Trace (or a failure Outcome);
``None`` ends the worker.
"""
from __future__ import annotations

import faulthandler
import os
import re
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import torch  # noqa: F401  (preloaded by the fork server: workers start without re-importing it)
import torchvision  # noqa: F401

from rtbench import telemetry
from rtbench.child import worker_context
from rtbench.measurer import GroupMeasurer, Outcome, is_oom, one_line  # noqa: F401  (re-exported)
from rtbench.runtimes import base
from rtbench.spec import Sweep
from rtbench.status import Status


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
    groups = {(c.runtime, c.precision) for c in sweep.cells()}  # nor are the run's other workers
    os.environ[telemetry.OWN_CONTEXTS_ENV] = str(job.get("own_contexts") or 1 + len(groups))
    if job["plugins"] is None:
        os.environ.pop(base.PLUGINS_ENV, None)
    else:
        os.environ[base.PLUGINS_ENV] = job["plugins"]
    t0 = time.perf_counter()
    m = GroupMeasurer(sweep, job["runtime"], job["precision"], Path(job["workdir"]),
                      Path(job["refs_dir"]) if job.get("refs_dir") else None)
    group = m.setup()
    info = {"pid": os.getpid(), "setup_s": time.perf_counter() - t0, "setup_parts": m.setup_parts,
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
    # inductor starts its pool of compile processes (each importing torch) at a process's first torch.compile, cache
    # hit or not; started only when a kernel is compiled, a run whose shapes are all in the cache starts none
    os.environ.setdefault("TORCH_WARM_POOL", "0")
    if compile_threads:  # a compiling process shares the spare cores with the run's others (rtbench.precompile)
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
                 compile_threads: int | None = None, own_contexts: int | None = None):
        ctx = worker_context()
        fd, self.log = tempfile.mkstemp(prefix="rtbench-worker-", suffix=".log")
        os.close(fd)
        self.conn, child = ctx.Pipe()
        job = {"sweep": sweep.to_dict(), "runtime": runtime, "precision": precision, "workdir": str(workdir),
               "refs_dir": str(refs_dir) if refs_dir is not None else None,
               "plugins": os.environ.get(base.PLUGINS_ENV), "log": self.log, "run_pid": os.getpid(),
               "env": env or {}, "cpus": cpus, "compile_threads": compile_threads, "own_contexts": own_contexts}
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
        self.setup_parts = info["setup_parts"]  # its steps (GroupMeasurer.setup)
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
