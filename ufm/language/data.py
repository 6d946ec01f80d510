"""The token streams a language study trains on: the docstring corpus or a synthetic language.

`language_data("docstrings", vocab_size=V)`: the corpus of `corpus.build_corpus` (cached under
``$UFM_CACHE_DIR/..`` or ``~/.cache/ufm``), a word-level tokenizer of its train split, and
both splits encoded (documents joined with ``<eod>``). `language_data("synthetic", ...)`: a
seeded Markov language (`synthetic.synthetic_language`) sampled into a train stream and an
independent validation stream; its entropy rate is the Bayes-optimal validation loss.

`description` says exactly what was read (the corpus' content hash, package versions, token
counts, or the synthetic source's settings); a study stores it and refuses to resume on
other data.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ufm.errors import InputError

SOURCES = ("docstrings", "synthetic")
SYNTHETIC_DEFAULTS = {
    "zipf_exponent": 1.0,
    "entropy_rate": None,
    "deterministic": False,
    "order": 1,
    "seed": 0,
    "train_tokens": 400_000,
    "validation_tokens": 50_000,
}
SEQUENCE_LENGTH = 1000  # synthetic streams are sampled in sequences of this many tokens


@dataclass(frozen=True)
class LanguageData:
    """`train` and `validation` int32 token streams over `vocab_size` ids; `bayes_loss` the
    Bayes-optimal next-token loss (nats) where it is known (synthetic), else None."""

    train: np.ndarray = field(repr=False)
    validation: np.ndarray = field(repr=False)
    vocab_size: int
    description: dict[str, Any]
    bayes_loss: float | None = None


def cache_dir() -> Path:
    """Where the built corpus is kept: beside ufm's compilation cache."""
    jax_cache = os.environ.get("UFM_CACHE_DIR")
    return Path(jax_cache).parent if jax_cache else Path.home() / ".cache" / "ufm"


def language_data(source: str = "docstrings", vocab_size: int = 1024, **options) -> LanguageData:
    """The streams of `source` (``docstrings`` or ``synthetic``) with `vocab_size` tokens.
    Synthetic `options`: those of `SYNTHETIC_DEFAULTS`."""
    if source not in SOURCES:
        raise InputError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 2:
        raise InputError(f"vocab_size must be an integer >= 2, got {vocab_size!r}")
    if source == "docstrings":
        if options:
            raise InputError(
                f"source='docstrings' takes no options, got {', '.join(sorted(options))}"
            )
        return _docstrings(vocab_size)
    unknown = sorted(set(options) - set(SYNTHETIC_DEFAULTS))
    if unknown:
        raise InputError(
            f"synthetic option(s) {', '.join(unknown)} unknown; known: "
            f"{', '.join(SYNTHETIC_DEFAULTS)}"
        )
    return _synthetic(vocab_size, SYNTHETIC_DEFAULTS | options)


def _docstrings(vocab_size: int) -> LanguageData:
    from ufm.language.corpus import build_corpus
    from ufm.language.tokenizer import train_tokenizer

    corpus = build_corpus(cache_dir=cache_dir())
    tokenizer = train_tokenizer(corpus, vocab_size)  # V above the corpus' tokens: InputError
    train = tokenizer.encode_documents(corpus.split("train"))
    validation = tokenizer.encode_documents(corpus.split("validation"))
    description = {
        "source": "docstrings",
        "vocab_size": vocab_size,
        "content_hash": corpus.content_hash,
        "versions": corpus.versions,
        "documents": corpus.n_documents,
        "words": corpus.n_words,
        "train_tokens": int(train.size),
        "validation_tokens": int(validation.size),
        "unk_fraction_train": float(np.mean(train == 0)),
    }
    return LanguageData(train, validation, vocab_size, description)


def _synthetic(vocab_size: int, settings: dict[str, Any]) -> LanguageData:
    from ufm.language.synthetic import synthetic_language

    for name in ("train_tokens", "validation_tokens"):
        value = settings[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < SEQUENCE_LENGTH:
            raise InputError(f"{name} must be an integer >= {SEQUENCE_LENGTH}, got {value!r}")
    keywords = {k: settings[k] for k in ("zipf_exponent", "entropy_rate", "deterministic", "seed")}
    if settings["order"] != 1:
        keywords["order"] = settings["order"]
    language = synthetic_language(vocab_size, **keywords)
    seed = settings["seed"]

    def stream(tokens: int, offset: int) -> np.ndarray:
        count = -(-tokens // SEQUENCE_LENGTH)
        sample = language.sample(count, SEQUENCE_LENGTH, seed=seed * 2 + offset)
        return np.asarray(sample, dtype=np.int32).reshape(-1)[:tokens]

    train = stream(settings["train_tokens"], 1)
    validation = stream(settings["validation_tokens"], 2)
    description = {"source": "synthetic", "vocab_size": vocab_size} | settings
    description["entropy_rate"] = float(language.entropy_rate)
    return LanguageData(train, validation, vocab_size, description, float(language.entropy_rate))
