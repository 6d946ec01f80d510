"""Papyan's pinv NC1 on near-collapsed classes, against the reference implementations'
definition, computed here with numpy:

    (1/K) Tr(Sigma_W pinv(Sigma_B)),  Sigma_B = Mtilde Mtilde^T / K formed as a d x d matrix,

with numpy.linalg.pinv(rtol=None) (cut: eigenvalues of Sigma_B <= d eps x the largest, the
default of torch.linalg.pinv that rhubarbwu/neural-collapse @ c05a0b8 uses) and with
numpy's own default rcond = 1e-15 (felixsh/nc-toolbox @ a527f99). Papyan et al.'s notebook
(neuralcollapse/neuralcollapse @ 7f12011) instead inverts the top K-1 eigenpairs of
Sigma_B with no cut: `nc1_svd`.

Also: `report` asks for the layout of a square feature matrix, and nan labels are errors.
"""

import numpy as np
import pytest
from nc_reference import random_features

from ufm import metrics
from ufm.errors import InputError


def _scatter(H, y, K):
    """(Sigma_W, Sigma_B) by their textbook formulas, sample-weighted mu_G."""
    means = np.stack([H[:, y == k].mean(axis=1) for k in range(K)], axis=1)
    Mt = means - H.mean(axis=1, keepdims=True)
    D = H - means[:, y]
    return D @ D.T / H.shape[1], Mt @ Mt.T / K


def _reference(H, y, K, **pinv_options):
    Sigma_W, Sigma_B = _scatter(H, y, K)
    return np.trace(Sigma_W @ np.linalg.pinv(Sigma_B, **pinv_options)) / K


def _reference_dropped(H, y, K):
    """How many of the min(K-1, d) directions numpy's rank (cut d eps, as pinv) misses."""
    _, Sigma_B = _scatter(H, y, K)
    return min(K - 1, H.shape[0]) - np.linalg.matrix_rank(Sigma_B)


def _papyan_top(H, y, K):
    """Papyan et al.'s notebook form: the top K-1 eigenpairs of Sigma_B, no cut (with 1/K)."""
    Sigma_W, Sigma_B = _scatter(H, y, K)
    lam, U = np.linalg.eigh(Sigma_B)
    top = np.argsort(lam)[::-1][: K - 1]
    return sum(U[:, i] @ Sigma_W @ U[:, i] / lam[i] for i in top) / K


def _paired(means, n, V):
    """Columns mu_k repeated n_k (even) times, sorted by class, plus deviations +v_j, -v_j
    on consecutive columns (v_j the columns of V): the class means are mu_k exactly, up
    to rounding."""
    y = np.repeat(np.arange(len(n)), n)
    E = np.empty((V.shape[0], y.size))
    E[:, 0::2], E[:, 1::2] = V, -V
    return means[:, y] + E, y


