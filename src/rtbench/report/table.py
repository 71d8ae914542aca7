"""The seed report's table, for any set of runtimes: one table per precision, device and boundary."""
from __future__ import annotations

import math

from rtbench.results import BASELINE

MEASURED = ("ok", "mismatch")


def fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def _ms(r) -> str:
    if r is None:
        return "–"
    if r["status"] not in MEASURED:
        return r["status"]
    half = (r["ci_high_ms"] - r["ci_low_ms"]) / 2
    flag = " ⚠" if r["status"] == "mismatch" else ""
    cap = "*" if r.get("capped") else ""
    return f"{r['trimmed_mean_ms']:.2f} ±{half:.2f}{cap}{flag}"


def _load(r) -> str:
    if r is None or r["status"] not in MEASURED:
        return "–"
    sheet, meas = r.get("load_datasheet_pct"), r.get("load_measured_pct")
    have = [v for v in (sheet, meas) if v is not None and not math.isnan(v)]
    if len(have) == 2:
        return f"{sheet:.1f} / {meas:.1f}"
    return f"{have[0]:.1f}" if have else "–"


def _speedup(r) -> str:
    if r is None or r["status"] not in MEASURED or math.isnan(r.get("speedup", math.nan)):
        return "–"
    return f"{r['speedup']:.2f} ({r['speedup_low']:.2f}–{r['speedup_high']:.2f})"


def _winner(rows: dict) -> str | None:
    """The fastest runtime of a row, only when its CI lies wholly below every other runtime's CI.

    A ``mismatch`` cell (outputs beyond the parity tolerance) never wins, and it still counts as a rival.
    """
    ok = {rt: r for rt, r in rows.items() if r is not None and r["status"] in MEASURED}
    if len(ok) < 2:
        return None
    best = min(ok, key=lambda rt: ok[rt]["trimmed_mean_ms"])
    if ok[best]["status"] == "ok" and all(ok[best]["ci_high_ms"] < r["ci_low_ms"] for rt, r in ok.items() if rt != best):
        return best
    return None


def seed_table(df, runtimes: list[str]) -> str:
    """Markdown: Size, Batch, then per runtime ms (±CI half-width), FPS, speedup vs torch, ms/image, load %.

    ``df`` holds the cells of one precision, device and boundary.
    """
    others = [rt for rt in runtimes if rt != BASELINE] if BASELINE in runtimes else []
    head = (["Size", "Batch"] + [f"{rt} ms" for rt in runtimes] + [f"{rt} FPS" for rt in runtimes]
            + [f"{rt} ↑" for rt in others] + [f"{rt} ms/img" for rt in runtimes] + [f"{rt} load %" for rt in runtimes])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (size, batch), g in df.groupby(["size", "batch"], sort=True):
        rows = {rt: (g[g["runtime"] == rt].iloc[0].to_dict() if (g["runtime"] == rt).any() else None) for rt in runtimes}
        win = _winner(rows)

        def bold(rt, text):
            return f"**{text}**" if rt == win and text not in ("–",) else text

        cells = [f"{size}x{size}", str(batch)]
        cells += [bold(rt, _ms(rows[rt])) for rt in runtimes]
        cells += [bold(rt, fmt(rows[rt].get("fps"), 1) if rows[rt] is not None and rows[rt]["status"] in MEASURED
                       else "–") for rt in runtimes]
        cells += [_speedup(rows[rt]) for rt in others]
        cells += [fmt(rows[rt].get("ms_per_image")) if rows[rt] is not None and rows[rt]["status"] in MEASURED
                  else "–" for rt in runtimes]
        cells += [_load(rows[rt]) for rt in runtimes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
