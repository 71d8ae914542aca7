"""Test helper: store a measured cell the way the engine does, its samples split into consecutive rounds."""
from __future__ import annotations

import numpy as np

from rtbench import stats
from rtbench.timing import Block


def add_measured(store, run_id: str, cell, status: str, samples, reason=None, rounds: int = 10, host=None,
                 **parts) -> int:
    """Store ``cell`` with ``samples`` as ``rounds`` blocks of consecutive calls; ``parts['stats']`` adds to (and
    overrides) the statistics computed from them. Returns the cell's id."""
    x = np.asarray(samples, dtype=float)
    h = x if host is None else np.asarray(host, dtype=float)
    r = np.arange(len(x)) * rounds // len(x)
    st = {**stats.summarize(x, r), **parts.pop("stats", {})}
    cid = store.add_cell(run_id, cell, status, reason, stats=st, **parts)
    for k in range(rounds):
        store.add_block(cid, k, Block(x[r == k], h[r == k], np.empty(0), 0, float(x[r == k].sum() / 1e3)))
    return cid
