"""Where a run to compare comes from: a run id in ``--out``, ``PATH.sqlite:RUN_ID``, or a run folder
``DIR/RUN_ID`` (whose store is ``DIR/rtbench.sqlite``). Stores are read from a copy, so comparing never writes to
(or migrates) a kept baseline."""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from rtbench.errors import UserError
from rtbench.results import Run
from rtbench.store import FILENAME, Store


def load(spec, out: Path | str, what: str) -> tuple[Run, str]:
    """A run from ``spec``: a Run, a run id in ``out``'s store, ``PATH.sqlite:RUN_ID`` or a run folder
    ``DIR/RUN_ID`` (its store is ``DIR/rtbench.sqlite``). Returns the run and its store file.

    The store is read from a copy: comparing never writes to (or migrates) a kept baseline.
    """
    if isinstance(spec, Run):
        return spec, str(spec.out_dir / FILENAME)
    text, out = str(spec), Path(out)
    head, sep, run_id = text.rpartition(":")
    if sep and (head.endswith(".sqlite") or Path(head).is_file()):
        if not Path(head).is_file():
            raise UserError(f"{what} {text!r}: no store file at {head}: give an existing STORE.sqlite:RUN_ID")
        return _load(Path(head), run_id, what), head
    folder, store = Path(text), out / FILENAME
    if folder.is_dir() and (folder.parent / FILENAME).is_file():
        own = folder.parent / FILENAME
        if store.is_file() and own.resolve() != store.resolve() and _has_run(store, text, what):
            raise UserError(f"{what} {text!r} is both a run folder (store {own}) and a run id in {store}: write "
                            f"{own}:{folder.name} or {store}:{text} to say which")
        return _load(own, folder.name, what), str(own)
    if not store.is_file():
        raise UserError(f"{what} {text!r}: no run folder of that name, and no store {store}: pass the --out folder "
                        "of the run, STORE.sqlite:RUN_ID or a run folder DIR/RUN_ID")
    return _load(store, text, what, hint=f"{what} can also be STORE.sqlite:RUN_ID or a run folder DIR/RUN_ID"), \
        str(store)


def _copy(store_file: Path, into: Path) -> Path:
    """Copy a store file (and its write-ahead log, which may hold its latest commits) as ``into/rtbench.sqlite``."""
    try:
        shutil.copyfile(store_file, into / FILENAME)
        wal = store_file.with_name(store_file.name + "-wal")
        if wal.is_file():
            shutil.copyfile(wal, into / (FILENAME + "-wal"))
    except OSError as e:
        raise UserError(f"cannot read the store {store_file} ({e.strerror}): give a readable store") from None
    return into


def _ids(store_file: Path, tmp: Path, what: str) -> list[str]:
    """Copy the store into ``tmp`` and list its runs; a file that is no store is bad input naming the file."""
    try:
        store = Store(_copy(store_file, tmp), create=False)
    except UserError as e:
        raise UserError(f"{what}: " + str(e).replace(str(tmp / FILENAME), str(store_file))) from None
    try:
        return [r["id"] for r in store.runs()]
    finally:
        store.close()


def _has_run(store_file: Path, run_id: str, what: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="rtbench-compare-") as tmp:
        return run_id in _ids(store_file, Path(tmp), what)


def _load(store_file: Path, run_id: str, what: str, hint: str = "") -> Run:
    with tempfile.TemporaryDirectory(prefix="rtbench-compare-") as tmp:
        ids = _ids(store_file, Path(tmp), what)
        if run_id not in ids:
            shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "") if ids else "no runs"
            raise UserError(f"{what}: unknown run id {run_id!r} in {store_file} (it holds {shown})"
                            + (f"; {hint}" if hint else "") + f": `rtbench list runs --out {store_file.parent}` "
                            "lists the runs")
        run = Run.load(run_id, tmp)
    return dataclasses.replace(run, out_dir=store_file.parent)
