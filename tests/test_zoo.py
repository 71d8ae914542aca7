"""Model zoos: several models per invocation, local lanes, and a real local Ray cluster (127.0.0.1, 2 CPUs).

One Ray cluster serves the whole session (starting one takes seconds): the in-process zoos join it, and the CLI
runs reach it through --ray-address. Tiny entry-point models, real runtimes, a real store.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from policies import FAST
from rtbench import zoo_store
from rtbench.errors import UserError
from rtbench.zoo import ALONE, BUSY, Zoo, parse_models, run_zoo

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
MODELS = ("entry_models:tiny_cnn", "entry_models:fixed_48", "entry_models:fails_to_load")
# a cluster of this host alone, on the loopback address (Ray's own switch, read when ray is imported)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # nothing leaves this host
GRID = {"runtimes": "torch,onnxruntime", "sizes": "32,48", "batches": "1", "device": "cpu"}


@pytest.fixture(scope="session")
def ray_cluster():
    """A real Ray cluster on this host (2 CPUs, no dashboard) for the session; yields its address."""
    ray = pytest.importorskip("ray", reason="Ray is the extra rtbench[ray]; `make test` installs it")
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(SRC), str(TESTS),
                                                              *os.environ.get("PYTHONPATH", "").split(os.pathsep)]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             object_store_memory=100 * 2**20)
    assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def cells_of(out: Path, zoo: dict) -> dict:
    """(model, runtime, precision, size, batch) -> (status, reason, info) of every sweep cell of a zoo."""
    con = sqlite3.connect(out / "rtbench.sqlite")
    try:
        got = {}
        for r in (r for r in zoo["runs"] if r["role"] == "sweep"):
            for row in con.execute("SELECT model, runtime, precision, size, batch, status, reason, info FROM cells "
                                   "WHERE run_id=?", (r["run_id"],)):
                got[row[:5]] = (row[5], row[6], json.loads(row[7]))
        return got
    finally:
        con.close()


def test_models_come_from_repeated_and_comma_separated_values_and_a_file(tmp_path):
    f = tmp_path / "zoo.txt"
    f.write_text("# my zoo\nresnet18\n\nentry_models:tiny_cnn  # a comment\nresnet18\n")
    assert parse_models(["entry_models:fixed_48,resnet18", "mobilenet_v3_small"], f) == (
        "entry_models:fixed_48", "resnet18", "mobilenet_v3_small", "entry_models:tiny_cnn")
    f.write_text("resnet18\nresnet81\n")
    with pytest.raises(UserError, match=r"zoo.txt line 2: unknown model 'resnet81'"):
        parse_models([], f)
    with pytest.raises(UserError, match="--gpus is for the local executor"):
        Zoo(("resnet18",), {}, executor="ray", gpus=(0, 1))


def test_ray_zoo_gives_the_local_cells_and_a_model_that_fails_to_load_fails_only_its_own(tmp_path, ray_cluster):
    local = run_zoo(Zoo(MODELS, GRID), tmp_path / "local", policy=FAST, model_reports=False)
    remote = run_zoo(Zoo(MODELS, GRID, executor="ray"), tmp_path / "ray", policy=FAST, model_reports=False)
    assert local["status"] == remote["status"] == "complete"
    a, b = cells_of(tmp_path / "local", local), cells_of(tmp_path / "ray", remote)
    assert len(a) == len(MODELS) * 2 * 2
    assert {k: v[0] for k, v in a.items()} == {k: v[0] for k, v in b.items()}
    statuses = {}
    for (model, *_), (status, reason, _info) in b.items():
        statuses.setdefault(model, set()).add(status)
    assert statuses == {"entry_models:tiny_cnn": {"ok"}, "entry_models:fixed_48": {"ok", "unsupported"},
                        "entry_models:fails_to_load": {"failed"}}
    for (model, *_), (status, reason, info) in b.items():
        if model.endswith("fails_to_load"):
            assert "failed to load: RuntimeError: weights file missing" in reason
        elif status == "ok":  # measured in a Ray actor: where is recorded with the cell, and it is not this process
            assert info["placement"]["ray_node"] == "127.0.0.1" and info["worker_pid"] != os.getpid()
    env = json.loads(sqlite3.connect(tmp_path / "ray" / "rtbench.sqlite").execute(
        "SELECT fingerprint FROM environment WHERE run_id=?", (remote["runs"][0]["run_id"],)).fetchone()[0])
    assert env["lane"]["executor"] == "ray" and env["lane"]["node"] == "127.0.0.1"  # the node's own fingerprint
    md = (tmp_path / "ray" / remote["id"] / "zoo.md").read_text()
    summary = md.split("## Fastest runtime and precision per model")[1].split("## Models")[0]
    for m in MODELS:
        assert m in summary
    assert "model entry_models:fails_to_load failed to load" in summary


def test_cpu_lanes_run_models_side_by_side_and_the_interference_check_is_stored(tmp_path):
    models = ("entry_models:tiny_cnn", "entry_models:fixed_48", "entry_models:tiny_cnn,entry_models:fixed_48")
    z = run_zoo(Zoo(parse_models(models), {**GRID, "runtimes": "torch", "sizes": "48", "batches": "1,2"},
                    cpu_lanes=2), tmp_path, policy=FAST, model_reports=False)
    assert z["status"] == "complete"
    roles = [r["role"] for r in z["runs"]]
    assert roles.count("sweep") == 2 and ALONE in roles and BUSY in roles
    assert {r["lane"] for r in z["runs"] if r["role"] == "sweep"} <= {"cpu0", "cpu1"}
    alone, busy = (next(w for w in z["result"]["interference"] if w["role"] == role) for role in (ALONE, BUSY))
    assert alone["neighbours_busy"] == {"cpu1": 0.0}  # measured before the other lane started
    assert busy["start"] > alone["end"] and set(busy["neighbours_busy"]) == {"cpu1"}
    assert 0.0 <= busy["neighbours_busy"]["cpu1"] <= 1.0
    lanes = {ln["name"]: ln["cpus"] for ln in z["result"]["lanes"]}
    assert sorted(sum(lanes.values(), [])) == sorted(os.sched_getaffinity(0))  # the cores, shared out
    con = sqlite3.connect(tmp_path / "rtbench.sqlite")
    threads = {r[0] for r in con.execute("SELECT json_extract(info, '$.threads') FROM cells")}
    assert threads == {max(1, round(torch.get_num_threads() / 2))}  # half the cores, half of torch's threads
    md = (tmp_path / z["id"] / "zoo.md").read_text()
    assert "## Interference check" in md and "neighbours busy" in md


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rtbench", *args], cwd=cwd, env=os.environ.copy(),
                            stdout=open(cwd / "stdout.txt", "w"), stderr=open(cwd / "stderr.txt", "w"),
                            start_new_session=True)


def _query(db: Path, sql: str, *params) -> list:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        con.close()


def _wait(proc, cond, what: str, timeout: float = 120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if got := cond():
            return got
        assert proc.poll() is None, (what, proc.returncode, (proc.args, Path(proc.args[0]).name))
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_ray_worker_is_retried_and_a_killed_driver_leaves_the_zoo_resumable(tmp_path, ray_cluster):
    out, db = tmp_path / "out", tmp_path / "out" / "rtbench.sqlite"
    args = ["run", "--model", "entry_models:tiny_cnn,entry_models:fixed_48", "--runtimes", "torch", "--sizes", "48",
            "--batches", "1,2", "--device", "cpu", "--rounds", "3", "--budget", "8", "--executor", "ray",
            "--ray-address", ray_cluster, "--out", str(out)]
    proc = _start(args, tmp_path)
    blocks = "SELECT b.cell_id, b.round, b.primary_ms FROM blocks b ORDER BY b.cell_id, b.round"
    _wait(proc, lambda: len(_query(db, blocks)) >= 2, "the first blocks")
    (run1, pid), = _query(db, "SELECT run_id, json_extract(info, '$.worker_pid') FROM cells LIMIT 1")
    os.kill(pid, signal.SIGKILL)  # the Ray actor measuring the first model's cells
    kept = _query(db, blocks)
    _wait(proc, lambda: _query(db, "SELECT 1 FROM runs WHERE id=? AND status='complete'", run1), "the first run")
    retried = [json.loads(i) for (i,) in _query(db, "SELECT info FROM cells WHERE run_id=?", run1)]
    assert any("lost during" in why for i in retried for why in i.get("retried", [])), retried
    assert {s for (s,) in _query(db, "SELECT status FROM cells WHERE run_id=?", run1)} == {"ok"}
    _wait(proc, lambda: _query(db, "SELECT 1 FROM blocks b JOIN cells c ON c.id = b.cell_id WHERE c.run_id != ?",
                               run1), "a block of the second model")
    os.killpg(proc.pid, signal.SIGKILL)  # the driver: the zoo stops mid-way
    proc.wait()
    kept = _query(db, blocks)
    (zoo_id, status), = _query(db, "SELECT id, status FROM zoos")
    assert status == "running" and _query(db, "PRAGMA integrity_check") == [("ok",)]

    r = subprocess.run([sys.executable, "-m", "rtbench", "run", "--resume", zoo_id, "--out", str(out),
                        "--ray-address", ray_cluster], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    z = zoo_store.load(out, zoo_id)
    assert z["status"] == "complete" and [r["status"] for r in z["runs"]] == ["complete", "complete"]
    assert set(kept) <= set(_query(db, blocks))  # every block stored before either kill is still there, unchanged
    assert {s for (s,) in _query(db, "SELECT status FROM cells")} == {"ok"}
    assert len(_query(db, "SELECT id FROM cells")) == 4  # the resumed run measured what was missing, nothing twice


def test_the_report_compares_gpu_types_side_by_side_and_calls_overlapping_intervals_a_tie():
    import pandas as pd

    from rtbench.report.zoo import hardware_table, summary_table

    def cells(*rows):
        return pd.DataFrame([dict(zip(("runtime", "status", "ms", "ci_low_ms", "ci_high_ms", "images_per_joule"), r),
                                  precision="fp16", size=224, batch=8, fps=8e3 / r[2], reason=None) for r in rows])

    h200 = cells(("torch", "ok", 1.0, 0.98, 1.02, 50.0), ("onnxruntime", "ok", 0.8, 0.79, 0.81, 60.0),
                 ("torch-compile", "mismatch", 0.5, 0.49, 0.51, 90.0))  # never the fastest: outputs differ
    t4 = cells(("torch", "ok", 4.0, 3.8, 4.2, 9.0), ("onnxruntime", "ok", 4.1, 4.0, 4.3, 8.0))
    runs = [({"role": "sweep", "model": "resnet50", "accelerator": acc}, None, df)
            for acc, df in (("NVIDIA H200", h200), ("Tesla T4", t4))]
    rows = summary_table(runs).rows
    assert [r[1] for r in rows] == ["NVIDIA H200", "Tesla T4"]
    assert rows[0][4] == "onnxruntime fp16" and rows[0][7] == "ahead of torch fp16 (1.25x)"
    assert rows[1][4] == "torch fp16" and rows[1][7] == "tie with onnxruntime fp16 (intervals overlap)"
    hw = hardware_table(runs)
    assert hw.header[3:] == [f"{a}: {k}" for a in ("NVIDIA H200", "Tesla T4")
                             for k in ("fastest", "ms (95% CI)", "FPS", "img/J")]
    assert hw.rows == [["resnet50", "224x224", "8", "onnxruntime fp16", "0.80 ±0.01", "10000.0", "60.0",
                        "torch fp16", "4.00 ±0.20", "2000.0", "9.0"]]
    assert hardware_table(runs[:1]) is None  # one GPU type: nothing to put side by side
