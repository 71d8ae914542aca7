"""Telemetry: the NVML sampler's arithmetic with a scripted fake NVML, and the real no-NVML path here."""
from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

from fake_nvml import FakeNVML
from policies import FAST
from rtbench import telemetry
from rtbench.telemetry import Sampler, decode_reasons


class Ticks:
    """A clock that returns scripted times."""

    def __init__(self, *ts):
        self.ts = list(ts)

    def __call__(self):
        return self.ts.pop(0)


def sampled(nvml, clock, manual: int, interval_s: float = 60.0) -> Sampler:
    """start, ``manual`` samples taken by hand, stop (the thread sleeps for ``interval_s``, so never samples)."""
    s = Sampler("cuda:0", interval_s=interval_s, nvml=nvml, clock=clock)
    s.start()
    for _ in range(manual):
        s.sample()
    s.stop()
    return s


def test_decode_reasons_names_every_bit_and_keeps_unknown_ones():
    assert decode_reasons(0) == []
    assert decode_reasons(0x1 | 0x4 | 0x40) == ["gpu_idle", "sw_power_cap", "hw_thermal_slowdown"]
    assert decode_reasons(0x8 | 0x10000) == ["hw_slowdown", "unknown_0x10000"]


def test_summary_means_energy_and_joules_per_image():
    # clock: t0=0 (start), start sample 0, two manual samples 1 and 2, stop sample 3, t1 = 3
    nvml = FakeNVML(power_mw=[200_000, 300_000, 400_000, 500_000], sm_mhz=[1980, 1980, 1755, 1980],
                    energy_mj=[5_000_000, 5_120_000])
    s = sampled(nvml, Ticks(0.0, 0.0, 1.0, 2.0, 3.0, 3.0), manual=2)
    out = s.summary(calls=30, batch=4)
    assert out["available"] is True and out["samples"] == 4
    assert out["power_w"] == {"mean": 350.0, "min": 200.0, "max": 500.0}
    assert out["sm_clock_mhz"]["min"] == 1755 and out["sm_clock_mhz"]["max"] == 1980
    assert out["energy_j"] == pytest.approx(120.0) and out["energy_source"] == "counter"
    assert out["images"] == 120
    assert out["joules_per_image"] == pytest.approx(1.0)
    assert out["images_per_joule"] == pytest.approx(1.0)
    # trapezoids over 0..3 s of 200, 300, 400, 500 W
    assert out["energy_j_from_power"] == pytest.approx(250 + 350 + 450)
    assert out["duration_s"] == pytest.approx(3.0)


def test_windows_add_up_energy_samples_and_time():
    # two windows (two blocks of one cell): 0..1 s and 5..7 s; energy counter 0 -> 10 J, then 100 -> 130 J
    nvml = FakeNVML(power_mw=[100_000, 200_000, 300_000, 400_000], sm_mhz=[900, 1980, 1980, 1980],
                    reasons=[0x4, 0, 0, 0x1], energy_mj=[0, 10_000, 100_000, 130_000])
    s = Sampler("cuda:0", interval_s=60.0, nvml=nvml, clock=Ticks(0.0, 0.0, 1.0, 1.0, 5.0, 5.0, 7.0, 7.0))
    for _ in range(2):
        s.start()
        s.stop()
    out = s.summary(calls=40, batch=2)
    assert out["windows"] == 2 and out["samples"] == 4 and out["duration_s"] == pytest.approx(3.0)
    assert out["energy_j"] == pytest.approx(40.0) and out["energy_source"] == "counter"  # not the 4 s gap between
    assert out["joules_per_image"] == pytest.approx(0.5)
    # power integrated inside each window only: (100+200)/2 * 1 s + (300+400)/2 * 2 s
    assert out["energy_j_from_power"] == pytest.approx(150.0 + 700.0)
    assert out["sm_clock_mhz"]["min"] == 900 and out["throttled"] == ["sw_power_cap"]
    assert out["reason_samples"] == {"sw_power_cap": 1, "gpu_idle": 1}


def test_energy_falls_back_to_power_samples_without_the_counter():
    nvml = FakeNVML(power_mw=[100_000], energy_mj=[None])
    out = sampled(nvml, Ticks(0.0, 0.0, 2.0, 2.0), manual=0).summary(calls=10, batch=1)
    assert out["energy_source"] == "power_samples"
    assert out["energy_j"] == pytest.approx(200.0)
    assert out["joules_per_image"] == pytest.approx(20.0)


