"""NVML telemetry: what the GPU did while a cell was timed (power, energy, clocks, throttling, others on it).

``Sampler`` is a context manager; each ``with`` is one sampled window, and one sampler adds up the windows
of a cell's blocks. It reads the total-energy counter when a window starts and stops and, in a
background thread every ``interval_s``, power, SM and memory clocks, temperature, utilisation, memory
used and the clock-event (throttle) reasons. ``summary(calls, batch)`` gives a JSON-ready dict (stored
as the cell's ``telemetry``) with means/min/max, ``energy_j`` and joules per image. Without a GPU or
without NVML every entry point answers ``{"available": False, "reason": ...}`` instead of raising.

The NVML module is injectable (``nvml=``): tests pass a scripted fake; by default ``pynvml``
(nvidia-ml-py, the ``gpu`` extra) is imported and initialised once per process.
"""
from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

DEFAULT_INTERVAL_S = 0.2  # 25 ms moved launch-bound H200 timings by +12.9% (benchmarks/telemetry_bench.md)

# NVML clocks-event (formerly "throttle") reason bits: nvmlClocksEventReason* in nvml.h.
REASON_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}
# Reasons that mean the clock was held down by power, heat or the hardware during the cell.
THROTTLING = frozenset({"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
                        "hw_power_brake_slowdown", "board_limit", "reliability"})

METRICS = ("power_w", "sm_clock_mhz", "mem_clock_mhz", "temp_c", "gpu_util_pct", "mem_used_mib")

_NVML: dict[str, Any] = {}  # per-process cache: {"module": pynvml or None, "reason": str}


def decode_reasons(mask: int) -> list[str]:
    """Names of the bits set in an NVML clocks-event reasons mask (unknown bits as hex)."""
    names = [name for bit, name in REASON_BITS.items() if mask & bit]
    rest = mask & ~sum(REASON_BITS)
    if rest:
        names.append(f"unknown_0x{rest:x}")
    return names


def load_nvml(nvml=None) -> tuple[Any, str]:
    """(initialised NVML module, "") or (None, why it is not available). Initialised once per process."""
    if nvml is not None:
        return nvml, ""
    if not _NVML:
        try:
            import pynvml

            pynvml.nvmlInit()
            _NVML.update(module=pynvml, reason="")
        except ImportError:
            _NVML.update(module=None, reason="not available: nvidia-ml-py is not installed (pip install 'rtbench[gpu]')")
        except Exception as e:  # noqa: BLE001 - pynvml.NVMLError and driver oddities: degrade, never raise
            _NVML.update(module=None, reason=f"not available: NVML could not start ({error_text(e)})")
    return _NVML["module"], _NVML["reason"]


def error_text(e: BaseException) -> str:
    return str(e).strip() or type(e).__name__


