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
