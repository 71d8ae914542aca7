"""The SQLite store: one file for all runs; every measurement is committed the moment it exists."""
from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from rtbench.errors import UserError

SCHEMA_VERSION = 2
FILENAME = "rtbench.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created TEXT NOT NULL, finished TEXT, status TEXT NOT NULL,
    sweep TEXT NOT NULL, harness TEXT, peak TEXT, phases TEXT, schedule TEXT);
CREATE TABLE IF NOT EXISTS environment (run_id TEXT PRIMARY KEY REFERENCES runs(id), fingerprint TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id), model TEXT NOT NULL,
    runtime TEXT NOT NULL, precision TEXT NOT NULL, size INTEGER NOT NULL, batch INTEGER NOT NULL,
    device TEXT NOT NULL, boundary TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
    stats TEXT, setup TEXT, parity TEXT, info TEXT, telemetry TEXT, created TEXT NOT NULL,
    UNIQUE (run_id, runtime, precision, size, batch, boundary));
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY, cell_id INTEGER NOT NULL REFERENCES cells(id), round INTEGER NOT NULL,
    started REAL, seconds REAL, rewarm_calls INTEGER NOT NULL DEFAULT 0,
    primary_ms BLOB NOT NULL, host_ms BLOB NOT NULL, launch_ms BLOB, UNIQUE (cell_id, round));
CREATE TABLE IF NOT EXISTS zoos (
    id TEXT PRIMARY KEY, created TEXT NOT NULL, finished TEXT, status TEXT NOT NULL, spec TEXT NOT NULL,
    result TEXT);
CREATE TABLE IF NOT EXISTS zoo_runs (
    zoo_id TEXT NOT NULL REFERENCES zoos(id), run_id TEXT NOT NULL REFERENCES runs(id), model TEXT NOT NULL,
    accelerator TEXT NOT NULL, role TEXT NOT NULL, lane TEXT, created TEXT NOT NULL, PRIMARY KEY (zoo_id, run_id));
CREATE TABLE IF NOT EXISTS tunes (
    id TEXT PRIMARY KEY, created TEXT NOT NULL, status TEXT NOT NULL, spec TEXT NOT NULL, trail TEXT, result TEXT);
CREATE TABLE IF NOT EXISTS load_points (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id), runtime TEXT NOT NULL,
    precision TEXT NOT NULL, size INTEGER NOT NULL, max_batch INTEGER NOT NULL, max_delay_ms REAL NOT NULL,
    offered_qps REAL, kind TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT, stats TEXT,
    info TEXT, created TEXT NOT NULL, arrival_s BLOB, latency_ms BLOB, queue_ms BLOB, batch BLOB);
