"""Deep linear UFM: the solver against the closed forms, layer by layer, and M = 1 = plain."""

import json

import numpy as np
import pytest

import ufm
from ufm import cli
from ufm._theory import direction_minimizer
from ufm.check import found_quantities
from ufm.models import deep_linear as dl

IMB = (100, 100, 10, 10)  # N = 220


def deep(loss="mse", depth=3, **kw):
    return ufm.make("deep-linear", **({"loss": loss, "K": 4, "n": 5, "d": 8, "depth": depth} | kw))


def relative(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


# --- the solver reaches the closed form, M = 1..6 ----------------------------------------
DEPTH_CASES = [
    # M = 1 is the plain UFM (test_depth_one_is_plain); M >= 4 are long: both run with -m slow
    pytest.param(M, n, bias, marks=() if M == 2 else pytest.mark.slow, id=f"M{M}-{tag}-{b}")
    for M in range(1, 7)
    for n, tag in ((5, "balanced"), ((20, 10, 5, 5), "imbalanced"))
    for bias, b in ((False, "nobias"), (True, "bias"))
]


@pytest.mark.parametrize("depth, n, bias", DEPTH_CASES)
def test_solver_reaches_closed_form(depth, n, bias):
    problem = deep(depth=depth, n=n, bias=bias, lambda_W=0.005, lambda_H=0.005)
    sol = ufm.solve(problem, restarts=16)
    report = ufm.check(problem, sol)
    assert sol.converged
    assert report.verdict == "agrees", report.reason
    assert abs(report.loss_gap) < 1e-12
    worst = max(report.errors.values())
    assert worst < 1e-8, {k: v for k, v in report.errors.items() if v >= 1e-8}
    # every layer has a prediction and a comparison
    assert len(report.theory.layers) == depth == len(report.layer_metrics)
    assert sum(k.startswith(f"layer{depth}.") for k in report.errors) == 4


def test_worked_example_numbers():
    """The balanced MSE worked example of derivations/deep_linear.py (``NOTES``): numbers
    computed independently of the package, not read in a paper."""
    theory = ufm.theory(deep(lambda_W=0.005, lambda_H=0.005))
    assert theory.loss == pytest.approx(0.059359842, rel=1e-7)
    assert theory.geometry == "orthogonal_frame"
    assert np.allclose(theory.quantities["W_gram"], 3.1925330 * np.eye(4), rtol=1e-7)
    assert np.allclose(theory.quantities["hbar_norm2"], 0.2944931, rtol=1e-6)
    for layer in theory.layers:  # per-layer s^2 = 1.4724655, ||W_m||^2 = 5.8898620
        assert np.allclose(layer["W_sv"] ** 2, 1.4724655, rtol=1e-7)
        assert float(layer["W_norm2"]) == pytest.approx(5.8898620, rel=1e-7)
    with_bias = ufm.theory(deep(bias=True, lambda_W=0.005, lambda_H=0.005))
    assert with_bias.loss == pytest.approx(0.044519882, rel=1e-7)
    assert with_bias.geometry == "simplex_etf"
    P = np.eye(4) - 1 / 4
    G = with_bias.quantities["W_gram"]
    assert np.allclose(G, G[0, 0] / P[0, 0] * P, atol=1e-12)


def test_balancedness_of_found_factors():
    """Independent of the theory: at any minimizer lambda_m ||W_m||^2 = lambda_H ||H||^2."""
    lam = (0.02, 0.005, 0.001)
    problem = deep(lambda_W=lam, lambda_H=0.005)
    sol = ufm.solve(problem, restarts=8)
    assert ufm.check(problem, sol).verdict == "agrees"
    energies = [0.005 * float(np.sum(np.asarray(sol.params["H"]) ** 2))]
    energies += [lam[m] * float(np.sum(np.asarray(sol.params[f"W{m + 1}"]) ** 2)) for m in range(3)]
    assert np.allclose(energies, energies[0], rtol=1e-8)
    # only the product of the lambdas enters the loss
    same_product = deep(lambda_W=0.005, lambda_H=0.005 * (0.02 * 0.005 * 0.001) / 0.005**3)
    assert ufm.theory(same_product).loss == pytest.approx(ufm.theory(problem).loss, rel=1e-12)


# --- M = 1 is the plain UFM ---------------------------------------------------------------
SLOW = pytest.mark.slow
PLAIN_CASES = [
    dict(loss="mse", n=5, lambda_W=0.05, lambda_H=0.01),
    dict(loss="mse", n=5, lambda_W=0.12, lambda_H=0.12),
    pytest.param(dict(loss="mse", n=IMB, lambda_W=0.016, lambda_H=0.016), marks=SLOW),
    pytest.param(dict(loss="mse", n=IMB, bias=True, lambda_W=0.02, lambda_H=0.02), marks=SLOW),
    # variants of the cases above, each a compile of its own: run with -m slow
    pytest.param(dict(loss="mse", n=5, bias=True, lambda_W=0.05, lambda_H=0.01), marks=SLOW),
    pytest.param(dict(loss="ce", n=5, lambda_W=0.01, lambda_H=0.01), marks=SLOW),
    pytest.param(dict(loss="ce", n=5, bias=True, lambda_W=0.01, lambda_H=0.01), marks=SLOW),
    pytest.param(dict(loss="ce", n=IMB, lambda_W=0.05, lambda_H=0.05), marks=SLOW),
]


@pytest.mark.parametrize("hyper", PLAIN_CASES)
def test_depth_one_is_plain(hyper):
    base = {"K": 4, "d": 8} | hyper
    plain = ufm.make("plain", **base)
    one = ufm.make("deep-linear", depth=1, **base)
    tp, td = ufm.theory(plain), ufm.theory(one)
    assert (tp.regime, tp.geometry) == (td.regime, td.geometry)
    assert td.loss == pytest.approx(tp.loss, rel=1e-12, abs=1e-15)
    for key, value in tp.quantities.items():
        np.testing.assert_allclose(td.quantities[key], value, rtol=1e-9, atol=1e-12)
    sp, sd = ufm.solve(plain, restarts=2), ufm.solve(one, restarts=2)
    assert float(sd.loss) == pytest.approx(float(sp.loss), rel=1e-12)


# --- thresholds and root selection ------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 3, 6])
def test_minority_threshold_both_sides(depth):
    """Class k is off iff n_k <= the threshold: put n_min = 10 just either side of it."""
    cut = lambda lam: dl.minority_threshold(220, lam, [lam] * depth)
    # solve cut(lam) = 10 by bisection on log lambda (cut increases with lambda)
    lo, hi = 1e-5, 1.0
    for _ in range(200):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if cut(mid) < 10 else (lo, mid)
    for factor, alive in ((0.98, 4), (1.02, 2)):
        theory = ufm.theory(deep(depth=depth, n=IMB, lambda_W=lo * factor, lambda_H=lo * factor))
        w = theory.quantities["w_norm2"]
        assert int(np.sum(w > 0)) == alive
        assert theory.regime == ("collapsed" if alive == 4 else "minority_collapse")


def test_root_selection_against_zero_branch():
    """M=3, lambda = 0.05: a nonzero local minimum exists but zero is global."""
    problem = deep(lambda_W=0.05, lambda_H=0.05)
    theory = ufm.theory(problem)
    assert theory.regime == "zero" and theory.loss == pytest.approx(0.5)
    # the largest stationary root exists (gamma below the peak of (1-a) a^p) ...
    mu = dl.mu(0.05, [0.05] * 3)
    gamma = 20 * mu * 5 ** (-3 / 4)
    p, a_m = 0.5, 1 / 3
    assert gamma < (1 - a_m) * a_m**p
    # ... and the solver, started large, finds it as a local minimum above 0.5
    sol = ufm.solve(problem, restarts=16, init_scale=2.0, init_spread=4.0)
    losses = np.asarray(sol.restart_losses)[np.asarray(sol.restart_converged)]
    assert np.min(losses) == pytest.approx(0.5, rel=1e-12)
    assert np.any(losses > 0.5 + 1e-3)
    assert ufm.check(problem, sol).verdict == "agrees"
    # just below the threshold the nonzero branch wins
    a, _ = direction_minimizer(np.array([np.sqrt(5)]), 20, dl.mu(0.045, [0.045] * 3), 3)
    assert a[0] > 2 / 3


def test_spurious_minimum_is_reported():
    """A run stuck at a spurious minimum (here: every class off) must not agree."""
    problem = deep(lambda_W=0.005, lambda_H=0.005)
    sol = ufm.solve(problem, init_scale=0.05)
    report = ufm.check(problem, sol)
    assert sol.converged
    assert report.verdict == "disagrees"
    assert "spurious minimum" in report.reason
    assert report.loss_gap > 0.1


# --- cross-entropy: ETF against the low-rank orthoplex -------------------------------------
def test_ce_orthoplex_beats_etf():
    """The deep CE worked example of derivations/deep_linear.py: E*_ETF = 0.11707402,
    min E_orth = 0.10729646 (K=4, M=3)."""
    problem = deep("ce", lambda_W=0.005, lambda_H=0.005)
    mu = dl.mu(0.005, [0.005] * 3)
    a, etf = dl.etf_best(4, 5, mu, 3)
    assert (a, etf) == pytest.approx((5.7622323, 0.11707402), rel=1e-7)
    theory = ufm.theory(problem)
    assert theory.geometry == "orthoplex" and theory.loss == pytest.approx(0.10729646, rel=1e-7)
    sol = ufm.solve(problem, restarts=16)
    report = ufm.check(problem, sol)
    assert report.verdict == "agrees", report.reason
    sv = found_quantities(problem, sol.params)["logits_sv"]
    assert int(np.sum(sv > 1e-6 * sv.max())) == 2  # rank K/2


@pytest.mark.slow  # the quick claim dang-ce-etf-K3-M3 of tests/test_verify.py checks the same
def test_ce_etf_when_it_is_global():
    problem = deep("ce", K=3, lambda_W=0.005, lambda_H=0.005)
    theory = ufm.theory(problem)
    assert theory.geometry == "simplex_etf"
    sol = ufm.solve(problem, restarts=8)
    report = ufm.check(problem, sol)
    assert report.verdict == "agrees", report.reason
    for m in report.layer_metrics:  # ETF at every layer: centred Gram ∝ P_K
        assert m["nc1"] < 1e-12 and m["nc2"] < 1e-6


def test_ce_odd_K_in_garrod_keating_regime_is_not_predicted():
    theory = ufm.theory(deep("ce", K=5, lambda_W=0.005, lambda_H=0.005))
    assert not theory.applicable and "Garrod" in theory.reason


# --- per-layer metrics ------------------------------------------------------------------------
def test_per_layer_metrics_imbalanced():
    problem = deep(depth=4, n=(20, 10, 5, 5), lambda_W=0.005, lambda_H=0.005)
    sol = ufm.solve(problem, restarts=16)
    report = ufm.check(problem, sol)
    assert report.verdict == "agrees"
    for found, predicted in zip(report.layer_metrics, report.predicted_layer_metrics, strict=True):
        assert found["nc1"] < 1e-12
        # a general orthogonal frame: uncentred Gram is diagonal but not ∝ I
        assert predicted["nc2_of"] > 0.05
        assert found["nc2_of"] == pytest.approx(predicted["nc2_of"], abs=1e-7)
        assert found["nc3_uncentred"] == pytest.approx(predicted["nc3_uncentred"], abs=1e-7)


# --- construction and CLI ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(depth=0), "depth must be an integer >= 1"),
        (dict(depth=2, lambda_W=(0.1, 0.1, 0.1)), "sequence of depth=2"),
        (dict(lambda_W=-1.0), "lambda_W must be a finite number > 0"),
        (dict(lambda_W=(0.1, 0.0, 0.1)), r"lambda_W\[1\]"),
        (dict(lambda_H=0.0), "lambda_H must be a finite number > 0"),
        (dict(lambda_b=0.1), "unknown parameter 'lambda_b'"),
    ],
)
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        deep(**bad)


def test_hyperparameters_round_trip():
    problem = deep(n=(3, 4, 5, 6), lambda_W=(0.1, 0.2, 0.3), lambda_H=0.4, bias=True)
    again = ufm.make("deep-linear", **problem.hyperparameters())
    assert again.hyperparameters() == problem.hyperparameters()
    assert problem.hyperparameters()["lambda_W"] == [0.1, 0.2, 0.3]


def test_cli_json_has_plain_keys_and_layers(capsys):
    common = ["--K", "4", "--n", "5", "--d", "8", "--lambda-W", "0.005", "--lambda-H", "0.005"]
    assert cli.main(["solve", "plain", "--loss", "mse", *common, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    args = ["solve", "deep-linear", "--depth", "3", "--restarts", "8", *common, "--json"]
    assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(plain) <= set(out)
    assert set(plain["metrics"]) == set(out["metrics"])
    assert out["check"]["verdict"] == "agrees"
    assert [layer["layer"] for layer in out["layers"]] == [1, 2, 3]
    for layer in out["layers"]:
        assert relative(layer["found"]["W_sv"], layer["predicted"]["W_sv"]) < 1e-8
