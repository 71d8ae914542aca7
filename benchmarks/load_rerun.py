"""Two load pages (written by benchmarks/load_h200.py) side by side: does the highest rate within the SLO hold on a
re-run?

    python benchmarks/load_rerun.py FIRST/README.md SECOND/README.md [--out PAGE.md]

Reads the "Highest QPS" table of each page and writes, per series, both rates, their ratio and whether the second
falls inside the first's search bracket (the only interval a best rate has: the search stops when the highest
passing rate and the lowest failing one are that close).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path


def best_rates(page: Path) -> dict[str, tuple[float, float]]:
    """series -> (QPS at the SLO, search bracket as a fraction) from a page's "Highest QPS" table."""
    text = page.read_text(encoding="utf-8")
    table = text[text.index("## Highest QPS"):].split("\n\n")[1]
    out = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 6 or not re.match(r"[\d,]+$", cells[1]):
            continue
        bracket = float(cells[5].rstrip("%")) / 100 if cells[5].endswith("%") else float("nan")
        out[cells[0]] = (float(cells[1].replace(",", "")), bracket)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    one, two = best_rates(a.first), best_rates(a.second)
    lines = [f"# Re-run of `rtbench load`: {a.first} against {a.second}", "",
             f"Written by `python benchmarks/load_rerun.py {a.first} {a.second}" + (f" --out {a.out}`" if a.out else "`"),
             "", "| series | first QPS | second QPS | second / first | inside the first's bracket |",
             "|---|---|---|---|---|"]
    for s in [s for s in one if s in two]:
        (q1, b1), (q2, _b2) = one[s], two[s]
        inside = "yes" if abs(q2 / q1 - 1) <= b1 else "no"
        lines.append(f"| {s} | {q1:,.0f} | {q2:,.0f} | {q2 / q1:.3f} | {inside} |")
    text = "\n".join(lines) + "\n"
    if a.out:
        a.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
