"""Model sources: torchvision, timm, ONNX files, Python entry points; fixed sizes; ONNX FLOPs; bad input."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from rtbench.errors import UserError
from rtbench.models import check_onnx_file, resolve
from rtbench.onnx_flops import count_flops

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _entry_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def export(module: torch.nn.Module, path: Path, size: int = 64, nhwc: bool = False, dynamic: bool = True) -> Path:
    """Export ``module`` to an ONNX file as a user would (input name 'image')."""
    x = torch.randn(1, size, size, 3) if nhwc else torch.randn(1, 3, size, size)
    axes = {"image": {0: "n", 1: "h", 2: "w"} if nhwc else {0: "n", 2: "h", 3: "w"}} if dynamic else None
    torch.onnx.export(module.eval(), (x,), str(path), input_names=["image"], output_names=["logits"],
                      dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


def test_sources_resolve_to_models_with_their_input_facts():
    tv = resolve("resnet18")
    assert (tv.source, tv.fixed_size, tv.channels) == ("torchvision", None, 3)
    assert resolve("torchvision:mobilenet_v3_small").source == "torchvision"
    tm = resolve("timm:convnext_atto")
    assert (tm.source, tm.name, tm.fixed_size) == ("timm", "convnext_atto", None)
    vit = resolve("timm:vit_tiny_patch16_224")
    assert vit.fixed_size == 224
    assert "takes only 224x224" in vit.check_size(64)
    assert vit.check_size(224) is None
    ep = resolve("entry_models:tiny_cnn")
    assert ep.source == "entry" and isinstance(ep.module, torch.nn.Module)
    assert ep.parity_reference == "PyTorch fp32"


def test_a_model_that_rejects_a_size_is_unsupported_there_with_the_reason():
    m = resolve("entry_models:fixed_48")
    assert m.check_size(48) is None
    why = m.check_size(64)
    assert why.startswith("entry_models:fixed_48 rejects 64x64 inputs") and "mat1 and mat2" in why


@pytest.mark.parametrize("spec, words", [
    ("timm:resnet_nope", "unknown timm model 'resnet_nope'"),
    ("no_such_module_xyz:build", "cannot import 'no_such_module_xyz'"),
    ("entry_models:missing_fn", "has no function 'missing_fn'"),
    ("weird:thing/with/slashes", "cannot read --model"),
    ("nonexistent/model.onnx", "does not exist"),
])
def test_bad_model_values_raise_one_line_user_errors(spec, words):
    with pytest.raises(UserError) as e:
        resolve(spec)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_an_entry_point_that_returns_no_module_says_so():
    with pytest.raises(UserError, match="not a torch.nn.Module"):
        resolve("entry_models:not_a_module").module


def test_check_onnx_file_rejects_empty_garbage_and_truncated_files(tmp_path):
    good = export(resolve("entry_models:tiny_cnn").module, tmp_path / "good.onnx")
    check_onnx_file(good)
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "text.onnx").write_text("this is not a model\n" * 20)
    (tmp_path / "cut.onnx").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for name, words in (("missing.onnx", "does not exist"), ("empty.onnx", "is empty"),
                        ("text.onnx", "not a valid ONNX model"), ("cut.onnx", "not a valid ONNX model")):
        with pytest.raises(UserError, match=words):
            check_onnx_file(tmp_path / name)


def test_onnx_file_model_reads_input_name_layout_and_fixed_size(tmp_path):
    nchw = resolve(str(export(resolve("entry_models:tiny_cnn").module, tmp_path / "a.onnx")))
    assert (nchw.source, nchw.has_module, nchw.meta["input"], nchw.meta["layout"]) == ("onnx", False, "image", "NCHW")
    assert nchw.fixed_size is None and "ONNX Runtime CPU" in nchw.parity_reference
    nhwc = resolve(str(export(resolve("entry_models:nhwc_cnn").module, tmp_path / "b.onnx", nhwc=True)))
    assert (nhwc.meta["layout"], nhwc.channels) == ("NHWC", 3)
    fixed = resolve(str(export(resolve("entry_models:fixed_48").module, tmp_path / "c.onnx", size=48, dynamic=False)))
    assert fixed.fixed_size == 48 and "takes only 48x48" in fixed.check_size(64)


@pytest.mark.parametrize("spec, size", [("entry_models:tiny_cnn", 64), ("torchvision:mobilenet_v3_small", 64),
                                        ("entry_models:tiny_vit", 64), ("timm:regnetx_002", 64)])
def test_onnx_graph_flops_match_torch_flop_counter(spec, size, tmp_path):
    m = resolve(spec)
    path = export(m.module, tmp_path / "m.onnx", size=size, dynamic=False)
    onnx_count = count_flops(path, {"image": [1, 3, size, size]})
    assert not onnx_count.unknown
    assert onnx_count.total == pytest.approx(m.flops_per_image(size), rel=0.03)
    if spec.endswith("tiny_vit"):
        assert onnx_count.by_op["MatMul"] > 0  # attention and MLP matmuls are counted, in torch and in ONNX
    file_model = resolve(str(path))
    assert file_model.flops_per_image(size) == onnx_count.total


def test_onnx_flops_scale_with_the_concrete_input_shape(tmp_path):
    path = export(resolve("entry_models:tiny_cnn").module, tmp_path / "m.onnx")
    small = count_flops(path, {"image": [1, 3, 32, 32]}).by_op
    big = count_flops(path, {"image": [2, 3, 64, 64]}).by_op
    assert big["Conv"] == 8 * small["Conv"]  # batch x2, pixels x4
    assert big["Gemm"] == 2 * small["Gemm"]  # the head sees pooled features: batch only


def _online() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(_online(), reason="the offline message needs a machine without internet")
def test_pretrained_timm_weights_offline_fail_with_one_line(cli):
    r = cli("run", "--model", "timm:resnet18", "--weights", "pretrained", "--runtimes", "torch", "--sizes", "32",
            "--batches", "1", "--device", "cpu", "--out", "out", timeout=120)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "could not fetch pretrained weights for timm:resnet18" in lines[0]
    assert "--weights random" in lines[0]


def test_list_models_includes_timm(cli):
    r = cli("list", "models")
    assert r.returncode == 0
    names = r.stdout.split()
    assert "resnet18" in names and "timm:convnext_atto" in names


def test_flops_of_a_fresh_model_do_not_count_its_construction():
    """The first use of a random-weight model builds it and calibrates its BatchNorm with a forward pass; the FLOPs
    count of one image must not include that pass (it did when the first use was the count itself)."""
    from rtbench.models import resolve

    fresh = resolve("resnet18").flops_per_image(64)
    warm = resolve("resnet18")
    warm.module  # built first
    assert fresh == warm.flops_per_image(64) == pytest.approx(3.64e9 * (64 / 224) ** 2, rel=0.05)


def test_flops_are_counted_from_shapes_on_the_meta_device_and_on_the_cpu_when_the_model_cannot_go_there():
    # torchvision documents ViT-B/16 at 17.564 G multiply-adds (`_ops`); counted on the CPU, its attention blocks ran
    # the fused fast path the flop counter does not know, and 12.6 of the 35.1 GFLOPs went missing
    from torchvision.models import ViT_B_16_Weights

    vit = resolve("vit_b_16")
    assert vit.flops_per_image(224) == pytest.approx(2 * ViT_B_16_Weights.IMAGENET1K_V1.meta["_ops"] * 1e9, rel=0.01)
    keeps = resolve("entry_models:keeps_a_tensor")  # a plain tensor attribute: fails on meta, counted on the CPU
    with pytest.raises(RuntimeError):
        keeps._count_flops(64, "meta")
    plain = resolve("entry_models:tiny_cnn")
    assert keeps.flops_per_image(64) >= plain.flops_per_image(64) > 0
