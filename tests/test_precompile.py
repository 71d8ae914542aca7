"""Compiled artefacts are cached on disk and reused: a second run of the same sweep does not compile again, and
shapes compiled ahead in another process are cache hits in the measuring worker (real torch.compile on the CPU)."""
from __future__ import annotations

import pytest

from policies import FAST


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    import rtbench

    out = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    runs = []
    try:
        mp.setenv("RTBENCH_PRECOMPILE", "1")  # one pre-compile process: on 2 cores there would be none
        for _ in range(2):
            runs.append(rtbench.run(model="entry_models:tiny_cnn", runtimes=["torch-compile", "openvino"], sizes=[32],
                                    batches=[1], device="cpu", policy=FAST, out=out, report=False))
    finally:
        mp.undo()
    return runs, out


def _by(run, runtime):
    return {c.cell.batch: c for c in run.cells if c.cell.runtime == runtime}


def test_first_run_compiles_ahead_and_its_measuring_worker_hits_the_cache(two_runs):
    (first, _second), out = two_runs
    cells = _by(first, "torch-compile")
    assert all(c.status == "ok" for c in cells.values())
    # the pre-compile process compiled batch 1 (a miss in a cold cache) before the measuring worker came to it
    assert cells[1].setup["precompiled"] is True and cells[1].setup["precompile_cache"] == "miss"
    assert all(c.info["compile_cache"] == "hit" for c in cells.values())
    assert (out / "cache" / "inductor").is_dir()


def test_second_run_does_not_compile_again(two_runs):
    (first, second), _out = two_runs
    cells = _by(second, "torch-compile")
    # compiled before (the index says so): no pre-compile, and the measuring worker's compile is a cache hit
    assert all(c.info["compile_cache"] == "hit" and "precompiled" not in c.setup for c in cells.values())
    ov1, ov2 = _by(first, "openvino"), _by(second, "openvino")
    assert ov1[1].info["compile_cache"] == "miss"  # a cold OpenVINO cache is a miss ...
    assert all(c.info["compile_cache"] == "hit" for c in ov2.values())  # ... and the next run's a hit
    from rtbench.report.markdown import compile_text

    assert compile_text(second).startswith("torch-compile 1/1 from cache, 0 compiled")


def test_a_runtime_group_on_a_gpu_prepares_its_sizes_in_several_workers(monkeypatch):
    import dataclasses

    from rtbench import engine
    from rtbench.spec import Sweep

    gpu = Sweep(model="resnet18", runtimes=("torch", "torch-compile"), sizes=(224, 256, 384, 512), batches=(1, 4),
                device="cuda:0")
    monkeypatch.setattr(engine.os, "cpu_count", lambda: 16)
    assert [engine.shard_count(gpu, rt, True) for rt in gpu.runtimes] == [engine.SHARDS, engine.SHARDS]
    assert engine.shard_count(gpu, "torch-compile", False) == 1  # a zoo's lane: the other cores are its neighbours'
    assert engine.shard_count(dataclasses.replace(gpu, device="cpu"), "torch-compile", True) == 1  # cores measure
    assert engine.shard_count(dataclasses.replace(gpu, sizes=(224, 256)), "torch-compile", True) == 2  # one per size
    monkeypatch.setattr(engine.os, "cpu_count", lambda: 2)
    assert engine.shard_count(gpu, "torch-compile", True) == 1  # no spare cores


def test_a_group_spread_over_workers_measures_each_cell_in_the_worker_that_prepared_it(tmp_path, monkeypatch):
    """Two workers for one group (forced on the CPU): each size in its own, every cell measured there, all rounds."""
    import rtbench
    from rtbench import engine

    monkeypatch.setattr(engine, "shard_count", lambda sweep, runtime, spare: 2 if runtime == "torch" else 1)
    run = rtbench.run(model="entry_models:tiny_cnn", runtimes=["torch", "onnxruntime"], sizes=[32, 48],
                      batches=[1, 2], device="cpu", policy=FAST, out=tmp_path, report=False)
    assert run.status == "complete" and all(c.status == "ok" for c in run.cells), [c.reason for c in run.cells]
    pids = {}
    for c in run.cells:
        pids.setdefault(c.cell.runtime, {}).setdefault(c.cell.size, set()).add(c.info["worker_pid"])
        assert len(c.samples_ms) >= FAST.rounds and c.info["worker_starts"] == 1
    torch_pids = [next(iter(p)) for p in pids["torch"].values()]
    assert all(len(p) == 1 for p in pids["torch"].values()) and len(set(torch_pids)) == 2, pids
    assert len(set.union(*pids["onnxruntime"].values())) == 1  # one worker for an unsplit group
    first = [c for c in run.cells if c.cell.runtime == "torch" and c.cell.batch == 1]
    assert all(c.info["worker_setup_s"] > 0 and "worker_start_s" in c.info for c in first)
    for c in first:  # where a worker's set-up went: its steps, which add up to no more than the whole
        parts = c.info["worker_setup_parts"]
        assert set(parts) == {"availability_s", "model_s", "runtime_s"} and all(v >= 0 for v in parts.values())
        assert 0 < sum(parts.values()) <= c.info["worker_setup_s"]


