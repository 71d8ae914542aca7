"""rtbench tune: the search's pure parts, and one real tune on the CPU (tiny model; real runtimes, store, report)."""
from __future__ import annotations

import html
import json
import re
import time

import numpy as np
import pytest

from rtbench.errors import UserError
from rtbench.report.tune import frontier
from rtbench.runtimes import base
from rtbench.tuning import (SCREEN_BATCH, TIMING, Arm, Goal, Search, Trial, candidates, race_plan, refine_plan,
                            refinements, search, tops)

pytestmark = pytest.mark.serial  # times real work: runs alone, after the others (see the Makefile)


def test_variants_carry_their_settings_and_bad_ones_are_bad_input():
    assert base.split_variant("torch-compile[compile_mode=max-autotune, channels_last=on]") == (
        "torch-compile", {"compile_mode": "max-autotune", "channels_last": "on"})
    assert base.variant("torch", {"threads": "1", "channels_last": "off"}) == "torch[channels_last=off,threads=1]"
    assert base.get("torch[channels_last=on]") is base.get("torch")
    with pytest.raises(UserError, match="has no setting 'compile_mode'"):
        base.get("torch[compile_mode=default]")
    with pytest.raises(UserError, match="use one of default, max-autotune"):
        base.get("torch-compile[compile_mode=fastest]")
    with pytest.raises(UserError, match="key=value"):
        base.get("torch[channels_last]")
    from rtbench.spec import Sweep, parse_list

    assert parse_list("torch[channels_last=on,threads=1],onnxruntime", "runtimes") == (
        "torch[channels_last=on,threads=1]", "onnxruntime")
    s = base.variant_sweep(Sweep(runtimes=("x",), options=(("compile_mode", "default"),)),
                           "torch-compile[compile_mode=max-autotune]")
    assert s.option("compile_mode") == "max-autotune"


def test_goal_rejects_what_cannot_be_met():
    with pytest.raises(UserError, match="not both"):
        Goal(latency_budget_ms=1.0, batch=8)
    with pytest.raises(UserError, match="positive"):
        Goal(latency_budget_ms=0)
    with pytest.raises(UserError, match="throughput or latency"):
        Goal(objective="speed")
    assert Goal(objective="latency").fixed_batch == 1 and Goal().fixed_batch is None and Goal(batch=4).fixed_batch == 4


def test_candidates_hold_back_costly_compile_modes():
    first, later, _absent = candidates("cpu", ("torch",))
    threads = [{"threads": v} for v in base.Runtime.search_space("cpu").get("threads", ())] or [{}]
    assert {a.runtime for a in first} == {base.variant("torch", {"channels_last": cl, **t}) for cl in ("on", "off")
                                          for t in threads}
    assert not later and {a.precision for a in first} == {"fp32", "bf16"}
    # torch-compile's modes past "default" are refinements of the best arm of the family
    first, later, _ = candidates("cpu", ("torch-compile",))
    assert all("compile_mode=default" in a.runtime for a in first) and not later  # a CPU tries default only
    arms = [Arm("torch-compile[channels_last=on,compile_mode=default]", "fp16"),
            Arm("torch-compile[channels_last=off,compile_mode=default]", "fp16")]
    held = [Arm(f"torch-compile[channels_last={cl},compile_mode={m}]", p) for cl in ("on", "off")
            for m in ("max-autotune", "reduce-overhead") for p in ("fp16", "fp32")]
    best = {arms[0]: Trial("batch", arms[0], 256, "ok", ms=3.0), arms[1]: Trial("batch", arms[1], 256, "ok", ms=4.0)}
    assert tops(best) == [arms[0]]
    assert refinements(held, tops(best)) == [Arm("torch-compile[channels_last=on,compile_mode=max-autotune]", "fp16"),
                                             Arm("torch-compile[channels_last=on,compile_mode=reduce-overhead]", "fp16")]


def _compile(mode: str, precision: str = "fp16") -> Arm:
    return Arm(f"torch-compile[channels_last=on,compile_mode={mode}]", precision)


