"""The mixup comparison (`ufm.networks.fisher`): its measurements against independent
computations, a stand-in network that IS the mixup UFM's optimum (every number must then say
"model"), and the quick experiment end to end."""

import json
import types

import numpy as np
import pytest

import ufm
from ufm import _output, geometry
from ufm.models.mixup import theory
from ufm.networks import fisher

LAMS = fisher.LAMS


class Linear:
    """A linear 'network': features A x, logits W A x + b (mixing is then exact in lam)."""

    def __init__(self, A, W, b):
        self.A, self.W, self.b = A, W, b
        self.classifier = types.SimpleNamespace(weight=W, bias=b)

    def features(self, x, reference=None):
        h = np.asarray(x) @ self.A.T
        return [h], h @ self.W.T + self.b


class ModelNetwork:
    """Inputs are soft labels y~ (K,); the feature is the mixup UFM's optimum for y~ under a
    simplex ETF W of row norm r at lambda_bar (centred logits z = kappa (y~ - softmax z),
    h = W^T (y~ - p) / lambda_bar, derivations/mixup.py step 2), computed by Newton's method."""

    def __init__(self, K, d, r, lambda_bar):
        self.W = np.asarray(geometry.simplex_etf(K, d, r, dtype=np.float64))
        self.kappa, self.lambda_bar = theory.kappa(K, r, lambda_bar), lambda_bar
        self.classifier = types.SimpleNamespace(weight=self.W, bias=None)

    def features(self, x, reference=None):
        Y = np.asarray(x).T
        Z = theory.ce_logits(Y, self.kappa)
        P = np.exp(Z) / np.exp(Z).sum(axis=0)
        H = self.W.T @ (Y - P) / self.lambda_bar
        return [H.T], (self.W @ H).T


def one_hot_data(K=4, n=6):
    y = np.repeat(np.arange(K), n)
    return types.SimpleNamespace(x_train=np.eye(K)[y], y_train=y, K=K)


def test_pairs_are_same_or_different_class_and_distinct():
    y = np.repeat(np.arange(5), [7, 3, 9, 4, 6])
    i, j = fisher.draw_pairs(y, 5, 40, same=True)
    assert i.size == 40 and np.all(y[i] == y[j]) and np.all(i != j)
    assert set(y[i]) == set(range(5))
    i, j = fisher.draw_pairs(y, 5, 40, same=False)
    assert i.size == 40 and np.all(y[i] != y[j])


def test_mixed_outputs_of_a_linear_network():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 3))
    net = Linear(rng.standard_normal((5, 3)), rng.standard_normal((4, 5)), rng.standard_normal(4))
    i, j = np.array([0, 3, 7]), np.array([1, 2, 9])
    H, Z = fisher.mixed_outputs(net, x, i, j, LAMS)
    for l, lam in enumerate(LAMS):
        for p in range(3):
            h = lam * net.A @ x[i[p]] + (1 - lam) * net.A @ x[j[p]]
            np.testing.assert_allclose(H[l, p], h, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(Z[l, p], net.W @ h + net.b, rtol=1e-12, atol=1e-12)


def test_same_class_spread_of_constant_and_of_linear_features():
    L, P, d, K = len(LAMS), 3, 5, 4
    rng = np.random.default_rng(2)
    c = np.array([0, 2, 3])
    means = rng.standard_normal((K, d))
    clean = {"means": means, "scale": 2.0, "within": 0.3}
    Z = np.zeros((L, P, K))
    Z[:, np.arange(P), c] = 2.5  # margin z_c - mean of the others = 2.5
    H = np.broadcast_to(means[c], (L, P, d))  # every mix at its class mean
    out = fisher.same_class(H, Z, c, clean)
    assert out["feature_spread"] == pytest.approx(0, abs=1e-14)
    assert out["class_distance"] == pytest.approx(0, abs=1e-14)
    assert out["margin_mean"] == pytest.approx(2.5) and out["margin_spread"] < 1e-14
    # h(lam) = lam a + (1 - lam) b: distance from the lam-mean is |lam - mean lam| ||a - b||
    a, b = rng.standard_normal((2, P, d))
    lam = np.asarray(LAMS)[:, None, None]
    out = fisher.same_class(lam * a + (1 - lam) * b, Z, c, clean)
    rms = np.std(LAMS) * np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1)))
    assert out["feature_spread"] == pytest.approx(rms / 2.0, rel=1e-12)
    # at lam = 1/2 (index 9) the distance from the class mean is |(a + b)/2 - mu_c|
    middle = np.linalg.norm((a + b) / 2 - means[c], axis=1).mean() / 2.0
    assert out["class_distance_per_lam"][9] == pytest.approx(middle, rel=1e-12)


