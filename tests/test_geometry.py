"""ufm.geometry: constructors against their documented Grams, and the Gram distances.

Expected values are worked out by hand in the comments; float64 throughout (conftest).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm import geometry

# (K, d) from the smallest allowed width d = K-1 to wide frames
ETF_SIZES = [(2, 1), (3, 2), (4, 4), (5, 9), (10, 9), (10, 10)]


def _etf_gram_by_hand(K):
    # unit diagonal, every off-diagonal cosine -1/(K-1)
    return np.where(np.eye(K) == 1, 1.0, -1.0 / (K - 1))


def test_centering_is_the_projector_off_ones():
    P = np.asarray(geometry.centering(4))
    # I - 11^T/4: 3/4 on the diagonal, -1/4 off it
    expected = np.full((4, 4), -0.25) + np.eye(4)
    np.testing.assert_allclose(P, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(P @ P, P, rtol=0, atol=1e-15)
    np.testing.assert_allclose(P @ np.ones(4), 0.0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("K, d", ETF_SIZES)
def test_simplex_etf_has_the_documented_gram(K, d):
    scale = 1.5
    E = np.asarray(geometry.simplex_etf(K, d, scale))
    assert E.shape == (K, d)
    G = E @ E.T
    np.testing.assert_allclose(G, scale**2 * _etf_gram_by_hand(K), rtol=0, atol=1e-12)
    np.testing.assert_allclose(G, scale**2 * geometry.etf_gram(K), rtol=0, atol=1e-12)
    # rows sum to zero: the ETF is already centred
    np.testing.assert_allclose(E.sum(axis=0), 0.0, rtol=0, atol=1e-12)


def test_simplex_etf_default_is_papyans_standard_etf():
    # d defaults to K, and the block is sqrt(K/(K-1)) (I - 11^T/K)
    E = geometry.simplex_etf(3)
    expected = math.sqrt(3 / 2) * (np.eye(3) - 1 / 3)
    np.testing.assert_allclose(E, expected, rtol=0, atol=1e-15)


def test_simplex_etf_two_classes_is_antipodal():
    np.testing.assert_allclose(geometry.simplex_etf(2, 1), [[1.0], [-1.0]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("K, d", [(3, 3), (4, 7), (1, 2)])
def test_orthogonal_frame_has_the_documented_gram(K, d):
    F = np.asarray(geometry.orthogonal_frame(K, d, 2.0))
    assert F.shape == (K, d)
    np.testing.assert_allclose(F @ F.T, 4.0 * np.eye(K), rtol=0, atol=1e-15)
    np.testing.assert_allclose(F @ F.T, 4.0 * geometry.of_gram(K), rtol=0, atol=1e-15)


def test_etf_gram_by_hand():
    np.testing.assert_allclose(
        geometry.etf_gram(3), [[1, -0.5, -0.5], [-0.5, 1, -0.5], [-0.5, -0.5, 1]], atol=1e-15
    )


def test_too_narrow_or_too_few_classes_raise():
    with pytest.raises(ValueError, match=r"d >= K-1 = 4.*d=3"):
        geometry.simplex_etf(5, 3)
    with pytest.raises(ValueError, match=r"K=5.*d >= K.*d=4"):
        geometry.orthogonal_frame(5, 4)
    with pytest.raises(ValueError, match="K must be"):
        geometry.simplex_etf(1)
    with pytest.raises(ValueError, match="K must be"):
        geometry.etf_gram(1)


def test_dtype_flows_from_scale_or_argument():
    # x64 is on (conftest), yet float32 in gives float32 out
    assert geometry.simplex_etf(4, 3, jnp.float32(2.0)).dtype == jnp.float32
    assert geometry.simplex_etf(4, 5, dtype=jnp.float32).dtype == jnp.float32
    assert geometry.orthogonal_frame(3, 4, jnp.float32(1.0)).dtype == jnp.float32
    assert geometry.simplex_etf(4).dtype == jnp.float64
    assert geometry.simplex_etf(4, scale=2).dtype == jnp.float64  # int scale -> default float


def test_constructors_jit_with_traced_scale():
    f = jax.jit(lambda s: geometry.simplex_etf(4, 3, s))
    np.testing.assert_allclose(f(2.0), geometry.simplex_etf(4, 3, 2.0), rtol=0, atol=1e-15)


def test_gram_distance_zero_for_positive_multiples_only():
    T = geometry.etf_gram(4)
    assert geometry.gram_distance(3.0 * T, T) == pytest.approx(0.0, abs=1e-15)
    assert geometry.gram_distance(T, 0.2 * T) == pytest.approx(0.0, abs=1e-15)
    # a negative multiple points the other way: ||-T/|T| - T/|T||| = 2
    assert geometry.gram_distance(-T, T) == pytest.approx(2.0, abs=1e-15)
    assert geometry.gram_distance(geometry.of_gram(4), T) > 0.1


def test_gram_distance_identity_against_etf_by_hand():
    # ||I/2 - P/sqrt3||^2 = 1 + 1 - 2 Tr(P)/(2 sqrt3) = 2 - sqrt3 for K = 4
    value = geometry.gram_distance(jnp.eye(4), geometry.centering(4))
    assert value == pytest.approx(math.sqrt(2 - math.sqrt(3)), abs=1e-14)


def test_gram_distance_is_scale_invariant():
    A = np.random.default_rng(0).standard_normal((5, 5))
    G, T = A @ A.T, geometry.etf_gram(5)
    base = geometry.gram_distance(G, T)
    assert base > 0
    for c in (1e-3, 0.7, 250.0):
        assert geometry.gram_distance(c * G, T) == pytest.approx(float(base), rel=1e-12)
        assert geometry.gram_distance(G, c * T) == pytest.approx(float(base), rel=1e-12)


def test_gram_distance_of_zero_gram_is_one():
    T = geometry.etf_gram(3)
    assert geometry.gram_distance(jnp.zeros((3, 3)), T) == 1.0
    # and the gradient there is finite
    grad = jax.grad(geometry.gram_distance)(jnp.zeros((3, 3)), T)
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_gram_distance_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        geometry.gram_distance(jnp.eye(3), jnp.eye(4))
