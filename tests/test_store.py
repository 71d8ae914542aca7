"""The SQLite store: round-trip of runs, cells and blocks; WAL; schema version and the migration from schema 1 (a
real schema-1 file); resume of a real run killed between cells and in the middle of its rounds."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import rtbench
from rtbench import api
from rtbench.errors import UserError
from rtbench.spec import Cell, Sweep
from rtbench.store import FILENAME, SCHEMA, SCHEMA_VERSION, Store
from rtbench.timing import Block
from policies import FAST

FIXTURE = Path(__file__).parent / "fixtures" / "store-v1.sqlite"

SWEEP = Sweep(runtimes=("torch", "onnxruntime"), sizes=(32,), batches=(1, 2))


def test_round_trip(tmp_path):
    store = Store(tmp_path)
    store.create_run("r1", SWEEP.to_dict(), {"torch": "2.x", "cpu_cores": 2}, {"per_call_ns": 512.0},
                     {"device": "cpu", "measured": {"matmul_fp32_flops": 1e11}})
    rng = np.random.default_rng(0)
    primary, host, launch = rng.normal(10, 1, 257), rng.normal(10.2, 1, 257), rng.normal(9, 1, 257)
    cell = SWEEP.cells()[0]
    parts = {"stats": {"ms": np.float64(9.98), "n": np.int64(257), "ci_above_target": False},
             "setup": {"session_s": 0.25}, "parity": {"max_abs": 1e-6, "ok": True}, "info": {"threads": 2}}
    cid = store.add_cell("r1", cell, "measuring", None, **parts)
    store.add_block(cid, 1, Block(primary[100:], host[100:], launch[100:], 3, 1.57))  # stored out of order
    store.add_block(cid, 0, Block(primary[:100], host[:100], launch[:100], 2, 1.0))
    assert store.rounds_of(cid) == [0, 1]
    store.update_cell(cid, "ok", None, telemetry={"available": False})
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
    np.testing.assert_array_equal(c["samples_ms"], primary)  # bit for bit, in round order
    np.testing.assert_array_equal(c["host_ms"], host)
    np.testing.assert_array_equal(c["launch_ms"], launch)
    assert list(c["rounds"]) == [0] * 100 + [1] * 157
    assert c["stats"] == {"ms": 9.98, "n": 257, "ci_above_target": False}
    assert c["setup"] == parts["setup"] and c["parity"] == parts["parity"] and c["info"] == parts["info"]
    assert c["telemetry"] == {"available": False}  # update_cell replaced it, and only it
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
    db.executescript(SCHEMA.replace(", phases TEXT, schedule TEXT", "") + "INSERT INTO meta VALUES ('schema_version', '1');"
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
    cid = store.add_cell("r1", cell, "measuring")
    store.add_block(cid, 0, Block(np.array([1.0]), np.array([1.0]), np.empty(0), 0, 0.001))
    with pytest.raises(sqlite3.IntegrityError):
        store.add_cell("r1", cell, "ok", None)
    with pytest.raises(sqlite3.IntegrityError):  # and a round once
        store.add_block(cid, 0, Block(np.array([2.0]), np.array([2.0]), np.empty(0), 0, 0.001))
    # the failed inserts left nothing behind
    assert len(store.cells("r1")) == 1
    assert list(store.cells("r1")[0]["samples_ms"]) == [1.0]
    assert len(store.cells("r1")[0]["launch_ms"]) == 0  # a host-clock block stores no launch times
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




def test_resume_skips_finished_cells(tmp_path):
    seen = []

    def stop_after_first(cell: Cell, status: str) -> None:
        seen.append((cell.key, status))
        raise Interrupt  # as if the process were stopped after the first cell was finished

    started = {}
    with pytest.raises(Interrupt):
        api.run(runtimes="torch", sizes="32", batches="1,2", device="cpu", out=tmp_path, policy=FAST,
                on_start=lambda run_id, sweep: started.setdefault("id", run_id), progress=stop_after_first)
    run_id = started["id"]
    store = Store(tmp_path, create=False)
    assert store.run(run_id)["status"] == "interrupted"
    first = {c["batch"]: c for c in store.cells(run_id)}
    assert sorted(c["status"] for c in first.values()) == ["measuring", "ok"]  # one finished, one had its rounds
    store.close()
    assert (tmp_path / run_id / "report.md").exists()  # a partial report was written

    done = next(b for b, c in first.items() if c["status"] == "ok")
    resumed = []
    r = rtbench.run(resume=run_id, out=tmp_path, progress=lambda cell, status: resumed.append((cell.batch, status)))
    assert resumed == [(3 - done, "ok")]  # only the unfinished cell: its stored rounds were all it needed
    assert r.status == "complete"
    assert [(c.cell.size, c.cell.batch) for c in r.cells] == [(32, 1), (32, 2)]  # no duplicate rows
    by = {c.cell.batch: c for c in r.cells}
    for b in (1, 2):
        assert by[b].id == first[b]["id"]
        np.testing.assert_array_equal(by[b].samples_ms, first[b]["samples_ms"])  # nothing re-measured
        assert sorted(set(by[b].rounds)) == [0, 1]
    assert r.sweep.policy == FAST  # the resumed run keeps the stored policy
    assert [x["id"] for x in rtbench.results.list_runs(tmp_path)] == [run_id]


def test_a_run_killed_in_the_middle_of_its_rounds_resumes_with_the_rounds_it_has(tmp_path):
    def stop_at_second_round(r: int, cells: int) -> None:
        if r == 1:
            raise Interrupt  # round 0 of every cell is stored, round 1 not begun

    started = {}
    with pytest.raises(Interrupt):
        api.run(runtimes="torch,onnxruntime", sizes="32", batches="1", device="cpu", out=tmp_path, policy=FAST,
                on_start=lambda run_id, sweep: started.setdefault("id", run_id), on_round=stop_at_second_round)
    run_id = started["id"]
    store = Store(tmp_path, create=False)
    before = {c["runtime"]: c for c in store.cells(run_id)}
    assert {c["status"] for c in before.values()} == {"measuring"}
    assert {tuple(sorted(set(c["rounds"]))) for c in before.values()} == {(0,)}
    store.close()

    r = rtbench.run(resume=run_id, out=tmp_path)
    for c in r.cells:
        assert c.status == "ok" and c.info.get("resumed") is True
        assert sorted(set(c.rounds)) == [0, 1]  # the stored round, then the one that was missing
        n0 = len(before[c.cell.runtime]["samples_ms"])
        np.testing.assert_array_equal(c.samples_ms[:n0], before[c.cell.runtime]["samples_ms"])
        assert c.stats["rounds"] == 2
    assert r.to_pandas().set_index("runtime").loc["onnxruntime", "speedup_method"] == "paired, 2 rounds"


def test_a_schema_1_store_migrates_and_renders(tmp_path):
    """The committed schema-1 file (written by rtbench before rounds) opens as schema 2: each cell's samples become
    its one block (round 0), its stats are renamed, and the run renders as a report."""
    shutil.copy(FIXTURE, tmp_path / FILENAME)
    v1 = sqlite3.connect(FIXTURE)
    samples = {r: np.frombuffer(b, dtype="<f8") for r, b in v1.execute(
        "SELECT c.runtime || c.size || c.batch, s.primary_ms FROM cells c JOIN samples s ON s.cell_id = c.id")}
    v1.close()
    store = Store(tmp_path, create=False)
    run_id = store.runs()[0]["id"]
    store.close()
    db = sqlite3.connect(tmp_path / FILENAME)
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    assert db.execute("SELECT 1 FROM sqlite_master WHERE name='samples'").fetchone() is None
    assert db.execute("SELECT COUNT(*), MIN(round), MAX(round) FROM blocks").fetchone() == (8, 0, 0)
    db.close()
    r = rtbench.load(run_id, tmp_path)
    assert sorted({c.status.value for c in r.cells}) == ["ok", "unavailable"]
    for c in r.cells:
        if c.measured:
            np.testing.assert_array_equal(c.samples_ms, samples[f"{c.cell.runtime}{c.cell.size}{c.cell.batch}"])
            assert c.stats["rounds"] == 1 and "trimmed_mean_ms" not in c.stats and c.ms > 0
    df = r.to_pandas()
    assert set(df[df.status == "ok"]["speedup_method"]) == {"baseline", "i.i.d. bootstrap"}
    from rtbench.report import write_report

    text = write_report(r).read_text()
    assert "schema-1 run" in text and "| 32x32 | 1 |" in text
    Store(tmp_path, create=False).close()  # opening again changes nothing


def test_runs_are_listed_in_creation_order(tmp_path):
    store = Store(tmp_path)
    ids = ["b-run", "a-run", "c-run"]  # created within the same second: insertion order decides
    for i in ids:
        store.create_run(i, SWEEP.to_dict(), {}, {}, {})
    assert [r["id"] for r in store.runs()] == ids
    store.close()
