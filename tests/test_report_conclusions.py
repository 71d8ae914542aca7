"""Conclusions on crafted DataFrames: a clear winner, overlapping CIs, saturating and growing batch curves."""
from __future__ import annotations

import pandas as pd
import pytest

from rtbench.report import conclusions as c
from rtbench.report.i18n import translator
from rtbench.report.narrative import conclusion_blocks, saturation_text, verdict_text

EN, RU = translator("en"), translator("ru")


def row(runtime, size, batch, ms, half, status="ok", speedup=(float("nan"),) * 3):
    """One cell as Run.to_pandas() gives it, from a trimmed mean and its CI half-width."""
    lo, hi = ms - half, ms + half
    return {"runtime": runtime, "precision": "fp32", "device": "cpu", "boundary": "compute", "size": size,
            "batch": batch, "status": status, "reason": None, "trimmed_mean_ms": ms, "ci_low_ms": lo, "ci_high_ms": hi,
            "fps": batch * 1e3 / ms, "fps_low": batch * 1e3 / hi, "fps_high": batch * 1e3 / lo,
            "ms_per_image": ms / batch, "speedup": speedup[0], "speedup_low": speedup[1], "speedup_high": speedup[2]}


def text(blocks) -> str:
    out = []
    for b in blocks:
        out += getattr(b, "items", []) + [getattr(b, "text", "")] + [" | ".join(r) for r in getattr(b, "rows", [])]
    return "\n".join(out)


def test_clear_winner_is_named_with_its_speedup_and_ci():
    df = pd.DataFrame([row("torch", 224, 1, 10.0, 0.1, speedup=(1, 1, 1)),
                       row("onnxruntime", 224, 1, 5.0, 0.05, speedup=(2.0, 1.95, 2.05))])
    v = c.cell_verdict(df)
    assert (v.winner, v.significant, v.tied, v.runner_up) == ("onnxruntime", True, (), "torch")
    assert v.margin == pytest.approx(2.0)
    assert verdict_text(v, EN) == "**onnxruntime** 2.00× (1.95–2.05)"
    out = text(conclusion_blocks(df, ["torch", "onnxruntime"], EN))
    assert "**onnxruntime** is significantly fastest at 1 of 1 sizes (up to 2.00× vs torch)" in out
    assert "For latency (batch 1): use **onnxruntime**" in out


def test_overlapping_cis_are_no_significant_difference_never_a_win():
    df = pd.DataFrame([row("torch", 224, 1, 10.0, 0.3, speedup=(1, 1, 1)),
                       row("onnxruntime", 224, 1, 9.9, 0.3, speedup=(1.01, 0.97, 1.05))])
    v = c.cell_verdict(df)
    assert v.winner == "onnxruntime" and not v.significant and v.tied == ("torch",)
    assert verdict_text(v, EN) == "no significant difference (onnxruntime, torch)"
    assert verdict_text(v, RU) == "нет значимой разницы (onnxruntime, torch)"
    assert c.regime_leader([v]) is None
    out = text(conclusion_blocks(df, ["torch", "onnxruntime"], EN))
    assert "no runtime is significantly fastest at any size" in out
    assert "no runtime is significantly faster" in out
    assert "**onnxruntime**" not in out


def test_baseline_winner_reports_its_margin_not_a_speedup():
    df = pd.DataFrame([row("torch", 224, 1, 5.0, 0.05, speedup=(1, 1, 1)),
                       row("onnxruntime", 224, 1, 7.5, 0.05, speedup=(0.667, 0.66, 0.67))])
    assert verdict_text(c.cell_verdict(df), EN) == "**torch** (baseline; 1.50× faster than onnxruntime)"


def test_mismatch_winner_is_flagged():
    df = pd.DataFrame([row("torch", 224, 1, 10.0, 0.1, speedup=(1, 1, 1)),
                       row("onnxruntime", 224, 1, 5.0, 0.05, status="mismatch", speedup=(2.0, 1.9, 2.1))])
    assert verdict_text(c.cell_verdict(df), EN).endswith("⚠ outputs beyond tolerance")
    assert "failed the output check" in text(conclusion_blocks(df, ["torch", "onnxruntime"], EN))


