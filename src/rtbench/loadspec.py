"""What a load test does beside its sweep (batching policies, offered rates, SLO, point length, seed), parsed and
checked: bad input raises UserError naming the fix."""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass

from rtbench.errors import UserError
from rtbench.loadgen import Batching, Point
from rtbench.loadstats import min_queries
from rtbench.spec import parse_list

DEFAULT_DURATION_S = 3.0
MIN_DURATION_S = 1.0  # a point shorter than this is not valid (LoadGen's minimum duration, scaled down)
WARMUP_SHARE = 0.1  # each point first serves this share of its duration, not counted
AUTO_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.2)  # --qps auto: shares of the closed-loop capacity
SEARCH_STEPS = 4
SEARCH_TOLERANCE = 0.02  # the search stops when its bracket is this narrow (relative)
ACTIVATION_FACTOR = 16  # a batch's peak memory, in multiples of its fp32 input (estimate for the fit check)
SLO_UNITS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class LoadSpec:
    """What a load test does beside its sweep: batching policies, rates (None: auto), SLO, point length, seed."""

    policies: tuple[Batching, ...]
    qps: tuple[float, ...]  # requests per second
    shares: tuple[float, ...]  # of each runtime's closed-loop capacity at max-batch
    slo_ms: float | None
    duration_s: float = DEFAULT_DURATION_S
    seed: int = 0
    search_steps: int = SEARCH_STEPS
    min_duration_s: float = MIN_DURATION_S

    @property
    def warmup_s(self) -> float:
        return WARMUP_SHARE * self.duration_s

    def point(self, rate: float, batching: Batching) -> Point:
        return Point(rate, self.duration_s, self.warmup_s, self.seed, batching, drain_s=max(1.0, self.duration_s),
                     min_requests=min_queries())

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["policies"] = [b.to_dict() for b in self.policies]
        d["warmup_s"] = self.warmup_s
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LoadSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["policies"] = tuple(Batching(**b) for b in d["policies"])
        d["qps"], d["shares"] = tuple(d["qps"]), tuple(d["shares"])
        return cls(**d)

    def rates(self, capacity: float) -> tuple[float, ...]:
        """The offered rates of one runtime and policy whose closed-loop capacity is ``capacity`` (per second)."""
        return tuple(sorted({*self.qps, *(f * capacity for f in self.shares)}))


def parse_slo(text) -> float | None:
    """'15ms', '0.015s', '800us' -> milliseconds; None for none. A number without a unit is bad input."""
    if text is None or str(text).strip() == "":
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(us|µs|ms|s)?\s*", str(text))
    if m is None or m.group(2) is None:
        raise UserError(f"--slo {text!r} needs a number and a unit (us, ms or s), e.g. --slo 15ms")
    ms = float(m.group(1)) * SLO_UNITS[m.group(2)]
    if not ms > 0:
        raise UserError(f"--slo {text!r} must be above zero, e.g. --slo 15ms")
    return ms


def parse_qps(text) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Offered rates: requests per second, and shares of each runtime's closed-loop capacity ('50%').

    'auto' -> AUTO_FRACTIONS of capacity; '100,200' -> rates; '10%,150%' -> shares. A rate or share that is not a
    number above zero is bad input.
    """
    if isinstance(text, str) and text.strip().lower() == "auto":
        return (), AUTO_FRACTIONS
    rates, shares = set(), set()
    for x in parse_list(text if isinstance(text, str) else [str(v) for v in text], "qps"):
        share = x.endswith("%")
        try:
            q = float(x[:-1] if share else x)
        except ValueError:
            q = math.nan
        if not (math.isfinite(q) and q > 0):
            raise UserError(f"--qps: {x!r} is not a rate above zero: give requests per second, e.g. --qps 100,200, "
                            "shares of the closed-loop capacity, e.g. --qps 50%,120%, or --qps auto")
        (shares.add(q / 100) if share else rates.add(q))
    return tuple(sorted(rates)), tuple(sorted(shares))


def make_spec(max_batch="8", max_delay_ms="2", qps="auto", slo=None, duration: float = DEFAULT_DURATION_S,
              seed: int = 0, search_steps: int = SEARCH_STEPS, min_duration_s: float = MIN_DURATION_S) -> LoadSpec:
    """Validate the load options (errors name the fix); every max-batch is combined with every max-delay."""
    batches = parse_list(str(max_batch) if isinstance(max_batch, int) else max_batch, "max-batch", int)
    delays = []
    for x in parse_list(str(max_delay_ms) if isinstance(max_delay_ms, (int, float)) else max_delay_ms, "max-delay-ms"):
        try:
            delays.append(float(x))
        except ValueError:
            raise UserError(f"--max-delay-ms: {x!r} is not a number of milliseconds, e.g. --max-delay-ms 0,2") from None
    policies = tuple(Batching(b, d) for b in batches for d in delays)
    if not (math.isfinite(duration) and duration > 0):
        raise UserError(f"--duration {duration!r} is invalid: give seconds per point above zero, e.g. --duration 3")
    if search_steps < 0:
        raise UserError(f"--search-steps {search_steps} is invalid: give 0 (no search) or more, e.g. 4")
    return LoadSpec(policies, *parse_qps(qps), parse_slo(slo), float(duration), int(seed), int(search_steps),
                    float(min_duration_s))


def check_fits(spec: LoadSpec, size: int, device: str, channels: int = 3) -> None:
    """A max-batch whose batch cannot fit the device's memory is bad input (an estimate: ACTIVATION_FACTOR times
    its fp32 input); one that fits the estimate and still runs out of memory is stored as an ``oom`` point."""
    per_item = channels * size * size * 4 * ACTIVATION_FACTOR
    if device.startswith("cuda"):
        import torch

        have = torch.cuda.get_device_properties(device).total_memory
    else:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    worst = max(b.max_batch for b in spec.policies)
    if worst * per_item > have:
        raise UserError(f"--max-batch {worst} does not fit at {size} px: a batch would need about "
                        f"{worst * per_item / 2**30:.0f} GiB (inputs and activations, estimated) and {device} has "
                        f"{have / 2**30:.0f} GiB; use --max-batch {max(1, have // per_item)} or less")
