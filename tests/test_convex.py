"""The plain UFM's convex program (ufm.models.plain.convex) and certificate
(ufm.models.plain.certificate): against a conic solver (cvxpy), against ufm.solve on both
sides of every threshold, and the dual bound against the exact minimum."""

import jax
import numpy as np
import pytest
import sympy as sp

import ufm
from derivations import plain_convex as dv
from ufm.models.plain import convex
from ufm.models.plain.certificate import certificate

COUNTS = (50, 50, 10, 10)
SETTINGS = [("none", 0.0), ("free", 0.0), ("regularized", 0.01)]


@pytest.mark.parametrize("bias,lambda_b", SETTINGS)
@pytest.mark.parametrize("mu", [5e-3, 2e-2, 4e-2])
def test_matches_a_conic_solver(bias, lambda_b, mu):
    ours = convex.solve(COUNTS, mu, bias, lambda_b)
    value, logits = convex.conic(COUNTS, mu, bias, lambda_b)
    assert ours.converged, ours.status
    assert ours.dual <= ours.value * (1 + 1e-14)  # a lower bound, up to rounding
    assert ours.gap <= 1e-11 * max(1.0, ours.value)
    assert abs(ours.value - value) <= 1e-6 * value  # Clarabel's own accuracy is ~1e-8
    assert np.linalg.norm(ours.logits - logits) <= 1e-3 * max(np.linalg.norm(logits), 1.0)


def test_realized_minimizer_has_the_programs_value():
    jax.config.update("jax_enable_x64", True)
    for bias, lb in SETTINGS:
        problem = ufm.make(
            "plain",
            K=4,
            n=COUNTS,
            d=6,
            bias=bias != "none",
            lambda_b=lb,
            lambda_W=0.01,
            lambda_H=0.0025,
        )
        theory = ufm.theory(problem)
        params = {k: jax.numpy.asarray(v) for k, v in theory.params.items()}
        assert abs(float(problem.loss(params)) - theory.loss) <= 1e-12
        assert theory.certificate["duality_gap"] <= 1e-11


def _problem(mu: float, bias: str, lb: float, counts=COUNTS, loss: str = "ce"):
    return ufm.make(
        "plain",
        loss=loss,
        K=len(counts),
        n=counts,
        d=len(counts) + 2,
        bias=bias != "none",
        lambda_b=lb,
        lambda_W=mu,
        lambda_H=mu,
    )


def _thresholds(bias: str, lb: float) -> list[float]:
    """mu of the tied pair's merge (sqrt(10)/120) and of the zero solution (bisection)."""
    merge = np.sqrt(10) / 120
    lo, hi = merge, 1.0
    for _ in range(50):
        mid = np.sqrt(lo * hi)
        lo, hi = (lo, mid) if convex.solve(COUNTS, mid, bias, lb).rank == 0 else (mid, hi)
    return [merge, hi]


@pytest.mark.slow
@pytest.mark.parametrize("bias,lambda_b", SETTINGS)
def test_solver_matches_on_both_sides_of_every_threshold(bias, lambda_b):
    jax.config.update("jax_enable_x64", True)
    regimes = []
    for threshold in _thresholds(bias, lambda_b):
        for factor in (0.9, 1.1):
            problem = _problem(factor * threshold, bias, lambda_b)
            report = ufm.check(problem, ufm.solve(problem, restarts=2))
            assert report.verdict == "agrees", report.reason
            assert report.certificate["certified"]
            logits = report.errors["logits"]
            assert abs(report.loss_gap) <= 1e-9 and logits <= 1e-6, (logits, report.loss_gap)
            regimes.append(report.theory.regime)
    assert regimes[0] == "collapsed" and regimes[1] == "minority_collapse"
    assert regimes[-1] == "zero"


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("bias,lambda_b", [("none", 0.0), ("free", 0.0)])
def test_dual_bound_is_below_the_minimum_at_any_point(loss, bias, lambda_b):
    jax.config.update("jax_enable_x64", True)
    problem = _problem(0.01, bias, lambda_b, counts=(50, 50, 10, 10), loss=loss)
    best = ufm.solve(problem, restarts=2)
    rng = np.random.default_rng(0)
    for scale in (0.0, 0.3, 1.0, 3.0):
        params = {
            k: jax.numpy.asarray(np.asarray(v) + scale * rng.standard_normal(np.shape(v)))
            for k, v in best.params.items()
        }
        value = float(problem.loss(params))
        cert = problem.certificate(params, value)
        assert cert["dual"] <= float(best.loss) + 1e-12
        assert cert["gap"] >= -1e-12
        if scale >= 0.3:
            assert not cert["certified"]
    assert problem.certificate(best.params, float(best.loss))["certified"]


def test_certificate_refuses_the_zero_point_below_the_threshold():
    """W = H = 0 is a critical point of every plain UFM; below the zero threshold it is a
    saddle and the gap is positive: ||grad_Z L(0)||_op = sqrt(lambda_max(P D P))/N > mu."""
    counts = np.array(COUNTS)
    N = counts.sum()
    K = counts.size
    Z = np.zeros((K, N))
    labels = np.repeat(np.arange(K), counts)
    P = np.eye(K) - 1 / K
    expected = np.sqrt(np.linalg.eigvalsh(P @ np.diag(counts) @ P).max()) / N
    for mu, certified in ((0.5 * expected, False), (1.5 * expected, True)):
        cert = certificate("ce", Z, labels, mu, float(np.log(K)))
        assert cert["grad_op"] == pytest.approx(expected, rel=1e-12)
        assert cert["certified"] is certified


def test_derivation():
    results = dv.derive()
    for name in ("gram_identity", "tied_right", "tied_left"):
        assert all(sp.simplify(x) == 0 for x in results[name])
    for name in ("ce_fenchel_young", "mse_conjugate", "bias_conjugate"):
        assert sp.simplify(results[name]) == 0


def test_not_converged_is_no_prediction(monkeypatch):
    jax.config.update("jax_enable_x64", True)
    real = convex.solve
    monkeypatch.setattr(convex, "solve", lambda *a, **k: real(*a, **k, tol=-1.0))
    theory = ufm.theory(_problem(5e-3, "free", 0.0))
    assert theory.regime == "not_applicable"
    assert "did not reach its tolerance" in theory.reason and "duality gap" in theory.reason
