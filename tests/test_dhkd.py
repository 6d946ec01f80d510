"""The distillation UFM (ufm.models.dhkd): its losses against a numpy port of the official
code's formulas, its objective against a numpy computation, its teachers, its reduced theory
against an independent conic solve of the convex program (cvxpy) and against ufm's solver, and
its bad-input errors."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.models.dhkd import losses, teachers
from ufm.models.dhkd import theory as reduction


def _np_code_loss(name, Z, Zt, T):
    """The official code's formulas in numpy (distiller_zoo/*.py @7976c69), per column."""
    clamp = lambda p: np.clip(p, 1e-8, 1 - 1e-8)
    sig = lambda x: 1 / (1 + np.exp(-x))
    if name == "kd":
        ls = Z / T - np.log(np.sum(np.exp(Z / T), axis=0))
        lt = Zt / T - np.log(np.sum(np.exp(Zt / T), axis=0))
        return T**2 * np.sum(np.exp(lt) * (lt - ls), axis=0)
    if name == "binary-kl":
        s, t = clamp(sig(Z / T)), clamp(sig(Zt / T))
        kl = t * (np.log(t) - np.log(s)) + (1 - t) * (np.log(1 - t) - np.log(1 - s))
    else:
        d = clamp(sig((Z - Zt) / T))
        kl = 0.5 * (np.log(0.5) - np.log(d)) + 0.5 * (np.log(0.5) - np.log(1 - d))
    return T**2 * np.sum(kl, axis=0)


@pytest.mark.parametrize("name", losses.LOGIT_LOSSES)
@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_losses_equal_the_official_formulas_where_the_clamp_is_inactive(name, T):
    rng = np.random.default_rng(0)
    Z, Zt = 3 * rng.standard_normal((5, 7)), 3 * rng.standard_normal((5, 7))
    expected = _np_code_loss(name, Z, Zt, T)
    got = np.asarray(losses.logit_loss(name, jnp.asarray(Z), jnp.asarray(Zt), T))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    code = np.asarray(losses.code_form(name, jnp.asarray(Z), jnp.asarray(Zt), T))
    np.testing.assert_allclose(code, expected, rtol=1e-12, atol=1e-14)


def test_the_clamp_flattens_the_code_form_beyond_its_edge():
    """Past |z/T| = 18.42 the code's BinaryKL has zero gradient in z; ufm's form does not."""
    T = 2.0
    z = jnp.asarray([[-2 * (losses.CLAMP_EDGE + 1.0)]])
    zt = jnp.asarray([[0.0]])
    code = jax.grad(lambda z: losses.code_form("binary-kl", z, zt, T).sum())(z)
    ours = jax.grad(lambda z: losses.binary_kl(z, zt, T).sum())(z)
    assert float(code[0, 0]) == 0.0
    assert float(ours[0, 0]) == pytest.approx(T * (1 / (1 + np.exp(losses.CLAMP_EDGE + 1)) - 0.5))


@pytest.mark.parametrize(
    "name,zero_sum", [("kd", True), ("binary-kl", False), ("binary-kl-norm", False)]
)
def test_which_logit_gradients_sum_to_zero_over_the_classes(name, zero_sum):
    rng = np.random.default_rng(1)
    Z, Zt = jnp.asarray(rng.standard_normal((4, 3))), jnp.asarray(rng.standard_normal((4, 3)) + 1)
    G = jax.grad(lambda z: losses.logit_loss(name, z, Zt, 2.0).sum())(Z)
    sums = np.abs(np.asarray(G).sum(axis=0))
    assert (sums.max() < 1e-14) == zero_sum


