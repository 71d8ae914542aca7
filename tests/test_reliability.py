"""Fault injection into real worker processes: crashes, hangs, exits, OOM; the sweep survives them all."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rtbench
from policies import FAST

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
CELL_TIMEOUT = 4.0

# runtime -> (status at batch 1, 2, 4; words the batch-2 reason must contain)
EXPECTED = {
    "fault-raise": (("ok", "failed", "ok"), ["RuntimeError: injected failure in the runtime"]),
    "fault-segv": (("ok", "failed", "ok"), ["killed by SIGSEGV", "Segmentation fault"]),
    "fault-abort": (("ok", "failed", "ok"), ["killed by SIGABRT", "Aborted"]),
    "fault-exit": (("ok", "failed", "ok"), ["exited with code 3", "fatal error: injected exit 3"]),
    "fault-hang": (("ok", "timeout", "ok"), [f"cell timeout of {CELL_TIMEOUT:g} s"]),
    "fault-oom": (("ok", "oom", "skipped"), ["OutOfMemoryError", "CUDA out of memory"]),
    "fault-memoryerror": (("ok", "oom", "skipped"), ["MemoryError"]),
    "fault-segv-setup": (("failed",) * 3, ["during runtime setup", "killed by SIGSEGV"]),
    "fault-hang-setup": (("timeout",) * 3, ["runtime setup took longer than the cell timeout"]),
    "fault-raise-setup": (("failed",) * 3, ["runtime setup failed: RuntimeError: injected failure in runtime setup"]),
}


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.setenv("RTBENCH_PLUGINS", "faulty_runtimes")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SRC), str(TESTS)]))
    if str(TESTS) not in sys.path:
        monkeypatch.syspath_prepend(str(TESTS))


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    """One sweep over every faulty runtime (and null, last): each fault must stay inside its cell."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RTBENCH_PLUGINS", "faulty_runtimes")
    mp.syspath_prepend(str(TESTS))
    out = tmp_path_factory.mktemp("faults")
    try:
        run = rtbench.run(runtimes=[*EXPECTED, "null"], sizes="32", batches="1,2,4", device="cpu", policy=FAST,
                          out=out, cell_timeout=CELL_TIMEOUT)
    finally:
        mp.undo()
    return run


def by_runtime(run, name):
    return sorted((c for c in run.cells if c.cell.runtime == name), key=lambda c: c.cell.batch)


@pytest.mark.parametrize("runtime", list(EXPECTED))
def test_fault_is_stored_with_reason_and_sweep_goes_on(fault_run, runtime):
    statuses, words = EXPECTED[runtime]
    cells = by_runtime(fault_run, runtime)
    assert [c.status for c in cells] == list(statuses), [(c.status, c.reason) for c in cells]
    bad = cells[1]
    for w in words:
        assert w in bad.reason, bad.reason
    for c in cells:
        if c.status == "ok":
            assert len(c.samples_ms) >= 3


def test_whole_sweep_completes(fault_run):
    assert fault_run.status == "complete"
    assert len(fault_run.cells) == 3 * (len(EXPECTED) + 1)
    assert [c.status for c in by_runtime(fault_run, "null")] == ["ok"] * 3
    assert (fault_run.report_dir / "report.md").exists()


@pytest.mark.parametrize("runtime", ["fault-segv", "fault-abort", "fault-exit", "fault-hang"])
def test_fresh_worker_continues_after_a_dead_one(fault_run, runtime):
    b1, _, b4 = by_runtime(fault_run, runtime)
    assert b1.info["worker_pid"] != b4.info["worker_pid"]
    assert "worker_start_s" in b4.info  # a fresh worker served batch 4


def test_worker_survives_a_python_exception(fault_run):
    pids = {c.info["worker_pid"] for c in by_runtime(fault_run, "fault-raise")}
    assert len(pids) == 1


def test_oom_rule_reason(fault_run):
    for name in ("fault-oom", "fault-memoryerror"):
        assert by_runtime(fault_run, name)[2].reason == "skipped (oom at batch 2)"


def test_worker_start_is_not_in_any_timing(fault_run):
    first = by_runtime(fault_run, "null")[0]
    assert first.info["worker_start_s"] > 0
    assert not any("worker" in k for k in first.setup)  # setup_s sums the setup keys: the start is not there
    assert max(first.samples_ms) < 1000 * first.info["worker_start_s"] + 5
    assert first.ms < 1.0  # the null call itself: microseconds