def test_a_runtime_over_the_latency_budget_at_the_screen_is_still_refined_at_the_leaders_batch():
    """torch.compile's default mode launches every kernel from Python: over a 1 ms budget at batch 1 on an H200,
    while its CUDA-graph modes would not be. Its held-back modes are tried at the leader's batch."""
    goal = Goal(latency_budget_ms=1.0)
    graph, default = Arm("torch-cudagraph[channels_last=on]", "fp16"), _compile("default")
    later = [_compile("max-autotune"), _compile("reduce-overhead"), _compile("max-autotune", "bf16")]
    screened = {graph: Trial("screen", graph, 1, "ok", ms=0.33), default: Trial("screen", default, 1, "ok", ms=1.09)}
    best = {graph: Trial("batch", graph, 40, "ok", ms=0.99)}  # the compile arm never met the budget
    assert refine_plan(later, best, screened, goal, 1024) == [
        (_compile("max-autotune"), 40), (_compile("max-autotune"), 20),
        (_compile("reduce-overhead"), 40), (_compile("reduce-overhead"), 20)]
    # a runtime whose best arm reached the batch search is refined at its own batch (and next to it)
    best[default] = Trial("batch", default, 256, "ok", ms=3.0)
    assert refine_plan(later, best, screened, Goal(), 1024) == [
        (a, b) for a in later[:2] for b in (256, 512, 128)]
    # its stand-in has the leader's precision and settings, not its own fastest launch-bound precision
    del best[default]
    tf32 = _compile("default", "tf32")
    later.append(_compile("max-autotune", "tf32"))
    screened[tf32] = Trial("screen", tf32, 1, "ok", ms=1.05)
    assert refine_plan(later, best, screened, goal, 1024)[0] == (_compile("max-autotune"), 40)
    del best[graph]
    assert refine_plan(later, best, screened, goal, 1024)[0] == (_compile("max-autotune", "tf32"), 1)  # no leader
    best[graph] = Trial("batch", graph, 40, "ok", ms=0.99)
    # nothing refines a runtime that never ran (failed, parity mismatch)
    screened[default] = screened[tf32] = Trial("screen", default, 1, "mismatch", ms=1.0)
    assert refine_plan(later, best, screened, goal, 1024) == []


def test_an_arm_whose_speed_depends_on_its_process_is_told_apart_from_one_that_holds():
    """Seen on an H200: one configuration at 17.8 ms per batch in one process and 25.9 ms in the next, each tight in
    its own rounds. The last race's estimate is compared with the first race's (other processes)."""
    from types import SimpleNamespace

    from rtbench.tune_run import other_process

    def cell(key, ms):
        return SimpleNamespace(measured=True, round_ms=dict(enumerate(ms)), cell=SimpleNamespace(key=key))

    rng = np.random.default_rng(1)
    noisy = [list(m * np.exp(rng.normal(0, 0.002, 30))) for m in (17.8, 25.9, 17.8)]
    first = SimpleNamespace(id="race-1", cells=[cell("a", noisy[0]), cell("b", noisy[0])])
    moved, held = other_process(cell("a", noisy[1]), first), other_process(cell("b", noisy[2]), first)
    assert moved["race"] == "race-1" and not moved["holds"] and abs(moved["ms"] - 17.8) < 0.1
    assert abs(moved["difference"] - (25.9 / 17.8 - 1)) < 0.01 and moved["span_ms"][0] < 17.8 < 25.9 < moved["span_ms"][1]
    from rtbench.report.tune import other_process_text

    text = other_process_text(moved, batch=1024)
    assert "+45.5%" in text and f"{moved['span_ms'][0]:.3f}–{moved['span_ms'][1]:.3f} ms" in text, text
    assert f"{1024e3 / moved['span_ms'][1]:,.0f}–{1024e3 / moved['span_ms'][0]:,.0f} images/s" in text, text
    assert other_process_text(moved, short=True).endswith("DIFFERS +45.5%")
    assert other_process_text(held, short=True).endswith("holds") and "agree" in other_process_text(held)
    assert held["holds"] and held["ms_low"] <= held["ms"] <= held["ms_high"]
    assert other_process(cell("c", noisy[0]), first) is None and other_process(cell("a", noisy[0]), None) is None


