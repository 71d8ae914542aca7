"""report.md: the method section (what was timed and how) and the Markdown rendering of the report's blocks."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from rtbench.report.blocks import Block, Bullets, Heading, Image, Para, Table
from rtbench.spec import PRECISIONS
from rtbench.status import MEASURED


def method_lines(run, df: pd.DataFrame, _: Callable[..., str]) -> list[str]:
    """What was timed (model, device, boundary, precisions, threads, versions) and how (clock, warm-up, rounds,
    statistic, samples per cell, harness cost), and which cells were not measured."""
    s, env, h = run.sweep, run.env, run.harness
    p = s.policy
    cuda = s.device.startswith("cuda")
    meas = run.peak.get("measured") or {}
    peaks = ", ".join(f"{p} {meas[f'matmul_{p}_flops'] / 1e12:.2f} TFLOP/s" for p in PRECISIONS
                      if f"matmul_{p}_flops" in meas)
    m = df[df["status"].isin(MEASURED)] if len(df) else df
    col = (lambda k: m[k] if k in m else pd.Series(dtype=object))
    unstable = int((col("warmup_stable") == False).sum())  # noqa: E712 - None and NaN are "not checked"
    unchecked = int(col("warmup_stable").isna().sum()) if len(m) else 0
    legacy = len(m) and "rounds" in m and (m["rounds"].fillna(1) <= 1).all()
    lines = [
        _("m_model", model=s.model, weights=s.weights, reference=", ".join(sorted(
            {c.parity["reference"] for c in run.cells if c.parity.get("reference")})) or "PyTorch fp32"),
        _("m_device", device=s.device, name=env.get("gpu") if cuda else env.get("cpu"), threads=env.get("torch_threads")),
        _("m_boundary", text=_(f"b_{s.boundary}")),
        _("m_precisions", precisions=", ".join(s.precisions)),
        _("m_grid", runtimes=", ".join(s.runtimes), sizes=", ".join(map(str, s.sizes)),
          batches=", ".join(map(str, s.batches))),
        _("m_clock_cuda" if cuda else "m_clock_host"),
        _("m_warmup", calls=p.warmup_min_calls, min_s=p.warmup_min_s, max_s=p.warmup_max_s, window=p.warmup_window,
          tol=p.warmup_tolerance) + (_("m_warmup_unstable", n=unstable) if unstable else "")
        + (_("m_warmup_unchecked", n=unchecked) if unchecked else ""),
    ]
    if legacy:
        lines.append(_("m_legacy"))
    else:
        sched = run.schedule or {}
        budget = _("m_budget", budget=sched.get("budget_s", p.budget_s), block=sched.get("block_s", p.block_s) * 1e3)
        lines.append(_("m_rounds", rounds=p.rounds, max=p.max_rounds, rewarm=p.rewarm_s * 1e3, target=p.ci_target)
                     + " " + budget)
    if len(m) and "n" in m:
        n = m["n"].astype(int)
        r = m["rounds"].fillna(1).astype(int) if "rounds" in m else n * 0 + 1
        lines.append(_("m_samples", lo=n.min(), hi=n.max(), med=int(n.median()), rlo=r.min(), rhi=r.max(),
                       rmed=int(r.median())))
        short = int((col("statistic").fillna("10% trimmed mean") != "10% trimmed mean").sum())
        lines.append(_("m_statistic_v1") if legacy else _("m_statistic") + (_("m_statistic_mean", n=short) if short else ""))
    lines.append(_("m_harness", ns=h.get("per_call_ns", float("nan"))))
    if tb := run.time_breakdown():
        # the report's own time is known only once it is written: left out, so a re-render says the same
        lines.append(_("m_time", total=tb["total"] - tb["report"], setup=tb["setup"], measure=tb["measure"],
                       checks=tb["checks"], fixed=max(0.0, tb["fixed"] - tb["report"])))
    if comp := compile_text(run):
        lines.append(_("m_compile", text=comp))
    lines += [_("m_load", which=_("m_load_both") if run.peak.get("datasheet") else _("m_load_meas"))
              + (f" ({peaks})" if peaks else "")]
    if len(m) and "threads" in m and m["threads"].notna().any():
        per = m.dropna(subset=["threads"]).groupby("runtime", sort=False)["threads"].unique()
        lines.append(_("m_threads", text="; ".join(f"{rt} {', '.join(str(int(t)) for t in v)}" for rt, v in per.items())))
    pkgs = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v and k != "torch")
    lines.append(_("m_versions", text=f"rtbench {env.get('rtbench')}, torch {env.get('torch')}" + (f", {pkgs}" if pkgs else "")))
    bad = df[~df["status"].isin(MEASURED)] if len(df) else df
    counts = bad["status"].value_counts().to_dict() if len(bad) else {}
    lines.append(_("m_failed", text=", ".join(f"{n} {k}" for k, n in sorted(counts.items())) if counts else _("none")))
    return lines


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_md(t: Table) -> str:
    """A pipe table; bold cells wrapped in ``**``."""
    lines = ["| " + " | ".join(map(_cell, t.header)) + " |", "|" + "|".join("---" for _ in t.header) + "|"]
    for i, row in enumerate(t.rows):
        cells = [f"**{_cell(c)}**" if (i, j) in t.bold else _cell(c) for j, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_markdown(blocks: list[Block]) -> str:
    """The whole report as Markdown."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            out += [table_md(b)]
        elif isinstance(b, Image):
            out += [f"![{b.alt}]({b.path})", ""]
    return "\n".join(out)


def compile_text(run) -> str:
    """Per runtime that compiles per cell: how many cells came from the on-disk caches and how many compiled."""
    per: dict[str, list] = {}
    for c in run.cells:
        if c.info.get("compile_cache") in ("hit", "miss"):
            per.setdefault(c.cell.runtime, []).append(c)
    parts = []
    for rt, cells in per.items():
        hit = sum(c.info["compile_cache"] == "hit" for c in cells)
        secs = [c.info["compile_s"] for c in cells if "compile_s" in c.info]
        ahead = sum(bool(c.setup.get("precompiled")) for c in cells)
        parts.append(f"{rt} {hit}/{len(cells)} from cache, {len(cells) - hit} compiled"
                     + (f" ({min(secs):.1f}–{max(secs):.1f} s per cell)" if secs else "")
                     + (f", {ahead} pre-compiled in parallel" if ahead else ""))
    return "; ".join(parts)
