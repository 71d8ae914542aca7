"""``null``: a runtime that does nothing, so the timing loop measures its own cost per call."""
from __future__ import annotations

import numpy as np

from rtbench.runtimes.base import Runtime, Session, register


@register
class NullRuntime(Runtime):
    name = "null"
    default = False
    needs_torch_module = False
    needs_model = False

    def prepare(self, cell, x) -> Session:
        return Session(call=lambda: None, fetch=lambda: np.zeros(0, dtype=np.float32), info={"harness": True})
