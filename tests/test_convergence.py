"""Issue 14, items 1, 7 and 8: a scale-aware stopping rule, numpy-typed options, float32
said up front, progress of long solves, and a cross-entropy accurate at tiny losses."""

import math
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import ufm
from ufm import problem as _base
from ufm.errors import PrecisionWarning
from ufm.models import plain as cf
from ufm.solve import DEFAULT_GTOL

SMALL = {"plain": dict(K=4, n=5, d=8), "deep-linear": dict(K=4, n=5, d=8)}
SMALL |= {"vicinity": dict(K=4, n=5, d=8), "mixup": dict(K=3, n=4, d=4)}


def _tolerance(problem, params, gtol):
    """gtol x smallest positive weight decay x max(||params||, 1), in numpy."""
    size = math.sqrt(sum(float(np.sum(np.asarray(x) ** 2)) for x in params.values()))
    return gtol * float(problem.weight_decay()) * max(size, 1.0)


def test_issue_reproduction_no_longer_converges_at_step_zero_or_blames_a_minimum():
    # the issue's case: the absolute test passed at the start, loss 2x the minimum, and the
    # verdict blamed a spurious minimum
    problem = ufm.make("plain", loss="mse", **SMALL["plain"], lambda_W=1e-12, lambda_H=1e-12)
    sol = ufm.solve(problem)
    report = ufm.check(problem, sol)
    assert int(sol.steps) > 0
    assert report.verdict != "disagrees"
    if sol.converged:
        assert abs(report.loss_gap) <= 1e-9
    else:
        assert report.verdict == "inconclusive" and "cannot tell" in report.reason
    # the point it reached is the minimum all the same, to far better than the 2x of before
    assert abs(report.loss_gap) < 1e-8


def test_the_tolerance_is_the_documented_formula():
    problem = ufm.make("plain", loss="ce", **SMALL["plain"], lambda_W=3e-3, lambda_H=1e-3)
    sol = ufm.solve(problem)
    assert float(problem.weight_decay()) == 1e-3
    expected = _tolerance(problem, sol.params, DEFAULT_GTOL)
    assert float(sol.grad_tol) == pytest.approx(expected, rel=1e-12)
    assert sol.converged and float(sol.grad_norm) <= float(sol.grad_tol)
    assert sol.summary()["grad_tol"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "name, hyper, expected",
    [
        ("plain", dict(loss="ce", bias=True), 2e-3),  # lambda_b = 0 (free bias) is skipped
        ("deep-linear", dict(loss="mse", lambda_W=(5e-3, 2e-3, 4e-3), lambda_H=3e-3), 2e-3),
        ("vicinity", dict(lambda_W=1e-2, lambda_H=1e-3, beta=2e-3), 3e-3),  # H: lambda_H + beta
        ("mixup", dict(classifier="etf", lambda_W=1e-9, lambda_H=2e-3), None),  # W is fixed
    ],
)
def test_weight_decay_is_the_smallest_curvature_of_the_penalties(name, hyper, expected):
    defaults = dict(lambda_W=2e-3, lambda_H=2e-3) if name == "plain" else {}
    problem = ufm.make(name, **SMALL[name], **(defaults | hyper))
    if name == "mixup":  # column m is penalized count_m lambda_H / 2 |h_m|^2
        expected = 2e-3 * float(np.min(problem.counts))
    assert float(problem.weight_decay()) == pytest.approx(expected, rel=1e-15)


def test_plain_ce_converges_and_agrees_at_lambda_1e_12():
    # needs both the scale-aware test and the accurate cross-entropy: with lse(z) - z_y the
    # loss of ~1.9e-10 carried an absolute error ~1e-15 and the solver "beat" the theory
    problem = ufm.make("plain", loss="ce", **SMALL["plain"], lambda_W=1e-12, lambda_H=1e-12)
    sol = ufm.solve(problem)
    report = ufm.check(problem, sol)
    assert sol.converged and report.verdict == "agrees"
    assert abs(report.loss_gap) < 1e-13