def test_clean_geometry_of_known_class_means():
    K, d = 3, 4
    means = np.array([[3.0, 0, 0, 1], [0, 3.0, 0, 1], [0, 0, 3.0, 1]])
    noise = np.array([[0.5, 0, 0, 0], [-0.5, 0, 0, 0]])  # two samples per class
    H = (means[:, None, :] + noise[None]).reshape(-1, d)
    y = np.repeat(np.arange(K), 2)
    out = fisher.clean_geometry(H, y, K)
    np.testing.assert_allclose(out["mu"], [1, 1, 1, 1], rtol=1e-12)
    np.testing.assert_allclose(out["means"], means, rtol=1e-12)
    assert out["scale"] == pytest.approx(np.sqrt(6.0))  # |(2, -1, -1, 0)|
    assert out["within"] == pytest.approx(0.5 / np.sqrt(6.0))


def test_span_fraction_inside_outside_and_random():
    rng = np.random.default_rng(3)
    d, P = 12, 4
    W = rng.standard_normal((6, d))
    c1, c2 = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4])
    coef = rng.standard_normal((2, 5, P, 1))
    inside = coef[0] * W[c1] + coef[1] * W[c2]  # (5, P, d)
    bases = fisher.pair_bases(W, c1, c2)
    np.testing.assert_allclose(fisher.span_fraction(inside, bases), 1, rtol=1e-12)
    Q = np.linalg.qr(W.T, mode="complete")[0][:, 6:]  # orthogonal to every row
    outside = np.einsum("dk,lpk->lpd", Q, rng.standard_normal((5, P, d - 6)))
    np.testing.assert_allclose(fisher.span_fraction(outside, bases), 0, atol=1e-12)
    # a uniformly random 2-dim subspace holds 2/d of a vector's energy on average
    U = rng.standard_normal((1, 4000, d))
    random_bases = np.linalg.qr(rng.standard_normal((4000, d, 2)))[0]
    assert fisher.span_fraction(U, random_bases)[0] == pytest.approx(2 / d, rel=0.05)


def test_gap_fit_recovers_slope_and_shape():
    P = 7
    offsets = np.linspace(-0.2, 0.2, P)
    odds = np.log(np.asarray(LAMS) / (1 - np.asarray(LAMS)))
    fit = fisher.gap_fit(2 * odds[:, None] + 0.3 + 0 * offsets, LAMS)
    assert fit["slope"] == pytest.approx(2) and fit["intercept"] == pytest.approx(0.3)
    assert fit["r2"] == pytest.approx(1) and fit["r2_linear_in_lam"] < 0.99
    line = 5 * (2 * np.asarray(LAMS) - 1)[:, None] + offsets
    assert fisher.gap_fit(line, LAMS)["r2_linear_in_lam"] > fisher.gap_fit(line, LAMS)["r2"]


def test_model_gaps_against_the_worked_example_and_the_mixup_problem():
    # docs worked example (shared/theory/mixup.md section 6): K=4, r=1, lambda_bar=0.5
    assert fisher.model_gaps(4, 8 / 3, [0.75])[0] == pytest.approx(0.7021059, abs=1e-7)
    # ufm's mixup problem under a fixed ETF: its predicted column logits, c1=0, c2=1
    K, n, lam_H, r = 4, 10, 2e-3, 1.5
    lams = (0.2, 0.5, 0.9)
    problem = ufm.make("mixup", K=K, n=n, d=K, w_norm=r, lambda_H=lam_H, mix=list(lams))
    cols = problem.columns
    Z = problem.theory().quantities["column_logits"]
    sel = (cols["c1"] == 0) & (cols["c2"] == 1)
    kappa = theory.kappa(K, r, K * n * lam_H)
    gaps = Z[0, sel] - Z[1, sel]
    np.testing.assert_allclose(fisher.model_gaps(K, kappa, cols["lam"][sel]), gaps, rtol=1e-9)


