"""Shared fixtures. The CLI is run as a real subprocess against the source tree under test."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


gpu = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")


@pytest.fixture
def cli(tmp_path):
    """Run ``python -m rtbench ARGS`` in a subprocess; returns the CompletedProcess (text)."""

    def run(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rtbench", *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, cwd=tmp_path, env={**os.environ, **(env or {})})

    return run
