"""A word-level tokenizer trained locally on a corpus' train split.

Text splits into tokens by one regex: runs of word characters (letters, digits, underscore)
and every other non-space character on its own (punctuation as separate tokens). The
vocabulary is ``<unk>`` (id 0), ``<eod>`` (end of document, id 1) and the V - 2 most frequent
train tokens, ties broken alphabetically; any other token encodes to ``<unk>``.
"""

import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ufm.errors import InputError

UNK, EOD = "<unk>", "<eod>"
SPECIALS = (UNK, EOD)
_TOKEN = re.compile(r"\w+|[^\w\s]")


def split_tokens(text: str) -> list[str]:
    """The tokens of `text`: word-character runs and single punctuation characters."""
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Tokenizer:
    """`vocabulary[i]` is token id i; `counts[i]` is how often id i occurs in the train split
    as encoded (``<unk>``: out-of-vocabulary tokens, ``<eod>``: documents)."""

    vocabulary: tuple[str, ...]
    counts: np.ndarray

    @property
    def size(self) -> int:
        """V, the number of token ids, the two special tokens included."""
        return len(self.vocabulary)

    @cached_property
    def ids(self) -> dict[str, int]:
        """Token -> id (built once per tokenizer)."""
        return {token: i for i, token in enumerate(self.vocabulary)}

    def encode(self, text: str, end_of_document: bool = False) -> np.ndarray:
        """int32 ids of `text`'s tokens (unknown ones as ``<unk>``), ``<eod>`` appended
        when `end_of_document`."""
        ids, unk = self.ids, self.vocabulary.index(UNK)
        out = [ids.get(token, unk) for token in split_tokens(text)]
        if end_of_document:
            out.append(self.vocabulary.index(EOD))
        return np.asarray(out, dtype=np.int32)

    def encode_documents(self, documents) -> np.ndarray:
        """One int32 stream: each document's ids followed by ``<eod>``."""
        parts = [self.encode(doc.text, end_of_document=True) for doc in documents]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    def decode(self, ids) -> str:
        """The tokens of `ids` joined by single spaces (spacing is not restored)."""
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise InputError(f"ids must be in [0, {self.size - 1}], got {ids.min()}..{ids.max()}")
        return " ".join(self.vocabulary[int(i)] for i in ids.ravel())


def token_counts(documents) -> Counter:
    """How often each token occurs in `documents`' texts."""
    counts = Counter()
    for doc in documents:
        counts.update(split_tokens(doc.text))
    return counts


def train_tokenizer(corpus, vocab_size: int) -> Tokenizer:
    """The top-(V - 2) tokens of `corpus.train` plus ``<unk>`` and ``<eod>``.

    `vocab_size` V: at least 3 and at most the train split's distinct tokens + 2.
    """
    counts = token_counts(corpus.train)
    maximum = len(counts) + len(SPECIALS)
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise InputError(f"vocab_size V must be an integer, got {vocab_size!r}")
    if not 3 <= vocab_size <= maximum:
        raise InputError(
            f"vocab_size V must be in [3, {maximum}] (the train split has {len(counts)} "
            f"distinct tokens, plus {len(SPECIALS)} special ones), got {vocab_size}"
        )
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = ranked[: vocab_size - len(SPECIALS)]
    vocabulary = SPECIALS + tuple(token for token, _ in kept)
    n_tokens = sum(counts.values())
    in_vocabulary = [count for _, count in kept]
    frequencies = [n_tokens - sum(in_vocabulary), len(corpus.train), *in_vocabulary]
    return Tokenizer(vocabulary, np.asarray(frequencies, dtype=np.int64))