@pytest.mark.parametrize(
    "name",
    [
        "plain",
        "mixup",
        # the slow sweep over every model covers these too; each costs a compilation
        pytest.param("deep-linear", marks=pytest.mark.slow),
        pytest.param("vicinity", marks=pytest.mark.slow),
    ],
)
def test_large_weight_decay_converges_to_zero_and_agrees(name):
    hyper = dict(lambda_W=1e3, lambda_H=1e3)
    if name in ("plain", "deep-linear"):
        hyper["loss"] = "ce"
    problem = ufm.make(name, **SMALL[name], **hyper)
    sol = ufm.solve(problem)
    report = ufm.check(problem, sol)
    assert sol.converged and report.verdict == "agrees", report.reason
    assert float(sol.grad_norm) <= _tolerance(problem, sol.params, DEFAULT_GTOL)


@pytest.mark.slow
@pytest.mark.parametrize("lam", [1e-12, 1e-9, 1e-6, 1e-3, 1.0, 1e3])
@pytest.mark.parametrize(
    "name, loss",
    [
        ("plain", "ce"),
        ("plain", "mse"),
        ("deep-linear", "ce"),
        ("deep-linear", "mse"),
        ("vicinity", None),
        ("mixup", "ce"),
        ("mixup", "mse"),
    ],
)
def test_every_model_from_1e_12_to_1e3_never_blames_what_it_cannot_tell(name, loss, lam):
    hyper = {} if loss is None else {"loss": loss}
    problem = ufm.make(name, **SMALL[name], **hyper, lambda_W=lam, lambda_H=lam)
    sol = ufm.solve(problem, restarts=8 if name == "deep-linear" else 1, max_steps=5000)
    report = ufm.check(problem, sol)
    if sol.converged:
        assert float(sol.grad_norm) <= _tolerance(problem, sol.params, DEFAULT_GTOL)
        assert report.verdict == "agrees", report.reason
    else:
        assert report.verdict == "inconclusive"
        assert "spurious" not in report.reason
    if lam >= 1e-6 and name != "mixup":  # mixup needs ~50k steps at small lambda
        assert sol.converged, sol.status


def test_cross_entropy_is_accurate_at_large_margins():
    # columns with margins ~ln(1/lambda): the loss is ~1e-12 and must keep its digits
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(5, 7)) + 28.0 * np.eye(5)[:, [0, 1, 2, 3, 4, 0, 1]]
    Z[:, 6] = [0.0, 2.0, -1.0, 3.0, 0.5]  # a misclassified column too
    labels = [0, 1, 2, 3, 4, 0, 1]
    Y = np.eye(5)[:, labels]
    got = np.asarray(_base.cross_entropy(jnp.asarray(Z), jnp.asarray(Y)))
    with mpmath.workdps(50):
        for i, y in enumerate(labels):
            exact = mpmath.log(sum(mpmath.exp(mpmath.mpf(z)) for z in Z[:, i])) - Z[y, i]
            assert got[i] == pytest.approx(float(exact), rel=1e-14)
    naive = jax.nn.logsumexp(jnp.asarray(Z), axis=0) - jnp.sum(jnp.asarray(Y * Z), axis=0)
    assert abs(float(naive[0]) / got[0] - 1) > 1e-6  # what it replaced, for the record


def test_ce_closed_form_keeps_its_digits_at_lambda_1e_12():
    K, n, lam = 4, 5, 1e-12
    with mpmath.workdps(50):
        s = mpmath.sqrt(n * mpmath.mpf(lam) ** 2)
        a = mpmath.log(1 / s - (K - 1))
        exact = -mpmath.log(1 - (K - 1) * s) + (K - 1) * s * a
    assert float(cf.ce_min_loss(K, n, lam, lam)) == pytest.approx(float(exact), rel=1e-14)