"""
# A zoo (rtbench.zoo) is several runs, one per model and accelerator type (and the interference check's two):
# each run keeps one model's cells, so the cells' UNIQUE key (which has no model) holds within every run.
# Schema 1 kept one ``samples`` row per cell (its calls, all in one block). Schema 2 keeps every block of
# every round (``blocks``), so a cell's interval comes from its rounds and a killed run resumes by round.
# ``tunes`` (added within schema 2) keeps each ``rtbench tune``: its goal, the trail of every configuration tried,
# and the result; its races are ordinary runs (rtbench.tune_run).
# ``load_points`` (rtbench.loadtest) holds the points of load tests, every request's latency kept.

CELL_JSON = ("stats", "setup", "parity", "info", "telemetry")


def dumps(obj) -> str:
    """JSON that also takes numpy scalars (their ``item()``)."""
    return json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    import secrets

    return datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class Store:
    """Runs, their environment, cells (measurements) and raw samples in one SQLite file (WAL mode)."""

    def __init__(self, out_dir: Path | str, create: bool = True):
        self.path = Path(out_dir) / FILENAME
        if not create and not self.path.exists():
            raise UserError(f"no rtbench store at {self.path}: pass the --out folder of an earlier run")
        self.db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # busy timeout 30 s
            self._open()
        except sqlite3.DatabaseError as e:
            self._abandon()
            raise UserError(f"{self.path} is not a usable rtbench store ({e}): pass another --out folder") from None
        except OSError as e:
            self._abandon()
            raise UserError(f"cannot write to {self.path.parent} ({e.strerror}): pass a writable --out folder") from None
        except UserError:
            self._abandon()
            raise

    def _open(self, patience_s: float = 30.0) -> None:
        """Check the version, switch to WAL, create or migrate the schema.

        Processes that open a new file at the same moment can get "database is locked" at once from the
        switch to WAL (SQLite's busy timeout does not cover every lock upgrade): they try again.
        """
        deadline = time.monotonic() + patience_s
        while True:
            try:
                self._check_version()  # before anything is written: a foreign or newer file stays as it was
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _abandon(self) -> None:
        if self.db is not None:
            self.db.close()

    def _schema_version(self) -> int | None:
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
            return None
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        try:
            return int(row[0]) if row else None
        except ValueError:
            raise sqlite3.DatabaseError(f"schema_version {row[0]!r} is not a number") from None

    def _check_version(self) -> None:
        v = self._schema_version()
        if v is not None and v > SCHEMA_VERSION:
            raise UserError(f"{self.path} was written by a newer rtbench (schema {v} > {SCHEMA_VERSION}): "
                            "upgrade rtbench or pass another --out folder")

    def _migrate(self) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self._check_version()  # again, under the write lock
            version = self._schema_version()
            for stmt in SCHEMA.strip().split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            if version is None:
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                return
            cols = {r[1] for r in self.db.execute("PRAGMA table_info(runs)")}
            if "phases" not in cols:  # added within schema 1: older readers select by name and ignore it
                self.db.execute("ALTER TABLE runs ADD COLUMN phases TEXT")
            for to in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[to](self.db)
                self.db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(to),))

    def close(self) -> None:
        self.db.close()

    # runs -------------------------------------------------------------------------------------
    def create_run(self, run_id: str, sweep: dict, fingerprint: dict, harness: dict, peak: dict) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT INTO runs (id, created, status, sweep, harness, peak) VALUES (?,?,?,?,?,?)",
                            (run_id, now(), "running", dumps(sweep), dumps(harness), dumps(peak)))
            self.db.execute("INSERT INTO environment VALUES (?, ?)", (run_id, dumps(fingerprint)))

    def add_phases(self, run_id: str, phases: dict) -> None:
        """Add wall-clock seconds per phase of the run (peaks, fingerprint, cells, report); a resume adds to them."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT phases FROM runs WHERE id=?", (run_id,)).fetchone()
            merged = json.loads(row[0]) if row and row[0] else {}
            for k, v in phases.items():
                merged[k] = merged.get(k, 0.0) + v
            self.db.execute("UPDATE runs SET phases=? WHERE id=?", (dumps(merged), run_id))

    def set_schedule(self, run_id: str, schedule: dict) -> None:
        """How the run's rounds went (block length, budget, shortened...); a resume replaces it."""
        with self.db:
            self.db.execute("UPDATE runs SET schedule=? WHERE id=?", (dumps(schedule), run_id))

    def set_status(self, run_id: str, status: str) -> None:
        with self.db:
            self.db.execute("UPDATE runs SET status=?, finished=? WHERE id=?", (status, now(), run_id))

    def run(self, run_id: str) -> dict:
        row = self.db.execute("SELECT r.id, r.created, r.finished, r.status, r.sweep, r.harness, r.peak, "
                              "r.phases, r.schedule, e.fingerprint FROM runs r LEFT JOIN environment e "
                              "ON e.run_id = r.id WHERE r.id=?", (run_id,)).fetchone()
        if row is None:
            raise UserError(f"unknown run id {run_id!r} in {self.path}: `rtbench list runs --out "
                            f"{self.path.parent}` lists the runs")
        keys = ("id", "created", "finished", "status", "sweep", "harness", "peak", "phases", "schedule", "env")
        d = dict(zip(keys, row))
        for k in ("sweep", "harness", "peak", "phases", "schedule", "env"):
            d[k] = json.loads(d[k]) if d[k] else {}
        return d

    def runs(self) -> list[dict]:
        rows = self.db.execute("SELECT r.id, r.created, r.status, r.sweep, "
                               "(SELECT COUNT(*) FROM cells c WHERE c.run_id = r.id) FROM runs r ORDER BY r.created, r.rowid")
        return [{"id": i, "created": c, "status": s, "sweep": json.loads(sw), "cells": n} for i, c, s, sw, n in rows]

    # cells ------------------------------------------------------------------------------------
    def add_cell(self, run_id: str, cell, status: str, reason: str | None = None, **parts) -> int:
        """Store one cell (status, reason, JSON parts: stats, setup, parity, info, telemetry); returns its id."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute(
                "INSERT INTO cells (run_id, model, runtime, precision, size, batch, device, boundary, status, "
                "reason, stats, setup, parity, info, telemetry, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, cell.model, cell.runtime, cell.precision, cell.size, cell.batch, cell.device,
                 cell.boundary, str(status), reason, *(dumps(parts.get(k) or {}) for k in CELL_JSON), now()))
        return cur.lastrowid

    def update_cell(self, cell_id: int, status: str, reason: str | None = None, **parts) -> None:
        """Set a cell's status and reason and replace the JSON parts given (the others stay as stored)."""
        given = [k for k in CELL_JSON if k in parts]
        sets = ", ".join(["status=?", "reason=?", *(f"{k}=?" for k in given)])
        with self.db:
            self.db.execute(f"UPDATE cells SET {sets} WHERE id=?",
                            (str(status), reason, *(dumps(parts[k] or {}) for k in given), cell_id))

    def add_block(self, cell_id: int, round_: int, block) -> None:
        """Store one block of timed calls (a ``timing.Block``) as round ``round_`` of a cell, at once."""
        launch = block.launch_ms if len(block.launch_ms) else None
        with self.db:
            self.db.execute(
                "INSERT INTO blocks (cell_id, round, started, seconds, rewarm_calls, primary_ms, host_ms, launch_ms) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (cell_id, round_, time.time() - block.seconds, block.seconds, block.rewarm_calls, _blob(block.primary_ms),
                 _blob(block.host_ms), None if launch is None else _blob(launch)))

    def done_keys(self, run_id: str) -> set[tuple]:
        rows = self.db.execute("SELECT runtime, precision, size, batch, boundary FROM cells WHERE run_id=?", (run_id,))
        return {tuple(r) for r in rows}

    def cells(self, run_id: str, with_samples: bool = True) -> list[dict]:
        """Every cell of a run as a dict; with samples, ``samples_ms``, ``host_ms``, ``launch_ms`` and the
        ``rounds`` each sample was taken in, in round order."""
        cols = ("id", "model", "runtime", "precision", "size", "batch", "device", "boundary", "status", "reason",
                *CELL_JSON, "created")
        rows = self.db.execute(f"SELECT {', '.join(cols)} FROM cells WHERE run_id=? ORDER BY id", (run_id,))
        out = []
        for row in rows:
            d = dict(zip(cols, row))
            for k in CELL_JSON:
                d[k] = json.loads(d[k]) if d[k] else {}
            out.append(d)
        if with_samples and out:
            blocks: dict[int, list] = {}
            for cid, rnd, p, h, la in self.db.execute(
                    "SELECT b.cell_id, b.round, b.primary_ms, b.host_ms, b.launch_ms FROM blocks b "
                    "JOIN cells c ON c.id = b.cell_id WHERE c.run_id=? ORDER BY b.cell_id, b.round", (run_id,)):
                blocks.setdefault(cid, []).append((rnd, _array(p), _array(h), _array(la)))
            for d in out:
                bs = blocks.get(d["id"], [])
                d["samples_ms"] = np.concatenate([b[1] for b in bs]) if bs else np.empty(0)
                d["host_ms"] = np.concatenate([b[2] for b in bs]) if bs else np.empty(0)
                d["launch_ms"] = np.concatenate([b[3] for b in bs]) if bs else np.empty(0)
                d["rounds"] = np.concatenate([np.full(len(b[1]), b[0]) for b in bs]) if bs else np.empty(0, int)
        return out

    def rounds_of(self, cell_id: int) -> list[int]:
        """The rounds stored for a cell (a resumed run measures only the missing ones)."""
        return [r for (r,) in self.db.execute("SELECT round FROM blocks WHERE cell_id=? ORDER BY round", (cell_id,))]


