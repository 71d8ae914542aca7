"""Output parity: the error metric, its tolerances, the negative controls, random weights whose outputs
depend on the input, and runtimes that claim fp32 while computing in a lower precision."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import rtbench
from rtbench import parity
from rtbench.models import Model, resolve
from rtbench.runtimes.common import make_input, onnx_export
from tests.conftest import gpu
from policies import FAST


@pytest.fixture(scope="module")
def resnet18():
    return resolve("resnet18")


def references(model, x) -> tuple[np.ndarray, np.ndarray]:
    """The reference for ``x`` and for a different seeded input of the same shape."""
    other = torch.randn(x.shape, generator=torch.Generator().manual_seed(99))
    return parity.reference(model, x, "cpu"), parity.reference(model, other, "cpu")


# the metric and its tolerances ---------------------------------------------------------------------
@pytest.mark.parametrize("precision", list(parity.TOLERANCE))
def test_another_inputs_outputs_fail_at_every_precision(resnet18, precision):
    ref, other = references(resnet18, make_input(2, 224))
    res = parity.check(other, ref, precision)
    assert res["ok"] is False and res["verdict"] == "mismatch", res
    assert res["max_rel"] > 2 * parity.TOLERANCE[precision]


@pytest.mark.parametrize("precision", list(parity.TOLERANCE))
def test_a_permuted_batch_fails_at_every_precision(resnet18, precision):
    ref = parity.reference(resnet18, make_input(4, 224), "cpu")
    res = parity.check(np.roll(ref, 1, axis=0), ref, precision)
    assert res["ok"] is False and res["verdict"] == "mismatch", res


def test_fp32_tolerance_rejects_an_fp16_round_trip_that_fp16_accepts(resnet18):
    x = make_input(2, 224)
    ref = parity.reference(resnet18, x, "cpu")
    control_ref = parity.reference(resnet18, parity.control_input(x), "cpu")
    rounded = ref.astype(np.float16).astype(np.float32)
    strict = parity.check(rounded, ref, "fp32", control_ref=control_ref)
    assert strict["ok"] is False and "fp32" in strict["reason"] and strict["verdict"] == "mismatch"
    assert parity.check(rounded, ref, "fp16", control_ref=control_ref)["verdict"] == "ok"


def test_the_error_is_per_sample_in_units_of_the_references_spread():
    ref = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 100.0, 200.0, 300.0]], dtype=np.float32)
    out = ref.copy()
    out[0, 1] += 0.1  # 0.1 / std([0, 1, 2, 3]) in the first sample; the second sample's scale does not hide it
    assert parity.error(out, ref) == pytest.approx(0.1 / np.std([0.0, 1.0, 2.0, 3.0]), rel=1e-5)
    assert parity.error(ref + 1000.0, ref + 1000.0) == 0.0


def test_a_right_output_passes_with_both_controls_recorded(resnet18):
    x = make_input(4, 64)
    ref = parity.reference(resnet18, x, "cpu")
    control_ref = parity.reference(resnet18, parity.control_input(x), "cpu")
    res = parity.check(ref * (1 + 1e-7), ref, "fp32", "PyTorch fp32", control_ref)
    assert res["verdict"] == "ok" and res["ok"] is True and "reason" not in res
    assert set(res["control"]) == {"other_input", "permuted_batch"}
    assert all(c["max_rel"] > parity.TOLERANCE["fp32"] for c in res["control"].values())
    assert {"max_abs", "max_rel", "top1_agree", "tolerance", "reference", "metric"} <= set(res)


def test_top1_shape_and_nan():
    ref = np.array([[0.0, 1.0, 0.5], [2.0, 0.0, 0.0]], dtype=np.float32)
    swapped = np.array([[1.0, 0.0, 0.5], [2.0, 0.0, 0.0]], dtype=np.float32)
    assert parity.check(swapped, ref, "bf16")["top1_agree"] == 0.5
    bad = ref.copy()
    bad[0, 0] = np.nan
    assert parity.check(bad, ref, "fp16")["ok"] is False
    assert "shape" in parity.check(np.zeros((2, 4), np.float32), ref, "fp32")["reason"]


# negative controls: a check that cannot discriminate says so -----------------------------------------
class _Constant(torch.nn.Module):
    """Outputs that do not depend on the input: any runtime, right or wrong, matches them."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.linspace(-1, 1, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1) + 0 * x.mean()


@pytest.mark.parametrize("batch", [1, 3])
def test_outputs_that_ignore_the_input_are_inconclusive_not_ok(batch):
    model = types.SimpleNamespace(module=_Constant().eval())
    x = make_input(batch, 32)
    ref = parity.reference(model, x, "cpu")
    control_ref = parity.reference(model, parity.control_input(x), "cpu")
    res = parity.check(ref.copy(), ref, "fp32", control_ref=control_ref)
    assert res["ok"] is False and res["verdict"] == "inconclusive"
    assert "cannot tell a wrong output" in res["reason"]
    assert res["control"]["other_input"]["max_rel"] == 0.0


def test_a_reference_without_spread_is_inconclusive():
    ref = np.ones((2, 5), dtype=np.float32)
    res = parity.check(ref.copy(), ref, "bf16")
    assert res["ok"] is False and res["verdict"] == "inconclusive" and "no spread" in res["reason"]


def test_the_control_input_is_seeded_and_shaped_like_the_input():
    x = make_input(2, 32)
    c = parity.control_input(x)
    assert c.shape == x.shape and c.dtype == x.dtype and not torch.equal(c, x)
    assert torch.equal(c, parity.control_input(x))


