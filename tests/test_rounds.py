"""The round scheduler (rtbench.rounds) driven by a fake clock and fake cells: order, stop rule, budget, failures,
and the calibration of the whole method (scheduler, timing loop, statistics) on a simulated drifting host."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rtbench import stats, timing
from rtbench.rounds import Schedule, Unit
from rtbench.spec import Cell, TimingPolicy
from rtbench.status import Status
from rtbench.worker import Outcome


class Clock:
    """Fake time in seconds; the fake cells advance it by their calls' durations."""

    name = "fake"

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def time(self, fn):
        t0 = self.t
        fn()
        ms = (self.t - t0) * 1e3
        return ms, ms, ms


class Cells:
    """Fake cells: ``duration(cell, t)`` gives one call's ms at fake time ``t``; every block is logged."""

    def __init__(self, clock: Clock, duration, fail: dict | None = None):
        self.clock, self.duration, self.fail = clock, duration, fail or {}
        self.log: list[tuple[int, str]] = []  # (round, cell label) in the order blocks ran

    def measure(self, u: Unit, spec: timing.BlockSpec):
        if self.fail.get(u.cell.label()) == len(u.estimates):
            return Outcome(Status.FAILED, "boom")

        def call():
            self.clock.t += self.duration(u.cell, self.clock.t) / 1e3

        return timing.block(call, self.clock, spec.seconds, spec.min_calls, spec.rewarm_s, u.per_call_ms)


def cells(runtimes=("torch", "onnxruntime"), sizes=(224, 256), batches=(1, 8)) -> list[Cell]:
    return [Cell("m", rt, "fp32", s, b, "cpu") for s in sizes for b in batches for rt in runtimes]


def schedule(policy: TimingPolicy, duration, budget_s: float = 1e9, fail=None, units=None, per_call_ms=1.0):
    clock = Clock()
    fake = Cells(clock, duration, fail)
    units = units or [Unit(c, per_call_ms) for c in cells()]
    blocks, stops = [], []

    def on_block(u, r, b):
        blocks.append((u.cell.label(), r, b))
        fake.log.append((r, u.cell.label()))

    s = Schedule(policy, units, fake.measure, on_block, lambda u, f: stops.append((u.cell.label(), u.stopped_by, f)),
                 deadline=budget_s, now=clock.now)
    s.run()
    return s, units, fake, blocks, stops, clock


P = TimingPolicy(rounds=3, max_rounds=8, block_s=0.01, max_block_s=0.01, rewarm_s=0.0, ci_target=0.01, seed=3)


def steady(cell, t):
    return 1.0 if cell.runtime == "torch" else 0.5


def test_rounds_continue_to_the_cap_while_the_budget_lasts():
    s, units, fake, blocks, stops, _ = schedule(P, steady)
    assert all(sorted(u.estimates) == list(range(8)) for u in units)
    assert all(u.stopped_by == "max_rounds" for u in units)
    assert sorted(label for label, _why, _f in stops) == sorted(c.label() for c in cells())
    # each block timed 10 ms of 1 ms (torch) or 0.5 ms calls
    assert {len(b.primary_ms) for label, _r, b in blocks if "torch" in label} == {10}


def test_blocks_grow_to_spread_the_rounds_over_the_budget():
    # 8 cells x 8 rounds of 10 ms blocks = 0.64 s; a 2 s budget lengthens blocks to about 30 ms
    policy = TimingPolicy(rounds=3, max_rounds=8, block_s=0.01, max_block_s=0.1, rewarm_s=0.0, seed=3)
    s, units, _f, blocks, _st, clock = schedule(policy, steady, budget_s=2.0)
    assert 0.028 < s.block_s < 0.031 and not s.shortened
    assert all(len(u.estimates) == 8 for u in units)
    assert 1.8 < clock.t <= 2.0


def test_rounds_are_shuffled_seeded_and_keep_a_rows_runtimes_adjacent():
    _s, _u, fake, *_ = schedule(P, steady)
    orders = [[label for r, label in fake.log if r == k] for k in range(8)]
    assert len({tuple(o) for o in orders}) > 1  # the order changes between rounds
    for order in orders:
        rows = [label.split(" ", 2)[2] for label in order]  # "fp32 224px b1"
        # the two runtimes of a row follow each other
        assert all(rows[i] == rows[i + 1] for i in range(0, len(rows), 2))
    _s, _u, again, *_ = schedule(P, steady)
    assert again.log == fake.log  # the same seed gives the same order