class _Scripted(Search):
    """A Search whose trials are given (latency per arm and batch, or a status): the steps' logic without workers."""

    def __init__(self, goal: Goal, results: dict):
        self.goal, self.results, self.asked = goal, results, []
        self.max_batch, self.trail, self.deadline = 1024, [], time.perf_counter() + 60
        self.sweep = type("S", (), {"device": "cuda:0"})()

    def try_all(self, stage, plan):
        self.asked.append((stage, list(plan)))
        out = []
        for a, b in plan:
            r = self.results.get((a, b), "failed")
            out.append(Trial(stage, a, b, "ok", ms=r) if isinstance(r, float) else Trial(stage, a, b, r))
        self.trail += out
        return out


def test_throughput_screens_a_gpu_at_a_large_batch_and_screens_an_arm_out_of_memory_again_smaller():
    big, small = Arm("torch", "fp16"), Arm("onnxruntime", "fp16")
    s = _Scripted(Goal(), {(big, SCREEN_BATCH): "oom", (small, SCREEN_BATCH): 4.0,
                           (big, SCREEN_BATCH // 8): 1.0, (small, 2 * SCREEN_BATCH): 9.0})
    assert SCREEN_BATCH >= 128 and s.first_batch() == SCREEN_BATCH
    best = search(s, [big, small], [])
    assert [st for st, _ in s.asked[:2]] == ["screen", "screen"] and s.asked[1][1] == [(big, SCREEN_BATCH // 8)]
    assert best[big].batch == SCREEN_BATCH // 8 and best[small].batch == SCREEN_BATCH  # 256 lost over 10%: stop
    assert _Scripted(Goal(latency_budget_ms=1.0), {}).first_batch() == 1


def test_batch_search_doubles_then_bisects_under_a_latency_budget():
    s = Search.__new__(Search)
    s.goal, s.max_batch = Goal(latency_budget_ms=1.0), 1024
    lo = Trial("batch", Arm("torch", "fp32"), 16, "ok", ms=0.8)
    assert s._next(lo, None) == 32  # nothing over the budget yet: double
    assert s._next(lo, 32) == 24  # 32 was over: bisect
    assert s._next(Trial("batch", lo.arm, 30, "ok", ms=0.9), 32) is None  # within an eighth: done
    s.goal = Goal()  # throughput: doubling stops at the first batch that does not gain
    assert s._next(lo, 32) is None and s._next(Trial("b", lo.arm, 1024, "ok", ms=1.0), None) is None


def test_frontier_and_race_plan():
    assert frontier([(1.0, 100), (2.0, 90), (2.0, 300), (0.5, 50), (4.0, 280)]) == [(0.5, 50), (1.0, 100), (2.0, 300)]
    a, b = Arm("onnxruntime", "fp32"), Arm("torch[channels_last=on]", "fp32")
    plan = race_plan({a: Trial("batch", a, 8, "ok", ms=2.0), b: Trial("batch", b, 4, "ok", ms=1.5)})
    assert plan == [(a, 8), (b, 4), (Arm("torch", "fp32"), 8)]  # eager fp32 joins at the leader's batch


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One real tune on the CPU: a tiny CNN, ONNX Runtime and a runtime whose outputs are fp16 while it claims fp32
    (parity must keep it from being recommended), 0.75 minutes; eager torch fp32 joins the race as the reference."""
    import os

    import rtbench

    out = tmp_path_factory.mktemp("tune")
    os.environ["RTBENCH_PLUGINS"] = "downcast_runtimes"
    os.environ["RTBENCH_TUNE_THREADS"] = "2"  # trials prepare two at a time (as on a larger host), then are timed alone
    try:
        t0 = time.perf_counter()
        res = rtbench.tune(model="entry_models:tiny_cnn", size=32, budget_min=0.75, device="cpu", out=out,
                           runtimes="onnxruntime,torch-fp16-as-fp32")
        wall = time.perf_counter() - t0
    finally:
        os.environ.pop("RTBENCH_PLUGINS", None)
        os.environ.pop("RTBENCH_TUNE_THREADS", None)
    return res, wall, out


def test_tune_recommends_a_parity_checked_winner_within_its_budget(tuned):
    res, wall, out = tuned
    assert wall <= 45 + 15  # its budget, and the report (on a busy 2-core host)
    w = res.winner
    assert w is not None and w["status"] == "ok" and w["rounds"] >= 2
    assert w["images_s_low"] <= w["images_s"] <= w["images_s_high"]
    raced = [a for a in res.arms if a["status"] == "ok" and a.get("images_s")]
    assert w["images_s"] == max(a["images_s"] for a in raced)
    downcast = [t for t in res.trail if t["runtime"].startswith("torch-fp16-as-fp32")]
    fp32 = [t for t in downcast if t["precision"] == "fp32"]  # it refuses the others (unsupported)
    assert fp32 and all(t["status"] == "mismatch" for t in fp32)  # tried, failed parity, never raced
    assert not any(a["runtime"].startswith("torch-fp16-as-fp32") for a in res.arms)
    assert any(a["runtime"] == "torch" and a["precision"] == "fp32" for a in res.arms)  # eager fp32, same rounds
    if w["runtime"] != "torch":
        assert res.vs_eager and res.vs_eager["speedup_low"] <= res.vs_eager["speedup"] <= res.vs_eager["speedup_high"]
    assert res.reproduce["command"].startswith("rtbench run --model entry_models:tiny_cnn --runtimes")
    stages = {t["stage"] for t in res.trail}
    assert {"screen", "batch"} <= stages and res.races
    # two races, each in its own workers: every arm of the last is checked against its estimate in the first
    assert len(res.races) == 2 and w["other_process"]["race"] == res.races[0]
    for a in raced:
        o = a["other_process"]
        assert o["ms_low"] <= o["ms"] <= o["ms_high"] and o["holds"] == (
            abs(a["ms"] - o["ms"]) <= ((o["ms_high"] - o["ms_low"]) ** 2 + (a["ms_high"] - a["ms_low"]) ** 2) ** 0.5 / 2)
    # every trial that ran was timed alone, after its step's preparations: one block of at least TIMING's calls,
    # its latency that block's (the warm-up's, taken while others prepared, is kept beside it)
    ran = [t for t in res.trail if t["status"] == "ok"]
    assert ran and all(t["timed_calls"] >= TIMING.min_calls and t["ms"] > 0 and t["warmup_ms"] > 0 for t in ran)


def test_tune_is_stored_and_reported(tuned):
    from rtbench.results import Run
    from rtbench.tune_run import load_tune

    res, _wall, out = tuned
    back = load_tune(res.id, out)
    assert back.winner == res.winner and back.trail == res.trail and back.races == res.races
    race = Run.load(res.races[-1], out)  # an ordinary run: every raced cell with its rounds
    assert {(c.cell.runtime, c.cell.batch) for c in race.cells} == {(a["runtime"], a["batch"]) for a in res.arms}
    md = (res.report_dir / "tune.md").read_text(encoding="utf-8")
    assert "**Switch cost:** set-up" in md and "GPU memory" not in md  # on a CPU there is no NVML to read
    assert "**Recommended:**" in md and "**In another process** (the first race" in md and "(images/frontier.png)" in md and (res.report_dir / "images/frontier.png").is_file()
    assert md.count("\n| screen |") + md.count("\n| batch |") + md.count("\n| refine |") == len(res.trail)
    from test_report_html import CHROMIUM, PROBE, chromium

    if CHROMIUM is None:
        pytest.skip("needs chromium (CI installs it via .ci/run)")
    page = res.report_dir / "tune.html"
    probe = res.report_dir / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    p = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    seen = json.loads(html.unescape(re.search(r'<pre id="rtbench-probe">(.*?)</pre>', p.stdout, re.S).group(1)))
    assert len(seen["imgs"]) == 1 and seen["imgs"][0]["w"] > 300
    assert sum(seen["rows"]) == 9 * len(res.arms) + 9 * len(res.trail)


def test_tune_bad_input_is_one_line(cli, tmp_path):
    import rtbench

    with pytest.raises(UserError, match="--budget-min 10"):
        rtbench.tune(budget_min=0, device="cpu", out=tmp_path)
    with pytest.raises(UserError, match="not both"):
        rtbench.tune(batch=8, latency_budget_ms=1, device="cpu", out=tmp_path)
    p = cli("tune", "--device", "cpu", "--runtimes", "torch[compile_mode=default]")
    assert p.returncode == 2 and "has no setting" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_a_tied_arm_with_a_fraction_of_the_winners_set_up_is_named_beside_it():
    """Seen on an H200: max-autotune won by 0.3% (a tie, paired) after 116 s of compile; the default mode took 14 s."""
    from types import SimpleNamespace

    from rtbench.report.markdown import to_markdown
    from rtbench.report.tune import answer
    from rtbench.spec import Cell
    from rtbench.status import Status
    from rtbench.tune_run import verdict

    rng = np.random.default_rng(2)
    drift = np.exp(rng.normal(0, 0.004, 40))  # shared by the arms of each round: what pairing removes

    def cell(runtime, precision, ms, noise):
        return SimpleNamespace(cell=Cell("resnet18", runtime, precision, 224, 1024, "cuda:0", "compute"),
                               status=Status.OK, reason=None, measured=True, setup={}, setup_s=lambda: 0.0,
                               telemetry={}, round_ms=dict(enumerate(ms * drift * np.exp(rng.normal(0, noise, 40)))))

    auto, default = _compile("max-autotune"), _compile("default")
    cells = [cell(auto.runtime, "fp16", 12.78, 0.004), cell(default.runtime, "fp16", 12.80, 0.004),
             cell("torch", "fp32", 97.3, 0.001)]
    trail = [Trial("refine", auto, 1024, "ok", ms=12.4, setup_s=116.4),
             Trial("batch", default, 1024, "ok", ms=12.5, setup_s=14.4)]
    v = verdict(SimpleNamespace(id="race-2", cells=cells), Goal(), trail)
    assert v["winner"]["runtime"] == auto.runtime and v["ties"] == [f"{default.runtime} fp16 b1024"], v["ties"]
    assert v["switch"]["cheaper_tie"] == {"label": f"{default.runtime} fp16 b1024", "setup_s": 14.4}
    res = SimpleNamespace(**v, reproduce={"command": "rtbench run", "python": "rtbench.run()"})
    assert f"for less set-up: `{default.runtime} fp16 b1024`, 14.4 s" in to_markdown(answer(res))
    trail[1].setup_s = 80.0  # not a fraction of the winner's: not named
    assert "cheaper_tie" not in verdict(SimpleNamespace(id="race-2", cells=cells), Goal(), trail)["switch"]


def test_the_switch_cost_gives_gpu_memory_and_energy_only_where_nvml_read_them():
    from types import SimpleNamespace

    from rtbench.report.tune import answer

    winner = {"runtime": "torch-compile", "precision": "fp16", "batch": 256, "images_s": 80000.0, "images_s_low": 79000.0,
              "images_s_high": 81000.0, "ms": 3.2, "ms_low": 3.1, "ms_high": 3.3, "rounds": 12}
    res = SimpleNamespace(winner=winner, runner_up=None, ties=[], vs_eager=None,
                          reproduce={"command": "rtbench run", "python": "rtbench.run()"})

    def switch_line(**switch) -> str:
        (bullets,) = answer(SimpleNamespace(**vars(res), switch={"setup_s": 20.0, "break_even_images": 1e6, **switch}))
        return next(i for i in bullets.items if i.startswith("**Switch cost:**"))

    gpu = switch_line(peak_mem_mib=1234.0, joules_per_image=0.0042)
    assert "GPU memory in use 1,234 MiB (NVML, peak while timed); 0.0042 J per image" in gpu, gpu
    assert "GPU memory" not in switch_line(peak_mem_mib=None, joules_per_image=None)
