"""A synthetic language with a known answer: a seeded order-1 Markov source over V tokens.

Token k (0-based) has stationary frequency pi_k proportional to (k + 1)^(-s): Zipf with exponent
s (class imbalance; s = 0 is balanced). The transition matrix is the mixture

    P = (1 - a) B + a 1 pi^T,

where B walks a seeded random cycle through all tokens lazily: from token i it moves to the
next token on the cycle with probability r_i = min(pi) / pi_i and otherwise repeats i. Every
token sends the same mass min(pi) forward, so pi B = pi, and pi (1 pi^T) = pi: pi is
stationary for every mixing weight a in [0, 1]. The weight sets the ambiguity: a = 1 is an iid
Zipf source (entropy rate H(pi), the most any source with these frequencies can have), a = 0
the least ambiguous one of this family. With s = 0 and a = 0, B is a single cycle: every
context has exactly one next token (entropy rate 0), where classical neural collapse applies.
With s > 0 a deterministic order-1 source cannot have Zipf frequencies (a deterministic chain
is uniform on its cycles), so there the entropy rate is bounded below by that of B.

The Bayes-optimal next-token cross-entropy (nats per token) is the entropy rate
h = sum_i pi_i H(P_i), computed here in closed form in O(V) without forming P.

Order 2 (`synthetic_language(..., order=2)`, `PairMarkovLanguage`): the next token c depends
on the two before it, a = x_{t-2} and b = x_{t-1}:

    Q(c | a, b) = (1 - m) B_b[a, c] + m pi_c,

with B_b a lazy cycle as above, but one seeded random cycle per previous token b, walked by
the token two back: the rule moves a to successor[a, b] (its next token on b's cycle) with
probability r_a = min(pi) / pi_a and otherwise repeats a. Why pi stays exactly Zipf: the pair
law mu(a, b) = pi_a pi_b is stationary for the pair chain (a, b) -> (b, c), because
sum_a pi_a pi_b Q(c | a, b) = pi_b (pi B_b)_c = pi_b pi_c (each B_b keeps pi, as in order 1),
for every mixing weight m and exponent s; the token marginal of mu is pi. Under mu the next
token is independent of the previous one alone: P(c | b) = sum_a pi_a Q(c | a, b) = pi_c, so
the best order-1 (bigram) predictor's loss, H(X_t | X_{t-1}) = H(pi) (`order1_entropy`), is
that of the unigram frequencies, and everything below it needs both tokens. The entropy rate
(Bayes-optimal loss) is h = sum_{a,b} pi_a pi_b H(Q(. | a, b)), each row entropy in closed
form as in order 1: O(V^2) time and memory (the V x V successor table; V <= MAX_ORDER2_VOCAB).
With s = 0 and m = 0 (`deterministic`) every pair has exactly one next token (h = 0), while
for each b the map a -> successor[a, b] is a permutation, so the previous token alone leaves
the next one uniform: order1_entropy = log V. As in order 1, h is concave in m with its
maximum H(pi) at m = 1 (iid), so m is found by bisection. Mixing m > 0 makes the pair chain
irreducible and mu its only stationary law; at m = 0 the pair chain may split into several
cycles (or lazy closed classes), mu is then a stationary law among others, and `sample`
starts every sequence from mu, so every position is still distributed as pi.
"""

import math
from dataclasses import dataclass

import numpy as np

from ufm.errors import InputError

ORDERS = (1, 2)
MAX_ORDER2_VOCAB = 512  # order 2 stores a V x V table of successors


def zipf(vocab_size: int, exponent: float) -> np.ndarray:
    """Frequencies proportional to (k + 1)^(-exponent), k = 0 .. V-1, summing to 1."""
    weights = np.arange(1, vocab_size + 1, dtype=np.float64) ** -float(exponent)
    return weights / weights.sum()


def _plogp(p):
    """-p log p elementwise, 0 at p = 0."""
    p = np.asarray(p, dtype=np.float64)
    return -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