def _blob(a) -> bytes:
    return np.asarray(a, dtype="<f8").tobytes()


def _array(b) -> np.ndarray:
    return np.frombuffer(b, dtype="<f8") if b else np.empty(0)


def _update_to_2(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2: each cell's samples become its one block (round 0); its stats name what they are."""
    if "schedule" not in {r[1] for r in db.execute("PRAGMA table_info(runs)")}:
        db.execute("ALTER TABLE runs ADD COLUMN schedule TEXT")
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='samples'").fetchone():
        db.execute("INSERT INTO blocks (cell_id, round, rewarm_calls, primary_ms, host_ms) "
                   "SELECT cell_id, 0, 0, primary_ms, host_ms FROM samples")
        db.execute("DROP TABLE samples")
    for cid, st in db.execute("SELECT id, stats FROM cells").fetchall():
        st = json.loads(st) if st else {}
        if "trimmed_mean_ms" in st:
            st.update({"ms": st.pop("trimmed_mean_ms"), "rounds": 1, "statistic": "10% trimmed mean",
                       "ci_method": "i.i.d. bootstrap of one block's calls (schema 1: not calibrated)"})
            db.execute("UPDATE cells SET stats=? WHERE id=?", (dumps(st), cid))


MIGRATIONS = {2: _update_to_2}
