"""A scripted stand-in for the ``pynvml`` module, for unit tests of the telemetry logic (no GPU needed)."""
from __future__ import annotations

from types import SimpleNamespace


class NotSupported(Exception):
    """Plays pynvml.NVMLError_NotSupported."""


class FakeNVML:
    """Each query returns the next value of its script (the last one repeats); ``None`` in a script raises."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    def __init__(self, **scripts):
        defaults = {"power_mw": [300_000], "sm_mhz": [1980], "mem_mhz": [2619], "temp_c": [40], "util": [100],
                    "mem_used": [10 * 2**30], "reasons": [0], "energy_mj": [1_000_000, 1_050_000],
                    "procs": [[]]}
        self.scripts = {k: list(scripts.get(k, v)) for k, v in defaults.items()}
        self.calls: dict[str, int] = {}

    def _next(self, key):
        seq = self.scripts[key]
        i = self.calls.get(key, 0)
        self.calls[key] = i + 1
        v = seq[min(i, len(seq) - 1)]
        if v is None:
            raise NotSupported(key)
        return v

    # the pynvml functions the code uses ---------------------------------------------------------
    def nvmlDeviceGetHandleByIndex(self, i):
        return f"handle-{i}"

    def nvmlDeviceGetHandleByUUID(self, uuid):
        raise NotSupported("uuid")

    def nvmlDeviceGetHandleByPciBusId(self, bus):
        raise NotSupported("pci")

    def nvmlDeviceGetPowerUsage(self, h):
        return self._next("power_mw")

    def nvmlDeviceGetClockInfo(self, h, kind):
        return self._next("sm_mhz" if kind == self.NVML_CLOCK_SM else "mem_mhz")

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self._next("temp_c")

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=self._next("util"), memory=0)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=self._next("mem_used"), total=80 * 2**30, free=0)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return self._next("reasons")

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        return self._next("energy_mj")

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in self._next("procs")]

    # system and device facts for the fingerprint --------------------------------------------------
    def nvmlSystemGetDriverVersion(self):
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self):
        return 12040

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetName(self, h):
        return b"NVIDIA H200"

    def nvmlDeviceGetUUID(self, h):
        return f"GPU-{h}"

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return 700_000

    def nvmlDeviceGetMaxClockInfo(self, h, kind):
        return 1980 if kind == self.NVML_CLOCK_SM else 3201

    def nvmlDeviceGetPersistenceMode(self, h):
        return 1
