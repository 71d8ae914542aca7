"""The CLI parses and prints, the API decides: its defaults, its exit codes and `rtbench peak` (`rtbench compare`:
test_compare.py)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import types

import pytest

from rtbench import api
from rtbench.status import Status


def test_the_cli_takes_every_default_from_the_api():
    """Changing a default in the API changes it in every command that shows it."""
    code = "\n".join([
        "import json, typer.main, rtbench.api as api, rtbench.spec as spec",
        "api.DEFAULT_OUT, api.DEFAULT_MODEL, api.DEFAULT_DEVICE = 'elsewhere', 'timm:x', 'cuda:1'",
        "api.DEFAULT_PRECISION, api.DEFAULT_BOUNDARY, api.DEFAULT_WEIGHTS = 'bf16', 'end-to-end', 'pretrained'",
        "spec.SEED_SIZES, spec.SEED_BATCHES, spec.DEFAULT_CELL_TIMEOUT_S = (64, 96), (2,), 42.0",
        "import rtbench.cli as cli",
        "cmds = typer.main.get_command(cli.app).commands",
        "print(json.dumps({n: {p.name: p.default for p in c.params} for n, c in cmds.items()}))",
    ])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {k: d["run"][k] for k in ("model", "sizes", "batches", "precision", "device", "boundary", "weights",
                                     "out", "cell_timeout")} == {
        "model": ["timm:x"], "sizes": "64,96", "batches": "2", "precision": "bf16", "device": "cuda:1",
        "boundary": "end-to-end", "weights": "pretrained", "out": "elsewhere", "cell_timeout": 42.0}
    assert d["report"]["out"] == d["compare"]["out"] == d["list"]["out"] == "elsewhere"
    assert d["list"]["device"] == d["env"]["device"] == d["peak"]["device"] == "cuda:1"
    assert d["peak"]["precision"] == "bf16"


def test_policy_options_are_decided_by_the_api():
    base = api.default_policy("cpu")
    assert api.policy_with("cpu") is None  # nothing given: the run takes the device's default policy
    more = api.policy_with("cpu", rounds=8)
    assert (more.rounds, more.max_rounds, more.ci_target) == (8, base.max_rounds, base.ci_target)
    many = api.policy_with("cpu", rounds=base.max_rounds + 10)  # more minimum rounds than the cap: the cap follows
    assert many.rounds == many.max_rounds == base.max_rounds + 10
    loose = api.policy_with("cpu", ci_target=0.05)
    assert (loose.rounds, loose.budget_s, loose.ci_target) == (base.rounds, base.budget_s, 0.05)


def cells(*statuses_reasons):
    return types.SimpleNamespace(cells=[types.SimpleNamespace(status=Status(s), reason=r, measured=Status(s).measured)
                                        for s, r in statuses_reasons])


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


@pytest.mark.slow
def test_peak_measures_each_precision_with_the_matrix_size_it_used(cli):
    r = cli("peak", "--device", "cpu", "--precision", "fp32,bf16")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    assert p["device"] == "cpu" and p["datasheet"] is None and p["datasheet_product"] == "not in the datasheet table"
    m = p["measured"]
    for prec in ("fp32", "bf16"):
        assert 64 <= m[f"matmul_{prec}_n"] <= 4096 and m[f"matmul_{prec}_flops"] > 0
    assert m["matmul_fp32_flops"] == max(m["matmul_fp32_torch_flops"], m["matmul_fp32_onnxruntime_flops"])
    assert m["copy_bytes_per_s"] > 0
    r = cli("peak", "--device", "cpu", "--precision", "fp8")
    assert r.returncode == 2 and r.stderr.strip() == \
        "rtbench: error: unknown precision 'fp8': use one of fp32, tf32, fp16, bf16", r.stderr


def test_the_workers_fork_server_does_not_hold_the_callers_output():
    """A caller reading rtbench's output to the end (a pipe) must not wait for the fork server's imports."""
    import os
    from multiprocessing import forkserver

    from rtbench.child import start_fork_server, wait_for_fork_server

    start_fork_server()
    wait_for_fork_server()
    pid = forkserver._forkserver._forkserver_pid
    assert [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (1, 2)] == [os.devnull] * 2
