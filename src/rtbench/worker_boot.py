"""Imported only by the fork server that starts rtbench's worker processes (never by the parent).

It preloads torch, torchvision, torch.compile's compiler and rtbench once, so each worker forked from the
server starts in milliseconds. Workers measure cells and need nothing from the user's main script, so they do not
re-run it (which multiprocessing would otherwise do): ``rtbench.run()`` then works from any script,
with or without an ``if __name__ == "__main__":`` guard.
"""
import contextlib
import os
from multiprocessing import spawn

# The server must not hold its starter's stdout and stderr: a caller that reads them to the end (a pipe, `rtbench
# run ... | tee`, subprocess.run(capture_output=True)) would wait for the server's imports, seconds after a run
# stopped on bad input. Workers write to log files of their own (rtbench.worker.serve).
_null = os.open(os.devnull, os.O_WRONLY)
os.dup2(_null, 1)
os.dup2(_null, 2)
os.close(_null)

# torch.compile's compiler too: in a worker forked after it, the first compile took 1.4 s instead of 5.7 s on the H200
# (benchmarks/results/h200-2026-12-02d/fork-preload-probe.md). Its import asks whether CUDA is available; through the
# CUDA runtime (cuInit) that poisons the server, and every worker forked from it failed with "Cannot re-initialize CUDA
# in forked subprocess"; through NVML, as asked here, it does not (torch caches no device count before CUDA starts).
os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"

import rtbench.worker  # noqa: E402,F401  (the preload)

with contextlib.suppress(Exception):  # a torch without inductor's compiler: its torch.compile cells say why themselves
    import torch._inductor.compile_fx  # noqa: E402,F401

_prepare = spawn.prepare


def _prepare_without_main(data: dict) -> None:
    _prepare({k: v for k, v in data.items() if k not in ("init_main_from_path", "init_main_from_name")})


spawn.prepare = _prepare_without_main