@dataclass(frozen=True)
class _Source:
    """What both orders hold: the Zipf exponent and seed, `stationary` pi, the rule's
    `successor` table, the advance probabilities r and the mixing weight."""

    zipf_exponent: float
    seed: int
    stationary: np.ndarray
    successor: np.ndarray
    advance: np.ndarray
    mixing: float

    @property
    def vocab_size(self) -> int:
        return len(self.stationary)


@dataclass(frozen=True)
class MarkovLanguage(_Source):
    """The source: `stationary` pi, `successor[i]` the next token of i on the cycle,
    `advance[i]` = r_i, and `mixing` a (see the module docstring)."""

    def transition_matrix(self) -> np.ndarray:
        """P[i, j], the probability that token j follows token i (dense V x V)."""
        return _transition(self.stationary, self.successor, self.advance, self.mixing)

    def next_token_entropies(self) -> np.ndarray:
        """H(P_i) in nats for every context i, in closed form."""
        return _row_entropies(self.stationary, self.successor, self.advance, self.mixing)

    @property
    def entropy_rate(self) -> float:
        """sum_i pi_i H(P_i): the Bayes-optimal next-token cross-entropy, nats per token."""
        return float(self.stationary @ self.next_token_entropies())

    @property
    def order1_entropy(self) -> float:
        """H(X_t | X_{t-1}), the best loss of a predictor that sees the previous token only:
        for an order-1 source, the entropy rate itself."""
        return self.entropy_rate

    @property
    def order(self) -> int:
        """How many previous tokens the next one depends on: 1."""
        return 1

    @property
    def deterministic(self) -> bool:
        """Whether every context has exactly one next token."""
        return self.mixing == 0.0 and bool(np.all(self.advance == 1.0))

    def sample(self, n_sequences: int, length: int, seed: int = 0) -> np.ndarray:
        """int32 token sequences, shape (n_sequences, length), each started from pi (so
        every position is distributed as pi) and independent of the others."""
        _check_sample(n_sequences, length)
        rng = np.random.default_rng(seed)
        from_pi = _sampler(rng, self.stationary)
        out = np.empty((n_sequences, length), dtype=np.int32)
        token = from_pi(n_sequences)
        out[:, 0] = token
        for t in range(1, length):
            fresh = rng.random(n_sequences) < self.mixing
            moves = rng.random(n_sequences) < self.advance[token]
            token = np.where(moves, self.successor[token], token)
            token = np.where(fresh, from_pi(n_sequences), token)
            out[:, t] = token
        return out