def test_a_shape_its_measuring_worker_compiled_is_not_compiled_ahead_by_the_next_run(tmp_path, monkeypatch):
    import rtbench
    from rtbench.precompile import Precompiler

    monkeypatch.setenv("RTBENCH_PRECOMPILE", "0")  # no pre-compile process: the measuring worker compiles
    run = rtbench.run(model="entry_models:tiny_cnn", runtimes=["torch-compile"], sizes=[32], batches=[1],
                      device="cpu", policy=FAST, out=tmp_path, report=False)
    (cell,) = run.cells
    assert cell.status == "ok" and cell.info["compile_cache"] == "miss" and "precompiled" not in cell.setup
    monkeypatch.setenv("RTBENCH_PRECOMPILE", "1")
    sweep = run.sweep
    later = Precompiler(sweep, tmp_path, 60.0, sweep.cells())
    try:
        assert not later.queue and not later.threads  # the index lists it: nothing to compile ahead
    finally:
        later.close()
    fresh = Precompiler(sweep, tmp_path / "elsewhere", 60.0, [])
    assert not fresh.seen and not fresh.threads


def test_pre_compiles_take_first_the_cells_their_measuring_workers_reach_last():
    from rtbench.precompile import ahead_order
    from rtbench.spec import Sweep

    sweep = Sweep(model="resnet18", runtimes=("torch-compile",), sizes=(224, 256), batches=(1, 4, 8), device="cuda:0")
    order = [(c.size, c.batch) for c in ahead_order(sweep.cells())]
    assert order[:2] == [(224, 8), (256, 8)] and order[-2:] == [(224, 1), (256, 1)], order
    assert sorted(order) == sorted((c.size, c.batch) for c in sweep.cells())  # every cell, once


def test_compiling_processes_share_the_spare_cores_for_inductors_compile_pools(tmp_path, monkeypatch):
    from rtbench import precompile
    from rtbench.precompile import Precompiler
    from rtbench.spec import Sweep

    sweep = Sweep(model="resnet18", runtimes=("torch-compile",), sizes=(224,), batches=(1,), device="cuda:0")
    monkeypatch.setattr(precompile.os, "cpu_count", lambda: 16)
    warm = Precompiler(sweep, tmp_path, 10, [], measuring=4)  # nothing to compile ahead: four measuring workers
    assert not warm.threads and warm.compile_threads == 3  # (16 - 2) // 4
    assert Precompiler(sweep, tmp_path, 10, []).compile_threads is None  # nobody to share with: inductor's choice
    monkeypatch.setattr(precompile, "processes_for", lambda n: 7)
    monkeypatch.setattr(Precompiler, "_serve", lambda self: None)  # no process is started here
    cold = Precompiler(sweep, tmp_path, 10, sweep.cells(), measuring=4)
    cold.close()
    assert cold.compile_threads == 1  # 7 pre-compiles and 4 measuring workers on 14 cores


def test_only_the_workers_of_a_compiling_runtime_are_given_a_share_of_compile_processes():
    from rtbench.engine import Engine

    e = Engine.__new__(Engine)  # its options only: no run
    e.groups, e.compile_threads = {("torch", "fp32", 0): None, ("torch-compile", "fp32", 0): None}, 3
    assert e.worker_options("torch-compile") == {"own_contexts": 3, "compile_threads": 3}
    assert e.worker_options("torch") == {"own_contexts": 3}
    e.compile_threads = None
    assert e.worker_options("torch-compile") == {"own_contexts": 3}
