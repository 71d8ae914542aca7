"""rtbench: what is the fastest way to run this vision model on this machine, by how much, and can I trust it."""
__version__ = "0.1.0"

from rtbench.api import compare, load, run  # noqa: E402
from rtbench.errors import UserError  # noqa: E402
from rtbench.loadtest import load_test  # noqa: E402
from rtbench.results import Run  # noqa: E402
from rtbench.tune_run import TuneResult, tune  # noqa: E402

__all__ = ["run", "load", "compare", "tune", "load_test", "Run", "TuneResult", "UserError", "__version__"]
