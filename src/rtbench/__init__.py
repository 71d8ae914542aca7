"""rtbench: what is the fastest way to run this vision model on this machine, by how much, and can I trust it."""
__version__ = "0.1.0"

from rtbench.api import compare, load, run  # noqa: E402
from rtbench.errors import UserError  # noqa: E402
from rtbench.loadtest import load_test  # noqa: E402
from rtbench.results import Run  # noqa: E402

__all__ = ["run", "load", "compare", "tune", "load_test", "Run", "TuneResult", "UserError", "__version__"]


def __getattr__(name: str):
    """``tune`` and ``TuneResult`` on first use: the search imports the engine and torch, which ``import rtbench``
    (and the command line's start) should not pay for."""
    if name in ("tune", "TuneResult"):
        from rtbench import tune_run

        return getattr(tune_run, name)
    raise AttributeError(f"module 'rtbench' has no attribute {name!r}")