def test_when_time_runs_short_wide_rows_go_first_and_single_lucky_rounds_settle_nothing():
    rng = np.random.default_rng(0)

    def noisy_onnx(cell, t):  # the onnxruntime cells at 224 px jump by 20% from block to block
        if cell.runtime == "onnxruntime" and cell.size == 224:
            return 0.5 * (1.2 if rng.random() < 0.5 else 1.0)
        return steady(cell, t)

    # the 3 minimum rounds of 8 blocks of ~10.5 ms take ~0.25 s; the 0.05 s left holds one round of 4 blocks
    _s, units, *_ = schedule(P, noisy_onnx, budget_s=0.30)
    by = {u.cell.label(): u for u in units}
    wide = [by[f"{rt} fp32 224px b{b}"] for rt in ("torch", "onnxruntime") for b in (1, 8)]
    calm = [by[f"{rt} fp32 256px b{b}"] for rt in ("torch", "onnxruntime") for b in (1, 8)]
    # the whole 224 px rows got the extra rounds (torch too: the speedups stay paired)
    assert min(len(u.estimates) for u in wide) >= 4 and {u.stopped_by for u in wide} == {"budget"}
    assert max(len(u.estimates) for u in calm) < min(len(u.estimates) for u in wide)
    assert {u.stopped_by for u in calm} == {"target"}


def test_a_row_met_once_is_not_settled():
    # stored rounds 1.0 and 1.3 ms, then 1 ms rounds: the CI narrows each round; one round within a 5% target
    # is not enough to count as settled (met must reach 2)
    policy = TimingPolicy(rounds=2, max_rounds=30, block_s=0.01, max_block_s=0.01, rewarm_s=0.0, ci_target=0.05)
    u = Unit(Cell("m", "torch", "fp32", 224, 1, "cpu"), 1.0, estimates={0: 1.0, 1: 1.3})
    _s, (u,), *_ = schedule(policy, lambda cell, t: 1.0, units=[u])
    widths = [stats.relative_halfwidth(list(u.estimates.values())[:k]) for k in range(2, len(u.estimates) + 1)]
    first_within = next(i for i, w in enumerate(widths) if w <= 0.05)
    assert u.met == len(widths) - first_within  # rounds in a row within the target, counted from the first


def test_blocks_are_shortened_to_fit_the_minimum_rounds_in_the_budget():
    # 8 cells x 3 rounds x 10 ms blocks = 0.24 s of blocks; a 0.12 s budget halves them (less the messaging)
    s, units, _f, blocks, _st, clock = schedule(P, steady, budget_s=0.12)
    assert s.shortened and not s.over_budget
    assert 0.002 < s.block_s < 0.005
    assert all(len(u.estimates) >= 3 for u in units)
    assert clock.t <= 0.12


def test_a_budget_too_small_for_the_minimum_rounds_still_runs_them_and_says_so():
    s, units, _f, blocks, _st, clock = schedule(P, steady, budget_s=0.001)
    assert s.over_budget and s.block_s == 0.0
    assert all(len(u.estimates) == 3 for u in units)  # one call per block, every minimum round
    assert {len(b.primary_ms) for *_x, b in blocks} == {1}


def test_a_failing_block_stops_its_cell_with_the_reason_and_the_others_go_on():
    _s, units, _f, blocks, stops, _c = schedule(P, steady, fail={"onnxruntime fp32 224px b1": 1})
    by = {u.cell.label(): u for u in units}
    failed = by["onnxruntime fp32 224px b1"]
    assert failed.stopped_by == Status.FAILED and sorted(failed.estimates) == [0]  # its first round stays
    assert [f.reason for label, _w, f in stops if label == failed.cell.label()] == ["boom"]
    assert sorted(by["torch fp32 224px b1"].estimates) == list(range(8))


