"""The papers' practical experiments, each one command: train its grid, then compare.

An experiment is a module with ``NAME``, ``SUMMARY``, ``setup(quick) -> Setup``,
``compare(ds) -> dict`` (numbers only, strict JSON) and ``plot(ds, comparison, path)``; one
that trains something other than MLPs (the language models) defines
``run(out, quick=, resume=, progress=) -> (Dataset, comparison)`` instead of a Setup.
`run` trains the experiment's grid into a store (resumable) and returns it with the
comparison; ``ufm experiment NAME`` and the scripts in figures/ call it.
"""

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from .._experiment_names import MODULES as MODULES
from ..errors import InputError
from .data import Dataset
from .grid import train
from .training import Training


@dataclasses.dataclass(frozen=True)
class Setup:
    """What an experiment trains: the data, the fixed settings, the grid, seeds, epochs."""

    data: Dataset
    training: Training
    grid: dict[str, Sequence] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    record: tuple[int, ...] | None = None


def write_figure(fig, path) -> Path:
    """Write an experiment's figure (200 dpi, trimmed to its artists) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=200, bbox_inches="tight", pad_inches=0.02)
    plt.close(fig)
    return path


def module(name: str):
    if name not in MODULES:
        raise InputError(f"experiment: unknown {name!r}; choose one of {', '.join(MODULES)}")
    return importlib.import_module(MODULES[name])


def run(
    name: str,
    out: str | Path | None = None,
    *,
    quick: bool = False,
    resume: bool = False,
    progress: bool | Callable[[int, int], None] = True,
) -> tuple[xr.Dataset, dict[str, Any]]:
    """Train experiment `name`'s grid into `out` (None: in memory) and compare it."""
    experiment = module(name)
    if hasattr(experiment, "run"):  # not a grid of MLPs: the experiment trains its own
        return experiment.run(out, quick=quick, resume=resume, progress=progress)
    setup = experiment.setup(quick)
    ds = train(
        setup.data,
        setup.training,
        setup.grid,
        seeds=setup.seeds,
        record=setup.record,
        out=out,
        resume=resume,
        progress=progress,
    )
    return ds, experiment.compare(ds)
