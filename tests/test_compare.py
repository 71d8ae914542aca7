"""rtbench compare: verdicts from rounds with Holm's correction, "not comparable" environments, status regressions,
the CI gate's exit codes, and the report (Markdown, HTML in headless Chromium, JSON)."""
from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

import rtbench
from rtbench import stats
from rtbench.comparable import check_allowed, run_differences
from rtbench.comparison import (ALPHA, THRESHOLD_PCT, check_threshold, compare_runs, judge, more_rounds_factor,
                                threshold_of, timing)
from rtbench.errors import UserError
from rtbench.results import CellResult
from rtbench.spec import Cell, TimingPolicy
from rtbench.status import Status

pytestmark = pytest.mark.serial  # times real work: runs alone, after the others (see the Makefile)

TESTS = Path(__file__).resolve().parent
V1 = TESTS / "fixtures" / "store-v1.sqlite"
V1_RUN = "20261130-220639-6419"
ENV = {"PYTHONPATH": f"{TESTS.parent / 'src'}:{TESTS}", "COLUMNS": "200"}
# eight rounds of 30 ms blocks of ~2 ms calls: intervals of about ±0.5% on this 2-core machine
POLICY = TimingPolicy(warmup_min_calls=1, warmup_min_s=0.0, warmup_max_s=0.05, rounds=8, max_rounds=8,
                      block_s=0.03, max_block_s=0.03, rewarm_s=0.0, budget_s=600.0)
ALLOW = ["option.delay_factor"]


# Unit tests: hand-built round estimates ---------------------------------------------------------------------
def rounds(center: float, spread: float, n: int = 10) -> dict[int, float]:
    """n round estimates alternating around ``center`` by ``spread`` (relative): no drift, so every round counts."""
    return {i: center * (1 + spread * (1 if i % 2 else -1)) for i in range(n)}


def cell(runtime: str = "torch", batch: int = 1, status: str = "ok", round_ms: dict | None = None,
         info: dict | None = None, reason: str | None = None) -> CellResult:
    st = {"round_ms": {str(k): v for k, v in (round_ms or {}).items()}}
    if round_ms:
        st["ms"], st["ci_low_ms"], st["ci_high_ms"], _n = stats.estimate(list(round_ms.values()))
    return CellResult(0, Cell("m", runtime, "fp32", 224, batch, "cpu"), Status(status), reason, st, {}, {},
                      {"threads": 2} if info is None else info, {})


def verdicts(pairs, threshold=0.05):
    """``judge`` on (BASE cell, NEW cell) pairs (either may be None), keyed by the cell's runtime and batch."""
    return judge([(((b or n).cell.runtime, "fp32", 224, (b or n).cell.batch), b, n, []) for b, n in pairs], threshold)


def test_ratio_is_new_over_base_with_welch_interval_on_log_rounds():
    base, new = rounds(10.0, 0.01), rounds(12.0, 0.02, n=8)
    t = timing(base, new, 0.05)
    assert t.ratio == pytest.approx(stats.estimate(list(new.values()))[0] / stats.estimate(list(base.values()))[0])
    s = stats.unpaired_speedup(new, base)  # the same Welch interval: NEW as "baseline" gives NEW/BASE
    assert (t.low, t.high) == pytest.approx((s["speedup_low"], s["speedup_high"]))
    assert t.low < t.ratio < t.high


def test_verdicts_slower_faster_same_inconclusive():
    base = rounds(10.0, 0.01)
    got = verdicts([(cell(batch=1, round_ms=base), cell(batch=1, round_ms=rounds(11.5, 0.01))),
                    (cell(batch=2, round_ms=base), cell(batch=2, round_ms=rounds(8.5, 0.01))),
                    (cell(batch=4, round_ms=base), cell(batch=4, round_ms=rounds(10.1, 0.01))),
                    (cell(batch=8, round_ms=base), cell(batch=8, round_ms=rounds(10.4, 0.05)))])
    assert [c.verdict for c in got] == ["slower", "faster", "same", "inconclusive"]
    assert [c.regression for c in got] == [True, False, False, False]
    assert got[3].why == "cmp_why_straddles" and min(got[3].more_rounds) > 0


def test_a_one_percent_change_is_never_slower_at_five_percent_however_precise():
    got = verdicts([(cell(round_ms=rounds(10.0, 0.0001, 40)), cell(round_ms=rounds(10.1, 0.0001, 40)))])
    assert got[0].verdict == "same"
    wide = verdicts([(cell(round_ms=rounds(10.0, 0.04)), cell(round_ms=rounds(10.1, 0.04)))])
    assert wide[0].verdict == "inconclusive"


