"""keep_bytecode: where torch's installation has no compiled bytecode and may not get any, rtbench's processes keep
it in rtbench's cache instead of compiling torch's sources in every process."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from rtbench import child


@pytest.fixture
def fake_torch(tmp_path, monkeypatch):
    """A torch package whose sources have no bytecode beside them, and a clean interpreter state to change."""
    pkg = tmp_path / "site" / "torch"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: types.SimpleNamespace(origin=str(pkg / "__init__.py")) if name == "torch" else None)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    return pkg


def test_bytecode_goes_to_rtbench_cache_when_python_may_not_write_it_beside_torch(fake_torch, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    folder = child.keep_bytecode()
    assert folder == str(tmp_path / "cache" / "rtbench" / "pycache") and Path(folder).is_dir()
    assert sys.pycache_prefix == folder and os.environ["PYTHONPYCACHEPREFIX"] == folder
    assert sys.dont_write_bytecode is False and "PYTHONDONTWRITEBYTECODE" not in os.environ
    assert child.keep_bytecode() is None  # once set, it stays


def test_nothing_changes_where_torch_has_its_bytecode_or_python_writes_it(fake_torch, monkeypatch):
    assert child.keep_bytecode() is None  # writable, and Python may write: it will on this import
    assert sys.pycache_prefix is None
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    cached = Path(importlib.util.cache_from_source(str(fake_torch / "__init__.py")))
    cached.parent.mkdir()
    cached.write_bytes(b"")
    assert child.keep_bytecode() is None  # already compiled beside the sources
    assert sys.pycache_prefix is None and "PYTHONPYCACHEPREFIX" not in os.environ


def test_a_child_interpreter_reads_the_bytecode_from_the_cache(tmp_path):
    """The real thing, end to end: a package in a folder Python may not write to, imported with bytecode writing
    off, leaves its bytecode in rtbench's cache and the next interpreter loads it from there."""
    pkg = tmp_path / "site" / "torch"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 42\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), *sys.path]),
           "PYTHONDONTWRITEBYTECODE": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("PYTHONPYCACHEPREFIX", None)
    code = ("import sys; from rtbench.child import keep_bytecode; f = keep_bytecode(); import torch; "
            "print(f, torch.VALUE, torch.__spec__.cached)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    folder, value, cached = out.split()
    assert value == "42" and folder == str(tmp_path / "cache" / "rtbench" / "pycache")
    assert cached.startswith(folder) and Path(cached).is_file()  # written to the cache, not beside the sources
    assert not (pkg / "__pycache__").exists()