def test_kappa_fit_recovers_the_kappa_of_a_model_curve():
    curve = fisher.model_gaps(10, 37.0)
    kappa, residual = fisher.fit_kappa(curve, 10)
    assert kappa == pytest.approx(37.0, rel=1e-3) and residual < 1e-4


def test_curve_shape_of_a_line_the_log_odds_and_a_sigmoid():
    lam = np.asarray(LAMS)
    assert fisher.curve_shape(3 * lam - 1) == pytest.approx(1.0)
    centre = 2 * np.log(0.55 / 0.45) / 0.1  # log-odds across 1/2, over its end-to-end slope
    assert fisher.curve_shape(np.log(lam / (1 - lam))) == pytest.approx(
        centre / (2 * np.log(19) / 0.9)
    )
    assert fisher.curve_shape(np.tanh(8 * (lam - 0.5))) > 1.5


def test_model_side_finds_the_scale_of_a_scaled_model():
    K, r, lambda_bar = 10, 3.0, 0.02
    W = np.asarray(geometry.simplex_etf(K, 12, r, dtype=np.float64))
    curve = fisher.model_gaps(K, theory.kappa(K, r, lambda_bar))
    gaps = 1.7 * curve[:, None] + np.array([-0.3, 0.3])  # two pairs, mean 1.7 x model
    out = fisher.model_side(W, lambda_bar, gaps, margin=1.0, lams=LAMS)["mapped"]
    assert out["scale"] == pytest.approx(1.7) and out["scaled_error"] < 1e-12
    assert out["mean_gap_error"] == pytest.approx(0.7)
    expected = np.sqrt(np.mean((0.7 * curve[:, None] + np.array([-0.3, 0.3])) ** 2))
    assert out["gap_error"] == pytest.approx(expected / np.sqrt(np.mean(curve**2)))


def test_centred_row_norm_ignores_a_common_row():
    W = np.asarray(geometry.simplex_etf(5, 7, 2.5, dtype=np.float64))
    assert fisher.centred_row_norm(W + np.arange(7.0)) == pytest.approx(2.5, rel=1e-12)


def test_a_network_that_is_the_model_scores_the_model():
    """Inputs are one-hot class codes, so a same-class mix is the clean input (any lam) and a
    different-class mix is the soft label: the stand-in network returns the UFM optimum."""
    K, d, r, lambda_bar = 4, 6, 1.3, 0.05
    data = one_hot_data(K)
    net = ModelNetwork(K, d, r, lambda_bar)
    out = fisher.measure(net, data, lambda_bar / data.x_train.shape[0], pairs=40)
    s, m, dc = out["same_class"], out["model"], out["different_class"]
    assert s["feature_spread"] < 1e-12 and s["margin_spread"] < 1e-12
    assert m["margin_error"] == pytest.approx(0, abs=1e-9)
    assert dc["span"] == pytest.approx(1, abs=1e-12) and dc["span_rows"] == pytest.approx(1)
    assert dc["span_other"] < 0.9 and dc["boundary"] < 1e-9
    assert m["mapped"]["kappa"] == pytest.approx(net.kappa)
    assert m["mapped"]["gap_error"] < 1e-9 and m["mapped"]["mean_gap_error"] < 1e-9
    assert m["fitted"]["kappa"] == pytest.approx(net.kappa, rel=1e-3)
    assert m["mapped"]["scale"] == pytest.approx(1) and m["mapped"]["scaled_error"] < 1e-9