def test_unsupported_queries_leave_their_metric_out():
    nvml = FakeNVML(temp_c=[None], reasons=[None])
    out = sampled(nvml, Ticks(0.0, 0.0, 1.0, 1.0), manual=0).summary()
    assert "temp_c" not in out and out["reasons"] == []
    assert out["power_w"]["mean"] == 300.0
    assert math.isnan(telemetry.mean_of(out, "temp_c")) and telemetry.mean_of(out, "power_w") == 300.0


def test_the_background_thread_samples_at_its_interval():
    s = Sampler("cuda:0", interval_s=0.01, nvml=FakeNVML())
    with s:
        time.sleep(0.25)
    n = s.summary()["samples"]
    assert 10 <= n <= 0.25 / 0.01 + 3  # start + ~25 thread samples + stop; a loaded CI machine may lag
    assert s._thread is None  # joined


def test_other_gpu_processes_are_listed_ours_are_not():
    me, parent = os.getpid(), os.getppid()
    nvml = FakeNVML(procs=[[(me, 2**30), (4242, 3 * 2**30)], [(me, 2**30), (4343, 2**20), (4242, 3 * 2**30)]])
    out = sampled(nvml, Ticks(0.0, 0.0, 1.0, 1.0), manual=0).summary()
    procs = out["gpu_processes"]
    assert procs["pids_comparable"] is True
    assert [p["pid"] for p in procs["others"]] == [4242, 4343]  # seen at start, then new at the end
    assert procs["others"][0]["used_mib"] == 3072.0
    assert telemetry.others_count(procs) == 2
    alone = FakeNVML(procs=[[(me, 1), (parent, 1)]])
    assert telemetry.others_count(sampled(alone, Ticks(0.0, 0.0, 1.0, 1.0), 0).summary()["gpu_processes"]) == 0


def test_the_runs_own_process_is_not_another_gpu_user(monkeypatch):
    """A worker's parent is the fork server; the run's process (which measured the peaks) holds a context too."""
    me = os.getpid()
    nvml = FakeNVML(procs=[[(me, 1), (31337, 2**29)]])
    seen = sampled(nvml, Ticks(0.0, 0.0, 1.0, 1.0), 0).summary()["gpu_processes"]
    assert [p["pid"] for p in seen["others"]] == [31337]
    monkeypatch.setenv(telemetry.RUN_PID_ENV, "31337")
    nvml = FakeNVML(procs=[[(me, 1), (31337, 2**29)]])
    assert sampled(nvml, Ticks(0.0, 0.0, 1.0, 1.0), 0).summary()["gpu_processes"]["others"] == []


def test_host_pids_in_a_container_allow_for_rtbench_own_contexts(monkeypatch):
    monkeypatch.setattr(telemetry, "_holds_context", lambda: True)
    two = telemetry.compute_processes(FakeNVML(procs=[[(10, 1), (11, 1)]]), "h")
    assert two["pids_comparable"] is False and telemetry.others_count(two) == 0
    three = telemetry.compute_processes(FakeNVML(procs=[[(10, 1), (11, 1), (12, 1)]]), "h")
    assert telemetry.others_count(three) == 1


def test_no_sampler_on_the_cpu():
    assert telemetry.for_device("cpu") is None


real_nvml = telemetry.load_nvml()[0] is not None


@pytest.mark.skipif(real_nvml, reason="NVML works here: the no-NVML path cannot be seen")
def test_without_nvml_the_sampler_says_not_available():
    mod, why = telemetry.load_nvml()
    assert mod is None and why.startswith("not available:")
    s = Sampler("cuda:0")
    with s:
        pass
    out = s.summary(calls=10, batch=1)
    assert out == {"available": False, "reason": why}
    assert s.rows == []


