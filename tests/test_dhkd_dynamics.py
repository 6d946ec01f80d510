"""Full-batch SGD on the distillation UFM (`ufm.models.dhkd.dynamics`): the code's gradient
projection by hand, the dual head's CE head untouched by the logit loss, descent, the
recorded metrics against numpy, and convergence to the reduced problem's minimum.

Two compilations (one per head structure, ~5 s each): every run of a head shares one
(steps, record_every), since lr, momentum and the projection flag are traced."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

import ufm
from ufm.errors import InputError
from ufm.models.dhkd import dynamics, gradients

STEPS, EVERY = 6000, 100  # the single head reaches its minimum to ~1e-14 by 5000 steps


@pytest.fixture(scope="module")
def single():
    problem = ufm.make("dhkd", heads="single")
    return problem, dynamics.train(problem, steps=STEPS, record_every=EVERY)


@pytest.fixture(scope="module")
def dual():
    return ufm.make("dhkd", heads="dual")


def _tree(**arrays):
    return {k: jnp.asarray(v, dtype=jnp.float64) for k, v in arrays.items()}


def test_projection_by_hand():
    # conflicting: g_kd . g_ce = -1 over ALL parameters (W and H together), |g_ce|^2 = 2,
    # so g_kd + (1/2) g_ce, which is orthogonal to g_ce
    g_ce = _tree(W=[[1.0, 0.0]], H=[[0.0, 1.0]])
    g_kd = _tree(W=[[-1.0, 1.0]], H=[[0.0, 0.0]])
    out = dynamics.project_conflicting(g_ce, g_kd)
    np.testing.assert_allclose(out["W"], [[-0.5, 1.0]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(out["H"], [[0.0, 0.5]], rtol=0, atol=1e-15)
    # the flag off: unchanged even when conflicting
    off = dynamics.project_conflicting(g_ce, g_kd, False)
    np.testing.assert_array_equal(off["W"], g_kd["W"])
    # per block W alone conflicts (-1) but over all parameters the inner product is
    # -1 + 3 = 2 > 0: the code tests the flattened vector, so nothing changes
    g_kd = _tree(W=[[-1.0, 1.0]], H=[[0.0, 3.0]])
    out = dynamics.project_conflicting(g_ce, g_kd)
    for k in g_kd:
        np.testing.assert_array_equal(out[k], g_kd[k])


def test_step_direction_is_data_gradients_plus_decay(single):
    """Unprojected, the step's gradient is the objective's gradient (the decay is the
    model's penalty); projected, the decay's gradient is added after the projection."""
    problem, tr = single

    @jax.jit  # one compilation instead of op-by-op dispatch
    def pieces(params):
        g_ce, g_kd = gradients.term_gradients(problem, params)
        plain, _ = dynamics.direction(problem, params, False)
        projected, conflict = dynamics.direction(problem, params, True)
        return jax.grad(problem.loss)(params), g_ce, g_kd, plain, projected, conflict

    params = {k: jnp.asarray(v) for k, v in tr.params.items()}  # at the minimum: conflict
    full, g_ce, g_kd, plain, projected, conflict = pieces(params)
    decay = {"W": problem.lambda_W * params["W"], "H": problem.lambda_H * params["H"]}
    dot = sum(float(jnp.vdot(g_ce[k], g_kd[k])) for k in params)
    assert dot < 0 and bool(conflict)
    by_hand = dynamics.project_conflicting(g_ce, g_kd)
    assert abs(sum(float(jnp.vdot(g_ce[k], by_hand[k])) for k in params)) < 1e-12 * abs(dot)
    for k in params:
        np.testing.assert_allclose(plain[k], full[k], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(projected[k], g_ce[k] + by_hand[k] + decay[k], rtol=1e-12)


@pytest.mark.parametrize("bias", ["none", "decayed"])
def test_dual_ce_head_gets_no_logit_loss_gradient(bias):
    problem = ufm.make("dhkd", heads="dual", bias=bias)
    params = problem.init(jax.random.PRNGKey(1), jnp.asarray(1.0))
    params = params | ({"b2": jnp.full(problem.K, 0.3)} if bias != "none" else {})
    g_ce, g_kd = jax.jit(lambda p: gradients.term_gradients(problem, p))(params)
    for key in ("W", "b") if bias != "none" else ("W",):
        assert not np.any(np.asarray(g_kd[key])), key  # exactly zero
    assert np.any(np.asarray(g_kd["W2"])) and not np.any(np.asarray(g_ce["W2"]))


def test_dual_ce_head_mean_row_decays_as_weight_decay_alone(dual):
    """CE's logit gradient sums to 0 over the classes, so the CE head's mean row sees only
    the decay (the projection adds multiples of g_ce, whose W rows sum to 0 too): with
    momentum, v <- m v + lambda_W wbar, wbar <- wbar - lr v, a linear recursion (numpy)."""
    lam, lr, m = float(dual.lambda_W), dynamics.LEARNING_RATE, dynamics.MOMENTUM
    W0 = np.asarray(dual.init(jax.random.PRNGKey(0), jnp.asarray(1.0))["W"])
    wbar, v = W0.mean(axis=0), np.zeros(W0.shape[1])
    for _ in range(STEPS):
        v = m * v + lam * wbar
        wbar = wbar - lr * v
    for project in (False, True):
        tr = dynamics.train(dual, steps=STEPS, record_every=EVERY, project=project)
        found = tr.params["W"].mean(axis=0)
        # the mean row decays by ~e^{-15} from ~0.5: compared to the rows' size
        scale = np.max(np.linalg.norm(tr.params["W"], axis=1))
        np.testing.assert_allclose(found, wbar, rtol=0, atol=1e-12 * scale)
        assert np.linalg.norm(W0.mean(axis=0)) > 0.1  # it was not centred to begin with


def test_small_steps_decrease_the_loss(single):
    problem, _ = single
    # plain gradient descent (no momentum) with a small step: every record lower
    tr = dynamics.train(problem, steps=STEPS, record_every=EVERY, lr=1e-3, momentum=0.0)
    assert np.all(np.diff(tr.loss) < 0), tr.loss[:5]


def _numpy_metrics(problem, params) -> dict:
    """The recorded quantities from scratch: numpy logits, margins, the common mode, ETF
    errors and the cosines from the logit gradients by hand (derivations/dhkd.py)."""
    W, H = (np.asarray(params[k], dtype=float) for k in ("W", "H"))
    labels, K, N = problem.labels, problem.K, problem.N
    Z, Zt, T = W @ H, np.asarray(problem.Zt), float(problem.T)
    Y = np.eye(K)[:, labels]
    target = Z[labels, np.arange(N)]
    other = np.where(Y > 0, -np.inf, Z).max(axis=0)
    norms = np.linalg.norm(W, axis=1)
    P = np.eye(K) - 1.0 / K

    def etf_error(G):
        return np.linalg.norm(G / np.linalg.norm(G) - P / np.sqrt(K - 1))

    G_ce = float(problem.gamma) * (scipy.special.softmax(Z, axis=0) - Y) / N
    G_kd = float(problem.alpha) * T * (scipy.special.expit(Z / T) - scipy.special.expit(Zt / T))
    G_kd /= N

    def cos(a, b):
        return np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b))

    Wc = W - W.mean(axis=0)
    return {
        "common_mode_fraction": np.linalg.norm(W.mean(axis=0)) / norms.max(),
        "min_margin": np.min(target - other),
        "accuracy": np.mean(np.argmax(Z, axis=0) == labels),
        "etf_error_uncentred": etf_error(W @ W.T),
        "etf_error_centred": etf_error(Wc @ Wc.T),
        "cos_W": cos(G_ce @ H.T, G_kd @ H.T),
        "cos_H": cos(W.T @ G_ce, W.T @ G_kd),
    }


def test_recorded_metrics_equal_numpy_at_the_last_step(single):
    problem, tr = single
    last = tr.last()
    expected = _numpy_metrics(problem, tr.params)
    for key, value in expected.items():
        atol = 1e-12 if key != "etf_error_centred" else 1e-10  # 0 at the minimum: rounding
        np.testing.assert_allclose(last[key], value, rtol=1e-10, atol=atol, err_msg=key)
    assert last["accuracy"] == 1.0 and last["min_margin"] > 0
    assert tr.step[-1] == STEPS and tr.loss.size == STEPS // EVERY + 1


def test_single_head_reaches_the_reduced_minimum(single):
    """From a random start the code's SGD ends at the reduced problem's minimum (to ~1e-14
    relative by 5000 steps on this seed; asserted loosely), with its common mode."""
    problem, tr = single
    theory = problem.theory()
    gap = (tr.loss[-1] - theory.loss) / theory.loss
    assert -1e-12 < gap < 1e-8, gap
    assert tr.loss[0] > 10 * theory.loss  # it did travel
    predicted = float(theory.quantities["common_mode_fraction"])
    assert predicted > 0.5  # BinaryKL's shift on one head: the head collapse
    np.testing.assert_allclose(tr.common_mode_fraction[-1], predicted, rtol=1e-6)
    # single head at its minimum: the two losses conflict on W and on H alike
    assert tr.cos_W[-1] < 0 and tr.cos_H[-1] < 0 and tr.conflict_steps[-1] == 1.0


@pytest.mark.parametrize(
    "kw",
    [
        {"steps": 0},
        {"steps": 10, "record_every": 3},
        {"record_every": 0},
        {"lr": -1.0},
        {"momentum": 1.0},
    ],
)
def test_bad_settings_are_input_errors(kw, dual):
    with pytest.raises(InputError):
        dynamics.train(dual, **kw)


@pytest.mark.slow  # one more compilation (~5 s)
def test_nonnegative_features_stay_feasible_and_descend():
    """Projected SGD (H clipped at 0 after each step) keeps the post-ReLU features feasible
    and, with a small step, lowers the loss; the reduced minimum stays a lower bound."""
    problem = ufm.make("dhkd", heads="dual", features="nonnegative")
    tr = dynamics.train(problem, steps=2000, record_every=100, lr=1e-2, momentum=0.0)
    assert np.all(tr.params["H"] >= 0)
    assert np.all(np.diff(tr.loss) < 0)
    assert tr.loss[-1] >= problem.lower_bound() * (1 - 1e-12)
