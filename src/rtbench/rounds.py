"""Interleaved rounds: when each block of each cell runs, and when a cell has been measured enough.

Every prepared cell is a ``Unit``. Cells of one *row* (same precision, size, batch and boundary: the runtimes
a speedup compares) are measured in adjacent blocks of every round, in a shuffled order, so the per-round
ratio to the baseline cancels whatever drifts (rtbench.stats.paired_speedup). A round visits every row that
is still measuring, rows in a seeded shuffled order, so drift over the run lands on every runtime alike.

Rounds must span the run: a host whose speed drifts over tens of seconds looks steady to rounds packed into a
few seconds, and their interval would not hold on a re-run. So the run's time budget is spent, not saved:
every row gets at least ``policy.rounds`` rounds and, while the budget lasts, more, up to
``policy.max_rounds``. Blocks are shortened (down to one call) when the minimum rounds would not fit in the
budget, and lengthened (up to ``policy.max_block_s``) when even ``max_rounds`` rounds would leave it unused. When the
time left cannot hold a round of every row, it goes first to rows whose 95% CI is still wider than
``policy.ci_target`` (widest first), then to rows already within it at two rounds in a row (so a single lucky
round settles nothing); a row that no longer fits stops, ``budget`` or ``target`` by where its interval stands.

The scheduler knows nothing of processes: it calls ``measure(unit, spec)`` and reports through callbacks, so
tests drive it with fakes and a fake clock.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rtbench import stats
from rtbench.spec import Cell, TimingPolicy
from rtbench.timing import REWARM_MAX_CALL_S, Block, BlockSpec

MIN_BLOCK_S = 0.0  # a shortened block still times at least one call


@dataclass
class Unit:
    """One cell being measured: its round estimates so far and why it stopped."""

    cell: Cell
    per_call_ms: float  # from its warm-up: what one call costs
    estimates: dict[int, float] = field(default_factory=dict)  # round -> the round's estimate (ms)
    cost_s: float | None = None  # wall time of its last block as the scheduler saw it (messaging included)
    met: int = 0  # rounds in a row whose CI was within the target
    stopped_by: str | None = None  # max_rounds, budget, target (settled when time ran out), or a failure status
    ref: object = None  # the caller's handle (the store's cell id)

    @property
    def row(self) -> tuple:
        c = self.cell
        return (c.precision, c.size, c.batch, c.boundary)

    @property
    def active(self) -> bool:
        return self.stopped_by is None

    def rel_halfwidth(self) -> float:
        return stats.relative_halfwidth(list(self.estimates.values()))


class Schedule:
    """Runs the rounds of a set of units until each has stopped (see the module docstring)."""

    def __init__(self, policy: TimingPolicy, units: list[Unit], measure: Callable[[Unit, BlockSpec], object],
                 on_block: Callable[[Unit, int, Block], None], on_stop: Callable[[Unit, object | None], None],
                 deadline: float, now: Callable[[], float] = time.perf_counter,
                 on_round: Callable[[int, int], None] | None = None):
        self.policy, self.units, self.measure = policy, units, measure
        self.on_block, self.on_stop, self.on_round = on_block, on_stop, on_round or (lambda r, n: None)
        self.deadline, self.now = deadline, now
        self.rng = np.random.default_rng(policy.seed)
        self.block_s = policy.block_s
        self.shortened = False  # blocks were shortened to fit the minimum rounds in the budget
        self.over_budget = False  # the minimum rounds could not fit in the budget even at one call per block

    def run(self) -> None:
        for u in self.units:  # a resumed cell may already have every round it may get
            if u.active and len(u.estimates) >= self.policy.max_rounds:
                self._stop(u, "max_rounds")
        self._fit_block_length()
        r = max((max(u.estimates) for u in self.units if u.estimates), default=-1) + 1
        while True:
            rows = self._rows_this_round()
            if not rows:
                return
            self.on_round(r, sum(len(us) for us in rows))
            for i in self.rng.permutation(len(rows)):
                units = rows[i]
                for j in self.rng.permutation(len(units)):
                    self._block(units[j], r)
            for us in rows:
                self._judge([u for u in us if u.active])
            r += 1

    # planning ---------------------------------------------------------------------------------------
    def _spec(self) -> BlockSpec:
        return BlockSpec(seconds=self.block_s, min_calls=self.policy.block_min_calls, rewarm_s=self.policy.rewarm_s)

    def _planned_cost(self, u: Unit, block_s: float) -> float:
        """Seconds one block of ``u`` is expected to take with blocks of ``block_s``."""
        call = u.per_call_ms / 1e3
        rewarm = max(self.policy.rewarm_s, call) if self.policy.rewarm_s > 0 and call < REWARM_MAX_CALL_S else 0.0
        return rewarm + max(block_s, call * self.policy.block_min_calls) + 0.002  # + messaging and the store

    def _fit_block_length(self) -> None:
        """Shorten blocks until the rounds owed to the minimum fit in the time left; lengthen them (up to
        ``policy.max_block_s``) when ``max_rounds`` rounds of every cell would leave time unused."""
        owed = [(u, max(0, self.policy.rounds - len(u.estimates))) for u in self.units if u.active]
        most = [(u, max(0, self.policy.max_rounds - len(u.estimates))) for u in self.units if u.active]

        def total(b: float, plan) -> float:
            return sum(k * self._planned_cost(u, b) for u, k in plan)

        left = self.deadline - self.now()
        if total(self.block_s, owed) > left:
            self.shortened = True
            self.block_s = self._solve(owed, total, MIN_BLOCK_S, self.block_s, left)
            self.over_budget = total(self.block_s, owed) > left
        elif total(self.block_s, most) < left and self.block_s < self.policy.max_block_s:
            self.block_s = self._solve(most, total, self.block_s, self.policy.max_block_s, left)

    @staticmethod
    def _solve(plan, total, lo: float, hi: float, left: float) -> float:
        """The longest block in [lo, hi] whose plan fits in ``left`` seconds (``lo`` when none does)."""
        if total(hi, plan) <= left:
            return hi
        if total(lo, plan) > left:
            return lo
        for _ in range(30):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if total(mid, plan) <= left else (lo, mid)
        return lo

    def _rows_this_round(self) -> list[list[Unit]]:
        """The rows measured this round: all that still owe minimum rounds, then, in the time left, rows still
        wider than the target (widest first), then settled ones; rows that do not fit stop."""
        rows: dict[tuple, list[Unit]] = {}
        for u in self.units:
            if u.active:
                rows.setdefault(u.row, []).append(u)

        def owes(us):
            return any(len(u.estimates) < self.policy.rounds for u in us)

        def settled(us):
            return all(u.met >= 2 for u in us)

        must = [us for us in rows.values() if owes(us)]
        rest = sorted((us for us in rows.values() if not owes(us)),
                      key=lambda us: (settled(us), -max(u.rel_halfwidth() for u in us)))
        left = self.deadline - self.now() - sum(self._cost(u) for us in must for u in us)
        chosen = list(must)
        for us in rest:
            cost = sum(self._cost(u) for u in us)
            if cost <= left:
                chosen.append(us)
                left -= cost
            else:
                for u in us:
                    self._stop(u, "target" if settled(us) else "budget")
        return chosen

    def _cost(self, u: Unit) -> float:
        return u.cost_s if u.cost_s is not None else self._planned_cost(u, self.block_s)

    # measuring --------------------------------------------------------------------------------------
    def _block(self, u: Unit, r: int) -> None:
        if not u.active:
            return
        t0 = self.now()
        got = self.measure(u, self._spec())
        u.cost_s = self.now() - t0
        if not isinstance(got, Block):
            u.stopped_by = getattr(got, "status", "failed")
            self.on_stop(u, got)
            return
        u.estimates[r] = float(stats.trimmed_mean(got.primary_ms))
        self.on_block(u, r, got)

    def _judge(self, row: list[Unit]) -> None:
        """After a round: count the rounds in a row each cell's CI was within the target; a row whose cells have
        all had ``max_rounds`` rounds stops."""
        for u in row:
            u.met = u.met + 1 if u.rel_halfwidth() <= self.policy.ci_target else 0
        if row and all(len(u.estimates) >= self.policy.max_rounds for u in row):
            for u in row:
                self._stop(u, "max_rounds")

    def _stop(self, u: Unit, why: str) -> None:
        u.stopped_by = why
        self.on_stop(u, None)
