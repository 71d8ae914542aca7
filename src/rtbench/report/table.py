"""The seed report's table, for any set of runtimes: one table per precision, device and boundary."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from rtbench.report.blocks import Table
from rtbench.report.conclusions import has_ci
from rtbench.report.i18n import translator
from rtbench.results import BASELINE
from rtbench.status import MEASURED

WIDE_CI = 0.10  # a CI half-width above this share of the estimate is shown as its two bounds
TELEMETRY = (("power_w", 1), ("joules_per_image", 3), ("sm_clock_mhz", 0))


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
    wide = "*" if flagged(r, "ci_above_target") or flagged(r, "capped") else ""
    launch = "†" if flagged(r, "launch_bound") else ""
    digits = _decimals(r["ms"])
    if not half <= WIDE_CI * r["ms"] and math.isfinite(half):  # wide intervals are asymmetric (log scale): both bounds
        ci = f"({_bound(r['ci_low_ms'])}–{_bound(r['ci_high_ms'])})"
    else:
        ci = f"±{fmt(half, digits)}"
    return f"{fmt(r['ms'], digits)} {ci}{wide}{launch}{flag}"


def _decimals(v: float) -> int:
    """Decimals for a time in ms: two, or two significant digits below 0.1 ms (0.012, not 0.01; at most six)."""
    return 2 if not 0 < v < 0.1 else min(6, 1 - math.floor(math.log10(v)))


def _bound(v: float) -> str:
    """One bound of a wide interval, readable however far off (2.1e-08 and 2.4e+10 from a cell of a few rounds
    with one far off, not 0.000000 and 23585659771.26)."""
    return f"{v:.2g}" if 0 < v < 1e-4 or v >= 1e6 else f"{v:.{_decimals(v)}f}"


def flagged(r, key: str) -> bool:
    """Whether a row's flag column is set (True; not False, None or the NaN of a cell without it)."""
    v = r.get(key)
    return isinstance(v, (bool, np.bool_)) and bool(v)


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
    lo, hi = r.get("speedup_low", math.nan), r.get("speedup_high", math.nan)
    return f"{r['speedup']:.2f}" + ("" if math.isnan(lo) or math.isnan(hi) else f" ({lo:.2f}–{hi:.2f})")


def _winner(rows: dict) -> str | None:
    """The fastest runtime of a row, only when its CI lies wholly below every other runtime's CI (and all have one).

    A ``mismatch`` cell (outputs beyond the parity tolerance) never wins, and it still counts as a rival.
    """
    ok = {rt: r for rt, r in rows.items() if r is not None and r["status"] in MEASURED}
    if len(ok) < 2:
        return None
    best = min(ok, key=lambda rt: ok[rt]["ms"])
    if (ok[best]["status"] == "ok" and all(has_ci(r) for r in ok.values())
            and all(ok[best]["ci_high_ms"] < r["ci_low_ms"] for rt, r in ok.items() if rt != best)):
        return best
    return None


def _measured_value(r, key: str, digits: int) -> str:
    return fmt(r.get(key), digits) if r is not None and r["status"] in MEASURED else "–"


def seed_rows(df, runtimes: list[str], _: Callable[..., str]) -> Table:
    """Size, Batch, then per runtime ms (±CI half-width), FPS, speedup vs torch, ms/image, load %.

    ``df`` holds the cells of one precision, device and boundary. The winner's ms and FPS are bold.
    """
    others = [rt for rt in runtimes if rt != BASELINE] if BASELINE in runtimes else []
    head = ([_("col_size"), _("col_batch")] + [_("col_ms", rt=rt) for rt in runtimes]
            + [_("col_fps", rt=rt) for rt in runtimes] + [_("col_speedup", rt=rt) for rt in others]
            + [_("col_img", rt=rt) for rt in runtimes] + [_("col_load", rt=rt) for rt in runtimes])
    table = Table(head, [])
    n = len(runtimes)
    for (size, batch), g in df.groupby(["size", "batch"], sort=True):
        rows = {rt: (g[g["runtime"] == rt].iloc[0].to_dict() if (g["runtime"] == rt).any() else None) for rt in runtimes}
        win = _winner(rows)
        cells = [f"{size}x{size}", str(batch)]
        cells += [_ms(rows[rt]) for rt in runtimes]
        cells += [_measured_value(rows[rt], "fps", 1) for rt in runtimes]
        cells += [_speedup(rows[rt]) for rt in others]
        cells += [_measured_value(rows[rt], "ms_per_image", 2) for rt in runtimes]
        cells += [_load(rows[rt]) for rt in runtimes]
        if win is not None:
            i = runtimes.index(win)
            table.bold |= {(len(table.rows), 2 + i), (len(table.rows), 2 + n + i)}
        table.rows.append(cells)
    return table


def telemetry_rows(df, _: Callable[..., str]) -> Table | None:
    """Runtime, precision, size, batch and whichever telemetry columns the DataFrame has (None without any)."""
    cols = [(c, d) for c, d in TELEMETRY if c in df and df[c].notna().any()]
    if not cols:
        return None
    m = df[df["status"].isin(MEASURED)].sort_values(["precision", "runtime", "size", "batch"])
    head = [_("col_runtime"), _("col_precision"), _("col_size"), _("col_batch")] + [_(f"col_{c}") for c, _d in cols]
    rows = [[r["runtime"], r["precision"], f"{r['size']}x{r['size']}", str(r["batch"])]
            + [fmt(r[c], d) for c, d in cols] for _i, r in m.iterrows()]
    return Table(head, rows)


def seed_table(df, runtimes: list[str], lang: str = "en") -> str:
    """The seed table as Markdown."""
    from rtbench.report.markdown import table_md

    return table_md(seed_rows(df, runtimes, translator(lang)))