def _near_pair(gap, spread, n, d=5, seed=0):
    """Classes 0..K-2 at 2 e_k, class K-1 at `gap` from class K-2 (along e_d); deviations
    +-spread v, v random unit vectors."""
    K = len(n)
    means = 2.0 * np.eye(d, K)
    means[:, K - 1] = means[:, K - 2] + gap * np.eye(d)[d - 1]
    V = np.random.default_rng(seed).standard_normal((d, sum(n) // 2))
    H, y = _paired(means, n, spread * V / np.linalg.norm(V, axis=0))
    return H, y, K


NEAR = [
    # two means 1e-8 apart among means 2 apart, within-class spread 1e-4 (issue 14 item 6):
    # the pinv reference gives 9.9e-10 here; a cut on the singular values of Mtilde, which
    # squares it, kept the 1.25e-17 eigenvalue and gave 2.6e7
    pytest.param(1e-8, 1e-4, (4, 4, 4, 4), id="gap-1e-8-spread-1e-4"),
    pytest.param(1e-8, 1e-1, (4, 4, 4, 4), id="gap-1e-8-spread-1e-1"),
    # the shape of an imbalanced minimizer with minority collapse: two minority means
    # 3e-10 apart (solver noise), within-class spread 1e-9
    pytest.param(3e-10, 1e-9, (20, 20, 2, 2), id="minority-shaped"),
]


@pytest.mark.parametrize("gap, spread, n", NEAR)
def test_nc1_drops_the_direction_of_coinciding_means_as_pinv_does(gap, spread, n):
    H, y, K = _near_pair(gap, spread, n)
    nc1 = float(metrics.nc1_pinv(H, y, K))
    expected = _reference(H, y, K, rtol=None)  # torch.linalg.pinv's default cut
    # 1e-9: Sigma_B's eigenvectors from the rounded product and from the SVD of Mtilde
    # agree to eps / (eigenvalue gap), and Sigma_W is a difference of near-equal numbers
    assert nc1 == pytest.approx(expected, rel=1e-9)
    assert nc1 == pytest.approx(_reference(H, y, K), rel=1e-9)  # numpy's 1e-15
    _, dropped = metrics.nc1_pinv(H, y, K, return_dropped=True)
    assert int(dropped) == _reference_dropped(H, y, K) == 1
    # Papyan's top-(K-1) form keeps the rounding-level eigenvalue and blows up, in the
    # reference (its size is rounding noise) and in nc1_svd alike
    assert _papyan_top(H, y, K) > 1e6 * expected
    assert float(metrics.nc1_svd(H, y, K)) > 1e6 * expected


def test_the_cut_is_relative_to_the_eigenvalues_of_sigma_b():
    # Sigma_B eigenvalues 1 and 1e-10 (singular values of Mtilde 1 and 1e-5): rtol 1e-9
    # drops the second, as numpy.linalg.pinv(Sigma_B, rtol=1e-9) does; 1e-11 keeps it
    K, d, n = 3, 4, 2
    Mt = np.zeros((d, K))
    Mt[0] = np.array([1.0, -1.0, 0.0]) * np.sqrt(K / 2)  # ||Mt row||^2 / K = 1
    Mt[1] = np.array([1.0, 1.0, -2.0]) * np.sqrt(K / 6) * 1e-5  # eigenvalue 1e-10
    H, y = _paired(Mt, (n,) * K, 0.3 * np.random.default_rng(3).standard_normal((d, K)))
    for rtol, dropped_expected in ((1e-9, 1), (1e-11, 0)):
        expected = _reference(H, y, K, rtol=rtol)
        # 1e-5: the 1e-10 eigenpair of the rounded Sigma_B carries a relative error of
        # about eps / 1e-10
        assert float(metrics.nc1_pinv(H, y, K, rtol=rtol)) == pytest.approx(expected, rel=1e-5)
        _, dropped = metrics.nc1_pinv(H, y, K, rtol=rtol, return_dropped=True)
        assert int(dropped) == dropped_expected


# K = 5, d = 6, no classifier, these blocks: the shapes test_metrics_report compiles
TILED = dict(pair_block=3, batch_size=7)


def test_a_generic_point_drops_nothing_and_says_nothing():
    H, y, _, _ = random_features(21, classifier=False)
    out = metrics.report(H, y, **TILED)
    assert out["data"]["nc1_dropped_directions"] == 0
    assert out["data"]["nc1_directions"] == 4  # min(K - 1, d) = min(4, 6)
    assert out["data"]["nc1_pinv_rtol"] == 6 * np.finfo(float).eps
    assert not any(note.startswith("nc1:") for note in out["notes"])
    assert out["metrics"]["nc1"] == pytest.approx(_reference(H, y, 5, rtol=None), rel=1e-9)


def test_report_counts_and_notes_the_dropped_directions():
    H, y, K = _near_pair(1e-8, 1e-4, (2, 2, 2, 2, 2), d=6)
    out = metrics.report(H, y, layout="columns", **TILED)
    assert out["metrics"]["nc1"] == pytest.approx(_reference(H, y, K, rtol=None), rel=1e-9)
    assert out["data"]["nc1_dropped_directions"] == _reference_dropped(H, y, K) == 1
    assert out["data"]["nc1_directions"] == 4
    note = "nc1: 1 of 4 between-class directions were below the pinv cut"
    assert any(n.startswith(note) for n in out["notes"]), out["notes"]
    # the streaming accumulator gives the same count
    acc = metrics.Accumulator(K, H.shape[0])
    acc.update(H.T, y, batch_size=7)
    assert acc.report(pair_block=3)["data"]["nc1_dropped_directions"] == 1


def test_nc1_and_its_dropped_count_under_jit_and_vmap():
    import jax

    H, y, K = _near_pair(1e-8, 1e-4, (4, 4, 4, 4))
    f = jax.jit(lambda H: metrics.nc1_pinv(H, y, K, return_dropped=True))
    nc1, dropped = jax.vmap(f)(np.stack([H, 2.0 * H]))
    expected = _reference(H, y, K, rtol=None)
    np.testing.assert_allclose(nc1, [expected, expected], rtol=1e-9)
    np.testing.assert_array_equal(dropped, [1, 1])


# --------------------------------------------------------------------------- ufm's own minimizers


@pytest.mark.slow
@pytest.mark.parametrize(
    "hyper",
    [
        # MSE: the theory's regime is minority_collapse (n_k <= N^2 lW lH: classes 2, 3 off)
        dict(loss="mse", n=(100, 100, 10, 10), lambda_W=0.016, lambda_H=0.016),
        # CE: no closed form, but the minority means coincide up to solver noise
        dict(loss="ce", n=(20, 20, 2, 2), lambda_W=0.04, lambda_H=0.04),
    ],
    ids=["mse", "ce"],
)
def test_minority_collapsed_minimizers_match_the_reference(hyper):
    import ufm

    problem = ufm.make("plain", K=4, d=8, **hyper)
    if hyper["loss"] == "mse":
        assert ufm.theory(problem).regime == "minority_collapse"
    sol = ufm.solve(problem, seed=0)
    H, y = np.asarray(sol.params["H"]), np.asarray(problem.labels)
    means = np.stack([H[:, y == k].mean(axis=1) for k in range(4)], axis=1)
    # the minority means coincide up to solver noise
    assert np.linalg.norm(means[:, 2] - means[:, 3]) < 1e-6 * np.linalg.norm(means[:, 0])
    # 1e-6: Sigma_W here is ~1e-18 of noise, a difference of near-equal numbers
    nc1 = float(metrics.nc1_pinv(H, y, 4))
    assert nc1 == pytest.approx(_reference(H, y, 4, rtol=None), rel=1e-6)
    _, dropped = metrics.nc1_pinv(H, y, 4, return_dropped=True)
    assert int(dropped) == _reference_dropped(H, y, 4)


# --------------------------------------------------------------------------- awkward inputs


def test_a_square_feature_matrix_needs_its_layout():
    H, y, _, _ = random_features(22, K=5, d=6, n=(2, 1, 1, 1, 1), classifier=False)
    assert H.shape == (6, 6)
    with pytest.raises(InputError, match=r"square.*layout='rows'.*layout='columns'"):
        metrics.report(H, y, **TILED)
    found = metrics.report(H, y, layout="columns", **TILED)["metrics"]
    assert found["nc1"] == pytest.approx(_reference(H, y, 5, rtol=None), rel=1e-9)
    rows = metrics.report(H.T, y, layout="rows", **TILED)["metrics"]
    assert rows["nc1"] == pytest.approx(found["nc1"], rel=1e-12)


@pytest.mark.parametrize(
    "labels, num_classes",
    [
        pytest.param(np.array([0.0, 1, 2, np.nan, 1, 0, 2, 1]), None, id="float"),
        pytest.param(np.array([0.0, 1, 2, np.nan, 1, 0, 2, 1]), 3, id="float-num-classes"),
        pytest.param(np.array(["a", "b", "c", np.nan, "b"] + ["a"] * 3, object), None, id="obj"),
    ],
)
def test_nan_labels_are_an_error_naming_the_first(labels, num_classes):
    H = np.random.default_rng(0).standard_normal((3, 8))
    with pytest.raises(InputError, match=r"labels\[3\] is nan"):
        metrics.report(H, labels, layout="columns", num_classes=num_classes)


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([0.0, 1.0, np.nan, 1.0]), "row 6: label nan is not an integer"),
        (np.array([0.0, 1.5, 1.0, 1.0]), "row 5: label 1.5 is not an integer"),
        (np.array(["0", "1", "1", "0"]), "labels must be integers"),
    ],
)
def test_accumulator_rejects_labels_that_are_not_classes(labels, message):
    acc = metrics.Accumulator(2, 3)
    acc.update(np.ones((4, 3)), np.array([0, 1, 0, 1]))
    with pytest.raises(InputError, match=message):
        acc.update(np.ones((4, 3)), labels)
    acc.update(np.zeros((4, 3)), np.array([0.0, 1.0, 1.0, 0.0]))  # integral floats are fine
    np.testing.assert_array_equal(acc.stats.counts, [4.0, 4.0])