def test_a_resumed_cell_continues_from_its_stored_rounds():
    units = [Unit(c, 1.0, estimates={0: 1.0, 1: 1.0} if c.runtime == "torch" else {}) for c in cells()]
    _s, units, fake, *_ = schedule(P, steady, units=units)
    torch_units = [u for u in units if u.cell.runtime == "torch"]
    assert min(r for r, _label in fake.log) == 2  # new rounds are numbered after the stored ones
    others = [u for u in units if u.cell.runtime != "torch"]
    assert all(sorted(u.estimates) == list(range(2, 10)) for u in others)
    # a row stops when all its cells have had max_rounds: the resumed torch cells ran along (paired) to round 9
    assert all(sorted(u.estimates) == list(range(10)) for u in torch_units)


# calibration through the whole method --------------------------------------------------------------------

def _ou(rng, tau: float, sd: float):
    """A host speed factor that wanders with time constant ``tau`` (s), sampled lazily at increasing times."""
    state = {"t": 0.0, "x": rng.normal(0, sd)}

    def at(t: float) -> float:
        a = math.exp(-(t - state["t"]) / tau)
        state["x"] = a * state["x"] + math.sqrt(1 - a * a) * sd * rng.normal()
        state["t"] = t
        return math.exp(state["x"])

    return at


def _simulated_run(seed: int, tau: float):
    """Eight cells on one host whose speed drifts (log-sd 10%, time constant ``tau``), calls with AR(1) noise;
    the real scheduler, timing loop and statistics, 20 ms blocks, a 1% target, a 20 s budget."""
    rng = np.random.default_rng(seed)
    host = _ou(rng, tau, 0.1)
    z = {}

    def duration(cell, t):
        k = cell.label()
        z[k] = 0.8 * z.get(k, 0.0) + 0.6 * rng.normal()
        base = 1.0 if cell.runtime == "torch" else 0.5
        return base * host(t) * (1 + 0.03 * z[k])

    policy = TimingPolicy(rounds=5, max_rounds=40, block_s=0.02, max_block_s=0.2, rewarm_s=0.0, ci_target=0.01,
                          seed=seed)
    _s, units, _f, blocks, *_ = schedule(policy, duration, budget_s=20.0)
    out = {}
    for u in units:
        mine = [(r, b) for label, r, b in blocks if label == u.cell.label()]
        x = np.concatenate([b.primary_ms for _r, b in mine])
        rounds = np.concatenate([np.full(len(b.primary_ms), r) for r, b in mine])
        out[u.cell.label()] = (stats.summarize(x, rounds), x)
    return out


def test_simulated_reruns_land_inside_the_reported_intervals():
    """Pairs of simulated runs (fake clock, AR(1) calls, a host drifting over seconds to tens of seconds): the
    second run's estimate lies within sqrt(h1^2 + h2^2) of the first's for at least 90% of cells; an i.i.d.
    interval (schema 1's bootstrap, here its normal equivalent) on the same samples holds for under 60%."""
    held = held_iid = total = 0
    for seed, tau in ((1, 5.0), (2, 5.0), (3, 20.0), (4, 20.0), (5, 10.0), (6, 10.0)):
        a, b = _simulated_run(2 * seed, tau), _simulated_run(2 * seed + 1, tau)
        for label in a:
            (s1, x1), (s2, x2) = a[label], b[label]
            h1, h2 = ((s["ci_high_ms"] - s["ci_low_ms"]) / 2 for s in (s1, s2))
            held += abs(s2["ms"] - s1["ms"]) <= math.hypot(h1, h2)
            i1, i2 = (1.96 * np.std(x, ddof=1) / math.sqrt(len(x)) for x in (x1, x2))
            held_iid += abs(stats.trimmed_mean(x2) - stats.trimmed_mean(x1)) <= math.hypot(i1, i2)
            total += 1
    assert held / total >= 0.90, (held, total)
    assert held_iid / total < 0.60, (held_iid, total)


@pytest.mark.parametrize("bad", [dict(rounds=1), dict(rounds=5, max_rounds=4), dict(budget_s=0),
                                 dict(budget_s=float("nan")), dict(block_s=-1.0)])
def test_policy_errors_name_the_fix(bad):
    from rtbench.errors import UserError

    with pytest.raises(UserError):
        TimingPolicy(**bad)