def test_log_cosh_is_accurate_at_small_and_large_arguments():
    x = np.array([1e-9, 1e-3, 0.7, 19.99, 20.01, 700.0])
    series = lambda x: x**2 / 2 - x**4 / 12 + x**6 / 45  # log cosh near 0
    expected = np.array([series(1e-9), series(1e-3), np.log(np.cosh(0.7)), 0, 0, 700 - np.log(2)])
    expected[3:5] = [np.log(np.cosh(19.99)), np.log(np.cosh(20.01))]
    np.testing.assert_allclose(np.asarray(losses.log_cosh(jnp.asarray(x))), expected, rtol=1e-13)


def _np_objective(problem, params) -> float:
    """The objective of the module docstring, in numpy, from the official formulas."""
    p = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    Z = p["W"] @ p["H"] + (p["b"][:, None] if "b" in p else 0)
    Z2 = (
        Z
        if problem.heads == "single"
        else p["W2"] @ p["H"] + (p["b2"][:, None] if "b2" in p else 0)
    )
    y = problem.labels
    lse = np.log(np.sum(np.exp(Z - Z.max(axis=0)), axis=0)) + Z.max(axis=0)
    ce = np.mean(lse - Z[y, np.arange(y.size)])
    kd = np.mean(_np_code_loss(problem.logit_loss, Z2, np.asarray(problem.Zt), float(problem.T)))
    lw, lh = float(problem.lambda_W), float(problem.lambda_H)
    decayed = [k for k in ("W", "W2") if k in p]
    decayed += [k for k in ("b", "b2") if k in p and problem.bias == "decayed"]
    penalty = lw / 2 * sum(np.sum(p[k] ** 2) for k in decayed) + lh / 2 * np.sum(p["H"] ** 2)
    return float(problem.gamma) * ce + float(problem.alpha) * kd + penalty


@pytest.mark.parametrize(
    "hyper",
    [
        {},
        {"heads": "dual", "bias": "decayed", "logit_loss": "binary-kl-norm"},
        {"heads": "dual", "bias": "free", "logit_loss": "kd", "gamma": 0.5, "alpha": 2.0},
        {"bias": "decayed", "teacher": "dark", "teacher_noise": 0.3, "teacher_mistakes": 0.25},
    ],
)
def test_the_objective_equals_a_numpy_computation(hyper):
    problem = ufm.make("dhkd", **hyper)
    params = problem.init(jax.random.PRNGKey(3), jnp.asarray(2.0))
    params = {k: v + 0.1 * jnp.ones_like(v) for k, v in params.items()}  # biases nonzero
    assert float(problem.loss(params)) == pytest.approx(_np_objective(problem, params), rel=1e-12)


def test_teachers():
    counts = (3, 3, 3)
    Zt = teachers.collapsed(3, counts, 4.0, 2.0)
    labels = np.repeat(np.arange(3), counts)
    assert np.allclose(Zt[labels, np.arange(9)] - Zt[(labels + 1) % 3, np.arange(9)], 4.0)
    assert np.allclose(Zt.mean(axis=0), 2.0)
    assert teachers.symmetric(Zt, labels, 3) == pytest.approx((4.0, 2.0))
    dark = dict(similarity=0.3, group=2, noise=0.1, mistakes=0.3, seed=5)
    big = (200,) * 4
    A = teachers.dark(4, big, 4.0, 2.0, **dark)
    assert np.array_equal(A, teachers.dark(4, big, 4.0, 2.0, **dark))  # seeded
    wrong = np.mean(np.argmax(A, axis=0) != np.repeat(np.arange(4), big))
    assert wrong == pytest.approx(0.3, abs=0.05)
    assert teachers.symmetric(A, np.repeat(np.arange(4), big), 4) is None
    quiet = teachers.dark(4, (2,) * 4, 4.0, 2.0, **(dark | {"noise": 0.0, "mistakes": 0.0}))
    assert np.allclose(quiet.mean(axis=0), 2.0)  # the similarity keeps the mean logit
    same, other = quiet[1, 0], quiet[2, 0]  # class 0's logit of class 1 (same group) vs 2
    assert same - other == pytest.approx(0.3 * 4.0)


