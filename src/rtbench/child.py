"""Work done outside the run's own process.

The process that runs a sweep never imports a native runtime (one that crashes on import would take the
sweep down with it): facts that need one are read in a child interpreter (``call_in_child``), and cells
are measured in worker processes forked from a fork server (``worker_context``, see rtbench.worker).
"""
from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import rtbench


class ChildFailed(Exception):
    """The child exited with an error or printed no JSON; the message is its last line of output."""


def torch_bytecode() -> Path | None:
    """Where Python keeps (or would keep) the compiled bytecode of torch's ``__init__``; None without torch."""
    spec = importlib.util.find_spec("torch")
    return Path(importlib.util.cache_from_source(spec.origin)) if spec is not None and spec.origin else None


def keep_bytecode() -> str | None:
    """Keep Python's compiled bytecode in rtbench's cache, for this process and every one it starts, when torch's
    installation holds none beside its sources and Python may not write any there (a read-only environment, or
    PYTHONDONTWRITEBYTECODE): each process of a run would otherwise compile torch's sources again. On the H200
    machine, where that is so, `import torch, torchvision` took 8 s in every process (1,528 modules compiled).
    Nothing is written beside the user's sources. Returns the folder, or None when nothing was changed."""
    if sys.pycache_prefix is not None:  # the user's own choice
        return None
    cached = torch_bytecode()
    if cached is None:
        return None
    writable = os.access(cached.parent if cached.parent.is_dir() else cached.parent.parent, os.W_OK)
    if cached.exists() or (writable and not sys.dont_write_bytecode):
        return None
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rtbench" / "pycache"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"] = str(folder)
    sys.dont_write_bytecode = False
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    return str(folder)


def call_in_child(module: str, function: str, *args, timeout: float = 600):
    """``module.function(*args)`` in a child interpreter; its return value must be JSON-serialisable."""
    src = str(Path(rtbench.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    code = (f"import json, {module} as m; "
            f"print(json.dumps(m.{function}(*json.loads({json.dumps(json.dumps(args))})), default=str))")
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
        if r.returncode != 0:
            raise ChildFailed((r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1][:200])
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        raise ChildFailed(f"{type(e).__name__}: {e}"[:200]) from None


def worker_context():
    """The multiprocessing context of rtbench's workers: a fork server that preloads torch, torch.compile's compiler
    and rtbench (rtbench.worker_boot says how it keeps CUDA uninitialised there)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["rtbench.worker_boot"])
    return ctx


def start_fork_server() -> None:
    """Start the workers' fork server now: it imports torch in the background while the run does other work."""
    from multiprocessing import forkserver

    worker_context()
    forkserver.ensure_running()


def wait_for_fork_server() -> None:
    """Block until the fork server has finished its imports (it then forks a process that exits at once)."""
    p = worker_context().Process(target=os.getpid, name="rtbench-probe", daemon=True)
    p.start()
    p.join()