def test_a_crash_in_the_rounds_fails_that_cell_keeps_its_rounds_and_the_group_goes_on(plugins, tmp_path):
    """fault-late-segv kills its worker during a block of batch 2 (after round 0): batch 2 is failed with the
    reason and keeps its stored round; batch 1, whose session died with the worker, is prepared again in a fresh
    worker and finishes its rounds."""
    from dataclasses import replace

    from faulty_runtimes import LATE_S

    policy = replace(FAST, rounds=3, max_rounds=3, block_s=0.4, max_block_s=0.4)
    assert 2 * policy.block_s < LATE_S < 4 * policy.block_s  # round 0 ends before the fault, round 2 after
    run = rtbench.run(runtimes="fault-late-segv", sizes="32", batches="1,2", device="cpu", policy=policy,
                      out=tmp_path, cell_timeout=CELL_TIMEOUT)
    b1, b2 = by_runtime(run, "fault-late-segv")
    assert b2.status == "failed" and "killed by SIGSEGV" in b2.reason and "block" in b2.reason, b2.reason
    assert 0 in set(b2.rounds) and len(set(b2.rounds)) < 3 and b2.stats["rounds"] == len(set(b2.rounds))
    assert b1.status == "ok" and sorted(set(b1.rounds)) == [0, 1, 2]
    assert b1.info["worker_starts"] == 2  # the first worker died with batch 2's block


def test_a_set_up_that_takes_the_budget_still_leaves_the_rounds_half_of_it(plugins, tmp_path):
    """slow-setup spends 4 s of a 4 s budget before any round: the rounds still get 2 s (blocks of their normal
    length, not one call), and the run says it took longer than asked."""
    from dataclasses import replace

    from faulty_runtimes import SLOW_SETUP_S
    from rtbench.fairness import fairness_warnings

    policy = replace(FAST, rounds=2, max_rounds=40, block_s=0.02, max_block_s=0.02)
    run = rtbench.run(runtimes="slow-setup", sizes="32", batches="1", device="cpu", policy=policy, out=tmp_path,
                      budget=SLOW_SETUP_S, report=False)
    (c,) = run.cells
    assert c.status == "ok" and run.schedule["extended_s"] > 0 and not run.schedule["shortened"]
    assert c.stats["rounds"] > 2 and c.stats["timed_s"] > 0.5  # the rounds ran on, for about 2 s
    w = [w for w in fairness_warnings(run) if w.code == "over-budget"]
    assert w and "Set-up took most of the 4 s budget, so the run went on" in w[0].message
    assert "to give the rounds half the budget (2 s)" in w[0].message


def test_oom_rule_survives_interrupt_and_resume(plugins, tmp_path):
    """Ctrl-C right after the OOM cell; the resumed run (new workers) still skips the larger batch."""

    def stop_after_oom(cell, status):
        if status == "oom":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rtbench.run(runtimes="fault-oom", sizes="32", batches="1,2,4", device="cpu", policy=FAST, out=tmp_path,
                    progress=stop_after_oom, on_start=lambda rid, sweep: ids.append(rid))
    run_id = ids[0]
    assert rtbench.load(run_id, tmp_path).status == "interrupted"
    assert (tmp_path / run_id / "report.md").exists()  # the partial report
    run = rtbench.run(resume=run_id, out=tmp_path, cell_timeout=CELL_TIMEOUT)
    assert run.status == "complete"
    assert [(c.cell.batch, c.status) for c in by_runtime(run, "fault-oom")] == [(1, "ok"), (2, "oom"), (4, "skipped")]
    assert by_runtime(run, "fault-oom")[2].reason == "skipped (oom at batch 2)"


ids: list[str] = []


def test_parent_imports_no_native_runtime_and_no_network(tmp_path):
    """An onnxruntime sweep: ORT runs (parity included) in the worker only; no process touches the network."""
    net_log = tmp_path / "net.log"
    code = f"""
import json, sys
import rtbench
from policies import FAST
r = rtbench.run(model="resnet18", runtimes="onnxruntime", sizes="32", batches="1", device="cpu", policy=FAST,
                out={str(tmp_path / 'out')!r})
c = r.cells[0]
print(json.dumps({{"status": c.status, "parity": c.parity, "native": [m for m in ("onnxruntime", "openvino")
                  if m in sys.modules]}}))
"""
    env = {**os.environ, "RTBENCH_PLUGINS": "no_network", "RTBENCH_TEST_NET_LOG": str(net_log),
           "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["status"] == "ok", res
    assert res["parity"]["ok"] and res["parity"]["max_rel"] < 1e-3
    assert res["native"] == []
    assert not net_log.exists(), net_log.read_text()


def test_plugins_are_imported_only_when_named():
    code = "import sys; from rtbench.runtimes.base import load_all; n = load_all(); " \
           "print('faulty_runtimes' in sys.modules, 'fault-raise' in n)"
    env = {k: v for k, v in os.environ.items() if k != "RTBENCH_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS)])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.stdout.split() == ["False", "False"], r.stderr
