"""The Python API: rtbench.run(...) returns a Run whose DataFrame has one row per cell with every statistic."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import rtbench
from rtbench import stats
from policies import FAST

pytestmark = [pytest.mark.slow, pytest.mark.serial]

COLUMNS = ["model", "runtime", "precision", "size", "batch", "device", "boundary", "status", "reason",
           "ms", "ci_low_ms", "ci_high_ms", "median_ms", "p90_ms", "p99_ms", "std_ms", "cv", "fps",
           "fps_low", "fps_high", "ms_per_image", "achieved_flops", "load_datasheet_pct", "load_measured_pct",
           "speedup", "speedup_low", "speedup_high", "speedup_method", "parity_max_abs", "parity_max_rel",
           "parity_top1_agree", "setup_s", "first_call_ms", "threads", "samples_ms", "rounds_of_samples", "round_ms",
           "rounds", "effective_rounds", "statistic", "ci_above_target", "stopped_by", "drift_ratio", "n",
           "host_latency_ms"]


def test_run_returns_a_run_with_one_row_per_cell(tmp_path):
    import torch

    run = rtbench.run(runtimes=["torch", "onnxruntime"], sizes=[32], batches=[1, 2], device="cpu", out=tmp_path,
                      policy=FAST)
    assert isinstance(run, rtbench.Run)
    assert run.status == "complete"
    assert (tmp_path / run.id / "report.md").exists()
    assert not list((tmp_path / "cache").glob("refs-*"))  # the run's shared reference outputs are gone with it
    df = run.to_pandas()
    assert len(df) == 4
    assert not set(COLUMNS) - set(df.columns), set(COLUMNS) - set(df.columns)
    assert list(zip(df.runtime, df.batch)) == [("torch", 1), ("torch", 2), ("onnxruntime", 1), ("onnxruntime", 2)]
    assert (df.status == "ok").all()
    for _, r in df.iterrows():
        assert len(r.samples_ms) == r.n == len(r.rounds_of_samples) and r.rounds == FAST.rounds
        est = [stats.trimmed_mean(r.samples_ms[r.rounds_of_samples == k]) for k in range(r.rounds)]
        assert list(r.round_ms.values()) == pytest.approx(est)
        assert r.ms == pytest.approx(math.exp(np.mean(np.log(est))))  # geometric mean of the rounds
        assert r.median_ms == pytest.approx(np.median(r.samples_ms))
        assert r.ci_low_ms <= r.ms <= r.ci_high_ms
        assert r.fps == pytest.approx(r.batch * 1000 / r.ms)
        assert r.fps_low <= r.fps <= r.fps_high
        assert r.ms_per_image == pytest.approx(r.ms / r.batch)
        assert r.stopped_by == "max_rounds"
        assert r.achieved_flops > 0 and r.load_measured_pct > 0 and math.isnan(r.load_datasheet_pct)
        assert r.threads == torch.get_num_threads()
        assert r.setup_s > 0 and r.first_call_ms > 0
        assert r.parity_top1_agree == 1.0 and r.parity_max_abs < 1e-3
    torch_rows, ort_rows = df[df.runtime == "torch"], df[df.runtime == "onnxruntime"]
    assert (torch_rows.speedup == 1.0).all()
    for (_, t), (_, o) in zip(torch_rows.iterrows(), ort_rows.iterrows()):
        # paired by round: every round of both cells ran, so the point is the ratio of the two estimates
        assert o.speedup_method == "paired, 2 rounds"
        assert o.speedup == pytest.approx(t.ms / o.ms)
        assert o.speedup_low <= o.speedup <= o.speedup_high

    # where the run's time went: each part is measured; what is left of the wall time is small and called so
    tb = run.time_breakdown()
    assert set(run.phases) >= {"prepare_s", "imports_s", "fork_server_s", "harness_s", "peaks_s", "fingerprint_s",
                               "cells_s", "report_s", "wall_s"}
    assert tb["setup"] == pytest.approx(df.setup_s.sum() + df.first_call_ms.sum() / 1e3)
    assert tb["measure"] > 0 and tb["checks"] > 0 and tb["peaks"] > 0 and tb["report"] > 0 and tb["workers"] > 0
    measured = ("setup", "measure", "checks", "workers", "prepare", "imports", "harness", "peaks", "fingerprint",
                "report")
    assert 0 <= tb["unaccounted"] < 0.25 * tb["total"]
    assert tb["overlap"] == 0  # a CPU run prepares its groups one after another
    assert sum(tb[k] for k in measured) + tb["unaccounted"] - tb["overlap"] == pytest.approx(tb["total"])
    assert tb["without_setup"] == pytest.approx(tb["total"] - tb["setup"])
    for c in run.cells:
        assert c.info["parity_s"] > 0 and c.stats["timed_s"] > 0
    assert "**Run time:**" in (tmp_path / run.id / "report.md").read_text()

    # read back by id: the same rows
    again = rtbench.load(run.id, tmp_path).to_pandas()
    numeric = ["ms", "ci_low_ms", "ci_high_ms", "p99_ms", "fps", "speedup", "speedup_low"]
    pd.testing.assert_frame_equal(again[numeric], df[numeric])


def test_api_bad_input_raises_user_error(tmp_path):
    with pytest.raises(rtbench.UserError, match="at least 1"):
        rtbench.run(runtimes="torch", sizes=[32], batches=[0], device="cpu", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
