"""rtbench load on the CPU with real runtimes on a tiny model: Little's law, saturation at 150% of capacity, the
low-load latency against the closed loop, the store, the report, the command line and its bad input."""
from __future__ import annotations

import dataclasses
import os
import sqlite3

import numpy as np
import pytest

import rtbench
from rtbench.loadgen import arrivals
from rtbench.loadtest import read_points
from policies import FAST
from tests.conftest import gpu

pytestmark = [pytest.mark.slow, pytest.mark.serial]
MODEL = "entry_models:tiny_cnn"
BUSY_LOAD = 1.5  # 1-minute load average above which the 2-core host is shared with other work (this suite's own: ~1)
POLICY = dataclasses.replace(FAST, rounds=3, max_rounds=3, block_s=0.05, max_block_s=0.05)  # 3 rounds of the buckets


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """ONNX Runtime at 20% and 150% of its closed-loop capacity at max-batch 4 / 0.5 ms, 1.5 s per point."""
    out = tmp_path_factory.mktemp("load")
    df = rtbench.load_test(model=MODEL, runtimes="onnxruntime", size=32, max_batch="4", max_delay_ms="0.5",
                           qps="20%,150%", duration=1.5, device="cpu", out=out, policy=POLICY, seed=11)
    return df, out


def test_littles_law_holds_at_a_moderate_rate(loaded):
    df, _out = loaded
    r = df[df["offered_qps"] == df["offered_qps"].min()].iloc[0]
    assert r["status"] == "ok" and r["n"] > 2000
    assert r["offered_qps"] == pytest.approx(0.2 * r["capacity_qps"])
    if r["saturated"] and os.getloadavg()[0] > BUSY_LOAD:  # Little's law is for a steady queue, not a growing one
        pytest.skip(f"host busy (load average {os.getloadavg()[0]:.1f}): 20% of capacity saturated ({r['validity']})")
    assert not r["saturated"], r["validity"]
    # mean requests in the system over the counted window, against offered rate x mean latency
    assert r["mean_in_flight"] == pytest.approx(r["offered_qps"] * r["mean_ms"] / 1e3, rel=0.05)
    # the same in-flight average sampled on a 10 us grid from the stored requests (arrival, arrival + latency)
    a, lat = np.asarray(r["arrival_s"]), np.asarray(r["latency_ms"]) / 1e3
    grid = np.arange(r["warmup_s"], r["warmup_s"] + r["duration_s"], 1e-5)
    sampled = np.mean(np.searchsorted(np.sort(a), grid, "right") - np.searchsorted(np.sort(a + lat), grid, "right"))
    assert sampled == pytest.approx(r["mean_in_flight"], rel=0.02)


def test_150_percent_of_capacity_is_marked_saturated(loaded, tmp_path):
    """Capacity comes from three 50 ms closed loops: a host that deschedules one of them reads it low, and 150% of a
    low capacity may not saturate. So the claim gets three attempts (the fixture's point, then two fresh load tests),
    each attempt's figures go in the message, and a busy host skips it (as the low-rate test below)."""
    df, _out = loaded
    tries = []
    for attempt in range(3):
        if attempt:
            df = rtbench.load_test(model=MODEL, runtimes="onnxruntime", size=32, max_batch="4", max_delay_ms="0.5",
                                   qps="150%", duration=1.5, device="cpu", out=tmp_path / str(attempt), policy=POLICY,
                                   seed=11, report=False)
        r = df[df["offered_qps"] == df["offered_qps"].max()].iloc[0]
        assert r["offered_qps"] == pytest.approx(1.5 * r["capacity_qps"])
        if r["saturated"]:
            assert not r["valid"] and r["validity"].startswith("saturated")
            assert r["achieved_qps"] < 0.98 * r["arrived_qps"]
            return
        tries.append({"capacity_qps": round(r["capacity_qps"]), "arrived_qps": round(r["arrived_qps"]),
                      "achieved_qps": round(r["achieved_qps"]), "load_average": os.getloadavg()[0]})
    if min(t["load_average"] for t in tries) > BUSY_LOAD:
        pytest.skip(f"host busy (load average above {BUSY_LOAD} in every attempt): {tries}")
    pytest.fail(f"150% of the closed loop's capacity did not saturate, per attempt: {tries}")