def _run(net, data, alpha, terminal):
    lambda_bar = 0.05
    numbers = fisher.measure(net, data, lambda_bar / data.x_train.shape[0], pairs=40)
    status = {"train_error": 0.0, "test_error": 0.1, "terminal_phase": terminal}
    decay = lambda_bar / data.x_train.shape[0]
    return {"mixup_alpha": alpha, "feature_decay": decay} | status | numbers


def test_summary_judges_only_terminal_runs_and_compares_with_the_control():
    data = one_hot_data(4)
    model = ModelNetwork(4, 6, 1.3, 0.05)
    rng = np.random.default_rng(4)
    off = Linear(rng.standard_normal((6, 4)), model.W, np.zeros(4))  # features linear in lam
    runs = [_run(model, data, 1.0, True), _run(off, data, 0.0, True)]
    (group,) = fisher.summary(runs)["groups"].values()
    assert all(c["holds"] for c in group["checks"])
    closer = [c["mixup_closer"] for c in group["checks"]]
    assert closer.count(True) >= 4  # the control's same-class mixes sit at one input too
    json.dumps(_output.jsonable(group), allow_nan=False)
    runs[0]["terminal_phase"] = False
    out = fisher.summary(runs)
    (group,) = out["groups"].values()
    assert all(c["holds"] is None for c in group["checks"])
    assert any("did not reach zero training error" in line for line in out["text"])


@pytest.mark.slow  # ~45 s on 2 cores: two trainings, then the comparison and the figure
def test_quick_experiment_end_to_end(tmp_path):
    from ufm.networks import experiments

    ds, comparison = experiments.run("fisher", quick=True, progress=False)
    json.dumps(comparison, allow_nan=False)
    runs = comparison["runs"]
    assert sorted(r["mixup_alpha"] for r in runs) == [0.0, 1.0]
    for run in runs:
        assert (run.get("note") is None) == run["terminal_phase"]
        assert 0 <= run["different_class"]["span"] <= 1
        assert run["different_class"]["span_random"] == pytest.approx(2 / 64)
    path = fisher.plot(ds, comparison, tmp_path / "fisher.png")
    assert path.stat().st_size > 10_000
    from test_figures import _load, check_layout

    fig_module = _load("fisher")
    fig = fig_module.plot({"ds": ds, "comparison": comparison}, tmp_path / "paper.png")
    check_layout(fig_module, fig, tmp_path / "paper.png")


def test_model_gaps_equal_mixed_gaps_one_lam_at_a_time():
    for K, kappa in ((3, 2.0), (10, 300.0)):
        expected = [np.subtract(*theory.mixed_gaps(K, kappa, lam)) for lam in LAMS]
        np.testing.assert_allclose(fisher.model_gaps(K, kappa), expected, rtol=1e-10, atol=1e-12)


def test_different_class_span_gap_and_boundary_of_a_known_geometry():
    rng = np.random.default_rng(5)
    K, d, P = 5, 9, 6
    W = rng.standard_normal((K, d))
    mu = rng.standard_normal(d)
    c1, c2 = np.array([0, 1, 2, 3, 4, 0]), np.array([1, 2, 3, 4, 0, 2])
    lam = np.asarray(LAMS)[:, None, None]
    shift = np.linspace(-0.5, 0.5, P)[None, :, None]  # moves each pair off the boundary
    H = mu + (lam + shift) * W[c1] + (1 - lam) * W[c2]  # in mu + span{w_c1, w_c2}
    Z = H @ W.T
    out = fisher.different_class(H, Z, c1, c2, W, mu, LAMS)
    np.testing.assert_allclose(out["span_per_lam"], 1, rtol=1e-12)
    assert out["span_rows"] == pytest.approx(1) and out["span_random"] == pytest.approx(2 / d)
    gaps = np.einsum("lpd,pd->lp", H, W[c1] - W[c2])
    np.testing.assert_allclose(out["gap_per_lam"], gaps.mean(axis=1), rtol=1e-12)
    ends = (np.abs(gaps[0]).mean() + np.abs(gaps[-1]).mean()) / 2
    assert out["boundary"] == pytest.approx(np.abs(gaps[9]).mean() / ends)
