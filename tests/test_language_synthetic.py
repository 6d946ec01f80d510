"""The synthetic Zipfian Markov language and its exact Bayes-optimal loss (issue 19, part 2)."""

import numpy as np
import pytest

from ufm.errors import InputError
from ufm.language.synthetic import synthetic_language


def _zipf(V, s):
    weights = np.array([1.0 / (k + 1) ** s for k in range(V)])
    return weights / weights.sum()


def _stationary(P):
    """The left eigenvector of P for eigenvalue 1, normalized."""
    values, vectors = np.linalg.eig(P.T)
    vector = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    return vector / vector.sum()


def _entropy_rate(P, pi):
    logs = np.log(np.where(P > 0, P, 1.0))
    return float(-(pi[:, None] * P * logs).sum())


@pytest.mark.parametrize("V, s, h", [(40, 1.0, None), (40, 1.5, 2.0), (25, 0.0, 1.0)])
def test_stationary_distribution_is_the_zipf_target(V, s, h):
    language = synthetic_language(V, s, h, seed=7)
    P = language.transition_matrix()
    assert np.all(P >= 0) and np.allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    target = _zipf(V, s)
    assert np.max(np.abs(target @ P - target)) < 1e-15
    assert np.max(np.abs(_stationary(P) - target)) < 1e-12
    assert language.entropy_rate == pytest.approx(_entropy_rate(P, target), rel=0, abs=1e-12)
    if h is not None:
        assert language.entropy_rate == pytest.approx(h, rel=0, abs=1e-10)


def test_entropy_rate_matches_a_monte_carlo_estimate():
    language = synthetic_language(30, 1.0, 1.5, seed=2)
    P = language.transition_matrix()
    n, length = 2000, 250
    tokens = language.sample(n, length, seed=11)
    assert tokens.dtype == np.int32 and tokens.shape == (n, length)
    losses = -np.log(P[tokens[:, :-1], tokens[:, 1:]])
    per_sequence = losses.mean(axis=1)  # sequences are independent
    standard_error = per_sequence.std(ddof=1) / np.sqrt(n)
    assert abs(per_sequence.mean() - 1.5) < 4 * standard_error
    # every position is distributed as pi: token frequencies match Zipf
    frequencies = np.bincount(tokens.ravel(), minlength=30) / tokens.size
    assert np.max(np.abs(frequencies - _zipf(30, 1.0))) < 0.01


def test_empirical_transitions_match_the_matrix():
    language = synthetic_language(6, 1.0, seed=5)
    tokens = language.sample(4000, 100, seed=1)
    counts = np.zeros((6, 6))
    np.add.at(counts, (tokens[:, :-1].ravel(), tokens[:, 1:].ravel()), 1)
    empirical = counts / counts.sum(axis=1, keepdims=True)
    assert np.max(np.abs(empirical - language.transition_matrix())) < 0.01


def test_deterministic_source_has_one_successor_and_zero_entropy():
    language = synthetic_language(12, 0.0, deterministic=True, seed=3)
    P = language.transition_matrix()
    assert np.all((P == 0) | (P == 1)) and np.all((P == 1).sum(axis=1) == 1)
    assert language.deterministic and language.entropy_rate == 0.0
    tokens = language.sample(3, 40, seed=0)
    successor = np.argmax(P, axis=1)
    assert np.all(tokens[:, 1:] == successor[tokens[:, :-1]])
    # one cycle through all tokens: every token is visited within V steps
    assert all(len(set(row[:12].tolist())) == 12 for row in tokens)


def test_iid_end_has_the_zipf_entropy():
    pi = _zipf(20, 1.2)
    most = float(-(pi * np.log(pi)).sum())
    language = synthetic_language(20, 1.2, most, seed=0)
    assert language.mixing == pytest.approx(1.0, abs=1e-6)
    assert language.entropy_rate == pytest.approx(most, rel=0, abs=1e-10)


def test_seed_changes_the_cycle_and_sample():
    a, b = synthetic_language(30, seed=0), synthetic_language(30, seed=1)
    assert not np.array_equal(a.successor, b.successor)
    assert np.array_equal(a.sample(2, 20, seed=4), a.sample(2, 20, seed=4))


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(vocab_size=1), "vocab_size"),
        (dict(zipf_exponent=-1.0), "zipf_exponent"),
        (dict(zipf_exponent=1.0, deterministic=True), "zipf_exponent = 0"),
        (dict(entropy_rate=100.0), "entropy_rate must be in"),
        (dict(zipf_exponent=1.0, entropy_rate=0.0), "entropy_rate must be in"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, named):
    with pytest.raises(InputError, match=named):
        synthetic_language(**{"vocab_size": 10, **kwargs})
