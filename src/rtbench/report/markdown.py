"""report.md: the method section (what was timed and how) and the Markdown rendering of the report's blocks."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from rtbench.report.blocks import Block, Bullets, Heading, Image, Para, Table
from rtbench.spec import PRECISIONS

MEASURED = ("ok", "mismatch")


def method_lines(run, df: pd.DataFrame, _: Callable[..., str]) -> list[str]:
    """What was timed (model, device, boundary, precisions, threads, versions) and how (clock, warm-up, stop rule,
    samples per cell, harness cost), and which cells were not measured."""
    s, env, h = run.sweep, run.env, run.harness
    p = s.policy
    cuda = s.device.startswith("cuda")
    meas = run.peak.get("measured") or {}
    peaks = ", ".join(f"{p} {meas[f'matmul_{p}_flops'] / 1e12:.2f} TFLOP/s" for p in PRECISIONS
                      if f"matmul_{p}_flops" in meas)
    m = df[df["status"].isin(MEASURED)] if len(df) else df
    capped = int(m["capped"].fillna(False).astype(bool).sum()) if "capped" in m else 0
    unstable = int((m["warmup_stable"] == False).sum()) if "warmup_stable" in m else 0  # noqa: E712 - NaN-safe
    lines = [
        _("m_model", model=s.model, weights=s.weights, reference=", ".join(sorted(
            {c["parity"]["reference"] for c in run.cells if (c.get("parity") or {}).get("reference")})) or "PyTorch fp32"),
        _("m_device", device=s.device, name=env.get("gpu") if cuda else env.get("cpu"), threads=env.get("torch_threads")),
        _("m_boundary", text=_(f"b_{s.boundary}")),
        _("m_precisions", precisions=", ".join(s.precisions)),
        _("m_grid", runtimes=", ".join(s.runtimes), sizes=", ".join(map(str, s.sizes)),
          batches=", ".join(map(str, s.batches))),
        _("m_clock_cuda" if cuda else "m_clock_host"),
        _("m_warmup", calls=p.warmup_min_calls, min_s=p.warmup_min_s, max_s=p.warmup_max_s, window=p.warmup_window,
          tol=p.warmup_tolerance) + (_("m_warmup_unstable", n=unstable) if unstable else ""),
        _("m_stop", calls=p.min_calls, min_s=p.min_time_s, target=p.ci_target, max_s=p.max_time_s, capped=capped),
    ]
    if len(m) and "n" in m:
        n = m["n"].astype(int)
        lines.append(_("m_samples", lo=n.min(), hi=n.max(), med=int(n.median())))
    lines += [_("m_statistic"), _("m_harness", ns=h.get("per_call_ns", float("nan")))]
    if tb := run.time_breakdown():
        # the report's own time is known only once it is written: left out, so a re-render says the same
        lines.append(_("m_time", total=tb["total"] - tb["report"], setup=tb["setup"], measure=tb["measure"],
                       checks=tb["checks"], fixed=max(0.0, tb["fixed"] - tb["report"])))
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
