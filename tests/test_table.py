"""The seed report's Markdown table against a golden file.

The table is built the way a real report is: a Store filled with fixed synthetic samples (seeded numpy
generator), read back with Run.load and Run.to_pandas. Set RTBENCH_UPDATE_GOLDEN=1 to rewrite the golden
file after a deliberate change of the table, then review the diff.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rtbench.report.table import seed_table
from rtbench.results import Run
from rtbench.spec import Sweep
from rtbench.store import Store
from stored import add_measured

GOLDEN = Path(__file__).parent / "golden" / "seed_table.md"
SWEEP = Sweep(runtimes=("torch", "onnxruntime"), sizes=(32, 64), batches=(1, 2))
PEAK = {"device": "cpu", "name": "test cpu", "datasheet": None, "measured": {"matmul_fp32_flops": 2e11}}
FLOPS_PER_IMAGE = {32: 3.7e7, 64: 1.5e8}

# (runtime, size, batch) -> (status, reason, mean ms, sd ms, n, CI wider than the target)
CELLS = {
    ("torch", 32, 1): ("ok", None, 10.0, 0.1, 200, False),
    ("onnxruntime", 32, 1): ("ok", None, 5.0, 0.05, 200, False),  # clear winner: bold
    ("torch", 32, 2): ("ok", None, 20.0, 3.0, 50, False),
    ("onnxruntime", 32, 2): ("ok", None, 20.5, 3.0, 50, False),  # CIs overlap: no bold
    ("torch", 64, 1): ("ok", None, 30.0, 0.3, 100, False),
    ("onnxruntime", 64, 1): ("failed", "RuntimeError: boom", 0, 0, 0, False),
    ("torch", 64, 2): ("ok", None, 60.0, 6.0, 100, True),  # CI wider than the target: *
    ("onnxruntime", 64, 2): ("mismatch", "max_abs 0.5 beyond 1e-4", 40.0, 0.4, 100, False),  # ⚠, never bold
}


def make_run(out: Path) -> Run:
    rng = np.random.default_rng(2024)
    store = Store(out)
    store.create_run("golden", SWEEP.to_dict(), {"torch_threads": 2}, {"per_call_ns": 500.0}, PEAK)
    for cell in SWEEP.cells():
        status, reason, mean, sd, n, capped = CELLS[(cell.runtime, cell.size, cell.batch)]
        if status == "failed":
            store.add_cell("golden", cell, status, reason)
            continue
        samples = np.round(rng.normal(mean, sd, n), 4)
        add_measured(store, "golden", cell, status, samples, reason,
                     stats={"ci_above_target": capped, "flops_per_image": FLOPS_PER_IMAGE[cell.size]},
                     parity={"ok": status == "ok"}, info={"threads": 2})
    store.close()
    return Run.load("golden", out)


@pytest.fixture
def table(tmp_path) -> tuple[str, object]:
    run = make_run(tmp_path)
    df = run.to_pandas()
    return seed_table(df, list(SWEEP.runtimes)), df


def test_seed_table_matches_golden(table):
    text, _ = table
    if os.environ.get("RTBENCH_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def rows(text: str) -> dict[tuple[str, str], list[str]]:
    out = {}
    for line in text.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[(cells[0], cells[1])] = cells[2:]
    return out


def test_seed_table_semantics(table):
    text, df = table
    head = [c.strip() for c in text.splitlines()[0].strip("|").split("|")]
    assert head == ["Size", "Batch", "torch ms", "onnxruntime ms", "torch FPS", "onnxruntime FPS", "onnxruntime ↑",
                    "torch ms/img", "onnxruntime ms/img", "torch load %", "onnxruntime load %"]
    r = rows(text)
    assert list(r) == [("32x32", "1"), ("32x32", "2"), ("64x64", "1"), ("64x64", "2")]
    clear, overlap, failed, flagged = r[("32x32", "1")], r[("32x32", "2")], r[("64x64", "1")], r[("64x64", "2")]
    # clear winner: onnxruntime's ms and FPS in bold, torch's not
    assert clear[1].startswith("**") and clear[3].startswith("**") and "**" not in clear[0] + clear[2]
    assert "**" not in "".join(overlap)
    assert failed[1] == "failed" and failed[3] == "–" and failed[4] == "–" and failed[6] == "–"
    assert flagged[0].endswith("*") and flagged[1].endswith("⚠") and "**" not in "".join(flagged)
    # the figures are those of the DataFrame
    ort = df[(df.runtime == "onnxruntime") & (df["size"] == 32) & (df.batch == 1)].iloc[0]
    assert clear[1] == f"**{ort.ms:.2f} ±{(ort.ci_high_ms - ort.ci_low_ms) / 2:.2f}**"
    assert clear[3] == f"**{ort.batch * 1000 / ort.ms:.1f}**"
    assert clear[4].startswith(f"{ort.speedup:.2f} (") and 1.9 < ort.speedup < 2.1
    load = 100 * FLOPS_PER_IMAGE[32] * 1 / (ort.ms / 1e3) / PEAK["measured"]["matmul_fp32_flops"]
    assert clear[8] == f"{load:.1f}"


def test_seed_table_without_the_baseline_has_no_speedup_columns(table):
    _, df = table
    text = seed_table(df[df.runtime == "onnxruntime"], ["onnxruntime"])
    head = [c.strip() for c in text.splitlines()[0].strip("|").split("|")]
    assert head == ["Size", "Batch", "onnxruntime ms", "onnxruntime FPS", "onnxruntime ms/img", "onnxruntime load %"]
    assert "**" not in text  # a single runtime is never a "winner"
    assert len(text.splitlines()) == 2 + 4


def test_nan_ci_bounds_show_as_a_dash_and_never_make_a_winner():
    nan = float("nan")
    cell = {"size": 32, "batch": 1, "status": "ok", "n": 50, "fps": 200.0, "ms_per_image": 5.0}
    df = pd.DataFrame([{**cell, "runtime": "torch", "ms": 10.0, "ci_low_ms": nan, "ci_high_ms": nan,
                        "speedup": 1.0, "speedup_low": nan, "speedup_high": nan},
                       {**cell, "runtime": "onnxruntime", "ms": 5.0, "ci_low_ms": 4.9, "ci_high_ms": 5.1,
                        "speedup": 2.0, "speedup_low": nan, "speedup_high": nan}])
    r = rows(seed_table(df, ["torch", "onnxruntime"]))[("32x32", "1")]
    assert r[:2] == ["10.00 ±–", "5.00 ±0.10"] and r[4] == "2.00"
    assert "nan" not in "".join(r) and "**" not in "".join(r)


def test_wide_intervals_show_both_bounds_readably():
    """A wide interval shows its bounds (asymmetric on a log scale), far-off ones in two significant digits; times
    under 0.1 ms keep two significant digits."""
    cell = {"size": 32, "batch": 1, "status": "ok", "n": 50, "fps": 200.0, "ms_per_image": 5.0, "speedup": 1.0,
            "speedup_low": 1.0, "speedup_high": 1.0}
    df = pd.DataFrame([{**cell, "runtime": "torch", "ms": 63.63, "ci_low_ms": 2.1e-8, "ci_high_ms": 2.36e10},
                       {**cell, "runtime": "onnxruntime", "ms": 0.012, "ci_low_ms": 0.0042, "ci_high_ms": 0.031},
                       {**cell, "runtime": "openvino", "ms": 5.0, "ci_low_ms": 4.0, "ci_high_ms": 6.5}])
    r = rows(seed_table(df, ["torch", "onnxruntime", "openvino"]))[("32x32", "1")]
    assert r[:3] == ["63.63 (2.1e-08–2.4e+10)", "0.012 (0.0042–0.031)", "5.00 (4.00–6.50)"]
    narrow = df.assign(ci_low_ms=df["ms"] * 0.98, ci_high_ms=df["ms"] * 1.02)  # the half-width: the time's decimals
    assert rows(seed_table(narrow, ["torch", "onnxruntime", "openvino"]))[("32x32", "1")][:3] == [
        "63.63 ±1.27", "**0.012 ±0.000**", "5.00 ±0.10"]  # the fastest, clear of the others: bold
