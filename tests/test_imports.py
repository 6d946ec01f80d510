"""Cheap first runs (issue 20): `import ufm`, solving a problem and the `ufm solve` command
load no library they do not use. Each check runs in a fresh interpreter, where sys.modules
shows exactly what was imported."""

import json
import subprocess
import sys

import pytest

# Heavy libraries (import time on a laptop, after jax) that solving never needs: stored
# sweeps (xarray ~0.3 s with pandas ~0.2 s, zarr ~0.2 s), figures (matplotlib) and the
# solvers of the convex programs and the other models' theories (scipy.optimize ~0.3 s).
STORAGE_AND_FIGURES = ("xarray", "pandas", "zarr", "matplotlib")
SCIPY_SOLVERS = ("scipy.optimize",)

PROGRAM = """
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
loaded = {}
import ufm
loaded["import"] = sorted(sys.modules)
problem = ufm.make("plain", K=3, n=2, d=4, lambda_W=0.05, lambda_H=0.01)
solution = ufm.solve(problem, restarts=2)
report = ufm.check(problem, solution)
loaded["solve"] = sorted(sys.modules)
from ufm import cli
code = cli.main("solve plain --K 3 --n 2 --d 4 --lambda-W 0.05 --lambda-H 0.01 --json".split())
loaded["cli"] = sorted(sys.modules)
print(json.dumps({"code": code, "verdict": report.verdict, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> dict:
    """The modules loaded after `import ufm`, after make/solve/check of a tiny plain problem,
    and after `ufm solve` of the same problem, in one fresh interpreter."""
    env = {"UFM_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache"))}
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_inherited(), **env},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0 and result["verdict"] == "agrees"
    return {stage: set(names) for stage, names in result["loaded"].items()}


def _inherited() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}


@pytest.mark.parametrize("stage", ["import", "solve", "cli"])
def test_storage_and_figure_libraries_are_not_loaded(loaded, stage):
    assert loaded[stage] & set(STORAGE_AND_FIGURES) == set()


@pytest.mark.parametrize("stage", ["import", "solve", "cli"])
def test_scipy_solvers_are_not_loaded(loaded, stage):
    assert loaded[stage] & set(SCIPY_SOLVERS) == set()


def test_lazy_public_names_still_resolve():
    """`ufm.sweep` and `ufm.open_result` load the sweep store on first use and are the
    functions of `ufm.sweeps`; `from ufm import sweep` works too."""
    import ufm
    import ufm.sweeps
    from ufm import open_result, sweep

    assert sweep is ufm.sweeps.sweep and ufm.sweep is ufm.sweeps.sweep
    assert open_result is ufm.open_result is ufm.sweeps.open_result
    assert {"sweep", "open_result", "plot", "verify"} <= set(dir(ufm))
