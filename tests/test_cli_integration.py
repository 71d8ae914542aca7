"""The real CLI on real CPU runtimes (torch, ONNX Runtime) with ResNet18 at tiny sizes, into a real store."""
from __future__ import annotations

import json
import re

import pytest

from rtbench.store import Store

pytestmark = pytest.mark.slow


def test_run_report_and_list(cli, tmp_path):
    r = cli("run", "--runtimes", "torch,onnxruntime", "--sizes", "32,64", "--batches", "1,2", "--budget", "10",
            "--rounds", "3", "--device", "cpu", "--out", "res")
    assert r.returncode == 0, r.stderr
    m = re.search(r"run id (\d{8}-\d{6}-[0-9a-f]{4})", r.stderr)
    assert m, r.stderr
    run_id = m.group(1)
    assert "Traceback" not in r.stderr
    assert f"res/{run_id}/report.md" in r.stdout.replace("\n", "")
    assert re.search(r"run time [\d.]+ s: set-up [\d.]+ s, measurement [\d.]+ s", r.stdout), r.stdout
    # piped, the table is printed whole: every row with its estimate, interval and paired speedup interval
    rows = [ln for ln in r.stdout.splitlines() if re.match(r"│ (torch|onnxruntime) ", ln)]
    cut = [ln for ln in r.stdout.splitlines() if ln.startswith(("│", "┃")) and "…" in ln]
    assert len(rows) == 8 and not cut, r.stdout
    assert all(re.search(r"│ +[\d.]+ (±[\d.]+|\([^)]+–[^)]+\))\*? +│.*│ +[\d.]+ \([\d.]+–[\d.]+\) +│", ln)
               for ln in rows), rows

    # the store: 8 ok cells, each with its samples
    store = Store(tmp_path / "res", create=False)
    stored = store.run(run_id)
    assert stored["status"] == "complete"
    p = stored["sweep"]["policy"]
    assert (p["budget_s"], p["rounds"], stored["sweep"]["device"]) == (10.0, 3, "cpu")
    assert stored["schedule"]["budget_s"] == 10.0
    cells = store.cells(run_id)
    store.close()
    assert sorted((c["runtime"], c["size"], c["batch"]) for c in cells) == sorted(
        (rt, s, b) for rt in ("torch", "onnxruntime") for s in (32, 64) for b in (1, 2))
    assert [c["status"] for c in cells] == ["ok"] * 8
    for c in cells:
        assert len(c["samples_ms"]) == c["stats"]["n"] == len(c["rounds"])
        assert len(c["host_ms"]) == len(c["samples_ms"])
        assert c["stats"]["rounds"] == len(set(c["rounds"])) >= 3  # --rounds 3: the minimum
        assert c["stats"]["ci_low_ms"] <= c["stats"]["ms"] <= c["stats"]["ci_high_ms"]
        assert c["stats"]["timed_s"] > 0

    # report.md: the seed table with both runtimes and one row per size and batch
    report = tmp_path / "res" / run_id / "report.md"
    text = report.read_text(encoding="utf-8")
    assert "| Size | Batch | torch ms | onnxruntime ms | torch FPS | onnxruntime FPS | onnxruntime ↑ |" in text
    for row in ("| 32x32 | 1 |", "| 32x32 | 2 |", "| 64x64 | 1 |", "| 64x64 | 2 |"):
        assert text.count(row) == 1
    assert "Cells: 8 ok" in text

    # re-rendered from the store alone, identically
    report.unlink()
    r = cli("report", run_id, "--out", "res")
    assert r.returncode == 0, r.stderr
    assert report.read_text(encoding="utf-8") == text

    r = cli("list", "runs", "--out", "res")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if run_id in x)  # the whole id, on one line
    assert "complete" in line and "resnet18" in line and " 8 " in line

    # an unknown run id in an existing store: one line naming the fix
    for args in (("report", "20000101-000000-beef", "--out", "res"),
                 ("run", "--resume", "20000101-000000-beef", "--out", "res")):
        r = cli(*args)
        assert r.returncode == 2
        assert r.stderr.strip().splitlines() == [r.stderr.strip()]
        assert "unknown run id '20000101-000000-beef'" in r.stderr and "rtbench list runs --out res" in r.stderr


def test_list_runtimes(cli):
    r = cli("list", "runtimes", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head = next([p.strip() for p in line.split("┃")[1:-1]] for line in lines if "┃ runtime" in line)
    rows = {}
    for line in lines:
        parts = [p.strip() for p in line.split("│")[1:-1]]
        if len(parts) == len(head) and parts[0]:
            rows[parts[0]] = dict(zip(head, parts))
    assert rows["torch"]["available"] == "yes" and rows["onnxruntime"]["available"] == "yes"
    assert rows["torch-cudagraph"]["available"] == "no" and rows["onnxruntime-cudagraph"]["available"] == "no"
    assert "cuda" in rows["torch-cudagraph"]["why not"]
    assert rows["torch"]["default"] == "yes" and rows["torch-compile"]["default"] == "no"  # CUDA only


def test_env_prints_json(cli):
    import torch

    r = cli("env", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    env = json.loads(r.stdout)
    assert env["torch"] == torch.__version__
    assert env["device"] == "cpu" and env["cpu_cores"] >= 1


@pytest.mark.parametrize("args, fix", [
    (("--batches", "0"), "batch size 0 is invalid: use whole numbers of at least 1"),
    (("--sizes", "16"), "use sizes of at least 32 px"),
    (("--batches", "x"), "'x' is not a whole number; use e.g. --batches 1,4,8"),
    (("--runtimes", "tensorflow"), "unknown runtime 'tensorflow': use one of"),
    (("--model", "nosuchnet"), "unknown model 'nosuchnet'"),
    (("--precision", "fp8"), "unknown precision 'fp8': use one of fp32, tf32, fp16, bf16"),
    (("--device", "tpu"), "unknown device 'tpu': use auto, cpu, cuda or cuda:N"),
])
def test_bad_input_is_one_line_exit_2(cli, tmp_path, args, fix):
    base = {"--device": "cpu", "--runtimes": "torch", "--sizes": "32", "--batches": "1"}
    base.update(dict(zip(args[::2], args[1::2])))
    r = cli("run", "--out", "bad", *[x for kv in base.items() for x in kv])
    assert r.returncode == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("rtbench: error: ") and fix in err
    assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "bad").exists()  # nothing is written before the sweep is valid
