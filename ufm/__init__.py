"""ufm: global minimizers of unconstrained features models, checked against theory."""

from . import _startup  # noqa: F401  (first: see its docstring)
from . import geometry as geometry
from . import metrics as metrics
from ._solution import RESULTS as RESULTS
from ._solution import Solution as Solution
from ._theory import Theory as Theory
from .check import Report as Report
from .check import check as check
from .errors import InputError as InputError
from .errors import PrecisionWarning as PrecisionWarning
from .registry import REGISTRY as REGISTRY
from .registry import make as make
from .registry import register as register
from .solve import solve as solve
from .sweeps import open_result as open_result
from .sweeps import sweep as sweep

__version__ = "0.1.0"


def theory(problem) -> Theory:
    """The closed-form prediction for `problem` (see `ufm.Theory`)."""
    return problem.theory()
