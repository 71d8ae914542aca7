"""The CLI parses and prints, the API decides: its exit codes."""
from __future__ import annotations

import re
import types

import pytest

from rtbench import api


def cells(*statuses_reasons):
    return types.SimpleNamespace(cells=[{"status": s, "reason": r} for s, r in statuses_reasons])


def test_not_measured_names_the_most_common_reason():
    assert api.not_measured(cells(("failed", "TypeError: x"), ("ok", None))) is None
    assert api.not_measured(cells(("mismatch", "max rel 0.2 over 1e-3"), ("oom", "out of memory"))) is None
    line = api.not_measured(cells(("failed", "TypeError: x"), ("unavailable", "no GPU"), ("failed", "TypeError: x")))
    assert line == "no cell was measured: 2 of 3 cells failed: TypeError: x"


@pytest.mark.slow
def test_a_run_where_no_cell_was_measured_exits_3_with_the_reason(cli, tmp_path):
    r = cli("run", "--runtimes", "torch-cudagraph", "--sizes", "32,64", "--batches", "1", "--device", "cpu",
            "--out", "out")
    assert r.returncode == 3, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == \
        "rtbench: no cell was measured: 2 of 2 cells unavailable: runs on cuda only, not cpu"
    run_id = re.search(r"run id (\S+)", r.stderr).group(1)
    assert (tmp_path / "out" / run_id / "report.md").exists()  # stored and reported like any run
    assert api.not_measured(api.load(run_id, tmp_path / "out")).startswith("no cell was measured: 2 of 2")
