"""Bad input, through the CLI and the Python API: one line that names the fix, exit code 2 (UserError),
no traceback, and nothing written to the store (the SQLite file stays absent or byte-for-byte unchanged)."""
from __future__ import annotations

import hashlib
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

import rtbench
from rtbench.spec import TimingPolicy
from rtbench.store import FILENAME, Store
from policies import FAST

BASE = {"model": "resnet18", "runtimes": "null", "sizes": "32", "batches": "1", "device": "cpu"}


def onnx_bytes() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((64, 64), dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [w])
    return helper.make_model(g).SerializeToString()


def store_with_run(out: Path, run_id: str = "20250101-000000-abcd") -> None:
    s = Store(out)
    sweep = rtbench.api.make_sweep(**BASE, policy=FAST)
    s.create_run(run_id, sweep.to_dict(), {}, {}, {})
    s.set_status(run_id, "interrupted")
    s.close()


def newer_store(out: Path) -> None:
    out.mkdir(parents=True)
    con = sqlite3.connect(out / FILENAME)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    con.commit()
    con.close()


def garbage_store(out: Path) -> None:
    out.mkdir(parents=True)
    (out / FILENAME).write_bytes(b"this is not a database\n" * 100)


def write(name: str, data: bytes | None):
    def setup(out: Path, tmp: Path) -> None:
        if data is None:
            (tmp / name).mkdir()
        else:
            (tmp / name).write_bytes(data)
    return setup


ONNX = onnx_bytes()

