"""OpenVINO, the TensorRT runtimes (unavailable here), and ONNX files / timm models through real CPU sweeps."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
import torch

import rtbench
from rtbench.models import resolve
from rtbench.runtimes import base
from rtbench.runtimes.base import Unsupported
from rtbench.runtimes.common import make_input
from rtbench.runtimes.openvino import cpu_facts, hint_for
from rtbench.runtimes.tensorrt import NOT_INSTALLED, ort_trt_options, tensorrt_installed, torch_trt_settings
from rtbench.spec import Cell, Sweep
from policies import FAST

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _entry_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def sweep(tmp_path, model, runtimes, sizes=(32,), batches=(1,), precision="fp32", boundary="compute"):
    return rtbench.run(model=model, runtimes=runtimes, sizes=sizes, batches=batches, precision=precision,
                       device="cpu", boundary=boundary, out=tmp_path / "out", policy=FAST)


def by_runtime(run) -> dict:
    out: dict = {}
    for c in run.cells:
        out.setdefault(c.cell.runtime, []).append(c)
    return out


def export_file(spec: str, path: Path, size: int = 48, nhwc: bool = False) -> Path:
    x = torch.randn(1, size, size, 3) if nhwc else torch.randn(1, 3, size, size)
    axes = {0: "n", 1: "h", 2: "w"} if nhwc else {0: "n", 2: "h", 3: "w"}
    torch.onnx.export(resolve(spec).module, (x,), str(path), input_names=["pixels"], output_names=["out"],
                      dynamic_axes={"pixels": axes}, opset_version=17, dynamo=False)
    return path


def file_identity(path: Path) -> tuple:
    """Inode, modification time (ns), size and content hash: any rewrite or replacement changes one of them."""
    import hashlib

    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size, hashlib.sha256(path.read_bytes()).hexdigest()


def test_openvino_matches_onnxruntime_and_records_its_settings(tmp_path):
    run = sweep(tmp_path, "entry_models:tiny_cnn", "onnxruntime,openvino", sizes=(32, 48), batches=(1, 2))
    rts = by_runtime(run)
    assert {c.status for c in run.cells} == {"ok"}
    facts = cpu_facts()
    for c in rts["openvino"]:
        info = c.info
        assert info["threads"] == torch.get_num_threads()
        assert info["performance_hint"] == "LATENCY" and info["inference_precision_ran"] == "f32"
        assert info["cpu_default_inference_precision"] == facts["cpu_default_inference_precision"]
        assert info["fp32_forced"] == (facts["cpu_default_inference_precision"] != "f32")
        assert c.parity["max_rel"] < 1e-5
    # the same seeded input through both ONNX runtimes gives the same outputs
    m = resolve("entry_models:tiny_cnn")
    sw = Sweep(model="entry_models:tiny_cnn", runtimes=("openvino", "onnxruntime"), device="cpu")
    x = make_input(2, 40)
    outs = []
    for name in ("openvino", "onnxruntime"):
        rt = base.get(name)(m, sw, "fp32", tmp_path)
        s = rt.session(Cell(sw.model, name, "fp32", 40, 2, "cpu"), x)
        s.call()
        outs.append(s.fetch())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-5)


def test_openvino_end_to_end_boundary_and_lower_precisions(tmp_path):
    run = sweep(tmp_path, "entry_models:tiny_cnn", "openvino", precision="fp32,bf16,tf32", boundary="end-to-end")
    cells = {c.cell.precision: c for c in run.cells}
    assert cells["fp32"].status == "ok" and cells["fp32"].info["io"] == "numpy in, numpy out"
    assert cells["tf32"].status == "unsupported" and "not tf32" in cells["tf32"].reason
    if "BF16" in cpu_facts()["cpu_capabilities"]:
        assert cells["bf16"].status in ("ok", "mismatch")
        assert cells["bf16"].info["inference_precision_ran"] == "bf16"
    else:
        assert cells["bf16"].status == "unsupported" and "no bf16" in cells["bf16"].reason


def test_openvino_precision_hint_mapping():
    assert hint_for("fp32", []) == "f32"
    assert hint_for("bf16", ["FP32", "BF16"]) == "bf16"
    assert hint_for("fp16", ["FP32", "FP16"]) == "f16"
    with pytest.raises(Unsupported, match="no bf16"):
        hint_for("bf16", ["FP32", "INT8"])


@pytest.mark.parametrize("nhwc", [False, True])
def test_onnx_file_runs_in_onnx_runtimes_and_is_unsupported_in_torch(tmp_path, nhwc):
    path = export_file("entry_models:nhwc_cnn" if nhwc else "entry_models:tiny_cnn", tmp_path / "user.onnx", nhwc=nhwc)
    before = file_identity(path)
    run = sweep(tmp_path, str(path), "torch,onnxruntime,openvino", sizes=(32, 40))
    rts = by_runtime(run)
    assert all(c.status == "unsupported" for c in rts["torch"])
    assert rts["torch"][0].reason == "torch needs a PyTorch module; the model is an ONNX file"
    flops = resolve(str(path)).flops_per_image(32)
    for name in ("onnxruntime", "openvino"):
        for c in rts[name]:
            assert c.status == "ok", c.reason
            assert c.parity["reference"].startswith("ONNX Runtime CPU fp32")
            assert c.parity["max_rel"] < 1e-5
        assert rts[name][0].stats["flops_per_image"] == flops > 0
    assert rts["openvino"][0].info["parity_reference"].startswith("ONNX Runtime CPU fp32")
    assert "outputs checked against ONNX Runtime CPU fp32" in (run.report_dir / "report.md").read_text()
    assert run.to_pandas()["parity_reference"].dropna().str.startswith("ONNX Runtime CPU").all()
    assert file_identity(path) == before  # the user's file is read, never rewritten or replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "user.onnx"]  # nothing written beside it
    if nhwc:
        assert any(p.name.endswith("-nchw.onnx") for p in (tmp_path / "out" / "cache").iterdir())


def test_fixed_size_models_are_unsupported_at_other_sizes(tmp_path):
    run = sweep(tmp_path, "timm:vit_tiny_patch16_224", "torch", sizes=(32, 64))
    assert [c.status for c in run.cells] == ["unsupported", "unsupported"]
    assert "takes only 224x224" in run.cells[0].reason
    run = sweep(tmp_path, "entry_models:fixed_48", "torch,onnxruntime", sizes=(48, 64))
    got = {(c.cell.runtime, c.cell.size): c for c in run.cells}
    assert got[("torch", 48)].status == "ok"
    assert got[("torch", 64)].status == "unsupported" and "rejects 64x64" in got[("torch", 64)].reason
    assert got[("onnxruntime", 64)].status == "unsupported"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["resnet18", "timm:mobilenetv3_small_050", "timm:efficientnet_b0",
                                   "timm:convnext_atto", "timm:regnetx_002"])
def test_model_families_run_with_parity_in_every_cpu_runtime(tmp_path, model):
    run = sweep(tmp_path, model, "torch,onnxruntime,openvino", sizes=(64,))
    for c in run.cells:
        assert c.status == "ok", (c.cell.runtime, c.reason)
        assert c.parity["ok"] and c.stats["flops_per_image"] > 0


def test_tensorrt_option_mapping(tmp_path):
    s = torch_trt_settings("fp32", str(tmp_path))
    assert s["ir"] == "dynamo" and s["enabled_precisions"] == {torch.float32} and s["disable_tf32"] is True
    assert torch_trt_settings("tf32", "c")["disable_tf32"] is False
    assert torch_trt_settings("fp16", "c")["enabled_precisions"] == {torch.float16}
    assert torch_trt_settings("bf16", "c")["enabled_precisions"] == {torch.bfloat16}
    assert torch_trt_settings("fp16", "c")["engine_cache_dir"] == "c"
    o = ort_trt_options("fp16", 1, "/x/cache/trt", 1234)
    assert o["trt_fp16_enable"] == "1" and o["trt_engine_cache_enable"] == "1"
    assert o["trt_engine_cache_path"] == "/x/cache/trt" and o["device_id"] == "1" and o["user_compute_stream"] == "1234"
    assert ort_trt_options("tf32", 0, "c", 0)["trt_fp16_enable"] == "0"
    m = resolve("entry_models:tiny_cnn")
    with pytest.raises(Unsupported, match="no switch to forbid TF32"):
        base.get("onnxruntime-tensorrt")(m, Sweep(runtimes=("onnxruntime-tensorrt",)), "fp32", tmp_path)


@pytest.mark.skipif(tensorrt_installed(), reason="checks the path taken when TensorRT is missing")
def test_tensorrt_runtimes_are_unavailable_and_the_sweep_goes_on(tmp_path, cli):
    for name in ("torch-tensorrt", "onnxruntime-tensorrt"):
        assert base.get(name).availability("cpu") == (False, NOT_INSTALLED)
        assert base.get(name).availability("cuda:0") == (False, NOT_INSTALLED)
    r = cli("list", "runtimes", "--device", "cpu")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    head = next([p.strip() for p in ln.split("┃")[1:-1]] for ln in lines if "┃ runtime" in ln)
    rows = {}
    for ln in lines:
        parts = [p.strip() for p in ln.split("│")[1:-1]]
        if len(parts) == len(head):
            rows[parts[0]] = dict(zip(head, parts))
    for name in ("torch-tensorrt", "onnxruntime-tensorrt"):
        assert (rows[name]["available"], rows[name]["why not"]) == ("no", NOT_INSTALLED)
    # the runtimes that are installed are listed as they are: version and available
    openvino = rows["openvino"]
    assert (openvino["version"], openvino["available"]) == (importlib.metadata.version("openvino"), "yes")
    run = sweep(tmp_path, "entry_models:tiny_cnn", "torch-tensorrt,torch,onnxruntime-tensorrt")
    rts = by_runtime(run)
    assert rts["torch"][0].status == "ok"
    for name in ("torch-tensorrt", "onnxruntime-tensorrt"):
        assert (rts[name][0].status, rts[name][0].reason) == ("unavailable", NOT_INSTALLED)
    report = (run.report_dir / "report.md").read_text()
    assert "TensorRT is not installed" in report


def test_entry_point_through_the_cli(cli, tmp_path):
    env = {"PYTHONPATH": f"{Path(rtbench.__file__).parents[1]}:{TESTS}"}
    ok = cli("run", "--model", "entry_models:tiny_cnn", "--runtimes", "torch,openvino", "--sizes", "32",
             "--batches", "1", "--device", "cpu", "--budget", "8", "--rounds", "2", "--out", "out", env=env)
    assert ok.returncode == 0, ok.stderr
    bad = cli("run", "--model", "entry_models:nope", "--runtimes", "torch", "--sizes", "32", "--batches", "1",
              "--device", "cpu", "--out", "out", env=env)
    assert bad.returncode == 2
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "has no function 'nope'" in lines[0]
