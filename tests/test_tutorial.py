"""docs/tutorial.md runs as written, and its numbers are those of derivations/label_smoothing.py.

The tutorial's Python blocks whose first line is ``# file: label_smoothing.py`` are the
user's module: they are written, in order, to a temporary directory and imported. The other
Python blocks are run in order as one script; each one followed by a ``text`` block must print
that text (numbers to 1e-9 relative; numbers below 1e-6, round-off-level gaps and errors,
only need to stay below it). The closed form in the tutorial's ``theory()`` is compared with
the sympy derivation, the solver with both, and the ``ufm.models`` entry-point path of the
``ufm`` command is run in a subprocess against a dist-info built from the tutorial's
``pyproject.toml`` block.
"""

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import ufm
from derivations import label_smoothing as ls
from ufm import verify
from ufm.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
MODULE = "label_smoothing"
NAME = "label-smoothing"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```[ \t]*$", re.S | re.M)
FILE = re.compile(r"#\s*file:\s*(\S+)")
POINT = {"K": 4, "n": 5, "d": 8, "lambda_W": 0.01, "lambda_H": 0.01}  # the tutorial's point


# ---------------------------------------------------------------------------------------
# Reading the tutorial


def blocks() -> list[tuple[str, str, str | None]]:
    """(language, body, file it belongs to or None) of every fenced block, in order."""
    out = []
    for language, body in FENCE.findall(TUTORIAL.read_text()):
        first = body.split("\n", 1)[0]
        match = FILE.fullmatch(first.strip())
        if match:
            body = body.split("\n", 1)[1] if "\n" in body else ""
        out.append((language, body, match.group(1) if match else None))
    return out


def file_text(name: str) -> str:
    parts = [body for _, body, file in blocks() if file == name]
    assert parts, f"docs/tutorial.md has no block marked '# file: {name}'"
    return "".join(parts)


def script() -> list[tuple[str, str | None]]:
    """The Python blocks that are not part of a file, each with the text block after it."""
    found, out = blocks(), []
    for i, (language, body, file) in enumerate(found):
        if language != "python" or file is not None:
            continue
        after = found[i + 1] if i + 1 < len(found) else None
        out.append((body, after[1] if after and after[0] == "text" else None))
    return out


def same_output(got: str, shown: str) -> bool:
    """Equal token by token; numbers to 1e-9 relative, or both below 1e-6 in magnitude."""
    a, b = got.split(), shown.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        try:
            u, v = float(x), float(y)
        except ValueError:
            if x != y:
                return False
            continue
        if max(abs(u), abs(v)) < 1e-6:
            continue
        if abs(u - v) > 1e-9 * max(1.0, abs(v)):
            return False
    return True


# ---------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def derived():
    """The derivation's closed forms as numpy functions of (K, n, lambda_W, lambda_H, eps)."""
    results = ls.derive()
    args = (ls.K, ls.n, ls.lam_W, ls.lam_H, ls.eps)
    keys = ("ls_margin", "ls_loss_collapsed", "ls_loss_zero", "ls_threshold")
    keys += ("ls_w_norm2", "ls_h_norm2", "ls_zero_gradient_norm")
    return {k: sp.lambdify(args, results[k], "numpy") for k in keys}


def predicted(derived, K, n, lambda_W, lambda_H, epsilon, **_) -> dict[str, float]:
    """Regime, minimum and margin at one point, from the derivation alone."""
    args = (K, n, lambda_W, lambda_H, epsilon)
    if derived["ls_threshold"](*args) >= 1:
        return {"regime": "zero", "loss": float(derived["ls_loss_zero"](*args)), "margin": 0.0}
    return {
        "regime": "collapsed",
        "loss": float(derived["ls_loss_collapsed"](*args)),
        "margin": float(derived["ls_margin"](*args)),
        "w_norm2": float(derived["ls_w_norm2"](*args)),
        "h_norm2": float(derived["ls_h_norm2"](*args)),
    }


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The tutorial's module in a directory on sys.path; forgotten (and unregistered) after."""
    where = tmp_path_factory.mktemp("labelsmooth")
    (where / f"{MODULE}.py").write_text(file_text(f"{MODULE}.py"))
    sys.path.insert(0, str(where))
    try:
        yield where
    finally:
        sys.path.remove(str(where))
        sys.modules.pop(MODULE, None)
        REGISTRY.remove(NAME)


@pytest.fixture(scope="module")
def cls(package):
    import importlib

    return importlib.import_module(MODULE).LabelSmoothingProblem


# ---------------------------------------------------------------------------------------
# The closed form of the tutorial's theory() is the derivation's


GRID = [
    dict(K=K, n=n, d=K + 1, lambda_W=lam, lambda_H=lam / 2, epsilon=eps)
    for K in (2, 3, 4, 7)
    for n in (1, 5)
    for lam in (1e-4, 1e-2, 0.1)
    for eps in (0.0, 0.1, 0.5, 0.9, 0.99)
]


def test_theory_is_the_derivation(cls, derived):
    regimes = set()
    for point in GRID:
        theory = cls.make(**point).theory()
        want = predicted(derived, **point)
        regimes.add(want["regime"])
        assert (theory.regime, theory.loss) == (want["regime"], pytest.approx(want["loss"], 1e-13))
        K = point["K"]
        P = np.eye(K) - 1 / K
        np.testing.assert_allclose(theory.quantities["logits"], want["margin"] * P, atol=1e-13)
        if want["regime"] == "collapsed":
            assert theory.geometry == "simplex_etf"
            norms = theory.quantities["w_norm2"], theory.quantities["hbar_norm2"]
            np.testing.assert_allclose(norms[0], want["w_norm2"], rtol=1e-13)
            np.testing.assert_allclose(norms[1], want["h_norm2"], rtol=1e-13)
        # the realized minimizer has the predicted Grams
        W, H = theory.params["W"], theory.params["H"]
        Hbar = H[:, :: point["n"]]  # columns sorted by class, n per class
        np.testing.assert_allclose(W @ W.T, theory.quantities["W_gram"], atol=1e-12)
        np.testing.assert_allclose(Hbar.T @ Hbar, theory.quantities["Hbar_gram"], atol=1e-12)
    assert regimes == {"collapsed", "zero"}


def test_loss_at_the_predicted_minimizer_is_the_predicted_minimum(cls, derived):
    """The jax loss evaluated at theory().params: the loss code and the closed form agree."""
    for epsilon in (0.0, 0.3, 0.9, 0.95):
        problem = cls.make(**POINT, epsilon=epsilon)
        theory = problem.theory()
        value = float(problem.loss({k: np.asarray(v) for k, v in theory.params.items()}))
        assert value == pytest.approx(predicted(derived, **POINT, epsilon=epsilon)["loss"], 1e-13)


def test_epsilon_zero_is_the_plain_model_and_threshold_is_the_certificate(cls, derived):
    plain = ufm.make("plain", loss="ce", **POINT).theory()
    assert cls.make(**POINT, epsilon=0.0).theory().loss == pytest.approx(plain.loss, 1e-14)
    # the zero threshold K s + eps = 1 is where the zero point's gradient norm is mu
    K, n, mu = POINT["K"], POINT["n"], math.sqrt(POINT["lambda_W"] * POINT["lambda_H"])
    eps_star = 1 - K * math.sqrt(n) * mu
    norm = derived["ls_zero_gradient_norm"](K, n, 0.01, 0.01, eps_star)
    assert norm == pytest.approx(mu, 1e-14)
    assert cls.make(**POINT, epsilon=eps_star - 1e-6).theory().regime == "collapsed"
    assert cls.make(**POINT, epsilon=eps_star + 1e-6).theory().regime == "zero"


def test_make_validates_with_one_line_input_errors(cls):
    for bad, match in (
        ({"epsilon": 1.0}, r"epsilon must be in \[0, 1\); got 1.0"),
        ({"epsilon": -0.1}, "epsilon must be in"),
        ({"epsilon": float("nan")}, "epsilon must be in"),
        ({"K": 1}, "K must be an integer >= 2"),
        ({"n": 2.5}, "n must be an integer >= 1"),
        ({"lambda_W": 0.0}, "lambda_W must be a finite number > 0"),
        ({"lambda_H": math.inf}, "lambda_H must be a finite number > 0"),
        ({"d": True}, "d must be an integer >= 1"),
    ):
        with pytest.raises(ufm.InputError, match=match) as info:
            cls.make(**bad)
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------
# The tutorial's script, run as written


def test_tutorial_runs_as_written(package, derived):
    namespace: dict = {"__name__": "tutorial"}
    for code, shown in script():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(TUTORIAL), "exec"), namespace)
        if shown is not None:
            assert same_output(out.getvalue(), shown), (
                f"docs/tutorial.md shows\n{shown}\nbut the block prints\n{out.getvalue()}"
            )
    # section 5: eps = 0.1 (collapsed) solved and checked
    sol, report = namespace["sol"], namespace["report"]
    want = predicted(derived, **POINT, epsilon=0.1)
    assert want["regime"] == "collapsed"
    assert sol.converged and report.verdict == "agrees"
    assert float(sol.loss) == pytest.approx(want["loss"], rel=1e-9)
    assert report.theory_loss == pytest.approx(want["loss"], rel=1e-13)
    # section 6: the sweep, on both sides of the threshold eps* = 1 - K s = 0.9106
    ds = namespace["ds"]
    regimes = set()
    for eps in ds.epsilon.values:
        point = ds.sel(epsilon=eps, seed=0)
        want = predicted(derived, **POINT, epsilon=float(eps))
        regimes.add(want["regime"])
        assert bool(point.converged) and point.verdict.item() == "agrees"
        assert point.regime.item() == point.theory_regime.item() == want["regime"]
        assert point.loss.item() == pytest.approx(want["loss"], rel=1e-9)
        assert point.theory_loss.item() == pytest.approx(want["loss"], rel=1e-13)
    assert regimes == {"collapsed", "zero"}
    # section 7: the claims are in the catalog
    assert [c.name for c in verify.catalog() if c.model == NAME] == ["ls-etf", "ls-zero"]


# ---------------------------------------------------------------------------------------
# The entry-point path: the `ufm` command finds the installed model


def installed(where: Path, entry_points: dict[str, str], name="labelsmooth", version="0.1"):
    """A dist-info in `where` declaring `entry_points` in the ufm.models group (what
    ``pip install`` of a package with that pyproject leaves in site-packages)."""
    info = where / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[ufm.models]\n{lines}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A directory with the tutorial's module and the dist-info its pyproject describes."""
    where = tmp_path_factory.mktemp("site")
    (where / f"{MODULE}.py").write_text(file_text(f"{MODULE}.py"))
    project = tomllib.loads(file_text("pyproject.toml"))["project"]
    entry_points = project["entry-points"]["ufm.models"]
    assert entry_points == {NAME: f"{MODULE}:LabelSmoothingProblem"}
    installed(where, entry_points, project["name"], project["version"])
    return where


def ufm_command(args: list[str], site: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """``ufm ARGS`` in a fresh process that sees `site` as installed, and this checkout's
    ufm (not whatever copy site-packages may hold)."""
    env = dict(os.environ)
    path = [str(site), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    env["UFM_CACHE_DIR"] = str(tmp_path / "jax-cache")
    return subprocess.run(
        [sys.executable, "-m", "ufm.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )


def test_ufm_command_finds_the_entry_point(site, tmp_path, derived):
    listing = ufm_command(["verify", "--list"], site, tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "ls-etf (quick)" in listing.stdout and "ls-zero (quick)" in listing.stdout
    assert "ce-etf" in listing.stdout  # the built-in catalog is still there

    flags = ["--epsilon", "0.1", "--lambda-W", "0.01", "--lambda-H", "0.01"]
    solve = ufm_command(["solve", NAME, *flags, "--json"], site, tmp_path)
    assert solve.returncode == 0, solve.stderr
    r = json.loads(solve.stdout)
    want = predicted(derived, **POINT, epsilon=0.1)
    assert r["model"] == NAME and r["parameters"] == POINT | {"epsilon": 0.1}
    assert r["converged"] and r["check"]["verdict"] == "agrees"
    assert r["theory"]["loss"] == pytest.approx(want["loss"], rel=1e-13)
    assert r["loss"] == pytest.approx(want["loss"], rel=1e-9)

    bad = ufm_command(["solve", NAME, "--epsilon", "1"], site, tmp_path)
    assert bad.returncode == 2
    assert "epsilon must be in [0, 1); got 1.0" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_ufm_sweep_and_verify_of_the_entry_point(site, tmp_path, derived):
    out = tmp_path / "ls.zarr"
    grid = ["--grid", "epsilon=0,0.5,0.9,0.95", "--no-progress", "--json"]
    sweep = ufm_command(["sweep", NAME, *grid, "--out", str(out)], site, tmp_path)
    assert sweep.returncode == 0, sweep.stderr
    assert json.loads(sweep.stdout)["verdicts"] == {"agrees": 4}
    ds = ufm.open_result(out)
    for eps in ds.epsilon.values:
        want = predicted(derived, **POINT, epsilon=float(eps))
        point = ds.sel(epsilon=eps, seed=0)
        assert point.theory_regime.item() == point.regime.item() == want["regime"]
        assert point.loss.item() == pytest.approx(want["loss"], rel=1e-9)

    verify = ufm_command(["verify", "ls-etf", "ls-zero"], site, tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "2 passed, 0 failed" in verify.stdout
