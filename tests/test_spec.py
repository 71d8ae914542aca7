"""Spec validation: list parsing, Sweep and TimingPolicy errors that name the fix, and the dict round-trip."""
from __future__ import annotations

import json

import pytest

from rtbench.errors import UserError
from rtbench.spec import Cell, Sweep, TimingPolicy, parse_list


def test_parse_list_parses_and_deduplicates_in_order():
    assert parse_list("224, 256,,224", "sizes", int) == (224, 256)
    assert parse_list([8, 1, 8], "batches", int) == (8, 1)
    assert parse_list("torch,onnxruntime,torch", "runtimes") == ("torch", "onnxruntime")


@pytest.mark.parametrize("text, what, kind, fix", [
    ("", "sizes", int, "--sizes 224,256"),
    (" , ", "batches", int, "--batches 1,4,8"),
    ("1,x", "batches", int, "'x' is not a whole number; use e.g. --batches 1,4,8"),
    ("2.5", "sizes", int, "'2.5' is not a whole number; use e.g. --sizes 224,256"),
    ("", "precision", str, "--precision fp32,fp16"),
])
def test_parse_list_errors_name_the_fix(text, what, kind, fix):
    with pytest.raises(UserError) as e:
        parse_list(text, what, kind)
    assert fix in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs, fix", [
    ({"precisions": ("fp8",)}, "use one of fp32, tf32, fp16, bf16"),
    ({"boundary": "e2e"}, "use one of compute, end-to-end"),
    ({"weights": "imagenet"}, "use random or pretrained"),
    ({"sizes": (224, 16)}, "use sizes of at least 32 px"),
    ({"batches": (0,)}, "use whole numbers of at least 1"),
    ({"batches": (-4, 1)}, "use whole numbers of at least 1"),
    ({"runtimes": ()}, "give at least one runtime"),
    ({"sizes": ()}, "give at least one runtime, precision, size and batch"),
])
def test_sweep_validation_names_the_fix(kwargs, fix):
    with pytest.raises(UserError, match=fix):
        Sweep(**{"runtimes": ("torch",), **kwargs})


@pytest.mark.parametrize("kwargs, fix", [
    ({"block_min_calls": 0}, "block_min_calls must be at least 1"),
    ({"rounds": 1}, "rounds must be at least 2"),
    ({"rounds": 10, "max_rounds": 5}, "at most max_rounds"),
    ({"warmup_window": 0}, "warmup_window must be at least 1"),
    ({"block_s": -1.0, "max_block_s": 1.0}, "block_s must be >= 0"),
    ({"block_s": 0.5, "max_block_s": 0.1}, "max_block_s .* must be >= block_s"),
    ({"budget_s": 0}, "--budget 300"),
    ({"ci_target": 0.0}, "e.g. 0.01 for 1%"),
    ({"ci_target": 1.5}, "e.g. 0.01 for 1%"),
])
def test_timing_policy_validation(kwargs, fix):
    with pytest.raises(UserError, match=fix):
        TimingPolicy(**kwargs)


def test_cells_order_runtime_precision_size_then_ascending_batch():
    s = Sweep(runtimes=("torch", "onnxruntime"), precisions=("fp32", "fp16"), sizes=(64, 32), batches=(4, 1))
    keys = [(c.runtime, c.precision, c.size, c.batch) for c in s.cells()]
    assert len(keys) == 16
    assert keys[:4] == [("torch", "fp32", 64, 1), ("torch", "fp32", 64, 4), ("torch", "fp32", 32, 1),
                        ("torch", "fp32", 32, 4)]
    assert keys[4][:2] == ("torch", "fp16") and keys[8][:2] == ("onnxruntime", "fp32")
    c = s.cells()[0]
    assert c == Cell("resnet18", "torch", "fp32", 64, 1, "cpu", "compute")
    assert c.key == ("torch", "fp32", 64, 1, "compute")
    assert c.label() == "torch fp32 64px b1"


def test_sweep_dict_round_trip_through_json():
    s = Sweep(model="resnet50", runtimes=("torch", "onnxruntime"), precisions=("fp16",), sizes=(32, 64),
              batches=(1, 2), device="cuda:0", boundary="end-to-end", weights="random",
              policy=TimingPolicy(rounds=7, block_s=0.4, ci_target=0.02),
              options=(("compile_mode", "max-autotune"), ("cudnn_conv_algo_search", "HEURISTIC")))
    d = s.to_dict()
    assert d["options"] == {"compile_mode": "max-autotune", "cudnn_conv_algo_search": "HEURISTIC"}
    assert d["policy"]["rounds"] == 7
    back = Sweep.from_dict(json.loads(json.dumps(d)))  # the store keeps it as JSON
    assert back == s
    assert back.option("compile_mode") == "max-autotune"
    assert back.option("missing", "x") == "x"


def test_a_stored_policy_of_an_older_rtbench_loads():
    # schema-1 runs stored the per-cell stop rule's fields: they are dropped, the rest kept
    d = Sweep(runtimes=("torch",)).to_dict()
    d["policy"] = {"warmup_min_calls": 3, "min_calls": 8, "min_time_s": 0.3, "max_time_s": 3.0, "max_calls": 200000,
                   "ci_target": 0.02}
    back = Sweep.from_dict(d)
    assert back.policy.warmup_min_calls == 3 and back.policy.ci_target == 0.02


def test_from_dict_validates():
    d = Sweep(runtimes=("torch",)).to_dict()
    d["batches"] = [0]
    with pytest.raises(UserError, match="at least 1"):
        Sweep.from_dict(d)
