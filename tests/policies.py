"""Timing policies for tests: as short as a real run can be (two rounds of one short block per cell)."""
from rtbench.spec import TimingPolicy

# two rounds (the least that gives an interval), 10 ms blocks, next to no warm-up, no re-warm
FAST = TimingPolicy(warmup_min_calls=1, warmup_min_s=0.0, warmup_max_s=0.05, rounds=2, max_rounds=2, block_s=0.01,
                    max_block_s=0.01, rewarm_s=0.0, budget_s=600.0)
