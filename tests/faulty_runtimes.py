"""Runtimes that exist only in the tests, to inject faults into real worker processes.

Loaded in every rtbench process with ``RTBENCH_PLUGINS=faulty_runtimes`` (tests/ on the path). A call
sleeps 1 ms (so a cell keeps few samples and its statistics are quick) except at ``FAULT_BATCH``
(``fault-oom``: at every batch >= FAULT_BATCH), where it misbehaves. The ``*-setup`` ones misbehave while
the runtime is being set up; ``sleep-1ms`` never does.
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np

from rtbench.runtimes.base import Runtime, Session, register

FAULT_BATCH = 2
LATE_S = 1.0  # fault-late-segv: how old a session is before it crashes
SLOW_SETUP_S = 4.0  # slow-setup: seconds its set-up takes


class _Faulty(Runtime):
    default = False
    needs_torch_module = False
    needs_model = False  # no model, no parity: these runtimes only misbehave on cue

    def faulty(self, cell) -> bool:
        return cell.batch == FAULT_BATCH

    def fault(self) -> None:  # pragma: no cover - each subclass defines its fault
        raise AssertionError(f"{self.name} defines no fault")

    def prepare(self, cell, x) -> Session:
        bad = self.faulty(cell)

        def call() -> None:
            if bad:
                self.fault()
            time.sleep(0.001)

        return Session(call=call, fetch=lambda: np.zeros(0, dtype=np.float32), info={"fault": self.name})


@register
class Sleeps(_Faulty):
    name = "sleep-1ms"

    def faulty(self, cell) -> bool:
        return False


@register
class Raises(_Faulty):
    name = "fault-raise"

    def fault(self) -> None:
        raise RuntimeError("injected failure in the runtime")


@register
class Segfaults(_Faulty):
    name = "fault-segv"

    def fault(self) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)


@register
class LateSegfaults(_Faulty):
    """Crashes its worker (SIGSEGV) at batch 2 once its session is LATE_S old: during the rounds, not before."""

    name = "fault-late-segv"

    def prepare(self, cell, x) -> Session:
        born, bad = time.monotonic(), self.faulty(cell)

        def call() -> None:
            if bad and time.monotonic() - born > LATE_S:
                os.kill(os.getpid(), signal.SIGSEGV)
            time.sleep(0.001)

        return Session(call=call, fetch=lambda: np.zeros(0, dtype=np.float32), info={"fault": self.name})


@register
class Aborts(_Faulty):
    name = "fault-abort"

    def fault(self) -> None:
        os.abort()


@register
class Exits(_Faulty):
    name = "fault-exit"

    def fault(self) -> None:
        print("fatal error: injected exit 3", flush=True)
        os._exit(3)


@register
class Hangs(_Faulty):
    name = "fault-hang"

    def fault(self) -> None:
        time.sleep(3600)


@register
class CudaOutOfMemory(_Faulty):
    name = "fault-oom"

    def faulty(self, cell) -> bool:
        return cell.batch >= FAULT_BATCH

    def fault(self) -> None:
        import torch

        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")


@register
class HostOutOfMemory(_Faulty):
    name = "fault-memoryerror"

    def faulty(self, cell) -> bool:
        return cell.batch >= FAULT_BATCH

    def fault(self) -> None:
        raise MemoryError()


@register
class SetupSegfaults(_Faulty):
    name = "fault-segv-setup"

    def __init__(self, *args):
        super().__init__(*args)
        os.kill(os.getpid(), signal.SIGSEGV)


@register
class SlowSetup(_Faulty):
    """Never misbehaves, but its set-up takes SLOW_SETUP_S (a compile per shape, say)."""

    name = "slow-setup"

    def __init__(self, *args):
        super().__init__(*args)
        time.sleep(SLOW_SETUP_S)

    def faulty(self, cell) -> bool:
        return False


@register
class SetupHangs(_Faulty):
    name = "fault-hang-setup"

    def __init__(self, *args):
        super().__init__(*args)
        time.sleep(3600)


@register
class SetupRaises(_Faulty):
    name = "fault-raise-setup"

    def __init__(self, *args):
        super().__init__(*args)
        raise RuntimeError("injected failure in runtime setup")
