"""Run one rtbench function in a fresh Python process and get its JSON result back.

The process that runs a sweep never imports a native runtime (one that crashes on import would take the
sweep down with it); facts that need one are read in a child.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import rtbench


class ChildFailed(Exception):
    """The child exited with an error or printed no JSON; the message is its last line of output."""


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