def device_handle(nvml, device: str):
    """The NVML handle of a torch device ``cuda:N`` (matched by UUID, then PCI bus id, then index).

    torch's device numbers follow CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER; NVML's do not.
    """
    idx = int(device.split(":", 1)[1]) if ":" in device else 0
    try:
        import torch

        props = torch.cuda.get_device_properties(idx)
        keys = [("uuid", f"GPU-{props.uuid}"),
                ("pci", f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0")]
    except Exception:  # noqa: BLE001 - no torch CUDA: fall back to the index
        keys = []
    for kind, key in keys:
        try:
            if kind == "uuid":
                return nvml.nvmlDeviceGetHandleByUUID(key)
            return nvml.nvmlDeviceGetHandleByPciBusId(key)
        except Exception:  # noqa: BLE001
            continue
    return nvml.nvmlDeviceGetHandleByIndex(idx)


def query(fn, *args):
    """Call one NVML query; None when the GPU or driver does not support it."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends
        return None


def _reasons_fn(nvml):
    return getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None)


RUN_PID_ENV = "RTBENCH_RUN_PID"


def compute_processes(nvml, handle) -> dict | None:
    """Processes with a compute context on the GPU other than this one and its parent; None if unknown.

    Returns ``{"others": [{"pid", "used_mib"}], "pids_comparable": bool}``. In a container NVML may list
    host pids: when none is ours although we hold a context, the pids cannot be compared and every
    listed process is kept (``others_count`` then allows for rtbench's own).
    """
    procs = query(nvml.nvmlDeviceGetComputeRunningProcesses, handle)
    if procs is None:
        return None
    # this process, its parent, the run's own process (a worker's parent is the fork server), and the run's other
    # workers (forked by the same fork server): every runtime group's worker holds a context while rounds run
    ours = {os.getpid(), os.getppid(), int(os.environ.get(RUN_PID_ENV, "0") or 0)}
    others = []
    for p in procs:
        if p.pid in ours or parent_of(p.pid) == os.getppid():
            continue
        used = getattr(p, "usedGpuMemory", None)
        others.append({"pid": int(p.pid), "used_mib": round(used / 2**20, 1) if isinstance(used, int) else None})
    comparable = not (others and len(others) == len(procs) and _holds_context())
    return {"others": others, "pids_comparable": comparable}


OWN_CONTEXTS_ENV = "RTBENCH_OWN_CONTEXTS"  # set in workers: the run's process and one worker per runtime group
OWN_CONTEXTS = 2  # without it: the runner and one worker


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from /proc (None when it cannot be read, e.g. a pid of another namespace)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def others_count(procs: dict | None) -> int:
    """How many of the listed processes are surely not rtbench's own."""
    if not procs:
        return 0
    n = len(procs.get("others") or [])
    own = int(os.environ.get(OWN_CONTEXTS_ENV, "0") or 0) or OWN_CONTEXTS
    return n if procs.get("pids_comparable", True) else max(0, n - own)


def _holds_context() -> bool:
    try:
        import torch

        return torch.cuda.is_initialized()
    except Exception:  # noqa: BLE001
        return False


def _stats(values: list[float]) -> dict | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals)}


class Sampler:
    """Samples one GPU through NVML in a background thread while the with-block runs.

    >>> s = Sampler("cuda:0")
    >>> for each block: with s: block = timing.block(...)
    >>> s.summary(calls=calls_in_all_blocks, batch=cell.batch)
    """

    def __init__(self, device: str = "cuda:0", interval_s: float = DEFAULT_INTERVAL_S, nvml=None,
                 clock=time.perf_counter):
        self.device, self.interval_s, self._clock = device, float(interval_s), clock
        self.nvml, self.reason = load_nvml(nvml)
        self.handle = None
        if self.nvml is not None:
            try:
                self.handle = device_handle(self.nvml, device)
            except Exception as e:  # noqa: BLE001
                self.nvml, self.reason = None, f"not available: no NVML handle for {device} ({error_text(e)})"
        self.rows: list[tuple] = []  # (t, *METRICS, reasons mask)
        self.windows: list[tuple[int, int]] = []  # (first, end) row index of each sampled window
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._e0 = None
        self._duration = 0.0
        self._energy: float | None = 0.0  # counter energy over every window; None once a window lacked it
        self._procs: dict | None = None
        self._reasons = _reasons_fn(self.nvml) if self.nvml is not None else None

    @property
    def available(self) -> bool:
        return self.nvml is not None

    # lifecycle: one window per start/stop; a cell's blocks are windows of one sampler ---------------
    def start(self) -> "Sampler":
        if not self.available:
            return self
        self._merge_procs(compute_processes(self.nvml, self.handle))
        self._first = len(self.rows)
        self._e0 = query(self.nvml.nvmlDeviceGetTotalEnergyConsumption, self.handle)
        self._t0 = self._clock()
        self.sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="rtbench-nvml", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> "Sampler":
        if not self.available or self._thread is None:
            return self
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.sample()
        self._duration += self._clock() - self._t0
        e1 = query(self.nvml.nvmlDeviceGetTotalEnergyConsumption, self.handle)
        if self._energy is not None and self._e0 is not None and e1 is not None and e1 >= self._e0:
            self._energy += (e1 - self._e0) / 1e3
        else:
            self._energy = None
        self.windows.append((self._first, len(self.rows)))
        self._merge_procs(compute_processes(self.nvml, self.handle))
        return self

    def _merge_procs(self, seen: dict | None) -> None:
        """Other processes seen on the GPU at the start or end of any window."""
        if seen is None:
            return
        if self._procs is None:
            self._procs = seen
            return
        known = {p["pid"] for p in self._procs["others"]}
        self._procs = {"others": self._procs["others"] + [p for p in seen["others"] if p["pid"] not in known],
                       "pids_comparable": self._procs["pids_comparable"] and seen["pids_comparable"]}

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Take one sample now (the thread calls this every ``interval_s``)."""
        n, h = self.nvml, self.handle
        power = query(n.nvmlDeviceGetPowerUsage, h)
        util = query(n.nvmlDeviceGetUtilizationRates, h)
        mem = query(n.nvmlDeviceGetMemoryInfo, h)
        mask = query(self._reasons, h) if self._reasons else None
        self.rows.append((
            self._clock(),
            power / 1e3 if power is not None else None,
            query(n.nvmlDeviceGetClockInfo, h, getattr(n, "NVML_CLOCK_SM", 1)),
            query(n.nvmlDeviceGetClockInfo, h, getattr(n, "NVML_CLOCK_MEM", 2)),
            query(n.nvmlDeviceGetTemperature, h, getattr(n, "NVML_TEMPERATURE_GPU", 0)),
            util.gpu if util is not None else None,
            mem.used / 2**20 if mem is not None else None,
            int(mask) if mask is not None else None,
        ))

    # results ----------------------------------------------------------------------------------
    def power_energy_j(self) -> float | None:
        """Energy from the power samples (trapezoids inside each sampled window)."""
        total, pairs = 0.0, 0
        for first, end in self.windows:
            pts = [(r[0], r[1]) for r in self.rows[first:end] if r[1] is not None]
            total += sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(pts, pts[1:]))
            pairs += max(0, len(pts) - 1)
        return total if pairs else None

    def energy_j(self) -> tuple[float | None, str | None]:
        """Energy over the sampled windows: the NVML counter (mJ) when it works, else power integrated."""
        if self._energy is not None and self.windows:
            return self._energy, "counter"
        e = self.power_energy_j()
        return (e, "power_samples") if e is not None else (None, None)

    def summary(self, calls: int | None = None, batch: int | None = None) -> dict:
        """JSON-ready summary of every sampled window.

        ``calls`` (inferences run while sampling) and ``batch`` give joules per image.
        """
        if not self.available:
            return {"available": False, "reason": self.reason}
        rows = self.rows
        out: dict = {"available": True, "source": "nvml", "device": self.device, "interval_s": self.interval_s,
                     "samples": len(rows), "windows": len(self.windows), "duration_s": self._duration}
        for i, name in enumerate(METRICS, start=1):
            st = _stats([r[i] for r in rows])
            if st is not None:
                out[name] = st
        counts: dict[str, int] = {}
        for r in rows:
            for name in decode_reasons(r[-1]) if r[-1] is not None else ():
                counts[name] = counts.get(name, 0) + 1
        out["reasons"] = sorted(counts)
        out["reason_samples"] = counts
        out["throttled"] = sorted(THROTTLING & set(counts))
        out["gpu_processes"] = self._procs
        energy, source = self.energy_j()
        out["energy_j"], out["energy_source"] = energy, source
        out["energy_j_from_power"] = self.power_energy_j()
        if calls:
            out["calls"] = int(calls)
            out["images"] = int(calls) * int(batch or 1)
            if energy is not None and energy > 0:
                out["joules_per_image"] = energy / out["images"]
                out["images_per_joule"] = out["images"] / energy
        return out


def for_device(device: str, **kw) -> Sampler | None:
    """A Sampler for a CUDA device, None for the CPU (there is nothing to sample)."""
    return Sampler(device, **kw) if device.startswith("cuda") else None


def mean_of(tele: dict, metric: str) -> float:
    """The mean of one sampled metric from a stored telemetry dict (NaN when absent)."""
    v = (tele or {}).get(metric)
    return float(v["mean"]) if isinstance(v, dict) and v.get("mean") is not None else math.nan