def curve(runtime, fps_by_batch, rel_half=0.005, size=224):
    return [row(runtime, size, b, b * 1e3 / f, b * 1e3 / f * rel_half) for b, f in fps_by_batch.items()]


def test_saturating_batch_curve_stops_where_the_gain_drops_under_5_percent():
    df = pd.DataFrame(curve("torch", {1: 100, 2: 180, 4: 300, 8: 310, 16: 312}))
    s = c.saturation(df, "torch", 224)
    assert (s.batch, s.saturated, s.overlap) == (4, True, False)
    assert s.next_gain == pytest.approx(310 / 300 - 1)
    assert saturation_text(s, EN) == "4 (next +3%)"
    out = text(conclusion_blocks(df, ["torch"], EN))
    assert "**torch** at batch 4 (224×224: 300.0 FPS" in out


def test_overlapping_fps_cis_stop_the_curve_even_with_a_larger_gain():
    df = pd.DataFrame(curve("torch", {1: 100, 4: 300, 8: 320}, rel_half=0.05))  # +6.7%, CIs of ±5% overlap
    s = c.saturation(df, "torch", 224)
    assert (s.batch, s.saturated, s.overlap) == (4, True, True)
    assert saturation_text(s, EN) == "4 (next +7%, CIs overlap)"


def test_growing_curve_says_it_is_still_growing():
    df = pd.DataFrame(curve("torch", {1: 100, 4: 300, 8: 500}))
    s = c.saturation(df, "torch", 224)
    assert (s.batch, s.saturated) == (8, False)
    assert saturation_text(s, EN) == "still growing at 8 (+67%)"
    assert "so try larger batches" in text(conclusion_blocks(df, ["torch"], EN))


def test_regimes_and_size_effect():
    rows = []
    for size, ms in ((224, 4.0), (448, 16.0)):
        rows += [row("torch", size, 1, ms, 0.01), row("torch", size, 8, ms * 6, 0.01)]
    df = pd.DataFrame(rows)
    assert c.regimes(df) == {"small": 1, "large": 8}
    e = c.size_effect(df, "torch")
    assert (e.size_lo, e.size_hi, e.batch) == (224, 448, 1)
    assert e.pixel_ratio == pytest.approx(4.0) and e.time_ratio == pytest.approx(4.0)
    assert "in line with the pixel count" in text(conclusion_blocks(df, ["torch"], EN))


def test_single_size_and_single_batch_are_handled():
    df = pd.DataFrame([row("torch", 224, 1, 4.0, 0.01), row("onnxruntime", 224, 1, 3.0, 0.01)])
    assert c.regimes(df) == {"small": 1}
    assert c.size_effect(df, "torch") is None
    out = text(conclusion_blocks(df, ["torch", "onnxruntime"], EN))
    assert "Only one input size was measured." in out
    assert "Effect of batch size" not in out


def test_failed_cells_take_no_part():
    df = pd.DataFrame([row("torch", 224, 1, 4.0, 0.01), {**row("onnxruntime", 224, 1, 1.0, 0.01), "status": "failed"}])
    v = c.cell_verdict(df)
    assert v.winner == "torch" and v.runner_up is None
    assert verdict_text(v, EN) == "torch only"


def test_a_cell_with_too_few_samples_for_a_ci_never_makes_a_win():
    slow = {**row("torch", 224, 1, 1000.0, 0.0, speedup=(1, 1, 1)), "n": 1}
    fast = {**row("onnxruntime", 224, 1, 2.0, 0.5, speedup=(500, 500, 500)), "n": 50}
    v = c.cell_verdict(pd.DataFrame([slow, fast]))
    assert v.winner == "onnxruntime" and not v.significant
    assert verdict_text(v, EN) == "no significant difference (onnxruntime, torch)"
