"""The order-2 synthetic Zipfian Markov language: the next token depends on the previous two
(issue 19). Every expected number is recomputed here from the dense pair chain."""

import numpy as np
import pytest

from ufm.errors import InputError
from ufm.language.synthetic import MarkovLanguage, PairMarkovLanguage, synthetic_language


def _zipf(V, s):
    weights = np.array([1.0 / (k + 1) ** s for k in range(V)])
    return weights / weights.sum()


def _entropy(p):
    p = np.asarray(p, dtype=float)
    return float(-(p[p > 0] * np.log(p[p > 0])).sum())


def _pair_chain(table):
    """The (V^2 x V^2) chain of pairs (a, b) -> (b, c) with probability Q(c | a, b)."""
    V = table.shape[1]
    chain = np.zeros((V * V, V * V))
    for a in range(V):
        for b in range(V):
            chain[a * V + b, b * V + np.arange(V)] = table[a * V + b]
    return chain


def _stationary(chain):
    values, vectors = np.linalg.eig(chain.T)
    vector = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    return vector / vector.sum()


def _conditional_entropy(joint):
    """H(Y | X) for a joint law joint[x, y]."""
    marginal = joint.sum(axis=1, keepdims=True)
    ratio = np.where(joint > 0, joint / np.where(marginal > 0, marginal, 1.0), 1.0)
    return float(-(joint * np.log(ratio)).sum())


