"""Lanes: where a run's workers run, and where its environment, harness cost and peaks are read.

A plain ``rtbench run`` has one lane, this host as it is (``Lane``). A zoo (rtbench.zoo) runs one model's run
at a time on each of several lanes, side by side: one GPU of this host each (``GpuLane``: its workers see only
that GPU through ``CUDA_VISIBLE_DEVICES``, set before CUDA initialises, and run on their own share of the CPU
cores), a share of this host's cores each (``CpuLane``), or one GPU (or one node's CPUs) of a Ray cluster each
(rtbench.ray_lanes). The run's process stays the store's only writer whatever the lane.
"""
from __future__ import annotations

import functools
import os
import threading

from rtbench.errors import UserError


class Lane:
    """This host as it is: workers forked from the local fork server, no pinning (a plain run)."""

    forks = True  # workers come from the local fork server (a Ray lane's do not)
    max_retries = 0  # a worker lost here crashed on its own: its cell fails, it is not tried again
    precompiles = True  # compile ahead in extra worker processes (rtbench.precompile); a zoo's lanes do not
    name = "local"

    def __init__(self) -> None:
        self.accelerator = "cpu"  # what measures, for grouping jobs and comparing hardware (a zoo sets it)

    def harness(self) -> dict:
        from rtbench.engine import harness_cost

        return harness_cost()

    def peaks(self, device: str, precisions) -> dict:
        from rtbench.hardware import peaks

        return peaks(self.physical(device), precisions)

    def fingerprint(self, device: str) -> dict:
        from rtbench.env import fingerprint

        return {**fingerprint(self.physical(device)), **self.describe()}

    def physical(self, device: str) -> str:
        """The device as this process names it (a GPU lane's workers see their GPU as cuda:0)."""
        return device

    def sweep_device(self, device: str) -> str:
        """The device as the lane's workers name it (a GPU lane's see only their GPU: cuda:0)."""
        return device

    def worker(self, sweep, runtime: str, precision: str, workdir, timeout: float, refs_dir=None,
               own_contexts: int | None = None, compile_threads: int | None = None):
        from rtbench.worker import Worker

        return Worker(sweep, runtime, precision, workdir, timeout, refs_dir, own_contexts=own_contexts,
                      compile_threads=compile_threads, **self.worker_options())

    def worker_options(self) -> dict:
        return {}

    def describe(self) -> dict:
        """What the run's record says of its lane (empty for a plain run)."""
        return {}

    def close(self) -> None:
        pass


# Lanes' threads share this process: its harness timing and peak matmuls (which switch TF32 on and off, a global
# setting) and the fingerprint (which reads it) run one lane at a time.
_MEASURING = threading.Lock()


class _Cached(Lane):
    """A zoo's lane measures its harness cost, peaks and fingerprint once, for all the runs it serves."""

    precompiles = False  # its neighbours' lanes use the other cores; it compiles in its measuring workers

    @functools.cache
    def _harness(self) -> dict:
        with _MEASURING:
            return super().harness()

    def harness(self) -> dict:
        return self._harness()

    @functools.cache
    def _peaks(self, device: str, precisions: tuple) -> dict:
        with _MEASURING:
            return super().peaks(device, precisions)

    def peaks(self, device: str, precisions) -> dict:
        return self._peaks(device, tuple(precisions))

    @functools.cache
    def _fingerprint(self, device: str) -> dict:
        with _MEASURING:
            return super().fingerprint(device)

    def fingerprint(self, device: str) -> dict:
        return self._fingerprint(device)


class GpuLane(_Cached):
    """One GPU of this host: its workers get ``CUDA_VISIBLE_DEVICES=<index>`` (so the sweep's ``cuda:0`` is it)
    and the CPU cores ``cpus``; peaks and fingerprint are read on it from this process."""

    def __init__(self, index: int, cpus: list[int], name: str, uuid: str | None):
        super().__init__()
        self.index, self.cpus, self.gpu_name, self.uuid = index, cpus, name, uuid
        self.accelerator = name
        self.name = f"gpu{index}"

    def physical(self, device: str) -> str:
        return f"cuda:{self.index}" if device.startswith("cuda") else device

    def sweep_device(self, device: str) -> str:
        return "cuda:0" if device.startswith("cuda") else device

    def worker_options(self) -> dict:
        return {"env": {"CUDA_VISIBLE_DEVICES": str(self.index)}, "cpus": self.cpus}

    def describe(self) -> dict:
        return {"lane": {"name": self.name, "executor": "local", "gpu_index": self.index, "gpu": self.gpu_name,
                         "gpu_uuid": self.uuid, "cpus": self.cpus}}


class CpuLane(_Cached):
    """A share of this host's CPU cores (``--cpu-lanes N`` on a CPU device)."""

    def __init__(self, index: int, cpus: list[int], cpu_name: str):
        super().__init__()
        self.index, self.cpus = index, cpus
        self.accelerator = f"cpu: {cpu_name}"
        self.name = f"cpu{index}"

    def worker_options(self) -> dict:
        return {"cpus": self.cpus}

    def describe(self) -> dict:
        return {"lane": {"name": self.name, "executor": "local", "cpus": self.cpus}}


def split_cpus(n: int) -> list[list[int]]:
    """This process's usable cores in ``n`` contiguous shares (neighbouring cores often share a cache)."""
    cpus = sorted(os.sched_getaffinity(0))
    if n > len(cpus):
        raise UserError(f"{n} lanes but only {len(cpus)} usable CPU cores: use at most {len(cpus)}")
    k = len(cpus) // n
    return [cpus[i * k:(i + 1) * k] if i < n - 1 else cpus[i * k:] for i in range(n)]


def parse_gpus(text: str | None) -> tuple[int, ...] | None:
    """``all`` or ``0,1`` -> GPU indices (None for ``all``); anything else is bad input naming the fix."""
    if text is None:
        return ()
    text = str(text).strip().lower()
    if text == "all":
        return None
    try:
        out = tuple(dict.fromkeys(int(x) for x in text.split(",") if x.strip()))
    except ValueError:
        out = ()
    if not out or min(out) < 0:
        raise UserError(f"--gpus {text!r}: give all or GPU indices, e.g. --gpus all or --gpus 0,1")
    return out


def local_lanes(device: str, gpus: tuple[int, ...] | None, cpu_lanes: int = 1) -> list[Lane]:
    """The lanes of this host: one per GPU asked for (``gpus`` None: every GPU), or ``cpu_lanes`` shares of the
    cores on a CPU device."""
    from rtbench.hardware import cpu_model

    if not device.startswith("cuda"):
        if gpus != ():
            raise UserError("--gpus needs a CUDA device (--device cuda or auto); on a CPU use --cpu-lanes N")
        if cpu_lanes < 1:
            raise UserError(f"--cpu-lanes {cpu_lanes}: give a whole number of at least 1")
        name = cpu_model()
        return [CpuLane(i, c, name) for i, c in enumerate(split_cpus(cpu_lanes))]
    import torch

    count = torch.cuda.device_count()
    indices = tuple(range(count)) if gpus is None else gpus or (torch.device(device).index or 0,)
    if bad := [i for i in indices if i >= count]:
        raise UserError(f"--gpus: no GPU {bad[0]} here (this machine has GPUs 0..{count - 1}): e.g. --gpus all")
    lanes = []
    for i, cpus in zip(indices, split_cpus(len(indices))):
        props = torch.cuda.get_device_properties(i)
        uuid = f"GPU-{props.uuid}" if getattr(props, "uuid", None) else None
        lanes.append(GpuLane(i, cpus, props.name, uuid))
    return lanes