def test_every_request_is_stored_and_reproducible_from_the_seed(loaded):
    df, out = loaded
    points = read_points(out, df.attrs["run_id"])
    assert len(points) == len(df) == 2
    for p, (_i, r) in zip(points, df.iterrows()):
        st = p["stats"]
        assert np.array_equal(p["arrival_s"], arrivals(p["offered_qps"], st["warmup_s"] + 1.5, 11, st["warmup_s"], 459))
        done = np.isfinite(p["latency_ms"])  # requests left undone when a saturated point was cut have NaN
        assert np.all(p["latency_ms"][done] >= p["queue_ms"][done]) and np.all(p["queue_ms"][done] >= 0)
        assert set(np.unique(p["batch"][done])) <= {1, 2, 3, 4} and np.all(p["batch"][~done] == 0)
        assert int(np.sum(p["arrival_s"] >= st["warmup_s"])) == st["n"] == r["n"]
        assert int(np.sum(~done)) == st["undone"]
        if st["undone"] == 0:
            counted = p["latency_ms"][p["arrival_s"] >= st["warmup_s"]]
            assert np.percentile(counted, 99) == pytest.approx(r["p99_ms"], rel=1e-4)
    with sqlite3.connect(out / "rtbench.sqlite") as db:  # the run row and the bucket cells are those of any run
        cells = db.execute("SELECT batch, status FROM cells WHERE run_id=?", (df.attrs["run_id"],)).fetchall()
    assert sorted(cells) == [(1, "ok"), (2, "ok"), (4, "ok")]


def test_the_report_shows_the_curve_and_rerenders_from_the_store(loaded):
    df, out = loaded
    d = out / df.attrs["run_id"]
    md = (d / "load.md").read_text()
    assert "p99 latency against offered load" in md and "LoadGen" in md and "saturated" in md
    assert (d / "images" / "load_p99_vs_qps.png").stat().st_size > 1000
    assert (d / "load.html").read_text().count("data:image/png;base64") >= 2
    (d / "load.md").unlink()
    from rtbench.report import write_report
    from rtbench.results import Run

    write_report(Run.load(df.attrs["run_id"], out))
    assert (d / "load.md").read_text() == md and (d / "report.md").exists()


