"""Kill, Ctrl-C and concurrent writers against real processes and a real SQLite store."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}


def start(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """``rtbench ARGS`` in its own process group (like a job in a shell), output to files. Ctrl-C reaches it as it
    reaches a job started from a terminal: an ignored SIGINT is inherited across exec, and Python then leaves it
    ignored, so the child starts with the default disposition whatever this process has."""
    return subprocess.Popen([sys.executable, "-m", "rtbench", *args], cwd=cwd, env=env or ENV,
                            stdout=open(cwd / "stdout.txt", "w"), stderr=open(cwd / "stderr.txt", "w"),
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def query(db: Path, sql: str, *params):
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the tables do not exist yet
        return []
    finally:
        con.close()


def wait_for_rows(proc, db: Path, table: str, n: int, timeout: float = 400) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if query(db, f"SELECT COUNT(*) FROM {table}") and query(db, f"SELECT COUNT(*) FROM {table}")[0][0] >= n:
            return
        assert proc.poll() is None, (proc.returncode, Path(proc.args[0]).name)
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} rows in {table} after {timeout} s")


def group_gone(pgid: int, timeout: float = 15) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_sigkill_of_the_process_tree_then_resume_measures_every_cell_once(tmp_path):
    out = tmp_path / "out"
    db = out / "rtbench.sqlite"
    args = ["run", "--model", "resnet18", "--runtimes", "torch,onnxruntime", "--sizes", "32,64", "--batches", "1,2",
            "--device", "cpu", "--rounds", "3", "--budget", "20", "--out", str(out)]
    proc = start(args, tmp_path)
    wait_for_rows(proc, db, "blocks", 5)  # part-way through the first round: every cell prepared, some measured
    os.killpg(proc.pid, signal.SIGKILL)  # the parent, the fork server and the workers, at once
    proc.wait()
    assert group_gone(proc.pid)
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    cells = "SELECT id, runtime, precision, size, batch, created FROM cells ORDER BY id"
    blocks = "SELECT cell_id, round, primary_ms FROM blocks ORDER BY cell_id, round"
    before, blocks_before = query(db, cells), query(db, blocks)
    assert len(blocks_before) >= 5
    assert {s for (s,) in query(db, "SELECT status FROM cells")} == {"measuring"}
    (run_id, status), = query(db, "SELECT id, status FROM runs")
    assert status == "running"  # it never got to say otherwise

    r = subprocess.run([sys.executable, "-m", "rtbench", "run", "--resume", run_id, "--out", str(out),
                        "--budget", "10"], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    after = query(db, cells)
    keys = [row[1:5] for row in after]
    expected = {(rt, "fp32", s, b) for rt in ("torch", "onnxruntime") for s in (32, 64) for b in (1, 2)}
    assert sorted(keys) == sorted(expected)  # every cell exactly once
    assert after == before  # the cells prepared before the kill were kept, not added again
    assert set(blocks_before) <= set(query(db, blocks))  # every block measured before the kill is still there
    assert {s for (s,) in query(db, "SELECT status FROM cells")} == {"ok"}
    for cid, rounds in query(db, "SELECT cell_id, GROUP_CONCAT(round) FROM blocks GROUP BY cell_id"):
        got = sorted(map(int, rounds.split(",")))
        # none twice, the minimum met; the resumed run numbers its rounds after every stored one (a cell killed
        # before its first block starts at the resumed run's first round)
        assert len(got) == len(set(got)) >= 3
    assert query(db, "SELECT status FROM runs WHERE id=?", run_id) == [("complete",)]
    assert (out / run_id / "report.md").exists()


def test_ctrl_c_marks_the_run_interrupted_and_ends_every_worker(tmp_path):
    out = tmp_path / "out"
    db = out / "rtbench.sqlite"
    env = {**ENV, "RTBENCH_PLUGINS": "faulty_runtimes"}
    args = ["run", "--runtimes", "sleep-1ms,fault-hang", "--sizes", "32", "--batches", "1,2,4", "--device", "cpu",
            "--budget", "60", "--cell-timeout", "300", "--out", str(out)]
    proc = start(args, tmp_path, env)
    wait_for_rows(proc, db, "cells", 4)  # sleep-1ms x3 and fault-hang batch 1 prepared; batch 2 now hangs
    time.sleep(0.5)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:  # say where it stood (seen once in a full CI run, never alone)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("still running 60 s after Ctrl-C; its stderr ends: "
                    + (tmp_path / "stderr.txt").read_text()[-3000:])
    stopped_s = time.monotonic() - t0
    err = (tmp_path / "stderr.txt").read_text()
    (run_id, status), = query(db, "SELECT id, status FROM runs")
    assert rc == 130, err[-2000:]
    assert f"rtbench run --resume {run_id} --out {out}" in err
    assert "Traceback" not in err
    assert status == "interrupted"
    assert (out / run_id / "report.md").exists()
    assert query(db, "SELECT COUNT(*) FROM cells")[0][0] == 4
    assert stopped_s < 30
    assert group_gone(proc.pid)  # the hung worker and the fork server are gone too


def _writer(out: str, n: int, tag: int) -> None:
    """One process of the concurrent-writer test: its own run, n cells with samples."""
    from rtbench.spec import Cell
    from rtbench.store import Store
    from rtbench.timing import Block

    store = Store(out)
    run_id = f"run-{tag}"
    store.create_run(run_id, {"tag": tag}, {}, {}, {})
    for i in range(n):
        cell = Cell("m", "rt", "fp32", 32 + i, 1, "cpu")
        samples = np.full(50, tag * 1000 + i, dtype=float)
        cid = store.add_cell(run_id, cell, "measuring", None, stats={"i": i})
        store.add_block(cid, 0, Block(samples, samples, np.empty(0), 0, 0.05))
        store.update_cell(cid, "ok")
    store.set_status(run_id, "complete")
    store.close()


def test_concurrent_writers_lose_nothing(tmp_path):
    """4 processes create the same new store at once and each commit 150 cells; every row arrives intact."""
    n, procs = 150, 4
    code = "import sys; from test_reliability_kill import _writer; _writer(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))"
    ps = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(n), str(t)], env=ENV, cwd=TESTS,
                           stderr=subprocess.PIPE, text=True) for t in range(procs)]
    for p in ps:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    db = tmp_path / "rtbench.sqlite"
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert query(db, "SELECT COUNT(*) FROM runs WHERE status='complete'")[0][0] == procs
    assert query(db, "SELECT COUNT(*) FROM cells WHERE status='ok'")[0][0] == procs * n
    rows = query(db, "SELECT c.run_id, c.size, b.primary_ms FROM cells c JOIN blocks b ON b.cell_id = c.id")
    assert len(rows) == procs * n
    for run_id, size, blob in rows:
        tag, i = int(run_id.split("-")[1]), size - 32
        assert np.all(np.frombuffer(blob, dtype="<f8") == tag * 1000 + i)
    assert query(db, "SELECT value FROM meta WHERE key='schema_version'") == [("2",)]


def test_two_rtbench_runs_into_one_store_at_once(tmp_path):
    args = ["run", "--runtimes", "sleep-1ms", "--sizes", "32,48", "--batches", "1,2", "--device", "cpu",
            "--rounds", "2", "--budget", "10", "--out", str(tmp_path / "out")]
    dirs = [tmp_path / f"p{i}" for i in range(2)]
    procs = []
    for d in dirs:
        d.mkdir()
        procs.append(start(args, d, {**ENV, "RTBENCH_PLUGINS": "faulty_runtimes"}))
    for p, d in zip(procs, dirs):
        assert p.wait(timeout=600) == 0, (d / "stderr.txt").read_text()[-2000:]
    db = tmp_path / "out" / "rtbench.sqlite"
    runs = query(db, "SELECT id, status, (SELECT COUNT(*) FROM cells c WHERE c.run_id = r.id) FROM runs r")
    assert len(runs) == 2 and {(s, n) for _, s, n in runs} == {("complete", 4)}
