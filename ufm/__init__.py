"""ufm: global minimizers of unconstrained features models, checked against theory.

The public API (everything else is reachable from these):

    ufm.make(name, **hyper)      build a problem of a registered model
    ufm.REGISTRY                 model name -> problem class
    ufm.register(name, cls)      add a model (see docs/contract.md); entry-point group
                                 "ufm.models" for installed packages
    ufm.solve(problem, ...)      the global minimizer, numerically: a ufm.Solution
    ufm.theory(problem)          the closed-form prediction: a ufm.Theory
    ufm.check(problem, sol)      theory against numerics: a ufm.Report (verdict, gaps)
    ufm.landscape(problem, ...)  census of the stationary points many restarts reach:
                                 minima, saddles and their Hessian indices
    ufm.sweep(model, ...)        a hyperparameter grid as one compiled computation
    ufm.open_result(path)        a stored sweep as an xarray Dataset
    ufm.metrics                  neural-collapse metrics (NC1-NC4) of any features
    ufm.geometry                 exact constructors: simplex ETF, orthogonal frames
    ufm.plot                     phase diagrams of stored sweeps (imports matplotlib)
    ufm.verify                   the claims catalog that `ufm verify` runs
    ufm.models                   the built-in models, one package each: plain,
                                 deep_linear, vicinity (with central_path and
                                 linear_response), mixup
    ufm.Solution, ufm.RESULTS    what solve returns; why it stopped
    ufm.Theory, ufm.Report       what theory and check return
    ufm.AbstractProblem,         the contract a model class meets, and one keyword of
    ufm.Hyper                    ufm.make (a model's hyperparameter)
    ufm.InputError               raised for bad input, naming the parameter
    ufm.PrecisionWarning         float32 where float64 is needed

Run with ``jax.config.update("jax_enable_x64", True)``: ufm never flips it itself.
"""

import importlib
from typing import TYPE_CHECKING

from . import _startup  # noqa: F401  (first: see its docstring)
from . import geometry as geometry
from . import metrics as metrics
from . import models as models
from ._solution import RESULTS as RESULTS
from ._solution import Solution as Solution
from ._theory import Theory as Theory
from .check import Report as Report
from .check import check as check
from .errors import InputError as InputError
from .errors import PrecisionWarning as PrecisionWarning
from .landscape import landscape as landscape  # scipy's Lanczos is imported on first use
from .problem import AbstractProblem as AbstractProblem
from .problem import Hyper as Hyper
from .registry import REGISTRY as REGISTRY
from .registry import make as make
from .registry import register as register
from .solve import solve as solve

if TYPE_CHECKING:  # for type checkers and the API docs; at run time loaded on first use
    from .sweeps import open_result as open_result
    from .sweeps import sweep as sweep

__version__ = "0.1.0"

__all__ = [
    "REGISTRY",
    "RESULTS",
    "AbstractProblem",
    "Hyper",
    "InputError",
    "PrecisionWarning",
    "Report",
    "Solution",
    "Theory",
    "check",
    "geometry",
    "landscape",
    "make",
    "metrics",
    "models",
    "open_result",
    "plot",
    "register",
    "solve",
    "sweep",
    "theory",
    "verify",
]

_LAZY = {"plot", "verify", "claims"}  # imported on first use (matplotlib; the catalog)
_LAZY_NAMES = {"sweep": "sweeps", "open_result": "sweeps"}  # name -> module (xarray, zarr)


def __getattr__(name: str):
    """The modules in `_LAZY` and the names in `_LAZY_NAMES`, imported on first use: they
    pull in matplotlib, xarray, pandas and zarr (~0.6 s), which solving does not need."""
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'ufm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def theory(problem) -> Theory:
    """The closed-form prediction for `problem` (a `ufm.Theory`): its minimum loss, regime,
    geometry and predicted quantities, with the source they come from."""
    return problem.theory()
