"""ufm: global minimizers of unconstrained features models, checked against theory."""

from . import geometry as geometry, metrics as metrics
from ._solution import RESULTS as RESULTS, Solution as Solution
from .check import Report as Report, check as check
from .models import REGISTRY as REGISTRY, make as make
from .solve import solve as solve
from .theory import Theory as Theory

__version__ = "0.1.0"


def theory(problem) -> Theory:
    """The closed-form prediction for `problem` (see `ufm.Theory`)."""
    return problem.theory()