# random weights whose outputs depend on the input ----------------------------------------------------
def test_random_weight_resnet18_predicts_different_classes_for_different_inputs(resnet18):
    with torch.inference_mode():
        classes = resnet18.module(make_input(8, 224)).argmax(dim=1)
    assert len(set(classes.tolist())) >= 2, classes


def test_random_weights_are_the_same_in_every_process():
    """Whatever each process's share of the cores (a zoo's lanes set torch's threads): the model is built on one."""
    code = ("import sys, torch; sys.path.insert(0, 'src'); from rtbench.models import resolve; "
            "torch.set_num_threads(1 if torch.get_num_threads() > 1 else 2); "
            "m = resolve('resnet18').module; print(sum(float(t.double().sum()) for t in m.state_dict().values() "
            "if t.is_floating_point()))")
    threads = torch.get_num_threads()
    here = sum(float(t.double().sum()) for t in resolve("resnet18").module.state_dict().values()
               if t.is_floating_point())
    assert torch.get_num_threads() == threads  # set back after the build
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=str(Path(__file__).resolve().parents[1])).stdout
    assert float(there) == here


def _tiny_bn_net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(1))


@pytest.mark.parametrize("weights, calibrated", [("random", True), ("pretrained", False), ("own", False)])
def test_only_random_weights_get_batchnorm_statistics(weights, calibrated):
    bn = Model(name="tiny", source="torchvision", build=_tiny_bn_net, weights=weights).module[1]
    assert not bn.training
    assert (not torch.all(bn.running_mean == 0)) is calibrated
    assert bn.momentum == 0.1


def test_random_and_pretrained_weights_do_not_share_a_cached_export(tmp_path):
    paths = {w: onnx_export(Model(name="tiny", source="torchvision", build=_tiny_bn_net, weights=w), tmp_path)[0]
             for w in ("random", "pretrained")}
    assert paths["random"] != paths["pretrained"]


# runtimes that claim fp32 and run a lower precision, through the real engine -------------------------
def _statuses(tmp_path, monkeypatch, runtimes: str, device: str, size: int) -> dict:
    monkeypatch.setenv("RTBENCH_PLUGINS", "downcast_runtimes")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    run = rtbench.run(model="resnet18", runtimes=runtimes, sizes=[size], batches=[2], device=device,
                      out=tmp_path, policy=FAST, report=False)
    return {c.cell.runtime: (c.status, c.reason, c.parity) for c in run.cells}


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
def test_downcasts_claiming_fp32_are_mismatch_and_real_fp32_runtimes_pass_on_the_cpu(tmp_path, monkeypatch):
    st = _statuses(tmp_path, monkeypatch, "torch,onnxruntime,openvino,torch-fp16-as-fp32,torch-bf16-as-fp32",
                   "cpu", 64)
    for rt in ("torch", "onnxruntime", "openvino"):
        assert st[rt][0] == "ok" and st[rt][2]["verdict"] == "ok", st[rt]
        assert set(st[rt][2]["control"]) == {"other_input", "permuted_batch"}  # both controls ran, and failed
        assert st[rt][2]["max_rel"] <= parity.TOLERANCE["fp32"]
    for rt in ("torch-fp16-as-fp32", "torch-bf16-as-fp32"):
        assert st[rt][0] == "mismatch", st[rt]
        assert st[rt][2]["verdict"] == "mismatch" and "fp32" in st[rt][1]


@gpu
def test_downcasts_claiming_fp32_are_mismatch_and_cuda_graphs_pass_strict_fp32_on_the_gpu(tmp_path, monkeypatch):
    st = _statuses(tmp_path, monkeypatch, "torch,onnxruntime,torch-cudagraph,onnxruntime-cudagraph,"
                   "torch-fp16-as-fp32,torch-bf16-as-fp32,torch-tf32-as-fp32,onnxruntime-tf32-as-fp32", "cuda", 224)
    for rt in ("torch", "onnxruntime", "torch-cudagraph", "onnxruntime-cudagraph"):
        assert st[rt][0] == "ok" and st[rt][2]["verdict"] == "ok", st[rt]
    for rt in ("torch-fp16-as-fp32", "torch-bf16-as-fp32", "torch-tf32-as-fp32", "onnxruntime-tf32-as-fp32"):
        assert st[rt][0] == "mismatch" and st[rt][2]["verdict"] == "mismatch", st[rt]


def test_the_references_are_computed_once_per_run_and_shared_by_its_workers(tmp_path, monkeypatch):
    """The first runtime group to check a shape stores the references; the next reads them (same arrays)."""
    from rtbench.spec import Sweep
    from rtbench.worker import GroupMeasurer

    calls = []
    real = parity.reference
    monkeypatch.setattr(parity, "reference", lambda *a: calls.append(1) or real(*a))
    sweep = Sweep(model="entry_models:tiny_cnn", runtimes=("torch", "onnxruntime"), sizes=(32,), batches=(2,),
                  device="cpu", policy=FAST)
    got = {}
    for rt in ("torch", "onnxruntime"):
        m = GroupMeasurer(sweep, rt, "fp32", tmp_path, refs_dir=tmp_path / "refs")
        assert m.setup() is None
        (cell,) = [c for c in sweep.cells() if c.runtime == rt]
        out = m.prepare(cell)
        m.close()
        assert out.parts["parity"]["verdict"] == "ok", out.parts["parity"]
        got[rt] = m.refs[(32, 2)]
    assert len(calls) == 2  # the reference and the control, once, by the first group
    for a, b in zip(got["torch"], got["onnxruntime"]):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in (tmp_path / "refs").iterdir()] == ["ref-32-2.npz"]
