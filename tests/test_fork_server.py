"""The workers' fork server: torch.compile's compiler preloaded, CUDA's availability asked through NVML."""
import os
import sys

from rtbench import child


def what_a_worker_has() -> tuple:
    import torch

    return (os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK"), "torch._inductor.compile_fx" in sys.modules,
            torch.cuda.is_initialized())


def test_workers_start_with_inductor_loaded_and_cuda_untouched():
    # a server that asked the CUDA runtime whether a GPU is there (inductor's import does) cannot fork a worker that
    # uses the GPU; through NVML it can (benchmarks/results/h200-2026-12-02d/fork-preload-probe.md)
    before = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")
    with child.worker_context().Pool(1) as pool:
        nvml_check, inductor_loaded, cuda_initialised = pool.apply(what_a_worker_has)
    assert nvml_check == "1"
    assert inductor_loaded  # preloaded by the server, not imported by the call: the function imports only torch
    assert not cuda_initialised
    assert os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == before  # the caller's environment is left alone