def test_teacher_file_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.permutation(np.repeat(np.arange(3), [2, 3, 4]))
    logits = rng.standard_normal((9, 3))
    np.savez(tmp_path / "t.npz", logits=logits, labels=labels)
    problem = ufm.make("dhkd", teacher="file", teacher_file=tmp_path / "t.npz", d=4)
    assert problem.counts == (2, 3, 4)
    order = np.argsort(labels, kind="stable")
    np.testing.assert_array_equal(np.asarray(problem.Zt), logits[order].T)
    np.save(tmp_path / "t.npy", logits)
    assert ufm.make("dhkd", teacher="file", teacher_file=tmp_path / "t.npy").counts == (3, 3, 3)


def _cvxpy_minimum(problem) -> float:
    """The convex program in the logits (derivations/dhkd.py step 3), solved by a conic solver
    over all N columns: nuclear norm of the stacked heads' logits, the losses as exponential
    cone atoms, biases as variables."""
    cp = pytest.importorskip("cvxpy")
    K, N, T = problem.K, problem.N, float(problem.T)
    mu = float(np.sqrt(problem.lambda_W * problem.lambda_H))
    y = problem.labels
    Zt = np.asarray(problem.Zt, dtype=float)
    heads = 2 if problem.heads == "dual" else 1
    Z = cp.Variable((heads * K, N))
    b = cp.Variable((heads * K, 1)) if problem.bias != "none" else np.zeros((heads * K, 1))
    Zb = Z + b @ np.ones((1, N))
    Z1, Z2 = Zb[:K], Zb[K:] if heads == 2 else Zb[:K]
    ce = sum(cp.log_sum_exp(Z1[:, i]) - Z1[y[i], i] for i in range(N)) / N
    q = 1 / (1 + np.exp(-Zt / T))
    if problem.logit_loss == "binary-kl":
        entry = cp.multiply(q, cp.logistic(-Z2 / T)) + cp.multiply(1 - q, cp.logistic(Z2 / T))
        const = np.sum(q * np.log(q) + (1 - q) * np.log(1 - q))  # minus the entropy
        kd = T**2 * (cp.sum(entry) + const) / N
    else:
        u = (Z2 - Zt) / T
        kd = T**2 * cp.sum(0.5 * cp.logistic(u) + 0.5 * cp.logistic(-u) - np.log(2)) / N
    value = float(problem.gamma) * ce + float(problem.alpha) * kd + mu * cp.normNuc(Z)
    if problem.bias == "decayed":
        value = value + float(problem.lambda_W) / 2 * cp.sum_squares(b)
    program = cp.Problem(cp.Minimize(value))
    program.solve(solver=cp.CLARABEL)
    assert program.status == cp.OPTIMAL, program.status
    return float(value.value)


@pytest.mark.parametrize(
    "hyper",
    [
        {"heads": "single", "logit_loss": "binary-kl"},
        {"heads": "dual", "logit_loss": "binary-kl-norm", "bias": "decayed", "teacher_shift": 5.0},
        {"heads": "dual", "logit_loss": "binary-kl", "bias": "free", "teacher_shift": -1.0},
    ],
)
def test_reduced_minimum_equals_a_conic_solve_of_the_convex_program(hyper):
    problem = ufm.make("dhkd", K=3, n=2, d=4, lambda_W=0.02, lambda_H=0.01, **hyper)
    assert problem.lower_bound() == pytest.approx(_cvxpy_minimum(problem), rel=2e-6)


@pytest.mark.slow  # ~30 s a case; the catalog's quick claims check the same in `ufm verify`
@pytest.mark.parametrize(
    "hyper",
    [
        {"heads": "single", "bias": "none"},
        {"heads": "dual", "bias": "decayed", "logit_loss": "binary-kl-norm"},
        {"heads": "single", "bias": "decayed", "teacher_shift": 6.0},
    ],
)
def test_the_solver_agrees_with_the_reduced_theory(hyper):
    problem = ufm.make("dhkd", K=3, n=2, d=4, **hyper)
    report = ufm.check(problem, ufm.solve(problem, restarts=2))
    assert report.verdict == "agrees", report.reason


