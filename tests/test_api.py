"""The Python API: rtbench.run(...) returns a Run whose DataFrame has one row per cell with every statistic."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import rtbench
from rtbench import stats
from policies import FAST

pytestmark = pytest.mark.slow

COLUMNS = ["model", "runtime", "precision", "size", "batch", "device", "boundary", "status", "reason",
           "trimmed_mean_ms", "ci_low_ms", "ci_high_ms", "median_ms", "p90_ms", "p99_ms", "std_ms", "cv", "fps",
           "fps_low", "fps_high", "ms_per_image", "achieved_flops", "load_datasheet_pct", "load_measured_pct",
           "speedup", "speedup_low", "speedup_high", "parity_max_abs", "parity_max_rel", "parity_top1_agree",
           "setup_s", "first_call_ms", "threads", "samples_ms", "capped", "n", "host_trimmed_mean_ms"]


def test_run_returns_a_run_with_one_row_per_cell(tmp_path):
    import torch

    run = rtbench.run(runtimes=["torch", "onnxruntime"], sizes=[32], batches=[1, 2], device="cpu", out=tmp_path,
                      policy=FAST)
    assert isinstance(run, rtbench.Run)
    assert run.status == "complete"
    assert (tmp_path / run.id / "report.md").exists()
    df = run.to_pandas()
    assert len(df) == 4
    assert not set(COLUMNS) - set(df.columns), set(COLUMNS) - set(df.columns)
    assert list(zip(df.runtime, df.batch)) == [("torch", 1), ("torch", 2), ("onnxruntime", 1), ("onnxruntime", 2)]
    assert (df.status == "ok").all()
    for _, r in df.iterrows():
        assert len(r.samples_ms) == r.n >= FAST.min_calls
        assert r.trimmed_mean_ms == pytest.approx(stats.trimmed_mean(r.samples_ms))
        assert r.median_ms == pytest.approx(np.median(r.samples_ms))
        assert r.ci_low_ms <= r.trimmed_mean_ms <= r.ci_high_ms
        assert r.fps == pytest.approx(r.batch * 1000 / r.trimmed_mean_ms)
        assert r.fps_low <= r.fps <= r.fps_high
        assert r.ms_per_image == pytest.approx(r.trimmed_mean_ms / r.batch)
        assert r.achieved_flops > 0 and r.load_measured_pct > 0 and math.isnan(r.load_datasheet_pct)
        assert r.threads == torch.get_num_threads()
        assert r.setup_s > 0 and r.first_call_ms > 0
        assert r.parity_top1_agree == 1.0 and r.parity_max_abs < 1e-3
    torch_rows, ort_rows = df[df.runtime == "torch"], df[df.runtime == "onnxruntime"]
    assert (torch_rows.speedup == 1.0).all()
    for (_, t), (_, o) in zip(torch_rows.iterrows(), ort_rows.iterrows()):
        assert o.speedup == pytest.approx(t.trimmed_mean_ms / o.trimmed_mean_ms)
        assert o.speedup_low <= o.speedup <= o.speedup_high

    # where the run's time went: every part measured, and they add up to the run's wall time
    tb = run.time_breakdown()
    assert set(run.phases) >= {"prepare_s", "imports_s", "fork_server_s", "harness_s", "peaks_s", "fingerprint_s",
                               "cells_s", "report_s", "wall_s"}
    assert tb["setup"] == pytest.approx(df.setup_s.sum() + df.first_call_ms.sum() / 1e3)
    assert tb["measure"] > 0 and tb["checks"] > 0 and tb["peaks"] > 0 and tb["report"] > 0
    parts = ("setup", "measure", "checks", "workers", "prepare", "imports", "harness", "peaks", "fingerprint", "report",
             "other")
    assert sum(tb[k] for k in parts) == pytest.approx(tb["total"], rel=1e-6)
    assert tb["without_setup"] == pytest.approx(tb["total"] - tb["setup"])
    for c in run.cells:
        assert 0 < c["info"]["parity_s"] < c["info"]["cell_wall_s"] and c["info"]["stats_s"] > 0
    assert "**Run time:**" in (tmp_path / run.id / "report.md").read_text()

    # read back by id: the same rows
    again = rtbench.load(run.id, tmp_path).to_pandas()
    numeric = ["trimmed_mean_ms", "ci_low_ms", "ci_high_ms", "p99_ms", "fps", "speedup", "speedup_low"]
    pd.testing.assert_frame_equal(again[numeric], df[numeric])


def test_api_bad_input_raises_user_error(tmp_path):
    with pytest.raises(rtbench.UserError, match="at least 1"):
        rtbench.run(runtimes="torch", sizes=[32], batches=[0], device="cpu", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