def test_engine_stores_the_sampler_summary_and_results_expose_it(tmp_path, monkeypatch):
    """The cell measurer wraps every other block's timed loop in the device's sampler; its summary is stored with the
    cell.

    Measured in this process (the worker's own code) so the fake NVML applies.
    """
    from rtbench import measurer
    from rtbench.results import Run
    from rtbench.spec import Sweep
    from rtbench.store import Store
    from rtbench.timing import BlockSpec
    from rtbench.worker import GroupMeasurer

    made = []

    def fake_for_device(device, **kw):
        made.append(Sampler(device, interval_s=0.005, nvml=FakeNVML(energy_mj=[0, 3_000_000])))
        return made[-1]

    monkeypatch.setattr(telemetry, "for_device", fake_for_device)
    sweep = Sweep(runtimes=("null",), sizes=(32,), batches=(3,), policy=FAST)
    store = Store(tmp_path)
    store.create_run("r1", sweep.to_dict(), {}, {}, {})
    m = GroupMeasurer(sweep, "null", "fp32", tmp_path)
    assert m.setup() is None
    (c,) = sweep.cells()
    out = m.prepare(c)
    cid = store.add_cell("r1", c, out.status, out.reason, **out.parts)
    blocks = [m.block(c, BlockSpec(seconds=0.02, rewarm_s=0.005)) for _ in range(3)]
    for r, b in enumerate(blocks):
        store.add_block(cid, r, b)
    store.update_cell(cid, "ok", None, telemetry=m.finish(c))
    store.close()
    run = Run.load("r1", tmp_path)
    (cell,) = run.cells
    tele = cell.telemetry
    # every other block is sampled (the 1st and 3rd here): energy per image counts the calls inside those windows
    # only; the warm-up is in none
    calls = sum(b.rewarm_calls + len(b.primary_ms) for b in blocks[::measurer.METER_EVERY])
    assert measurer.METER_EVERY == 2 and calls < sum(b.rewarm_calls + len(b.primary_ms) for b in blocks)
    assert len(made) == 1 and tele["available"] and tele["windows"] == 2 and tele["samples"] >= 4
    assert tele["calls"] == calls and tele["images"] == 3 * calls
    row = run.to_pandas().iloc[0]
    assert row["joules_per_image"] == pytest.approx(3000.0 / (3 * calls))
    assert row["power_w"] == 300.0 and row["sm_clock_mhz"] == 1980 and row["gpu_util_pct"] == 100
    assert row["images_per_joule"] == pytest.approx(3 * calls / 3000.0)


def test_cpu_cells_have_no_telemetry_and_nan_columns(tmp_path):
    from rtbench.engine import Engine
    from rtbench.results import Run
    from rtbench.spec import Sweep
    from rtbench.store import Store

    sweep = Sweep(runtimes=("null",), sizes=(32,), batches=(1,), policy=FAST)
    store = Store(tmp_path)
    store.create_run("r1", sweep.to_dict(), {}, {}, {})
    Engine(sweep, store, "r1", tmp_path, {}).run()  # a real worker process
    store.close()
    run = Run.load("r1", tmp_path)
    assert run.cells[0].telemetry == {}
    row = run.to_pandas().iloc[0]
    for col in ("power_w", "joules_per_image", "images_per_joule", "sm_clock_mhz", "temp_c", "gpu_util_pct"):
        assert math.isnan(row[col]), col


def test_the_runs_other_workers_are_not_other_gpu_users(monkeypatch):
    """Every runtime group's worker holds a context while the rounds run: siblings forked by the same fork server
    (this process's parent) are rtbench's own, a process with another parent is not."""
    me, server = os.getpid(), os.getppid()
    monkeypatch.setattr(telemetry, "parent_of", lambda pid: {501: server, 502: server, 777: 1}.get(pid))
    nvml = FakeNVML(procs=[[(me, 1), (501, 2**29), (502, 2**29), (777, 2**29)]])
    seen = sampled(nvml, Ticks(0.0, 0.0, 1.0, 1.0), 0).summary()["gpu_processes"]
    assert [p["pid"] for p in seen["others"]] == [777]


def test_in_a_container_every_worker_of_the_run_is_allowed_for(monkeypatch):
    procs = {"others": [{"pid": p} for p in range(5)], "pids_comparable": False}
    monkeypatch.setenv(telemetry.OWN_CONTEXTS_ENV, "4")  # the runner and three runtime groups
    assert telemetry.others_count(procs) == 1
    monkeypatch.delenv(telemetry.OWN_CONTEXTS_ENV)
    assert telemetry.others_count(procs) == 3


def test_parent_of_reads_proc():
    assert telemetry.parent_of(os.getpid()) == os.getppid()
    assert telemetry.parent_of(2 ** 22 + 12345) is None  # no such process
