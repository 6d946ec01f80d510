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


# --- the softmax code (ufm/models/plain/softmax_code.py) ------------------------------------
from ufm.models.plain import softmax_code as sc  # noqa: E402

CODE = 1e-8  # the polished code's rho_ovr and cosines: SLSQP's precision, ~1e-10 seen


def test_hull_distance_by_hand():
    # to a segment: the foot inside it, then past an end
    seg = np.array([[0.0, -1.0], [0.0, 1.0]])
    assert sc.hull_distance(np.array([3.0, 0.5]), seg) == pytest.approx(3.0, abs=1e-12)
    assert sc.hull_distance(np.array([3.0, 5.0]), seg) == pytest.approx(5.0, abs=1e-12)
    # inside a triangle: 0; to a triangle in 3D from above its centroid: the height
    tri = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    assert sc.hull_distance(tri.mean(axis=0), tri) == pytest.approx(0, abs=1e-12)
    assert sc.hull_distance(np.ones(3), tri) == pytest.approx(2 / np.sqrt(3), abs=1e-12)


@pytest.mark.parametrize("K", [3, 4, 5, 7])
def test_one_vs_rest_distance_of_the_polygon(K):
    """From the vertex (1, 0), the nearest point of the other vertices' hull is the middle of
    the chord joining its two neighbours (at angles +-2 pi/K): distance 1 - cos(2 pi/K)."""
    np.testing.assert_allclose(
        sc.ovr_distances(vc.polygon(K)), 1 - np.cos(2 * np.pi / K), atol=1e-12
    )


def test_one_vs_rest_distances_by_hand():
    # simplex of d+1 vertices: the opposite facet's centroid is -w_k/d, so 1 + 1/d
    for d in (2, 3, 5):
        simplex = np.eye(d + 1) - 1 / (d + 1)  # centred basis: a regular simplex in R^{d+1}
        np.testing.assert_allclose(sc.ovr_distances(vc._unit(simplex)), 1 + 1 / d, atol=1e-12)
    # cross-polytope: the others lie in x_1 <= 0 and their hull holds 0, so 1
    np.testing.assert_allclose(sc.ovr_distances(vc.cross_polytope(4)), 1, atol=1e-12)
    # icosahedron: the 5 neighbours (cosine 1/sqrt 5) span a face-plane at height 1/sqrt 5
    np.testing.assert_allclose(sc.ovr_distances(vc.icosahedron()), 1 - 1 / np.sqrt(5), atol=1e-12)
    # two different 5-point codes of rho 1 in R^3 (the same half-space argument)
    np.testing.assert_allclose(sc.ovr_distances(vc.triangular_bipyramid()), 1, atol=1e-12)
    np.testing.assert_allclose(sc.ovr_distances(vc.cross_polytope(3)[:5]), 1, atol=1e-12)
    # rho_ovr normalizes rows first; a point inside the others' hull has distance 0
    assert sc.rho_ovr(3.0 * vc.polygon(5)) == pytest.approx(1 - np.cos(2 * np.pi / 5), abs=1e-12)
    inside = np.vstack([vc.polygon(4), [[0.0, 0.0]]])
    assert sc.rho_ovr(inside, normalize=False) == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("K", [4, 5, 6])
def test_softmax_code_is_the_regular_polygon_for_d_2(K):
    code = sc.softmax_code(K, 2, restarts=4, seed=1)
    np.testing.assert_allclose(np.linalg.norm(code.vectors, axis=1), 1, atol=1e-12)
    assert code.rho == pytest.approx(1 - np.cos(2 * np.pi / K), abs=CODE)
    assert vc.cosine_gap(code.vectors, vc.polygon(K)) < 1e-6


@pytest.mark.parametrize("d", [2, 3, 4])
def test_softmax_code_is_the_simplex_for_K_d_plus_1(d):
    code = sc.softmax_code(d + 1, d, restarts=3, seed=0)
    assert code.rho == pytest.approx(1 + 1 / d, abs=CODE)
    np.testing.assert_allclose(vc.pair_cosines(code.vectors), -1 / d, atol=1e-6)


def test_softmax_code_for_K_2d_reaches_the_cross_polytope_value():
    code = sc.softmax_code(6, 3, restarts=3, seed=0)
    assert code.rho == pytest.approx(1.0, abs=CODE)
    assert vc.cosine_gap(code.vectors, vc.cross_polytope(3)) < 1e-6


def test_softmax_code_is_deterministic_by_seed():
    a, b = sc.softmax_code(5, 3, restarts=2, seed=7), sc.softmax_code(5, 3, restarts=2, seed=7)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.restart_rhos, b.restart_rhos)
    other = sc.softmax_code(5, 3, restarts=2, seed=8)
    assert other.rho == pytest.approx(a.rho, abs=CODE)  # the value, not the configuration


def test_normalized_margin():
    """Unit polygon classifiers with features h_k = w_k: every margin is 1 - cos(2 pi/K) and
    |W|_F |H|_F / K = 1; rescaling W by a and H by 1/a, or both, changes nothing."""
    V = vc.polygon(7)
    expect = 1 - np.cos(2 * np.pi / 7)
    assert vc.normalized_margin(V, V) == pytest.approx(expect, abs=1e-12)
    assert vc.normalized_margin(5 * V, V / 5) == pytest.approx(expect, abs=1e-12)
    assert vc.normalized_margin(2 * V, 3 * V) == pytest.approx(expect, abs=1e-12)


def test_softmax_match_refuses_without_convergence(monkeypatch):
    problem = ufm.make("plain", loss="ce", K=5, n=2, d=2, lambda_W=5e-3, lambda_H=5e-3)
    monkeypatch.setattr(vc, "solve", lambda p, restarts: ufm.solve(p, max_steps=2))
    outcome = vc.softmax_code_match(problem)
    assert outcome.verdict == "inconclusive" and "converged" in outcome.reason
    assert outcome.predicted == f"softmax code, rho_ovr {1 - np.cos(2 * np.pi / 5):.9f}"
