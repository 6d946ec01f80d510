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
"""

import math
from dataclasses import dataclass

import numpy as np

from ufm.errors import InputError


def zipf(vocab_size: int, exponent: float) -> np.ndarray:
    """Frequencies proportional to (k + 1)^(-exponent), k = 0 .. V-1, summing to 1."""
    weights = np.arange(1, vocab_size + 1, dtype=np.float64) ** -float(exponent)
    return weights / weights.sum()


def _plogp(p):
    """-p log p elementwise, 0 at p = 0."""
    p = np.asarray(p, dtype=np.float64)
    return -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


@dataclass(frozen=True)
class MarkovLanguage:
    """The source: `stationary` pi, `successor[i]` the next token of i on the cycle,
    `advance[i]` = r_i, and `mixing` a (see the module docstring)."""

    zipf_exponent: float
    seed: int
    stationary: np.ndarray
    successor: np.ndarray
    advance: np.ndarray
    mixing: float

    @property
    def vocab_size(self) -> int:
        return len(self.stationary)

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
    def deterministic(self) -> bool:
        """Whether every context has exactly one next token."""
        return self.mixing == 0.0 and bool(np.all(self.advance == 1.0))

    def sample(self, n_sequences: int, length: int, seed: int = 0) -> np.ndarray:
        """int32 token sequences, shape (n_sequences, length), each started from pi (so
        every position is distributed as pi) and independent of the others."""
        for name, value in (("n_sequences", n_sequences), ("length", length)):
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
        rng = np.random.default_rng(seed)
        cumulative = np.cumsum(self.stationary)
        cumulative[-1] = 1.0

        def from_pi(n):
            return np.minimum(
                np.searchsorted(cumulative, rng.random(n), side="right"), len(cumulative) - 1
            )

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
    return float(pi @ _row_entropies(pi, successor, advance, mixing))


def _mixing_for(pi, successor, advance, entropy_rate):
    """The a in [0, 1] whose entropy rate is `entropy_rate` (bisection: h(a) is concave with
    its maximum H(pi) at a = 1, hence nondecreasing)."""
    low, high = 0.0, 1.0
    lowest, highest = _rate(pi, successor, advance, 0.0), _rate(pi, successor, advance, 1.0)
    if not lowest - 1e-12 <= entropy_rate <= highest + 1e-12:
        raise InputError(
            f"entropy_rate must be in [{lowest:.6g}, {highest:.6g}] nats for this vocab_size "
            f"and zipf_exponent, got {entropy_rate!r}"
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


def _check(vocab_size, zipf_exponent, entropy_rate, deterministic, seed):
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 2:
        raise InputError(f"vocab_size must be an integer >= 2, got {vocab_size!r}")
    if not (isinstance(zipf_exponent, int | float) and 0 <= zipf_exponent < math.inf):
        raise InputError(f"zipf_exponent must be a finite number >= 0, got {zipf_exponent!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if deterministic and zipf_exponent != 0:
        raise InputError(
            "deterministic=True needs zipf_exponent = 0 (a deterministic order-1 source is "
            f"uniform on its cycle), got zipf_exponent={zipf_exponent!r}"
        )
    if deterministic and entropy_rate not in (None, 0, 0.0):
        raise InputError(f"deterministic=True means entropy_rate = 0, got {entropy_rate!r}")
    if entropy_rate is not None and not (
        isinstance(entropy_rate, int | float) and math.isfinite(entropy_rate)
    ):
        raise InputError(f"entropy_rate must be a finite number of nats, got {entropy_rate!r}")


def synthetic_language(
    vocab_size: int,
    zipf_exponent: float = 1.0,
    entropy_rate: float | None = None,
    *,
    deterministic: bool = False,
    seed: int = 0,
) -> MarkovLanguage:
    """A seeded Zipfian order-1 Markov source over `vocab_size` tokens.

    `entropy_rate` (nats per token): the Bayes-optimal next-token loss asked for, between the
    lazy cycle's and H(pi) (an InputError states the range); None: the midpoint of that
    range. `deterministic`: each token has one successor (needs `zipf_exponent` = 0).
    """
    _check(vocab_size, zipf_exponent, entropy_rate, deterministic, seed)
    pi = zipf(vocab_size, zipf_exponent)
    cycle = np.random.default_rng(seed).permutation(vocab_size)
    successor = np.empty(vocab_size, dtype=np.int64)
    successor[cycle] = np.roll(cycle, -1)
    advance = np.minimum(pi.min() / pi, 1.0)
    if deterministic:
        mixing = 0.0
    else:
        if entropy_rate is None:
            ends = [_rate(pi, successor, advance, a) for a in (0.0, 1.0)]
            entropy_rate = 0.5 * (ends[0] + ends[1])
        mixing = _mixing_for(pi, successor, advance, float(entropy_rate))
    return MarkovLanguage(float(zipf_exponent), seed, pi, successor, advance, mixing)