def test_common_mode_fraction_and_bias_split_follow_the_reduction():
    """derivations/dhkd.py steps 5 and 7: |wbar|/|w_k| = sqrt(|M_W| / ((K-1) A/K + |M_W|)),
    and a decayed bias carries min(|M|, c/lambda_W)."""
    for shift, bias in ((2.0, "none"), (6.0, "decayed"), (1.0, "decayed")):
        problem = ufm.make("dhkd", teacher_shift=shift, bias=bias)
        s = problem.setting()
        opt = reduction.reduced(s)
        M_W = opt.M - opt.beta
        K = problem.K
        expected = np.sqrt(abs(M_W) / ((K - 1) * opt.A / K + abs(M_W)))
        W = problem.theory().params["W"]
        assert reduction.common_mode_fraction(W) == pytest.approx(expected, abs=1e-12)
        if bias == "decayed":
            assert opt.beta == pytest.approx(np.sign(opt.M) * min(abs(opt.M), s.edge), abs=1e-15)


def test_theory_is_not_applicable_where_it_only_bounds():
    assert not ufm.make("dhkd", d=3).theory().applicable  # rank 4 > d
    assert "lower bound" in ufm.make("dhkd", d=3).theory().reason
    assert not ufm.make("dhkd", teacher="dark", teacher_noise=0.1).theory().applicable
    assert ufm.make("dhkd", teacher="dark", teacher_noise=0.1).lower_bound() is None


@pytest.mark.parametrize(
    "hyper,message",
    [
        ({"heads": "three"}, "heads must be one of"),
        ({"T": 0}, "T must be a finite number > 0"),
        ({"teacher_mistakes": 1.5}, "teacher_mistakes must be in [0, 1]"),
        ({"teacher": "file"}, "teacher_file is needed exactly when teacher='file'"),
        ({"teacher_file": "x.npy"}, "teacher_file is needed exactly when teacher='file'"),
        ({"teacher_shift": float("nan")}, "teacher_shift must be a finite number"),
        ({"teacher": "file", "teacher_file": "/nonexistent.npy"}, "teacher_file: no such file"),
        ({"logit_loss": "mse"}, "logit_loss must be one of"),
    ],
)
def test_bad_input_names_the_parameter(hyper, message):
    with pytest.raises(ufm.InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ufm.make("dhkd", **hyper)


def test_cli_solve_reports_the_heads_and_exits_2_on_bad_input():
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "ufm.cli", *a], capture_output=True, text=True
    )
    ok = run("solve", "dhkd", "--heads", "dual", "--K", "3", "--n", "2", "--d", "4", "--json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout, parse_constant=lambda c: pytest.fail(c))
    assert report["check"]["verdict"] == "agrees"
    assert report["dhkd"]["common_mode_fraction"] < 1e-8  # the dual CE head is centred
    assert report["dhkd"]["accuracy"] == 1.0
    bad = run("solve", "dhkd", "--T", "-1")
    assert bad.returncode == 2 and "T must be" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_cli_sweep_over_the_teachers_shift(tmp_path):
    """`ufm sweep dhkd` like the other models: every point agrees with the reduced theory, and
    the store's coordinates are the grid's."""
    import xarray as xr

    out = tmp_path / "s.zarr"
    args = ["sweep", "dhkd", "--K", "3", "--n", "2", "--d", "4", "--grid", "teacher_shift=-2,0,3"]
    run = subprocess.run(
        [sys.executable, "-m", "ufm.cli", *args, "--out", str(out), "--json", "--no-progress"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["verdicts"] == {"agrees": 3}
    ds = xr.open_zarr(out, consolidated=False)
    assert ds["teacher_shift"].values.tolist() == [-2.0, 0.0, 3.0]