@dataclass(frozen=True)
class PairMarkovLanguage(_Source):
    """The order-2 source (module docstring): `stationary` pi, `successor[a, b]` the next
    token of the pair (a, b) = (x_{t-2}, x_{t-1}) when the rule advances (a's successor on
    b's cycle), `advance[a]` = r_a, and `mixing` m."""

    @property
    def order(self) -> int:
        """How many previous tokens the next one depends on: 2."""
        return 2

    def next_token_distribution(self, previous2, previous1) -> np.ndarray:
        """Q(. | a, b) for token arrays a = x_{t-2} and b = x_{t-1} (broadcast together):
        float64 rows of shape (*shape, V), each summing to 1."""
        a, b = np.broadcast_arrays(np.asarray(previous2), np.asarray(previous1))
        shape, a, b = a.shape, a.ravel(), b.ravel()
        pi, m, r = self.stationary, self.mixing, self.advance[a]
        rows = np.tile(m * pi, (len(a), 1))
        every = np.arange(len(a))
        rows[every, a] += (1 - m) * (1 - r)  # repeat the token two back
        rows[every, self.successor[a, b]] += (1 - m) * r  # its successor on b's cycle
        return rows.reshape(*shape, len(pi))

    def transition_table(self) -> np.ndarray:
        """The dense (V * V, V) table: row a * V + b is Q(. | a, b). It takes 8 V^3 bytes
        (1 GiB at V = 512); `next_token_distribution` gives chosen rows."""
        V = self.vocab_size
        pairs = np.arange(V * V)
        return self.next_token_distribution(pairs // V, pairs % V)

    def next_token_entropies(self) -> np.ndarray:
        """H(Q(. | a, b)) in nats for every pair context, shape (V, V) indexed [a, b]."""
        return _row_entropies(self.stationary, self.successor.T, self.advance, self.mixing).T

    @property
    def entropy_rate(self) -> float:
        """sum_{a,b} pi_a pi_b H(Q(. | a, b)): the Bayes-optimal next-token cross-entropy
        given the whole past, nats per token."""
        pi = self.stationary
        return float(pi @ self.next_token_entropies() @ pi)

    @property
    def order1_entropy(self) -> float:
        """H(X_t | X_{t-1}) = H(pi): the best loss of a predictor that sees the previous token
        only (it learns nothing beyond the unigram frequencies; module docstring)."""
        return float(_plogp(self.stationary).sum())

    @property
    def deterministic(self) -> bool:
        """Whether every pair context has exactly one next token."""
        return self.mixing == 0.0 and bool(np.all(self.advance == 1.0))

    def sample(self, n_sequences: int, length: int, seed: int = 0) -> np.ndarray:
        """int32 token sequences, shape (n_sequences, length), each started from the
        stationary pair law pi x pi (the first two tokens iid from pi, so every position is
        distributed as pi) and independent of the others."""
        _check_sample(n_sequences, length)
        rng = np.random.default_rng(seed)
        from_pi = _sampler(rng, self.stationary)
        out = np.empty((n_sequences, length), dtype=np.int32)
        out[:, : min(length, 2)] = from_pi((n_sequences, min(length, 2)))
        for t in range(2, length):
            before, last = out[:, t - 2], out[:, t - 1]
            fresh = rng.random(n_sequences) < self.mixing
            moves = rng.random(n_sequences) < self.advance[before]
            token = np.where(moves, self.successor[before, last], before)
            out[:, t] = np.where(fresh, from_pi(n_sequences), token)
        return out


def _check_sample(n_sequences, length):
    for name, value in (("n_sequences", n_sequences), ("length", length)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be an integer >= 1, got {value!r}")


def _sampler(rng, pi):
    """size -> iid draws from pi (inverse CDF) of that shape."""
    cumulative = np.cumsum(pi)
    cumulative[-1] = 1.0

    def from_pi(size):
        return np.minimum(
            np.searchsorted(cumulative, rng.random(size), side="right"), len(cumulative) - 1
        )

    return from_pi


def _transition(pi, successor, advance, mixing):
    V = len(pi)
    walk = np.diag(1.0 - advance)
    walk[np.arange(V), successor] += advance
    return (1.0 - mixing) * walk + mixing * np.broadcast_to(pi, (V, V))


def _row_entropies(pi, successor, advance, mixing):
    base = _plogp(mixing * pi)
    stay = (1.0 - mixing) * (1.0 - advance) + mixing * pi
    move = (1.0 - mixing) * advance + mixing * pi[successor]
    return base.sum() - base - base[successor] + _plogp(stay) + _plogp(move)


def _rate(pi, successor, advance, mixing):
    """The entropy rate: sum_i pi_i H(P_i) (order 1, successor of shape (V,)) or
    sum_{a,b} pi_a pi_b H(Q(. | a, b)) (order 2, successor[a, b] of shape (V, V))."""
    entropies = _row_entropies(pi, successor.T, advance, mixing)  # order 2: indexed [b, a]
    return float(pi @ entropies @ pi) if entropies.ndim == 2 else float(pi @ entropies)


def _mixing_for(pi, successor, advance, entropy_rate):
    """The a in [0, 1] whose entropy rate is `entropy_rate` (bisection: h(a) is concave with
    its maximum H(pi) at a = 1, hence nondecreasing)."""
    low, high = 0.0, 1.0
    lowest, highest = _rate(pi, successor, advance, 0.0), _rate(pi, successor, advance, 1.0)
    if not lowest - 1e-12 <= entropy_rate <= highest + 1e-12:
        raise InputError(
            f"entropy_rate must be in [{lowest:.6g}, {highest:.6g}] nats for this vocab_size, "
            f"zipf_exponent and order, got {entropy_rate!r}"
        )
    for _ in range(200):
        middle = 0.5 * (low + high)
        if _rate(pi, successor, advance, middle) < entropy_rate:
            low = middle
        else:
            high = middle
        if high - low < 1e-15:
            break
    return 0.5 * (low + high)


def _check(vocab_size, zipf_exponent, entropy_rate, deterministic, seed, order):
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 2:
        raise InputError(f"vocab_size must be an integer >= 2, got {vocab_size!r}")
    if isinstance(order, bool) or order not in ORDERS:
        raise InputError(f"order must be one of {ORDERS}, got {order!r}")
    if order == 2 and vocab_size > MAX_ORDER2_VOCAB:
        raise InputError(
            f"vocab_size must be <= {MAX_ORDER2_VOCAB} for order=2 (it stores a V x V table "
            f"of pair successors), got {vocab_size!r}"
        )
    if not (isinstance(zipf_exponent, int | float) and 0 <= zipf_exponent < math.inf):
        raise InputError(f"zipf_exponent must be a finite number >= 0, got {zipf_exponent!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if deterministic and zipf_exponent != 0:
        raise InputError(
            "deterministic=True needs zipf_exponent = 0 (a deterministic source of this family "
            f"is uniform: on its cycle, or for order 2 on the pairs), got "
            f"zipf_exponent={zipf_exponent!r}"
        )
    if deterministic and entropy_rate not in (None, 0, 0.0):
        raise InputError(f"deterministic=True means entropy_rate = 0, got {entropy_rate!r}")
    if entropy_rate is not None and not (
        isinstance(entropy_rate, int | float) and math.isfinite(entropy_rate)
    ):
        raise InputError(f"entropy_rate must be a finite number of nats, got {entropy_rate!r}")


def _successors(vocab_size: int, order: int, seed: int) -> np.ndarray:
    """Order 1: successor[i] on one seeded random cycle through all tokens. Order 2:
    successor[a, b], a's successor on the seeded random cycle of previous token b (one
    independent cycle per b), so a -> successor[a, b] is a permutation for every b."""
    rng = np.random.default_rng(seed)
    if order == 1:
        cycle = rng.permutation(vocab_size)
        successor = np.empty(vocab_size, dtype=np.int64)
        successor[cycle] = np.roll(cycle, -1)
        return successor
    cycles = rng.permuted(np.tile(np.arange(vocab_size), (vocab_size, 1)), axis=1)  # [b, :]
    by_previous = np.empty((vocab_size, vocab_size), dtype=np.int64)
    np.put_along_axis(by_previous, cycles, np.roll(cycles, -1, axis=1), axis=1)
    return np.ascontiguousarray(by_previous.T)


def synthetic_language(
    vocab_size: int,
    zipf_exponent: float = 1.0,
    entropy_rate: float | None = None,
    *,
    deterministic: bool = False,
    seed: int = 0,
    order: int = 1,
) -> MarkovLanguage | PairMarkovLanguage:
    """A seeded Zipfian Markov source over `vocab_size` tokens (module docstring).

    `entropy_rate` (nats per token): the Bayes-optimal next-token loss asked for, between the
    lazy cycles' (m = 0) and H(pi) (an InputError states the range); None: the midpoint of
    that range. `deterministic`: each context has one next token (needs `zipf_exponent` = 0).
    `order`: 1 (the next token depends on the previous one: `MarkovLanguage`) or 2 (on the
    previous two: `PairMarkovLanguage`, vocab_size <= MAX_ORDER2_VOCAB). The stationary token
    frequencies are Zipf(`zipf_exponent`) exactly, for every order and entropy rate.
    """
    _check(vocab_size, zipf_exponent, entropy_rate, deterministic, seed, order)
    pi = zipf(vocab_size, zipf_exponent)
    successor = _successors(vocab_size, order, seed)
    advance = np.minimum(pi.min() / pi, 1.0)
    if deterministic:
        mixing = 0.0
    else:
        if entropy_rate is None:
            ends = [_rate(pi, successor, advance, a) for a in (0.0, 1.0)]
            entropy_rate = 0.5 * (ends[0] + ends[1])
        mixing = _mixing_for(pi, successor, advance, float(entropy_rate))
    source = MarkovLanguage if order == 1 else PairMarkovLanguage
    return source(float(zipf_exponent), seed, pi, successor, advance, mixing)
