"""The next-token UFM's data: distinct contexts, their frequencies and next-token targets.

Three sources, all order 1 (a context is the previous token):

* ``synthetic``: the seeded Zipfian Markov language of `ufm.language.synthetic`; the contexts
  are its V tokens with the stationary distribution pi as weights, and context m's target is
  row m of the transition matrix (exact population statistics, no sampling).
* ``one-hot``: the same language with zipf_exponent 0 and ``deterministic``: V equally
  frequent contexts, each followed by exactly one token, the contexts' successors a
  permutation (the balanced one-hot case, where the plain CE UFM's simplex ETF applies).
* ``bigram``: the bundled corpus (`ufm.language.corpus.build_corpus`), word-level tokenizer
  of size V (`train_tokenizer`), the train split encoded as one stream; every distinct
  previous token that occurs is a context, weighted by its count, with the empirical
  distribution of the token after it as target.
"""

import dataclasses
import functools

import numpy as np

from ...errors import InputError

SOURCES = ("synthetic", "one-hot", "bigram")
MAX_BIGRAM_VOCAB = 4096  # a V x V count matrix, and a convex program of that size


@dataclasses.dataclass(frozen=True)
class Contexts:
    """targets (K x M): column m is context m's next-token distribution; weights (M,): the
    contexts' frequencies pi_m (sum 1); tokens (M,): the token id of each context;
    counts (M,): how often each context occurs (bigram; None for exact sources)."""

    targets: np.ndarray
    weights: np.ndarray
    tokens: np.ndarray
    counts: np.ndarray | None = None

    @property
    def token_frequencies(self) -> np.ndarray:
        """q_k = sum_m pi_m p_m(k): how often token k is the next token (K,)."""
        return self.targets @ self.weights

    @property
    def entropy(self) -> float:
        """sum_m pi_m H(p_m), nats: the least data term any logits reach (the Bayes loss)."""
        P = self.targets
        plogp = np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0)
        return float(-self.weights @ plogp.sum(axis=0))


def synthetic_contexts(K, zipf_exponent, entropy_rate, deterministic, seed) -> Contexts:
    """The exact statistics of `ufm.language.synthetic.synthetic_language` (order 1)."""
    from ...language.synthetic import synthetic_language

    language = synthetic_language(
        K, zipf_exponent, entropy_rate, deterministic=deterministic, seed=seed
    )
    P = np.asarray(language.transition_matrix(), dtype=float)  # P[i, j] = p(j | i)
    pi = np.asarray(language.stationary, dtype=float)
    keep = pi > 0
    return Contexts(P.T[:, keep], pi[keep] / pi[keep].sum(), np.flatnonzero(keep))


def bigram_counts(stream: np.ndarray, V: int) -> np.ndarray:
    """C[a, b]: how often token b follows token a in `stream` (V x V, int64)."""
    stream = np.asarray(stream, dtype=np.int64)
    C = np.zeros((V, V), dtype=np.int64)
    np.add.at(C, (stream[:-1], stream[1:]), 1)
    return C


def contexts_from_counts(C: np.ndarray) -> Contexts:
    """Every previous token a with a nonzero row of C: weight C[a].sum() / C.sum(), target
    C[a] / C[a].sum()."""
    C = np.asarray(C, dtype=float)
    rows = C.sum(axis=1)
    keep = np.flatnonzero(rows > 0)
    return Contexts(
        (C[keep] / rows[keep, None]).T, rows[keep] / rows.sum(), keep, rows[keep].astype(int)
    )


@functools.lru_cache(maxsize=8)
def corpus_bigrams(V: int) -> np.ndarray:
    """The bigram counts (V x V) of the bundled corpus' train split, encoded by its size-V
    tokenizer (first call: the corpus build, ~20 s; later ones read its cache): the train
    stream of `ufm.language.data.language_data`, the one the language models train on."""
    from ...language.data import language_data

    if not 3 <= V <= MAX_BIGRAM_VOCAB:
        raise InputError(f"K (the vocabulary size V) must be in [3, {MAX_BIGRAM_VOCAB}] for "
                         f"source='bigram'; got {V}")  # fmt: skip
    return bigram_counts(language_data("docstrings", V).train, V)


def load(source: str, K: int, zipf_exponent, entropy_rate, deterministic, seed) -> Contexts:
    """The contexts of `source` (one of SOURCES) with vocabulary size K."""
    if source == "synthetic":
        return synthetic_contexts(K, zipf_exponent, entropy_rate, deterministic, seed)
    if source == "one-hot":
        return synthetic_contexts(K, 0.0, None, True, seed)
    return contexts_from_counts(corpus_bigrams(K))
