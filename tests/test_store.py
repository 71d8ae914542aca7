"""The SQLite store: round-trip of runs, cells and samples; WAL; schema version; resume of a real run."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import rtbench
from rtbench import api
from rtbench.errors import UserError
from rtbench.spec import Cell, Sweep
from rtbench.store import FILENAME, SCHEMA, SCHEMA_VERSION, Store
from policies import FAST

SWEEP = Sweep(runtimes=("torch", "onnxruntime"), sizes=(32,), batches=(1, 2))


def test_round_trip(tmp_path):
    store = Store(tmp_path)
    store.create_run("r1", SWEEP.to_dict(), {"torch": "2.x", "cpu_cores": 2}, {"per_call_ns": 512.0},
                     {"device": "cpu", "measured": {"matmul_fp32_flops": 1e11}})
    rng = np.random.default_rng(0)
    primary, host = rng.normal(10, 1, 257), rng.normal(10.2, 1, 257)
    cell = SWEEP.cells()[0]
    parts = {"stats": {"trimmed_mean_ms": np.float64(9.98), "n": np.int64(257), "capped": False},
             "setup": {"session_s": 0.25}, "parity": {"max_abs": 1e-6, "ok": True}, "info": {"threads": 2}}
    cid = store.add_cell("r1", cell, "ok", None, (primary, host), **parts)
    failed = SWEEP.cells()[1]
    store.add_cell("r1", failed, "failed", "RuntimeError: boom")
    store.close()

    store = Store(tmp_path, create=False)  # a fresh connection reads back the same
    runs = store.runs()
    assert [(r["id"], r["status"], r["cells"]) for r in runs] == [("r1", "running", 2)]
    assert Sweep.from_dict(runs[0]["sweep"]) == SWEEP
    r = store.run("r1")
    assert r["env"] == {"torch": "2.x", "cpu_cores": 2}
    assert r["harness"] == {"per_call_ns": 512.0}
    assert r["peak"]["measured"]["matmul_fp32_flops"] == 1e11
    cells = store.cells("r1")
    assert [c["status"] for c in cells] == ["ok", "failed"]
    c = cells[0]
    assert c["id"] == cid
    assert (c["model"], c["runtime"], c["precision"], c["size"], c["batch"], c["device"], c["boundary"]) == (
        cell.model, cell.runtime, cell.precision, cell.size, cell.batch, cell.device, cell.boundary)
    np.testing.assert_array_equal(c["samples_ms"], primary)  # bit for bit
    np.testing.assert_array_equal(c["host_ms"], host)
    assert c["stats"] == {"trimmed_mean_ms": 9.98, "n": 257, "capped": False}
    assert c["setup"] == parts["setup"] and c["parity"] == parts["parity"] and c["info"] == parts["info"]
    assert c["telemetry"] == {}
    assert cells[1]["reason"] == "RuntimeError: boom" and len(cells[1]["samples_ms"]) == 0
    assert "samples_ms" not in store.cells("r1", with_samples=False)[0]
    assert store.done_keys("r1") == {cell.key, failed.key}
    store.set_status("r1", "complete")
    assert store.run("r1")["status"] == "complete" and store.run("r1")["finished"]
    store.close()

    db = sqlite3.connect(tmp_path / FILENAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    db.close()


def test_phases_add_up_and_older_stores_gain_the_column(tmp_path):
    store = Store(tmp_path)
    store.create_run("r1", SWEEP.to_dict(), {}, {}, {})
    assert store.run("r1")["phases"] == {}
    store.add_phases("r1", {"cells_s": 2.0, "wall_s": 3.0})
    store.add_phases("r1", {"cells_s": 1.5, "report_s": 0.5})  # a resumed run adds to the first attempt
    assert store.run("r1")["phases"] == {"cells_s": 3.5, "wall_s": 3.0, "report_s": 0.5}
    store.close()

    old = tmp_path / "old"  # a schema-1 file written before runs had a phases column
    old.mkdir()
    db = sqlite3.connect(old / FILENAME)
    db.executescript(SCHEMA.replace(", phases TEXT", "") + "INSERT INTO meta VALUES ('schema_version', '1');"
                     "INSERT INTO runs (id, created, status, sweep) VALUES ('r0', '2026-01-01', 'complete', '{}');")
    db.close()
    store = Store(old, create=False)
    assert store.run("r0")["phases"] == {}
    store.add_phases("r0", {"report_s": 1.0})
    assert store.run("r0")["phases"] == {"report_s": 1.0}
    store.close()


def test_a_cell_is_stored_once(tmp_path):
    store = Store(tmp_path)
    store.create_run("r1", SWEEP.to_dict(), {}, {}, {})
    cell = SWEEP.cells()[0]
    store.add_cell("r1", cell, "ok", None, ([1.0], [1.0]))
    with pytest.raises(sqlite3.IntegrityError):
        store.add_cell("r1", cell, "ok", None, ([2.0], [2.0]))
    # the failed insert left nothing behind (one transaction per cell)
    assert len(store.cells("r1")) == 1
    assert list(store.cells("r1")[0]["samples_ms"]) == [1.0]
    store.close()


def test_store_errors_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="pass the --out folder of an earlier run"):
        Store(tmp_path / "nowhere", create=False)
    store = Store(tmp_path)
    with pytest.raises(UserError, match="rtbench list runs --out"):
        store.run("no-such-run")
    store.db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    store.close()
    with pytest.raises(UserError, match="newer rtbench"):
        Store(tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / FILENAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="not a usable rtbench store"):
        Store(tmp_path / "junk")


class Interrupt(Exception):
    """Stands for a kill in the middle of a run."""




def test_resume_skips_measured_cells(tmp_path):
    seen = []

    def stop_after_first(cell: Cell, status: str) -> None:
        seen.append((cell.key, status))
        raise Interrupt  # as if the process were stopped after the first cell was committed

    started = {}
    with pytest.raises(Interrupt):
        api.run(runtimes="torch", sizes="32", batches="1,2", device="cpu", out=tmp_path, policy=FAST,
                on_start=lambda run_id, sweep: started.setdefault("id", run_id), progress=stop_after_first)
    run_id = started["id"]
    store = Store(tmp_path, create=False)
    assert store.run(run_id)["status"] == "interrupted"
    first = store.cells(run_id)
    assert [(c["batch"], c["status"]) for c in first] == [(1, "ok")]
    store.close()
    assert (tmp_path / run_id / "report.md").exists()  # a partial report was written

    resumed = []
    r = rtbench.run(resume=run_id, out=tmp_path, progress=lambda cell, status: resumed.append((cell.batch, status)))
    assert resumed == [(2, "ok")]  # only the missing cell was measured
    assert r.status == "complete"
    assert [(c["size"], c["batch"]) for c in r.cells] == [(32, 1), (32, 2)]  # no duplicate rows
    assert r.cells[0]["id"] == first[0]["id"]
    np.testing.assert_array_equal(r.cells[0]["samples_ms"], first[0]["samples_ms"])
    assert all(len(c["samples_ms"]) >= 5 for c in r.cells)
    assert r.sweep.policy == FAST  # the resumed run keeps the stored policy
    assert [x["id"] for x in rtbench.results.list_runs(tmp_path)] == [run_id]


def test_runs_are_listed_in_creation_order(tmp_path):
    store = Store(tmp_path)
    ids = ["b-run", "a-run", "c-run"]  # created within the same second: insertion order decides
    for i in ids:
        store.create_run(i, SWEEP.to_dict(), {}, {}, {})
    assert [r["id"] for r in store.runs()] == ids
    store.close()