@pytest.mark.parametrize("V, s, h", [(7, 1.0, None), (6, 1.5, 1.0), (5, 0.0, 0.7)])
def test_pair_chain_keeps_zipf_and_has_the_stated_entropies(V, s, h):
    language = synthetic_language(V, s, h, order=2, seed=4)
    assert isinstance(language, PairMarkovLanguage) and language.order == 2
    assert 0 < language.mixing < 1
    table = language.transition_table()
    assert table.shape == (V * V, V) and np.all(table >= 0)
    assert np.allclose(table.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    # mixing > 0: the pair chain is irreducible, its stationary law is unique
    mu = _stationary(_pair_chain(table)).reshape(V, V)  # mu[a, b]
    target = _zipf(V, s)
    assert np.max(np.abs(mu.sum(axis=0) - target)) < 1e-12  # token marginal is Zipf
    assert np.max(np.abs(mu - np.outer(target, target))) < 1e-12
    rows = table.reshape(V, V, V)
    rate = sum(mu[a, b] * _entropy(rows[a, b]) for a in range(V) for b in range(V))
    assert language.entropy_rate == pytest.approx(rate, rel=0, abs=1e-12)
    if h is not None:
        assert language.entropy_rate == pytest.approx(h, rel=0, abs=1e-10)
    # the best predictor from the previous token only: H(X_t | X_{t-1}) from joint[b, c]
    joint = np.einsum("ab,abc->bc", mu, rows)
    order1 = _conditional_entropy(joint)
    assert language.order1_entropy == pytest.approx(order1, rel=0, abs=1e-12)
    assert order1 > language.entropy_rate + 0.1


def test_rows_on_request_match_the_table():
    language = synthetic_language(9, 1.0, order=2, seed=2)
    table = language.transition_table()
    a, b = np.array([[0, 8], [3, 3]]), np.array([[5, 0], [3, 7]])
    rows = language.next_token_distribution(a, b)
    assert rows.shape == (2, 2, 9)
    assert np.array_equal(rows, table[a * 9 + b])
    entropies = language.next_token_entropies()
    direct = [[_entropy(table[i * 9 + j]) for j in range(9)] for i in range(9)]
    assert np.max(np.abs(entropies - np.array(direct))) < 1e-13


def test_deterministic_pairs_need_both_tokens():
    V = 10
    language = synthetic_language(V, 0.0, deterministic=True, order=2, seed=3)
    table = language.transition_table()
    assert np.all((table == 0) | (table == 1)) and np.all((table == 1).sum(axis=1) == 1)
    assert language.deterministic and language.entropy_rate == 0.0
    rule = table.argmax(axis=1).reshape(V, V)  # rule[a, b]
    # one previous token b leaves all V next tokens possible (over the token a before it)
    assert all(len(set(rule[:, b].tolist())) == V for b in range(V))
    assert language.order1_entropy == pytest.approx(np.log(V), rel=0, abs=1e-12)
    tokens = language.sample(200, 60, seed=0)
    assert np.all(tokens[:, 2:] == rule[tokens[:, :-2], tokens[:, 1:-1]])
    counts = np.zeros((V, V))
    np.add.at(counts, (tokens[:, :-1].ravel(), tokens[:, 1:].ravel()), 1)
    assert _conditional_entropy(counts / counts.sum()) > 0.95 * np.log(V)


def test_empirical_pair_to_next_frequencies_match_the_rule():
    V = 4
    language = synthetic_language(V, 1.0, order=2, seed=5)
    tokens = language.sample(4000, 100, seed=1)
    counts = np.zeros((V, V, V))
    np.add.at(counts, (tokens[:, :-2].ravel(), tokens[:, 1:-1].ravel(), tokens[:, 2:].ravel()), 1)
    seen = counts.sum(axis=2, keepdims=True)
    empirical = counts / seen
    expected = language.transition_table().reshape(V, V, V)
    z = np.abs(empirical - expected) / np.sqrt(expected * (1 - expected) / seen + 1e-12)
    assert z.max() < 5  # 64 cells, each within 5 binomial standard errors
    # the pairs themselves are distributed as pi x pi
    pairs = seen[..., 0] / seen.sum()
    assert np.max(np.abs(pairs - np.outer(_zipf(V, 1.0), _zipf(V, 1.0)))) < 0.005


def test_entropy_rate_matches_a_monte_carlo_estimate():
    V, h = 30, 1.5
    language = synthetic_language(V, 1.0, h, order=2, seed=2)
    n, length = 2000, 250
    tokens = language.sample(n, length, seed=11)
    assert tokens.dtype == np.int32 and tokens.shape == (n, length)
    rows = language.transition_table().reshape(V, V, V)
    losses = -np.log(rows[tokens[:, :-2], tokens[:, 1:-1], tokens[:, 2:]])
    per_sequence = losses.mean(axis=1)  # sequences are independent
    standard_error = per_sequence.std(ddof=1) / np.sqrt(n)
    assert abs(per_sequence.mean() - h) < 3 * standard_error
    frequencies = np.bincount(tokens.ravel(), minlength=V) / tokens.size
    assert np.max(np.abs(frequencies - _zipf(V, 1.0))) < 0.01


def test_iid_end_and_the_largest_vocabulary():
    pi = _zipf(20, 1.2)
    language = synthetic_language(20, 1.2, _entropy(pi), order=2, seed=0)
    assert language.mixing == pytest.approx(1.0, abs=1e-6)
    big = synthetic_language(512, 1.0, 2.0, order=2, seed=1)
    assert big.entropy_rate == pytest.approx(2.0, rel=0, abs=1e-10)
    assert big.order1_entropy == pytest.approx(_entropy(_zipf(512, 1.0)), rel=0, abs=1e-12)
    assert big.successor.shape == (512, 512)


def test_order_one_is_the_default_and_unchanged():
    default, explicit = synthetic_language(30, seed=0), synthetic_language(30, seed=0, order=1)
    assert isinstance(default, MarkovLanguage) and default.order == 1
    assert np.array_equal(default.successor, explicit.successor)
    assert default.order1_entropy == default.entropy_rate


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(order=3), r"order must be one of \(1, 2\)"),
        (dict(order=0), "order must be one of"),
        (dict(order=True), "order must be one of"),
        (dict(order=2, vocab_size=513), "vocab_size must be <= 512 for order=2"),
        (dict(order=2, zipf_exponent=1.0, deterministic=True), "zipf_exponent = 0"),
        (dict(order=2, entropy_rate=100.0), "entropy_rate must be in"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, named):
    with pytest.raises(InputError, match=named):
        synthetic_language(**{"vocab_size": 10, **kwargs})