def test_numpy_scalars_and_arrays_are_accepted_as_hyperparameters_and_options():
    as_python = ufm.make("plain", loss="ce", K=3, n=(5, 4, 3), d=4, lambda_W=1e-3, lambda_H=1e-3)
    as_numpy = ufm.make(
        "plain",
        loss="ce",
        K=np.int64(3),
        n=np.array([5, 4, 3]),
        d=np.int32(4),
        lambda_W=np.float64(1e-3),
        lambda_H=np.array(1e-3),
        bias=np.bool_(False),
    )
    assert as_numpy.hyperparameters() == as_python.hyperparameters()
    deep = ufm.make("deep-linear", loss="mse", K=3, n=np.int64(4), d=4, depth=np.int64(2),
                    lambda_W=np.array([1e-3, 2e-3]), lambda_H=jnp.asarray(1e-3))  # fmt: skip
    assert deep.hyperparameters()["lambda_W"] == [1e-3, 2e-3]
    a = ufm.solve(as_python, seed=1, restarts=2, max_steps=300, gtol=1e-9)
    b = ufm.solve(
        as_numpy,
        seed=np.int32(1),
        restarts=np.int64(2),
        max_steps=np.array(300),
        gtol=jnp.asarray(1e-9),
        init_scale=np.float32(1.0),
    )
    assert float(a.loss) == float(b.loss) and int(a.steps) == int(b.steps)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"gtol": "1e-9"}, "gtol must be a number; got '1e-9'"),
        ({"gtol": True}, "gtol must be a number"),
        ({"restarts": 2.5}, "restarts must be an integer"),
        ({"max_steps": np.array([1, 2])}, "max_steps must be an integer"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"progress": "yes"}, "progress must be True, False, None or a callable"),
    ],
)
def test_bad_option_types_name_the_option(options, match):
    problem = ufm.make("plain", loss="mse", K=3, n=2, d=4)
    with pytest.raises(ufm.InputError, match=match):
        ufm.solve(problem, **options)


@pytest.mark.parametrize(
    "hyper, match",
    [
        ({"K": np.array([3, 4])}, "K must be an integer"),
        ({"lambda_W": np.array([1e-3, 1e-3])}, "lambda_W must be a finite number"),
        ({"bias": np.array([True, False])}, "bias must be True or False"),
        ({"n": np.array([[2, 2, 2]])}, "n must be a positive integer or a sequence"),
    ],
)
def test_bad_numpy_hyperparameters_name_the_parameter(hyper, match):
    with pytest.raises(ufm.InputError, match=match):
        ufm.make("plain", **({"loss": "mse", "K": 3, "n": 2, "d": 4} | hyper))


def test_float32_is_said_up_front():
    problem = ufm.make("plain", loss="mse", K=3, n=2, d=4, lambda_W=0.05, lambda_H=0.01)
    problem32 = jax.tree.map(lambda x: x.astype(jnp.float32), problem)
    with pytest.warns(PrecisionWarning, match="jax_enable_x64"):
        sol = ufm.solve(problem32, max_steps=50)
    if not sol.converged:
        assert "float32" in sol.status
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ufm.solve(problem32, gtol=1e-4)  # reachable in float32: no warning


def test_progress_reports_every_step_and_changes_nothing(monkeypatch, capsys):
    from ufm import _progress

    problem = ufm.make("plain", loss="ce", K=3, n=4, d=4, lambda_W=1e-3, lambda_H=1e-3)
    seen = []
    quiet = ufm.solve(problem, progress=False, route="full")
    loud = ufm.solve(problem, progress=lambda *report: seen.append(report), route="full")
    assert float(quiet.loss) == float(loud.loss) and int(quiet.steps) == int(loud.steps)
    assert [s[0] for s in seen] == list(range(1, int(loud.steps) + 1))
    step, loss, grad_norm, tol = seen[-1]
    assert loss == float(loud.loss) and grad_norm == float(loud.grad_norm) <= tol
    # the collapsed route reports the class-mean problem, the same objective up to rounding
    seen.clear()
    collapsed = ufm.solve(problem, progress=lambda *report: seen.append(report))
    assert collapsed.route == "collapsed" and seen[-1][0] == int(collapsed.steps)
    assert seen[-1][1] == pytest.approx(float(collapsed.loss), rel=1e-13)
    ufm.solve(problem, progress=True, route="full")
    err = capsys.readouterr().err
    assert f"solve: step {int(loud.steps)}/10000" in err and "converged at" in err
    # progress=None: on from AUTO_UNKNOWNS unknowns x restarts (3*4 + 4*12 = 60 here)
    ufm.solve(problem)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_progress, "AUTO_UNKNOWNS", 60)
    ufm.solve(problem)
    assert "solve: step" in capsys.readouterr().err


def test_make_says_float64_is_off_before_anything_is_built():
    # a fresh process without jax_enable_x64: lambda_W = 1e-3 would silently become
    # 0.0010000000474974513 and the theory would follow it
    code = "import ufm; p = ufm.make('plain', loss='mse', K=3, n=2, d=4, lambda_W=1e-3)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0
    assert "PrecisionWarning: float64 is off (jax_enable_x64 is False)" in run.stderr