# id: (CLI args or None, API call or None, setup(out, tmp) or None, words the message must contain)
# CLI args replace the same option of the base command; "{tmp}" is the test's folder.
CASES = {
    "unknown-runtime": (["--runtimes", "tensorrtx"], {"runtimes": "tensorrtx"}, None, "unknown runtime 'tensorrtx'"),
    "unknown-model": (["--model", "resnet1800"], {"model": "resnet1800"}, None, "unknown model 'resnet1800'"),
    "unknown-torchvision-model": (["--model", "torchvision:nope"], {"model": "torchvision:nope"}, None, "unknown model"),
    "entry-point-not-importable": (["--model", "hub:thing"], {"model": "hub:thing"}, None, "cannot import 'hub'"),
    # a function that is not a model builder fails at once, not as a sweep of failed cells in worker processes
    "entry-point-fails": (["--model", "os:system"], {"model": "os:system"}, None,
                          "--model os:system: calling it failed (TypeError: "),
    "entry-point-not-a-module": (["--model", "os:getcwd"], {"model": "os:getcwd"}, None,
                                 "os:getcwd returned str, not a torch.nn.Module"),
    "unknown-model-source": (["--model", "s3://bucket/x"], {"model": "s3://bucket/x"}, None, "cannot read --model"),
    "empty-model": (["--model", " "], {"model": " "}, None, "--model is empty"),
    "unknown-precision": (["--precision", "fp8"], {"precision": "fp8"}, None, "unknown precision 'fp8'"),
    "empty-precision": (["--precision", ","], {"precision": ","}, None, "--precision is empty"),
    "unknown-device": (["--device", "tpu"], {"device": "tpu"}, None, "unknown device 'tpu'"),
    "missing-gpu": (["--device", "cuda:99"], {"device": "cuda:99"}, None, "cuda:99"),
    "size-not-a-number": (["--sizes", "abc"], {"sizes": "abc"}, None, "'abc' is not a whole number"),
    "size-partly-bad": (["--sizes", "224,x"], {"sizes": "224,x"}, None, "'x' is not a whole number"),
    "size-too-small": (["--sizes", "16"], {"sizes": "16"}, None, "too small"),
    "batch-zero": (["--batches", "0"], {"batches": "0"}, None, "batch size 0 is invalid"),
    "batch-negative": (["--batches=-4"], {"batches": [-4]}, None, "batch size -4 is invalid"),
    "batch-fraction": (["--batches", "1.5"], {"batches": "1.5"}, None, "'1.5' is not a whole number"),
    "unknown-boundary": (["--boundary", "both"], {"boundary": "both"}, None, "unknown boundary"),
    "unknown-weights": (["--weights", "imagenet"], {"weights": "imagenet"}, None, "unknown weights"),
    "onnx-missing": (["--model", "{tmp}/missing.onnx"], {"model": "{tmp}/missing.onnx"}, None, "does not exist"),
    "onnx-empty": (["--model", "{tmp}/e.onnx"], {"model": "{tmp}/e.onnx"}, write("e.onnx", b""), "is empty"),
    "onnx-not-onnx": (["--model", "{tmp}/t.onnx"], {"model": "{tmp}/t.onnx"}, write("t.onnx", b"not a model\n"),
                      "not a valid ONNX model"),
    "onnx-truncated": (["--model", "{tmp}/c.onnx"], {"model": "{tmp}/c.onnx"},
                       write("c.onnx", ONNX[: len(ONNX) // 2]), "not a valid ONNX model"),
    "onnx-folder": (["--model", "{tmp}/d.onnx"], {"model": "{tmp}/d.onnx"}, write("d.onnx", None), "is a folder"),
    "out-unwritable": (["--out", "{tmp}/file.txt/out"], {"out": "{tmp}/file.txt/out"}, write("file.txt", b"x"),
                       "pass a writable --out folder"),
    "store-not-sqlite": ([], {}, lambda out, tmp: garbage_store(out), "is not a usable rtbench store"),
    "store-newer-schema": ([], {}, lambda out, tmp: newer_store(out), "written by a newer rtbench"),
    "resume-unknown-run": (["--resume", "nope"], {"resume": "nope"}, lambda out, tmp: store_with_run(out),
                           "unknown run id 'nope'"),
    "resume-run-of-another-store": (["--resume", "20250101-000000-abcd"], {"resume": "20250101-000000-abcd"},
                                    lambda out, tmp: (store_with_run(tmp / "other"), store_with_run(out, "x")),
                                    "--out folder the run was written to"),
    "resume-without-store": (["--resume", "20250101-000000-abcd"], {"resume": "20250101-000000-abcd"}, None,
                             "no rtbench store"),
    "resume-store-not-sqlite": (["--resume", "r1"], {"resume": "r1"}, lambda out, tmp: garbage_store(out),
                                "is not a usable rtbench store"),
    "resume-with-grid-options": (["--resume", "r1", "--sizes", "64"], None, lambda out, tmp: store_with_run(out, "r1"),
                                 "--sizes would be ignored"),
    "cell-timeout-zero": (["--cell-timeout", "0"], {"cell_timeout": 0}, None, "cell timeout 0"),
    "cell-timeout-negative": (["--cell-timeout=-3"], {"cell_timeout": -3}, None, "positive number of seconds"),
    "cell-timeout-nan": (["--cell-timeout", "nan"], {"cell_timeout": float("nan")}, None, "positive number of seconds"),
    "cell-timeout-text": (["--cell-timeout", "soon"], {"cell_timeout": "soon"}, None, "cell-timeout"),
    "budget-negative": (["--budget=-1"], {"budget": -1.0}, None, "e.g. --budget 300"),
    "budget-nan": (["--budget", "nan"], {"budget": float("nan")}, None, "run budget nan is invalid"),
    "budget-text": (["--budget", "soon"], {"budget": "soon"}, None, "--budget"),
    "rounds-one": (["--rounds", "1"], {"policy": {"rounds": 1}}, None, "rounds must be at least 2"),
    "ci-target-too-big": (["--ci-target", "2"], {"policy": {"ci_target": 2.0}}, None, "ci_target is a fraction"),
    "plugin-missing": ([], {}, "plugin", "cannot import plugin module 'no_such_rtbench_plugin'"),
}


def snapshot(out: Path) -> str | None:
    p = out / FILENAME
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None


def prepare(case: str, tmp_path: Path, monkeypatch):
    out = tmp_path / "out"
    setup = CASES[case][2]
    if setup == "plugin":
        monkeypatch.setenv("RTBENCH_PLUGINS", "no_such_rtbench_plugin")
    elif setup:
        setup(out, tmp_path)
    return out, snapshot(out)


def cli_args(case: str, tmp_path: Path, out: Path) -> list[str]:
    opts = {"--out": str(out), "--budget": "30", **{f"--{k}": v for k, v in BASE.items()}}
    extra = [a.replace("{tmp}", str(tmp_path)) for a in CASES[case][0]]
    flags = []
    for a in extra:  # "--opt=value" and "--opt value" both override the base option
        if a.startswith("--"):
            name = a.split("=", 1)[0]
            opts.pop(name, None)
            if name == "--resume":
                opts = {"--out": opts["--out"]}
        flags.append(a)
    return ["run", *[x for kv in opts.items() for x in kv], *flags]


def run_cli(args: list[str], monkeypatch, capfd) -> tuple[int, str]:
    """``rtbench ARGS`` through the command line's own entry point, in this process (a new interpreter per case
    cost 3-6 s of imports, and test_cli_integration runs bad input in real subprocesses): its exit code and
    everything written to file descriptor 2."""
    from rtbench import cli

    monkeypatch.setattr(sys, "argv", ["rtbench", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    return e.value.code, capfd.readouterr().err


@pytest.mark.parametrize("case", list(CASES))
def test_cli_bad_input(case, tmp_path, monkeypatch, capfd):
    out, before = prepare(case, tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    code, stderr = run_cli(cli_args(case, tmp_path, out), monkeypatch, capfd)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith(("rtbench: error:", "Error:")), stderr
    assert CASES[case][3] in lines[0], lines[0]
    assert snapshot(out) == before


@pytest.mark.parametrize("case", [c for c, v in CASES.items() if v[1] is not None])
def test_api_bad_input(case, tmp_path, monkeypatch):
    out, before = prepare(case, tmp_path, monkeypatch)
    kwargs = {**BASE, "out": out, "policy": FAST, "report": False}
    for k, v in CASES[case][1].items():
        if k == "policy":
            kwargs["policy"] = lambda v=v: TimingPolicy(**{**FAST.to_dict(), **v})
        else:
            kwargs[k] = v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v
    with pytest.raises(rtbench.UserError) as e:
        policy = kwargs.pop("policy")
        rtbench.run(**kwargs, policy=policy() if callable(policy) else policy)
    assert CASES[case][3].lstrip("-") in str(e.value) or CASES[case][3] in str(e.value), str(e.value)
    assert "\n" not in str(e.value)
    assert snapshot(out) == before


def test_report_and_list_bad_input(cli, tmp_path):
    store_with_run(tmp_path / "out")
    before = snapshot(tmp_path / "out")
    for args, words in ((["report", "nope", "--out", str(tmp_path / "out")], "unknown run id 'nope'"),
                        (["list", "gadgets"], "cannot list 'gadgets'")):
        r = cli(*args)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
    with pytest.raises(rtbench.UserError, match="unknown run id"):
        rtbench.load("nope", tmp_path / "out")
    assert snapshot(tmp_path / "out") == before


def test_check_onnx_file_accepts_a_valid_model(tmp_path):
    from rtbench.models import check_onnx_file

    (tmp_path / "ok.onnx").write_bytes(ONNX)
    assert check_onnx_file(tmp_path / "ok.onnx") == tmp_path / "ok.onnx"
