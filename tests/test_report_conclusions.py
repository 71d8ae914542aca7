"""Conclusions on crafted DataFrames: a clear winner, overlapping CIs, batch picks, and the answers that must never
be confident when the data do not support them (mismatching outputs, ties, missing CIs, missing sizes)."""
from __future__ import annotations

import pandas as pd
import pytest

from rtbench.report import conclusions as c
from rtbench.report import narrative
from rtbench.report.i18n import translator
from rtbench.report.narrative import conclusion_blocks, verdict_text

EN, RU = translator("en"), translator("ru")


def row(runtime, size, batch, ms, half, status="ok", speedup=(float("nan"),) * 3):
    """One cell as Run.to_pandas() gives it, from a trimmed mean and its CI half-width."""
    lo, hi = ms - half, ms + half
    return {"runtime": runtime, "precision": "fp32", "device": "cpu", "boundary": "compute", "size": size,
            "batch": batch, "status": status, "reason": None, "ms": ms, "ci_low_ms": lo, "ci_high_ms": hi,
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
    assert c.regime_summary([v], 1).leaders == ()
    out = text(conclusion_blocks(df, ["torch", "onnxruntime"], EN))
    assert "no runtime is significantly fastest at any size" in out
    assert "no runtime is significantly faster" in out
    assert "**onnxruntime**" not in out


def test_baseline_winner_reports_its_margin_not_a_speedup():
    df = pd.DataFrame([row("torch", 224, 1, 5.0, 0.05, speedup=(1, 1, 1)),
                       row("onnxruntime", 224, 1, 7.5, 0.05, speedup=(0.667, 0.66, 0.67))])
    assert verdict_text(c.cell_verdict(df), EN) == "**torch** (baseline; 1.50× faster than onnxruntime)"


def curve(runtime, fps_by_batch, rel_half=0.005, size=224):
    return [row(runtime, size, b, b * 1e3 / f, b * 1e3 / f * rel_half) for b, f in fps_by_batch.items()]


def test_batch_pick_takes_the_smallest_batch_within_5_percent_and_the_noise_of_the_best():
    df = pd.DataFrame(curve("torch", {1: 100, 2: 180, 4: 300, 8: 310, 16: 312}))
    out = text(conclusion_blocks(df, ["torch"], EN))
    assert "**torch** at batch 8 (310.0 FPS, 308.5–311.6)" in out
    assert "batch 16 gives +0.6% (312.0 FPS, 310.4–313.6), within 5% and not significantly more" in out
    p = c.batch_pick(df, "torch", 224)
    assert (p.batch, p.best_batch, p.growing) == (8, 16, False)  # 4 is 3.8% below but clear of 16's CI
    assert p.gain == pytest.approx(312 / 310 - 1)
    assert narrative.pick_text(p, EN) == "8 (batch 16: +0.6%, within 5% and the noise)"


def test_a_batch_more_than_5_percent_below_the_best_is_not_picked_even_inside_the_noise():
    df = pd.DataFrame(curve("torch", {1: 100, 4: 300, 8: 320}, rel_half=0.05))  # 4 is 6.3% below, CIs overlap
    assert "**torch** at batch 8 (320.0 FPS" in text(conclusion_blocks(df, ["torch"], EN))
    p = c.batch_pick(df, "torch", 224)
    assert (p.batch, p.growing) == (8, True)
    assert narrative.pick_text(p, EN) == "still growing at 8, the largest measured (+7% over batch 4)"


def test_growing_curve_says_it_is_still_growing():
    df = pd.DataFrame(curve("torch", {1: 100, 4: 300, 8: 500}))
    p = c.batch_pick(df, "torch", 224)
    assert (p.batch, p.growing) == (8, True)
    assert narrative.pick_text(p, EN) == "still growing at 8, the largest measured (+67% over batch 4)"
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


def grid(ms_per_image: dict, sizes=(224,), batches=(1,), rel_half=0.01, status=None, speedups=None) -> pd.DataFrame:
    """Cells whose time per call is ``ms_per_image[runtime] x batch x (size/224)^2``, CI half-width ``rel_half``.

    ``status`` maps runtime -> status (default ok); ``speedups`` maps runtime -> (s, lo, hi).
    """
    rows = []
    for size in sizes:
        for batch in batches:
            for rt, ms in ms_per_image.items():
                t = ms * batch * (size / 224) ** 2
                sp = (speedups or {}).get(rt, (float("nan"),) * 3)
                rows.append(row(rt, size, batch, t, t * rel_half, (status or {}).get(rt, "ok"), sp))
    return pd.DataFrame(rows)


def test_a_mismatch_cell_never_wins_leads_or_is_recommended():
    rts = ["torch", "onnxruntime", "openvino"]
    df = grid({"torch": 10.0, "onnxruntime": 5.0, "openvino": 7.0}, sizes=(224, 384), batches=(1, 8),
              status={"onnxruntime": "mismatch"}, speedups={"torch": (1, 1, 1), "openvino": (1.43, 1.40, 1.46)})
    out = text(conclusion_blocks(df, rts, EN))
    assert "**onnxruntime** is significantly fastest" not in out and "use **onnxruntime**" not in out
    assert "Small batch (1): **openvino** is significantly fastest at 2 of 2 sizes (up to 1.43× vs torch)." in out
    assert "but with outputs beyond tolerance (not recommended): onnxruntime at 2 of 2 sizes." in out
    assert "For latency (batch 1): use **openvino** — significantly fastest at 2 of 2 sizes." in out
    assert "For throughput (224×224): **openvino** at batch 1 (142.9 FPS" in out
    assert "⚠ onnxruntime at batch 1, onnxruntime at batch 8: as many FPS or more, but outputs beyond tolerance" in out
    v = c.cell_verdict(df[(df["size"] == 224) & (df.batch == 1)])
    assert (v.winner, v.significant, v.tied, v.mismatch_rivals) == ("openvino", True, (), ("onnxruntime",))
    assert verdict_text(v, EN) == ("**openvino** 1.43× (1.40–1.46); fastest among runtimes whose outputs match "
                                   "(⚠ onnxruntime: as fast or faster, outputs beyond tolerance)")
    assert c.throughput_verdict(df).picks[0].runtime == "openvino"
    # only mismatching cells at a size: nobody wins there
    only_bad = grid({"onnxruntime": 5.0, "openvino": 7.0}, status={"onnxruntime": "mismatch", "openvino": "mismatch"})
    v = c.cell_verdict(only_bad)
    assert v.winner is None and not v.significant
    assert verdict_text(v, EN) == "no runtime's outputs match (⚠ onnxruntime, openvino)"
    assert "**" not in text(conclusion_blocks(only_bad, ["onnxruntime", "openvino"], EN))


def test_a_mismatching_batch_is_left_out_of_the_throughput_pick():
    df = pd.DataFrame(curve("torch", {1: 100, 8: 500}))
    df.loc[df.batch == 8, "status"] = "mismatch"
    out = text(conclusion_blocks(df, ["torch"], EN))
    assert "**torch** at batch 1 (100.0 FPS" in out and "at batch 8 (" not in out
    assert "⚠ torch at batch 8: as many FPS or more, but outputs beyond tolerance" in out
    p = c.batch_pick(df, "torch", 224)
    assert (p.batch, p.batches, p.left_out) == (1, (1,), (8,))
    assert narrative.pick_text(p, EN) == "only batch 1 has matching outputs; ⚠ batch 8 left out: outputs beyond tolerance"


def test_runtimes_tied_with_each_other_are_each_tested_against_the_baseline():
    rts = ["torch", "onnxruntime", "openvino"]
    # onnxruntime and openvino tie with each other and are both 2x faster than torch, at both batches
    df = grid({"torch": 10.0, "onnxruntime": 5.0, "openvino": 5.1}, batches=(1, 8), rel_half=0.04)
    v = c.cell_verdict(df[df.batch == 1])
    assert verdict_text(v, EN) == "no significant difference (onnxruntime, openvino); faster than torch: onnxruntime, openvino"
    assert (v.winner, v.significant, v.tied) == ("onnxruntime", False, ("openvino",))
    assert v.faster_than_baseline == ("onnxruntime", "openvino")
    out = text(conclusion_blocks(df, rts, EN))
    assert "as good as any" not in out and "inside the noise" not in out and "**torch** at" not in out
    assert ("For latency (batch 1): no runtime is significantly fastest; fastest or within the noise of the fastest: "
            "onnxruntime at 1 of 1 sizes, openvino at 1 of 1 sizes. Significantly faster than torch: onnxruntime at 1 "
            "of 1 sizes, openvino at 1 of 1 sizes.") in out
    assert ("For throughput (224×224): no single pick — the best FPS of these runtimes are within the noise of each "
            "other: **onnxruntime** at batch 1 (200.0 FPS, 192.3–208.3); **openvino** at batch 1 (196.1 FPS") in out
    # tied with a runtime that is not clear of torch, onnxruntime is still faster than torch on its own
    df = pd.DataFrame([row("torch", 224, 1, 5.8, 0.2), row("onnxruntime", 224, 1, 5.0, 0.3),
                       row("openvino", 224, 1, 5.5, 0.4)])
    v = c.cell_verdict(df)
    assert verdict_text(v, EN) == "no significant difference (onnxruntime, openvino); faster than torch: onnxruntime"
    assert (v.tied, v.faster_than_baseline) == (("openvino",), ("onnxruntime",))
    out = text(conclusion_blocks(df, rts, EN))
    assert "Significantly faster than torch: onnxruntime at 1 of 1 sizes." in out and "as good as any" not in out
    # torch tied with the fastest and nothing clear of it: then the baseline is as good as any
    df = pd.DataFrame([row("torch", 224, 1, 5.2, 0.3), row("onnxruntime", 224, 1, 5.0, 0.3)])
    assert "the baseline (torch) is as good as any measured here" in text(conclusion_blocks(df, rts, EN))



def test_without_a_torch_cell_the_baseline_is_never_called_as_good_as_any():
    df = grid({"onnxruntime": 5.0, "openvino": 5.1}, sizes=(224, 384), rel_half=0.04)  # e.g. an ONNX file model
    out = text(conclusion_blocks(df, ["onnxruntime", "openvino"], EN))
    assert "as good as any" not in out and "faster than torch" not in out
    assert ("For latency (batch 1): no runtime is significantly fastest; fastest or within the noise of the fastest: "
            "onnxruntime at 2 of 2 sizes, openvino at 2 of 2 sizes.") in out

def test_a_tie_in_wins_is_reported_as_a_tie_never_one_pick():
    rts = ["torch", "onnxruntime", "openvino"]
    df = pd.concat([grid({"torch": 10.0, "onnxruntime": 6.0, "openvino": 5.0}, sizes=(224,)),
                    grid({"torch": 10.0, "onnxruntime": 5.0, "openvino": 6.0}, sizes=(384,))])
    out = text(conclusion_blocks(df, rts, EN))
    assert "use **" not in out and "is significantly fastest at" not in out
    assert "Small batch (1): no single leader — onnxruntime, openvino are each significantly fastest at 1 of 2 sizes." in out
    assert ("For latency (batch 1): no single pick — onnxruntime, openvino are each significantly fastest at 1 of 2 "
            "sizes; choose by the input size you use (table above).") in out
    assert "единого выбора нет — onnxruntime, openvino" in text(conclusion_blocks(df, rts, RU))
    s = c.regime_summary(c.regime_verdicts(df)["small"], 1)
    assert s.leaders == ("onnxruntime", "openvino") and s.wins == {"onnxruntime": 1, "openvino": 1}


def test_throughput_pick_compares_every_batch_with_the_best_not_with_the_next():
    # the default CPU run's 224x224 FPS: every step gains under 5%, yet batch 16 is 7.9% over batch 1, CIs disjoint
    df = pd.DataFrame(curve("openvino", {1: 131.9, 4: 137.6, 8: 140.1, 16: 142.3})
                      + curve("onnxruntime", {1: 129.3, 4: 134.7, 8: 137.9, 16: 136.9})
                      + curve("torch", {1: 66.1, 4: 91.3, 8: 74.6, 16: 74.3}))
    out = text(conclusion_blocks(df, ["torch", "onnxruntime", "openvino"], EN))
    assert "**openvino** at batch 1 " not in out and "131.9 FPS" not in out
    assert ("For throughput (224×224): **openvino** at batch 16 (142.3 FPS, 141.6–143.0) — the highest FPS of any "
            "runtime, its CI clear of every other runtime's best; throughput was still growing at the largest batch "
            "measured, so try larger batches.") in out
    assert "224x224 | 4 (highest FPS) | 8 (highest FPS) | still growing at 16, the largest measured (+2% over batch 8)" in out
    t = c.throughput_verdict(df)
    assert t.significant and [(p.runtime, p.batch) for p in t.picks] == [("openvino", 16)]


def test_a_rival_with_nan_ci_bounds_is_never_beaten():
    slow = {**row("torch", 224, 1, 10.0, 0.1, speedup=(1, 1, 1)), "ci_low_ms": float("nan"),
            "ci_high_ms": float("nan"), "n": 50}
    fast = {**row("onnxruntime", 224, 1, 5.0, 0.05, speedup=(2.0, 1.95, 2.05)), "n": 50}
    df = pd.DataFrame([slow, fast])
    out = text(conclusion_blocks(df, ["torch", "onnxruntime"], EN))
    assert "use **onnxruntime**" not in out and "as good as any" not in out
    assert ("Without a usable CI (too few samples or undefined bounds), so never called faster or slower: torch at 1 "
            "of 1 sizes.") in out
    v = c.cell_verdict(df)
    assert not v.significant and v.tied == ("torch",) and v.no_ci == ("torch",)


def test_a_winner_without_a_torch_cell_is_not_called_the_baseline():
    df = pd.DataFrame([row("onnxruntime", 224, 1, 5.0, 0.05), row("openvino", 224, 1, 7.0, 0.05),
                       {**row("torch", 224, 1, 1.0, 0.0), "status": "failed", "ms": float("nan")}])
    assert verdict_text(c.cell_verdict(df), EN) == "**onnxruntime** (1.40× faster than openvino)"


def test_a_leader_measured_at_some_sizes_only_says_where_it_was_not_and_who_else_won():
    rts = ["torch", "onnxruntime", "openvino"]
    at_224 = grid({"torch": 10.0, "onnxruntime": 9.0, "openvino": 5.0})
    rest = grid({"torch": 10.0, "onnxruntime": 9.9}, sizes=(384, 512), rel_half=0.05)  # openvino: oom there
    out = text(conclusion_blocks(pd.concat([at_224, rest]), rts, EN))
    assert ("For latency (batch 1): use **openvino** — significantly fastest at 1 of 3 sizes. openvino has no "
            "measurement with matching outputs at 384×384, 512×512.") in out
    # a plurality leader: the other winners are named
    df = pd.concat([grid({"torch": 10.0, "openvino": 5.0, "onnxruntime": 6.0}, sizes=(224, 256)),
                    grid({"torch": 10.0, "openvino": 6.0, "onnxruntime": 5.0}, sizes=(384,))])
    out = text(conclusion_blocks(df, rts, EN))
    assert ("use **openvino** — significantly fastest at 2 of 3 sizes. Also significantly fastest: onnxruntime at 1 "
            "of 3 sizes.") in out


def test_size_effect_is_not_classified_beyond_what_the_cis_support():
    few = pd.DataFrame([{**row("torch", 224, 1, 4.0, 0.0), "n": 1}, {**row("torch", 448, 1, 16.0, 0.0), "n": 1}])
    assert "the noise or too few samples leave open how it compares with the pixel count" in text(
        conclusion_blocks(few, ["torch"], EN))
    e = c.size_effect(few, "torch")
    assert e.time_ratio == pytest.approx(4.0) and e.scaling is None
    # a point estimate on the 0.9 edge whose CI spans both sides
    wide = pd.DataFrame([row("torch", 224, 1, 4.0, 0.4), row("torch", 448, 1, 14.4, 1.4)])
    assert "the noise or too few samples leave open" in text(conclusion_blocks(wide, ["torch"], EN))
    assert c.size_effect(wide, "torch").scaling is None
    tight = pd.DataFrame([row("torch", 224, 1, 4.0, 0.01), row("torch", 448, 1, 12.0, 0.01)])
    assert c.size_effect(tight, "torch").scaling == "sub"


@pytest.mark.slow
def test_conclusions_of_a_real_cpu_run_never_recommend_a_mismatching_runtime(tmp_path):
    from dataclasses import replace

    import rtbench
    from policies import FAST

    policy = replace(FAST, rounds=3, max_rounds=3)
    rts = ["torch", "onnxruntime"]
    run = rtbench.run(model="entry_models:tiny_cnn", runtimes=rts, sizes=[32, 48], batches=[1, 2], device="cpu",
                      out=tmp_path, policy=policy, report=False)
    df = run.to_pandas()
    assert (df.status == "ok").all()
    out = text(conclusion_blocks(df, rts, EN))
    assert "nan" not in out and "For latency (batch 1):" in out and "For throughput (32×32):" in out
    # whichever runtime was faster, once its outputs are marked beyond tolerance it wins and leads nothing
    for rt in rts:
        bad = df.assign(status=df.status.where(df.runtime != rt, "mismatch"))
        out = text(conclusion_blocks(bad, rts, EN))
        assert f"**{rt}** is significantly fastest" not in out and f"use **{rt}**" not in out
        assert f"For throughput (32×32): **{rt}**" not in out and "no single pick" not in out
        assert all(v.winner != rt for vs in c.regime_verdicts(bad).values() for v in vs)
        assert [p.runtime for p in c.throughput_verdict(bad).picks] == [r for r in rts if r != rt]
