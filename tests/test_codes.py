"""Spherical codes of ufm/models/plain/codes.py: exact values worked out by hand, the
invariance of the comparison, and the procedure's refusals.
The claims themselves run in test_verify.py."""

import numpy as np
import pytest

import ufm
from ufm.models.plain import codes as vc

EXACT = 1e-12  # constructions from closed forms: round-off only


def rotation(p: int, seed: int) -> np.ndarray:
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((p, p)))
    return Q


def multiset(V) -> dict[float, int]:
    values, counts = np.unique(np.round(vc.pair_cosines(V), 9) + 0.0, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


@pytest.mark.parametrize("K", [3, 4, 5, 7, 12])
def test_polygon(K):
    V = vc.polygon(K)
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1, atol=EXACT)
    assert vc.pair_cosines(V)[-1] == pytest.approx(np.cos(2 * np.pi / K), abs=EXACT)
    # GNC2 log mean: from each point the others sit at chord 2 sin(pi j/K), j = 1 .. K-1
    j = np.arange(1, K)
    mean, var = vc.gnc2(V)
    values = -np.log(2 * np.sin(np.pi * j / K))
    assert mean == pytest.approx(values.mean(), abs=EXACT)
    assert var == pytest.approx(values.var(), abs=EXACT)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_cross_polytope(d):
    V = vc.cross_polytope(d)
    assert V.shape == (2 * d, d)
    assert multiset(V) == {-1.0: d, 0.0: d * (2 * d - 1) - d}  # C(2d, 2) pairs in all
    assert vc.describe(V)["min_angle"] == pytest.approx(90, abs=1e-9)


def test_icosahedron():
    V = vc.icosahedron()
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1, atol=EXACT)
    c = round(1 / np.sqrt(5), 9)
    assert multiset(V) == {-1.0: 6, -c: 30, c: 30}  # 30 edges, each vertex has 5 neighbours
    assert vc.pair_cosines(V)[-1] == pytest.approx(1 / np.sqrt(5), abs=EXACT)
    assert vc.describe(V)["min_angle"] == pytest.approx(63.43494882, abs=1e-8)


def test_tammes_square_antiprism():
    V = vc.square_antiprism()
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1, atol=EXACT)
    # equilateral: square edges (8) and slant edges (8) share the largest cosine
    cos = vc.pair_cosines(V)
    top = 1 / (1 + 2 * np.sqrt(2))
    assert top == pytest.approx((2 * np.sqrt(2) - 1) / 7, abs=1e-15)
    assert cos[-1] == pytest.approx(top, abs=EXACT)
    assert round(cos[-1], 4) == 0.2612  # Schuette & van der Waerden: 74.8585 degrees
    assert np.sum(np.isclose(cos, top, atol=1e-9)) == 16
    assert vc.describe(V)["min_angle"] == pytest.approx(74.8585, abs=5e-5)
    # the four cosines of a general antiprism, by hand
    h2 = 0.3
    r2 = 1 - h2
    expect = sorted([h2] * 8 + [2 * h2 - 1] * 4 + [r2 / np.sqrt(2) - h2] * 8)
    expect = sorted(expect + [-r2 / np.sqrt(2) - h2] * 8)
    np.testing.assert_allclose(vc.pair_cosines(vc.square_antiprism(h2)), expect, atol=EXACT)


def test_log_optimal_antiprism_beats_its_family():
    best = vc.log_optimal_antiprism()
    h2 = best[0, 2] ** 2
    assert h2 == pytest.approx(0.318792, abs=1e-5)  # numerical; Thomson's is 0.314089
    mean = vc.gnc2(best)[0]
    for other in (0.25, vc.TAMMES_8_H2, 0.31, 0.33, 0.4):
        assert mean < vc.gnc2(vc.square_antiprism(other))[0]
    assert mean == pytest.approx(-0.3724292065, abs=1e-9)


def test_triangular_bipyramid():
    V = vc.triangular_bipyramid()
    assert multiset(V) == {-1.0: 1, -0.5: 3, 0.0: 6}
    assert vc.describe(V)["norm_cv"] == pytest.approx(0, abs=EXACT)


def test_comparison_is_invariant_under_rotation_permutation_and_scale():
    rng = np.random.default_rng(0)
    for V in (vc.icosahedron(), vc.square_antiprism(), vc.cross_polytope(4), vc.polygon(7)):
        K, p = V.shape
        moved = 3.0 * (V @ rotation(p, 1).T)[rng.permutation(K)]
        assert vc.cosine_gap(moved, V) < 1e-12
        assert vc.gnc2(moved)[0] == pytest.approx(vc.gnc2(V)[0], abs=1e-12)
    # and it separates codes that differ
    assert vc.cosine_gap(vc.square_antiprism(0.3), vc.square_antiprism()) > 0.03
    assert vc.cosine_gap(vc.triangular_bipyramid(), vc.cross_polytope(3)[:5]) > 0.4


def test_known_codes():
    assert vc.known_code(5, 2).name == "regular 5-gon"
    assert vc.known_code(8, 4).name == "cross-polytope in R^4"
    assert vc.known_code(12, 3).name == "icosahedron"
    assert vc.known_code(8, 3).name == "Tammes square antiprism"
    assert vc.known_code(5, 3).name == "triangular bipyramid"
    assert vc.known_code(7, 3) is None
    for K, d in [(5, 2), (7, 2), (6, 3), (8, 4), (12, 3), (8, 3), (5, 3)]:
        V = vc.known_code(K, d).vectors
        assert V.shape == (K, d)
        np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1, atol=EXACT)


def test_centred_means_of_the_closed_form_etf():
    """K <= d + 1 sanity check: the theory's simplex ETF has centred means of cosine
    -1/(K-1) and W rows parallel to them."""
    problem = ufm.make("plain", loss="ce", K=4, n=2, d=3, lambda_W=0.01, lambda_H=0.01)
    means, W = vc.centred_means(problem, problem.theory().params)
    np.testing.assert_allclose(vc.pair_cosines(means), -1 / 3, atol=1e-12)
    np.testing.assert_allclose(np.sum(vc._unit(W) * vc._unit(means), axis=1), 1, atol=1e-12)


def test_procedure_refuses_without_code_or_convergence(monkeypatch):
    no_code = ufm.make("plain", loss="ce", K=7, n=2, d=3)
    assert vc.spherical_code(no_code).verdict == "inconclusive"
    problem = ufm.make("plain", loss="ce", K=5, n=2, d=2, lambda_W=5e-3, lambda_H=5e-3)
    monkeypatch.setattr(vc, "solve", lambda p, restarts: ufm.solve(p, max_steps=2))
    outcome = vc.spherical_code(problem)
    assert outcome.verdict == "inconclusive" and "converged" in outcome.reason