def test_holm_withholds_a_verdict_that_one_cell_alone_would_get():
    base, marginal = rounds(10.0, 0.02, 6), rounds(10.9, 0.02, 6)
    alone = verdicts([(cell(round_ms=base), cell(round_ms=marginal))])
    t = alone[0].timing
    assert alone[0].verdict == "slower" and t.low > 1.05 and t.p_beyond <= ALPHA  # alone: beyond 1.05
    same = [(cell(batch=b, round_ms=rounds(10.0, 0.001)), cell(batch=b, round_ms=rounds(10.0, 0.001)))
            for b in range(2, 12)]
    many = verdicts([(cell(round_ms=base), cell(round_ms=marginal)), *same])
    assert many[0].p_holm == pytest.approx(min(1.0, 11 * t.p_beyond))  # the smallest of 11 p-values, times 11
    assert many[0].verdict == "inconclusive" and many[0].why == "cmp_why_not_after_holm"
    assert [c.verdict for c in many[1:]] == ["same"] * 10


def test_more_rounds_estimate_is_enough_and_a_quarter_of_it_is_not():
    base, new = rounds(10.0, 0.05), rounds(10.2, 0.05)
    first = verdicts([(cell(round_ms=base), cell(round_ms=new))])[0]
    assert first.verdict == "inconclusive" and first.why == "cmp_why_straddles"
    more_b, more_n = first.more_rounds
    assert more_b == more_n > 0  # ten rounds each side: the same count on both

    def with_more(k):
        return verdicts([(cell(round_ms=rounds(10.0, 0.05, 10 + k)), cell(round_ms=rounds(10.2, 0.05, 10 + k)))])[0]

    assert with_more(more_b).verdict == "same"
    assert with_more(more_b // 4).verdict == "inconclusive"


def test_an_estimate_on_the_threshold_needs_impractically_many_rounds():
    got = verdicts([(cell(round_ms=rounds(10.0, 0.02)), cell(round_ms=rounds(10.5, 0.02)))])[0]
    assert got.verdict == "inconclusive" and got.why == "cmp_why_straddles_far" and got.more_rounds is None
    assert more_rounds_factor(got.timing, 0.05, 1) > 100


def test_one_round_is_inconclusive_never_a_bootstrap_verdict():
    base, new = cell(round_ms={0: 10.0}), cell(round_ms={0: 20.0})  # a doubling, but no interval from rounds
    got = verdicts([(base, new)])[0]
    assert got.verdict == "inconclusive" and got.why == "cmp_why_one_round" and got.timing is None
    assert not got.regression


def test_status_regressions_and_cells_of_one_run():
    r = rounds(10.0, 0.01)
    got = verdicts([(cell(batch=1, round_ms=r), cell(batch=1, status="failed", reason="RuntimeError: boom")),
                    (cell(batch=2, round_ms=r), cell(batch=2, status="oom", reason="out of memory")),
                    (cell(batch=4, round_ms=r), cell(batch=4, status="timeout")),
                    (cell(batch=8, round_ms=r), cell(batch=8, status="mismatch", round_ms=r, reason="max err 9")),
                    (cell(batch=16, round_ms=r), cell(batch=16, status="unavailable", reason="not installed")),
                    (cell(batch=32, status="failed"), cell(batch=32, round_ms=r)),
                    (cell(batch=64, round_ms=r), None), (None, cell(batch=128, round_ms=r))])
    assert [c.verdict for c in got] == ["now failed", "now oom", "now timeout", "now mismatch", "not compared",
                                        "not compared", "only in base", "only in new"]
    assert [c.regression for c in got] == [True] * 4 + [False] * 4
    assert "RuntimeError: boom" in got[0].why_fields["reason"]
    assert got[3].timing is not None and got[3].timing.ratio == pytest.approx(1.0)  # its speed is still shown


def fake_run(run_id="a", env=None, cells=(), device="cpu", options=()):
    from rtbench.results import Run
    from rtbench.spec import Sweep

    env = {"cpu": "CPU X", "torch": "2.4.0", "torch_threads": 2, "gpu": "not available", "packages": {"numpy": "1"},
           "env": {}, "nvml": {"available": False}, **(env or {})}
    return Run(run_id, "complete", "2025-01-01", Sweep(runtimes=("torch",), device=device, options=options), env, {},
               {}, list(cells), Path("."))


def keys(diffs, blocking=True):
    return [d.key for d in diffs if d.blocking == blocking]


def test_fields_that_change_speed_make_runs_not_comparable_unless_allowed():
    a = fake_run(env={"env": {"OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "0"}})
    b = fake_run(env={"cpu": "CPU Y", "torch": "2.5.0", "packages": {"numpy": "2"}, "gpu": "NVIDIA H200",
                      "env": {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "1"}})
    d = run_differences(a, b, [])
    assert keys(d) == ["cpu", "torch", "env.OMP_NUM_THREADS"]
    assert set(keys(d, False)) == {"gpu", "numpy", "env.CUDA_VISIBLE_DEVICES"}  # shown: no GPU cell, or no speed
    assert keys(run_differences(a, b, ["torch", "cpu"])) == ["env.OMP_NUM_THREADS"]
    gpu_a, gpu_b = (dataclasses.replace(r, sweep=dataclasses.replace(r.sweep, device="cuda:0")) for r in (a, b))
    assert "gpu" in keys(run_differences(gpu_a, gpu_b, []))  # on a GPU the GPU model matters


def test_a_field_recorded_in_one_run_only_is_shown_not_blocking():
    a = fake_run(env={"nvml": {"available": True, "driver": "580.1", "gpus": [{"index": 0, "power_limit_w": 700}]}})
    b = fake_run(env={"nvml": {"available": False}})
    d = run_differences(*(dataclasses.replace(r, sweep=dataclasses.replace(r.sweep, device="cuda:0")) for r in (a, b)),
                        [])
    assert {"driver", "gpu_power_limit_w"} <= set(keys(d, False)) and not keys(d)


def test_options_and_the_precision_that_ran_are_compared():
    r = rounds(10, 0.01)
    a = fake_run(options=(("compile_mode", "max-autotune"),), cells=[cell(round_ms=r, info={"tf32": False})])
    b = fake_run(cells=[cell(round_ms=r, info={"tf32": True})])
    cmp = compare_runs(a, b)
    assert not cmp.comparable and keys(cmp.fields) == ["option.compile_mode", "precision_ran"]
    ran = cmp.fields[1]
    assert (ran.base, ran.new, ran.cells) == ("fp32", "tf32", ("torch fp32 224px b1",))
    assert cmp.cells[0].verdict == "not comparable" and cmp.outcome() == "not comparable"
    ok = compare_runs(a, b, allow_different="option.compile_mode,precision_ran")
    assert ok.comparable and ok.cells[0].verdict == "same" and ok.outcome() == "pass"


def test_bad_thresholds_and_unknown_fields_are_bad_input():
    assert check_threshold("5%") == check_threshold(5) == 5.0
    for bad in ("0", "-1", "100", "abc", "nan"):
        with pytest.raises(UserError, match="give a percentage above 0 and below 100"):
            check_threshold(bad)
    assert threshold_of() == THRESHOLD_PCT and threshold_of("3") == 3.0 and threshold_of(None, "10") == 10.0
    assert threshold_of("10", "10") == 10.0
    with pytest.raises(UserError, match="give only --fail-on-regression"):
        threshold_of("5", "10")
    with pytest.raises(UserError, match="unknown field 'torch_version'"):
        check_allowed("torch,torch_version", fake_run(), fake_run())
    assert check_allowed("torch, env.X,option.y", fake_run(), fake_run()) == ("torch", "env.X", "option.y")


# Real CPU runs of a runtime slowed down by a known factor --------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs of the ``delay`` runtime (tests/compare_runtimes.py) in one store: as is, 10% and 1% slower."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RTBENCH_PLUGINS", "compare_runtimes")
    mp.syspath_prepend(str(TESTS))
    out = tmp_path_factory.mktemp("compare")
    try:
        made = {f: rtbench.run(runtimes=["delay"], sizes="32", batches="1,2,4", device="cpu", policy=POLICY, out=out,
                               options={"delay_factor": f}, report=False) for f in ("1", "1.1", "1.01")}
    finally:
        mp.undo()
    return out, made


def test_a_run_compared_with_itself_is_same_everywhere(runs):
    out, r = runs
    df = rtbench.compare(r["1"].id, r["1"].id, out=out)
    assert list(df["verdict"]) == ["same"] * 3 and df["ratio"].tolist() == pytest.approx([1.0] * 3)
    assert df.attrs["comparable"] and df.attrs["outcome"] == "pass"


def test_a_ten_percent_slowdown_is_slower_with_the_ratio_inside_its_interval(runs):
    r = runs[1]
    df = rtbench.compare(r["1"], r["1.1"], allow_different=ALLOW)
    assert list(df["verdict"]) == ["slower"] * 3 and df["regression"].all()
    assert ((df["ratio_low"] <= 1.1) & (1.1 <= df["ratio_high"])).all(), df[["ratio", "ratio_low", "ratio_high"]]
    assert (df["ratio_low"] > 1.05).all() and (df["p_holm"] <= ALPHA).all()
    assert df.attrs["outcome"] == "regression"


def test_a_one_percent_slowdown_is_never_slower_at_five_percent(runs):
    r = runs[1]
    df = rtbench.compare(r["1"], r["1.01"], allow_different=ALLOW)
    assert set(df["verdict"]) <= {"same", "inconclusive"}, df[["ratio", "ratio_low", "ratio_high", "verdict"]]


def test_different_fingerprints_are_not_comparable_naming_the_field(runs):
    out, r = runs
    df = rtbench.compare(r["1"], r["1.1"], out=out)  # the option that slowed it down is itself a difference
    assert not df.attrs["comparable"] and df.attrs["outcome"] == "not comparable"
    assert [(f["key"], f["base"], f["new"]) for f in df.attrs["fields"] if f["blocking"]] == \
        [("option.delay_factor", "1", "1.1")]
    other = dataclasses.replace(r["1"], env={**r["1"].env, "cpu": "Another CPU", "numpy": "0"})
    df = rtbench.compare(r["1"], other)
    assert [f["key"] for f in df.attrs["fields"] if f["blocking"]] == ["cpu"]


def run_cli(cli, *args):
    return cli("compare", *map(str, args), env=ENV)


def test_cli_gate_exit_codes_and_ci_log_lines(runs, cli, tmp_path):
    out, r = runs
    base, slow = r["1"].id, r["1.1"].id
    p = run_cli(cli, base, base, "--out", out, "--fail-on-regression", 5, "--report-dir", tmp_path / "same")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines() == [
        f"{base} against {base}: no significant regression beyond 5%; cells: 3 same; 95% CI: Welch on log round "
        "estimates with effective rounds, Holm over 3 cells (exit 0)"]
    p = run_cli(cli, base, slow, "--out", out, "--fail-on-regression", 5, "--allow-different", "option.delay_factor",
                "--report-dir", tmp_path / "slow", "--format", "json")
    assert p.returncode == 4, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 4 and lines[-1].endswith("(exit 4)") and "3 regression(s) beyond 5%" in lines[-1]
    for b, line in zip((1, 2, 4), lines):
        assert re.fullmatch(rf"slower: delay fp32 32px b{b} x1\.\d{{3}} \(1\.\d{{3}}-1\.\d{{3}}\): 95% CI .* above "
                            r"1\.050; Holm-adjusted p = \S+ over 3 cells", line), line
    doc = json.loads((tmp_path / "slow" / "compare.json").read_text())
    assert doc["outcome"] == "regression" and doc["holm"] == {"cells": 3, "alpha_one_sided": ALPHA}
    assert [c["verdict"] for c in doc["cells"]] == ["slower"] * 3
    p = run_cli(cli, base, slow, "--out", out, "--fail-on-regression", 5, "--report-dir", tmp_path / "nc")
    assert p.returncode == 6, p.stderr
    assert p.stdout.splitlines()[0] == "not comparable: option.delay_factor: 1 -> 1.1"
    assert p.stdout.strip().splitlines()[-1].endswith("not comparable: option.delay_factor differ; cells: 3 slower; "
                                                      "95% CI: Welch on log round estimates with effective rounds, "
                                                      "Holm over 3 cells (exit 6)")
    p = run_cli(cli, base, slow, "--out", out, "--report-dir", tmp_path / "plain")  # no gate: a report, exit 0
    assert p.returncode == 0 and "option.delay_factor: 1 -> 1.1 (NOT COMPARABLE)" in p.stdout, p.stderr


def test_cli_inconclusive_exit_5_on_a_schema_1_store_left_as_it_was(cli, tmp_path):
    store = tmp_path / "kept.sqlite"
    shutil.copyfile(V1, store)
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    p = run_cli(cli, f"{store}:{V1_RUN}", f"{store}:{V1_RUN}", "--fail-on-regression", "5")
    assert p.returncode == 5, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 9 and all(ln.startswith("inconclusive: ") and "no interval from rounds" in ln
                                   for ln in lines[:8])
    assert ("no significant regression beyond 5%, but 8 cell(s) could still be one (inconclusive); cells: "
            "8 inconclusive, 4 not compared") in lines[-1]
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before  # a kept baseline is never migrated
    assert (tmp_path / f"compare-{V1_RUN}-{V1_RUN}" / "compare.md").exists()  # next to NEW's store


def test_cli_bad_input_is_one_line_and_exit_2(runs, cli, tmp_path):
    out, r = runs
    base = r["1"].id
    (tmp_path / "junk.sqlite").write_text("not a database")
    cases = [((base, "nope", "--out", out), f"NEW: unknown run id 'nope' in {out / 'rtbench.sqlite'} (it holds "),
             (("nope", f"{out / 'rtbench.sqlite'}:{base}", "--out", tmp_path), "BASE 'nope': no run folder of that"),
             ((base, tmp_path / "junk.sqlite:x", "--out", out), f"NEW: {tmp_path / 'junk.sqlite'} is not a usable"),
             ((base, "missing.sqlite:x", "--out", out), "NEW 'missing.sqlite:x': no store file at missing.sqlite"),
             ((f"{out / 'rtbench.sqlite'}:nope", base, "--out", out), "BASE: unknown run id 'nope' in"),
             ((base, base, "--out", out, "--threshold", "0"), "threshold '0' is invalid"),
             ((base, base, "--out", out, "--threshold", "5", "--fail-on-regression", "10"), "--threshold 5 and"),
             ((base, base, "--out", out, "--allow-different", "torch_version"), "--allow-different: unknown field"),
             ((base, base, "--out", out, "--format", "pdf"), "unknown report format pdf")]
    for args, start in cases:
        p = run_cli(cli, *args)
        assert p.returncode == 2 and "Traceback" not in p.stderr, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("rtbench: error: " + start), p.stderr


def test_run_folders_and_ambiguous_names(runs, tmp_path, monkeypatch):
    out, r = runs
    folder = out / r["1"].id
    folder.mkdir(exist_ok=True)
    df = rtbench.compare(str(folder), f"{out / 'rtbench.sqlite'}:{r['1'].id}")
    assert list(df["verdict"]) == ["same"] * 3
    other = tmp_path / "elsewhere"
    shutil.copytree(out, other, ignore=shutil.ignore_patterns("compare-*"))
    (other / r["1"].id).mkdir(exist_ok=True)
    monkeypatch.chdir(other)  # the bare id is now also a run folder here, of another store
    with pytest.raises(UserError, match="is both a run folder"):
        rtbench.compare(r["1"].id, r["1"].id, out=out)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (CI installs it via .ci/run)")
def test_compare_html_is_self_contained_and_renders_in_chromium(runs, tmp_path):
    from test_report_html import PROBE, chromium

    from rtbench.comparison import comparison
    from rtbench.report.comparison import build, write_comparison
    from rtbench.report.i18n import translator

    r = runs[1]
    cmp = comparison(r["1"], r["1.1"], allow_different=ALLOW)
    files = write_comparison(cmp, tmp_path, formats="md,html")
    page = tmp_path / "compare.html"
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=\"(https?:)?//", text)  # nothing fetched from elsewhere
    md = (tmp_path / "compare.md").read_text(encoding="utf-8")
    assert "## Regressions" in md and "(images/compare_delay-fp32.png)" in md and (tmp_path / "images").is_dir()
    blocks = build(cmp, translator("en"))
    rows = [len(b.header) for b in blocks if b.kind == "table" for _ in b.rows]
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    p = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    m = re.search(r'<pre id="rtbench-probe">(.*?)</pre>', p.stdout, re.S)
    assert m, f"no probe output; chromium said: {p.stderr[-2000:]}"
    seen = json.loads(html.unescape(m.group(1)))
    assert seen["title"] == f"rtbench comparison — {r['1.1'].id} against {r['1'].id}"
    assert len(seen["imgs"]) == 1 and all(i["src"] == "data:image/png;base64," and i["w"] > 300 for i in seen["imgs"])
    assert seen["rows"] == rows  # the environment diff, the regressions and the verdict table, every cell
    ru = write_comparison(cmp, tmp_path / "ru", lang="ru", formats="md")
    assert "## Регрессии" in ru[0].read_text(encoding="utf-8")
    assert files == [tmp_path / "compare.md", page]


def test_python_api_is_the_function_even_after_the_module_is_imported():
    import rtbench.comparison  # a submodule named ``compare`` would replace the function on import

    assert rtbench.compare is sys.modules["rtbench.api"].compare
