"""A zoo's record in the store: the zoo (its spec, status, results) and which run measured which model where."""
from __future__ import annotations

import json
from pathlib import Path

from rtbench.store import Store, dumps, now


def create(out: Path, zoo_id: str, spec: dict) -> None:
    store = Store(out)
    try:
        with store.db:
            store.db.execute("INSERT INTO zoos (id, created, status, spec) VALUES (?,?,?,?)",
                             (zoo_id, now(), "running", dumps(spec)))
    finally:
        store.close()


def set_status(out: Path, zoo_id: str, status: str, result: dict | None = None) -> None:
    """The zoo's status; ``result`` (wall time, lanes, interference windows) is merged into what is stored."""
    store = Store(out, create=False)
    try:
        with store.db:
            store.db.execute("BEGIN IMMEDIATE")
            row = store.db.execute("SELECT result FROM zoos WHERE id=?", (zoo_id,)).fetchone()
            merged = {**(json.loads(row[0]) if row and row[0] else {}), **(result or {})}
            store.db.execute("UPDATE zoos SET status=?, finished=?, result=? WHERE id=?",
                             (status, now(), dumps(merged), zoo_id))
    finally:
        store.close()


def add_run(out: Path, zoo_id: str, run_id: str, model: str, accelerator: str, role: str, lane: str) -> None:
    store = Store(out, create=False)
    try:
        with store.db:
            store.db.execute("INSERT OR IGNORE INTO zoo_runs VALUES (?,?,?,?,?,?,?)",
                             (zoo_id, run_id, model, accelerator, role, lane, now()))
    finally:
        store.close()


def load(out: Path, zoo_id: str) -> dict | None:
    """The zoo and its runs (each with the run's status), or None when ``out`` has no zoo of that id."""
    if not (Path(out) / "rtbench.sqlite").exists():
        return None
    store = Store(out, create=False)
    try:
        row = store.db.execute("SELECT id, created, finished, status, spec, result FROM zoos WHERE id=?",
                               (zoo_id,)).fetchone()
        if row is None:
            return None
        runs = store.db.execute(
            "SELECT z.run_id, z.model, z.accelerator, z.role, z.lane, r.status FROM zoo_runs z JOIN runs r "
            "ON r.id = z.run_id WHERE z.zoo_id=? ORDER BY z.created, z.rowid", (zoo_id,)).fetchall()
    finally:
        store.close()
    keys = ("id", "created", "finished", "status", "spec", "result")
    z = dict(zip(keys, row))
    z["spec"], z["result"] = json.loads(z["spec"]), json.loads(z["result"]) if z["result"] else {}
    z["runs"] = [dict(zip(("run_id", "model", "accelerator", "role", "lane", "status"), r)) for r in runs]
    return z