def test_far_below_capacity_p99_is_the_closed_loop_batch_1_latency(tmp_path):
    """At 0.5% of capacity a request nearly always runs alone, at once: its latency is a batch-1 call's.

    The runtime runs on one thread, so that the claim is about the serving path, not the host: with two threads
    and one other busy process on the 2-core host (as CI's serial part meets after its parallel one), the
    runtime's second thread and the executor fight that process for two cores, and lone calls took 0.1 ms at p50
    and 3-6 ms at p99 against a closed loop of 16 us; with one thread, 29 us and 0.06-0.14 ms (2026-12-02, a busy
    loop beside it). Measured quiet, one thread: p50 28-29 us against a closed-loop median of 16-17 us (a lone
    call finds colder caches than back-to-back calls do), p99 52-55 us, queueing p90 0.4 us. Other hosts of the
    same kind were slower on lone calls (p50 50-60 us against 23-28 us, p99 up to 0.65 ms): hence the absolute
    tolerances (50 us on p50, 1 ms on p99) beside the relative ones. What the serving path could add still fails
    it: a queue (p90 over 5 us), batches over 1, or a wait for a batch to fill (5 ms between requests at this
    rate). A host shared with other work deschedules the executor now and then, which lands on a few requests:
    the claim gets three attempts, each attempt's figures go in the message, and when every attempt failed on a
    busy host (load average above BUSY_LOAD) the test is skipped as not testable there."""
    from rtbench.results import Run

    tries = []
    for attempt in range(3):
        df = rtbench.load_test(model=MODEL, runtimes="onnxruntime[threads=1]", size=32, max_batch="1",
                               max_delay_ms="0", qps="0.5%", duration=2.0, device="cpu", out=tmp_path / str(attempt),
                               policy=POLICY, report=False)
        r = df.iloc[0]
        closed = Run.load(df.attrs["run_id"], tmp_path / str(attempt)).cells[0]
        assert closed.cell.batch == 1 and closed.info["threads"] == 1
        assert r["mean_batch"] == pytest.approx(1.0, abs=0.02)
        assert r["valid"], r["validity"]  # enough requests for a p99 claim (459), and far from saturated
        counted = np.asarray(r["arrival_s"]) >= r["warmup_s"]
        queue = np.asarray(r["queue_ms"])[counted]
        call = np.asarray(r["latency_ms"])[counted] - queue
        got = {"p50": r["p50_ms"], "p99": r["p99_ms"], "queue_p90": float(np.percentile(queue, 90)),
               "queue_p99": float(np.percentile(queue, 99)), "call_p99": float(np.percentile(call, 99)),
               "closed_median": float(np.median(closed.samples_ms)),
               "closed_p99": float(np.percentile(closed.samples_ms, 99)), "load_average": os.getloadavg()[0]}
        tries.append({k: round(v, 4) for k, v in got.items()})
        if (got["p50"] == pytest.approx(got["closed_median"], rel=0.25, abs=0.05) and got["queue_p90"] < 0.005
                and got["p99"] == pytest.approx(got["closed_p99"], rel=0.5, abs=1.0)):
            return
    if min(t["load_average"] for t in tries) > BUSY_LOAD:
        pytest.skip(f"host busy (load average above {BUSY_LOAD} in every attempt): {tries}")
    pytest.fail(f"latency at 0.5% of capacity against the closed loop at batch 1 (ms), per attempt: {tries}")


def test_cli_load_with_the_null_runtime_finds_the_best_rate(tmp_path, cli):
    r = cli("load", "--runtimes", "null", "--device", "cpu", "--qps", "1000,3000", "--max-batch", "2", "--max-delay-ms",
            "1", "--slo", "5ms", "--duration", "1", "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "3,000 QPS at p99 <= 5 ms" in r.stdout and "load.md" in r.stdout
    assert r.stderr.count("null fp32 max-batch 2 / 1 ms sweep") == 2  # one line per point as it ends


@pytest.mark.parametrize("args, words", [
    (("--qps", "0"), "--qps"),
    (("--max-delay-ms", "-1"), "--max-delay-ms"),
    (("--slo", "15"), "needs a number and a unit"),
    (("--max-batch", "4096", "--size", "2048", "--device", "cpu"), "does not fit"),
])
def test_cli_load_bad_input_is_one_line_and_exit_2(tmp_path, cli, args, words):
    r = cli("load", *args, "--out", tmp_path / "o")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("rtbench: error:"), r.stderr
    assert not (tmp_path / "o").exists()


@gpu
def test_cuda_graphs_and_compiled_graphs_serve_under_load_from_their_buckets(tmp_path):
    from rtbench.results import Run

    df = rtbench.load_test(model=MODEL, runtimes="torch-cudagraph,torch-compile", size=32, max_batch="4",
                           max_delay_ms="1", qps="20%", duration=1.0, device="cuda", out=tmp_path, policy=POLICY,
                           report=False)
    assert (df["status"] == "ok").all() and df["valid"].all(), df[["runtime", "status", "reason", "validity"]]
    for _i, r in df.iterrows():  # partial batches ran padded as the prepared buckets
        assert set(np.unique(r["batch"])) - {0} and set(np.unique(r["batch"])) <= {1, 2, 3, 4}
    cells = Run.load(df.attrs["run_id"], tmp_path).cells
    assert sorted((c.cell.runtime, c.cell.batch, c.status.value) for c in cells) == [
        (rt, b, "ok") for rt in ("torch-compile", "torch-cudagraph") for b in (1, 2, 4)]
    assert all(c.info.get("cuda_graph") for c in cells if c.cell.runtime == "torch-cudagraph")
