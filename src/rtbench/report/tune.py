"""The tune report: the answer first (winner, intervals, ties, switch cost, how to reproduce), then the frontier of
throughput against latency over every configuration tried, the race table and the whole trail (tune.md with
images/, tune.html self-contained)."""
from __future__ import annotations

import math

import numpy as np

from rtbench.report.blocks import Block, Bullets, Heading, Image, Para, Table
from rtbench.report.plots import new_figure, palette, png

FILES = {"md": "tune.md", "html": "tune.html"}


def _f(v, digits: int = 0, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:,.{digits}f}{unit}"


def _ratio(r: dict | None) -> str:
    if not r or "speedup" not in r:
        return "no paired interval (fewer than two common rounds)"
    return f"x{r['speedup']:.3f} (95% CI {r['speedup_low']:.3f}–{r['speedup_high']:.3f}, {r['speedup_method']})"


def other_process_text(o: dict | None, short: bool = False, batch: int | None = None) -> str:
    """An arm's estimate in the other race's processes, and whether it agrees with the last race's; when it does
    not, by how much and where a re-run may land (both intervals together; in images/s too, given the batch)."""
    if not o:
        return "–" if short else "not measured (one race only)"
    fig = f"{o['ms']:.3f} ms ({o['ms_low']:.3f}–{o['ms_high']:.3f})"
    apart = f"{100 * o['difference']:+.1f}%" if "difference" in o else ""
    if short:
        return f"{fig}, {'holds' if o['holds'] else f'DIFFERS {apart}'.strip()}"
    if o["holds"]:
        return f"{fig} per batch: the two processes agree within their intervals"
    text = (f"{fig} per batch: **the two processes disagree beyond their intervals**"
            + (f" (this race {apart} against it)" if apart else "")
            + ", so this configuration's speed depends on the process (e.g. kernels chosen when it starts)")
    if "span_ms" not in o:
        return text + " and a re-run may land at either"
    lo, hi = o["span_ms"]
    per_s = f" ({_f(batch * 1e3 / hi)}–{_f(batch * 1e3 / lo)} images/s)" if batch else ""
    return text + f"; a re-run may land anywhere in {lo:.3f}–{hi:.3f} ms per batch{per_s}"


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The Pareto frontier of (latency ms, images/s): points no other point beats on both, by latency."""
    best, out = -math.inf, []
    for ms, ips in sorted(points, key=lambda p: (p[0], -p[1])):
        if ips > best:
            out.append((ms, ips))
            best = ips
    return out


def frontier_plot(res) -> bytes:
    """Every trial (its latency: one block, timed alone) by runtime, the race estimates with their CIs, the
    frontier, the budget."""
    fig, (ax,) = new_figure(width=8.0, height=4.8)
    ok = [t for t in res.trail if t.get("images_s") and t.get("status") == "ok"]
    fams = list(dict.fromkeys(t["runtime"].split("[")[0] for t in ok))
    colors = palette(fams)
    for fam in fams:
        pts = [(t["ms"], t["images_s"]) for t in ok if t["runtime"].split("[")[0] == fam]
        ax.scatter(*zip(*pts), s=18, alpha=0.55, color=colors[fam], label=f"{fam} (tried)")
    raced = [a for a in res.arms if a.get("images_s")]
    if raced:
        x = np.array([a["ms"] for a in raced])
        y = np.array([a["images_s"] for a in raced])
        xerr = np.array([[a["ms"] - a["ms_low"] for a in raced], [a["ms_high"] - a["ms"] for a in raced]])
        yerr = np.array([[a["images_s"] - a["images_s_low"] for a in raced],
                         [a["images_s_high"] - a["images_s"] for a in raced]])
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color="black", ms=4, capsize=2, label="raced (95% CI)")
    front = frontier([(t["ms"], t["images_s"]) for t in ok] + [(a["ms"], a["images_s"]) for a in raced])
    if front:
        ax.step(*zip(*front), where="post", color="grey", lw=1, ls="--", label="frontier")
    if res.winner:
        ax.scatter([res.winner["ms"]], [res.winner["images_s"]], marker="*", s=220, color="gold", edgecolor="black",
                   zorder=5, label="recommended")
    if (b := res.goal.get("latency_budget_ms")) is not None:
        ax.axvline(b, color="red", lw=1, label=f"latency budget {b:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("latency per batch, ms (log)")
    ax.set_ylabel("images/s")
    ax.set_title(f"{res.spec['model']} {res.spec['size']} px on {res.spec['device']}: throughput vs latency")
    ax.legend(fontsize=7, loc="best")
    return png(fig)


def answer(res) -> list[Block]:
    w = res.winner
    if not w:
        return [Para(f"**No recommendation:** {res.note}. The trail below says what became of every configuration.")]
    items = [f"**Recommended:** `{w['runtime']}` {w['precision']}, batch {w['batch']}: "
             f"**{_f(w['images_s'])} images/s** (95% CI {_f(w['images_s_low'])}–{_f(w['images_s_high'])}), "
             f"{w['ms']:.3f} ms per batch (95% CI {w['ms_low']:.3f}–{w['ms_high']:.3f}), {w['rounds']} rounds; "
             "outputs checked against PyTorch fp32 (parity passed)"]
    if res.runner_up:
        items.append(f"**Against the runner-up** `{res.runner_up['runtime']}` {res.runner_up['precision']} "
                     f"b{res.runner_up['batch']} ({_f(res.runner_up['images_s'])} images/s): images/s "
                     + _ratio(res.vs_runner_up))
    items.append(f"**In another process** (the first race, its own workers): {other_process_text(w.get('other_process'), batch=w['batch'])}")
    items.append("**Tie group** (not significantly slower than the winner, paired): "
                 + (", ".join(res.ties) if res.ties else "none: the winner is ahead of every other arm"))
    if res.vs_eager:
        items.append(f"**Against eager torch fp32** (batch {res.vs_eager.get('eager_batch')}, same rounds): images/s "
                     + _ratio(res.vs_eager))
    s = res.switch
    # GPU memory and energy come from NVML: on a CPU (or without NVML) there are none to give
    gpu = (f"; GPU memory in use {_f(s.get('peak_mem_mib'), 0, ' MiB')} (NVML, peak while timed); "
           f"{_f(s.get('joules_per_image'), 4, ' J')} per image"
           if s.get("peak_mem_mib") is not None or s.get("joules_per_image") is not None else "")
    items.append(f"**Switch cost:** set-up {_f(s.get('setup_s'), 1, ' s')} (export/compile/build, first call; cold "
                 f"cache), pays off after {_f(s.get('break_even_images'))} images against eager fp32{gpu}"
                 + (f"; as fast (tie group) for less set-up: `{c['label']}`, {_f(c['setup_s'], 1, ' s')}"
                    if (c := s.get("cheaper_tie")) else ""))
    items.append(f"**Reproduce:** `{res.reproduce['command']}` — or from Python: `{res.reproduce['python']}`")
    return [Bullets(items)]


def build(res) -> list[Block]:
    g = res.goal
    goal = (f"latency per batch within {g['latency_budget_ms']:g} ms" if g.get("latency_budget_ms") is not None
            else f"batch {g['batch']}" if g.get("batch") else f"objective {g['objective']}, batch free")
    trail = res.trail
    counts: dict[str, int] = {}
    for t in trail:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    blocks: list[Block] = [
        Heading(1, f"rtbench tune: {res.spec['model']} at {res.spec['size']} px on {res.spec['device']}"),
        Para(f"Tune `{res.id}`: most images/s with {goal}; budget {res.spec['budget_s']:.0f} s, took "
             f"{res.wall_s:.0f} s; races: {', '.join(f'`{r}`' for r in res.races) or 'none'} "
             "(`rtbench report RUN_ID` renders each)."),
        Heading(2, "Answer"), *answer(res),
        Heading(2, "How it searched"),
        Bullets([f"{res.spec['arms']} configurations (runtime x precision x settings); {len(trail)} trials: "
                 + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
                 "screen every arm at one batch (prune unavailable, unsupported, failed, out of memory and parity "
                 "mismatches), search each leader's batch (doubling, then bisection under a latency budget), try "
                 "the costly compile modes on the best arm of their runtime, then race the leaders and eager fp32 "
                 "in interleaved rounds; arms significantly slower than the leader drop out before the last race, "
                 "which runs in fresh processes: each arm's two estimates must agree within their intervals",
                 "each step's trials are prepared in parallel, then timed one at a time with one short block each "
                 "(cheap, for ordering and pruning); only the races' rounds give intervals, and only they decide"]),
        Heading(2, "Throughput against latency"), Image("images/frontier.png", "throughput vs latency",
                                                        frontier_plot(res)),
    ]
    head = ["arm", "batch", "ms (95% CI)", "images/s (95% CI)", "rounds", "status", "set-up s", "J/image",
            "another process: ms (95% CI)"]
    rows = [[f"{a['runtime']} {a['precision']}", str(a["batch"]),
             f"{a['ms']:.3f} ({a['ms_low']:.3f}–{a['ms_high']:.3f})" if a.get("ms") else "–",
             f"{_f(a.get('images_s'))} ({_f(a.get('images_s_low'))}–{_f(a.get('images_s_high'))})",
             str(a.get("rounds", "–")), a["status"] + ("" if a.get("meets_budget", True) else ", over budget"),
             _f(a.get("switch_s"), 1), _f(a.get("joules_per_image"), 4), other_process_text(a.get("other_process"), True)]
            for a in res.arms]
    blocks += [Heading(2, "The last race"), Table(head, rows)]
    head = ["stage", "arm", "batch", "status", "ms (one block, alone)", "images/s", "set-up s", "compile", "reason"]
    rows = [[t["stage"], f"{t['runtime']} {t['precision']}", str(t["batch"]), t["status"], _f(t.get("ms"), 3),
             _f(t.get("images_s")), _f(t.get("setup_s"), 1),
             t.get("compile_cache") or "", str(t.get("reason") or "")]
            for t in trail]
    blocks += [Heading(2, "Trail: every configuration tried"), Table(head, rows)]
    return blocks


def write_tune_report(res, formats=("md", "html")) -> list:
    """tune.md (+ images/) and tune.html into ``<out>/tune-<id>/``; returns the files written."""
    from rtbench.report import write_documents

    d = res.report_dir
    d.mkdir(parents=True, exist_ok=True)
    return write_documents(build(res), d, tuple(formats), "en", FILES)
