"""The status of a cell: one enum for the engine, the store and the report."""
from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """What became of a cell. A ``str`` enum: it compares equal to, and is stored as, its value."""

    OK = "ok"  # measured, outputs match the reference
    MISMATCH = "mismatch"  # measured, outputs beyond the parity tolerance: shown, flagged, never recommended
    MEASURING = "measuring"  # prepared, rounds still to come (a run that stopped here resumes it)
    FAILED = "failed"
    OOM = "oom"
    TIMEOUT = "timeout"
    UNSUPPORTED = "unsupported"
    UNAVAILABLE = "unavailable"
    SKIPPED = "skipped"

    @property
    def measured(self) -> bool:
        """Whether the cell has a timing to show (ok or mismatch)."""
        return self in (Status.OK, Status.MISMATCH)

    @property
    def final(self) -> bool:
        """Whether the cell is finished (a resumed run measures only cells that are not)."""
        return self is not Status.MEASURING

    def __str__(self) -> str:
        return self.value


MEASURED = tuple(s.value for s in Status if s.measured)  # for pandas ``isin``
