"""The no-download corpus and the word-level tokenizer (issue 19, parts 1a-1b)."""

import hashlib
import importlib
import textwrap

import numpy as np
import pytest

from ufm.errors import InputError
from ufm.language.corpus import Corpus, Document, build_corpus, clean, content_hash
from ufm.language.tokenizer import train_tokenizer

SMALL = ("ufm", "equinox")


@pytest.fixture(scope="module")
def small():
    return build_corpus(SMALL, topics=False, validation_fraction=0.2, seed=3)


def _hash(corpus) -> str:
    """The documented hash, computed here from its definition."""
    digest = hashlib.sha256()
    for split in ("train", "validation"):
        for doc in sorted(getattr(corpus, split), key=lambda d: d.name):
            digest.update(f"{split}\0{doc.name}\0{doc.text}\0".encode())
    return digest.hexdigest()


def _goes_to_validation(name, fraction, seed) -> bool:
    value = int(hashlib.sha256(f"{seed}\0{name}".encode()).hexdigest()[:16], 16)
    return value / 2**64 < fraction


def test_split_is_by_document_seeded_and_disjoint(small):
    train = {d.name for d in small.train}
    validation = {d.name for d in small.validation}
    assert train and validation and not train & validation
    for doc in small.train + small.validation:
        assert _goes_to_validation(doc.name, 0.2, 3) == (doc.name in validation)
    n = len(train) + len(validation)  # the share is binomial(n, 0.2)
    assert abs(len(validation) - 0.2 * n) < 5 * np.sqrt(n * 0.2 * 0.8)
    texts = [d.text for d in small.train + small.validation]
    assert len(set(texts)) == len(texts)  # no duplicates survive
    assert small.n_documents == {"train": len(train), "validation": len(validation)}
    words = sum(len(d.text.split()) for d in small.train)
    assert small.n_words["train"] == words > 10_000


def test_build_is_deterministic_and_hash_follows_the_text(small):
    again = build_corpus(SMALL, topics=False, validation_fraction=0.2, seed=3)
    assert again == small
    assert small.content_hash == _hash(small)
    first = small.train[0]
    changed = (Document(first.name, first.text + " x"),) + small.train[1:]
    assert content_hash(changed, small.validation) != small.content_hash
    assert content_hash(tuple(reversed(small.train)), small.validation) == small.content_hash
    other_seed = build_corpus(SMALL, topics=False, validation_fraction=0.2, seed=4)
    assert other_seed.content_hash != small.content_hash


def test_adding_a_package_moves_no_document(small):
    alone = build_corpus(("ufm",), topics=False, validation_fraction=0.2, seed=3)
    both = {d.name: s for s in ("train", "validation") for d in small.split(s)}
    for split in ("train", "validation"):
        for doc in alone.split(split):
            assert both[doc.name] == split


def test_docstrings_cleaning_and_dedup(tmp_path, monkeypatch):
    package = tmp_path / "toy_docs_pkg"
    package.mkdir()
    prose = "the quick brown fox jumps over the lazy dog every day"
    source = f'''
        """{prose} in the module."""

        class Fox:
            """{prose}.

            Examples
            --------
            >>> Fox().jump()
            42

            after the example :func:`jump` and ``code`` stay.
            """

            def jump(self):
                """{prose}."""

        def twin():
            """{prose}."""

        def short():
            """too short."""
        '''
    (package / "__init__.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    corpus = build_corpus(["toy_docs_pkg"], topics=False, validation_fraction=0.5, min_words=5)
    docs = {d.name: d.text for d in corpus.train + corpus.validation}
    # Fox.jump and twin have the same text: the first name in sorted order is kept
    assert sorted(docs) == ["toy_docs_pkg", "toy_docs_pkg:Fox", "toy_docs_pkg:Fox.jump"]
    assert docs["toy_docs_pkg:Fox"] == f"{prose}. Examples after the example jump and code stay."
    assert corpus.versions == {"toy_docs_pkg": "unknown"}


def test_clean_drops_markup_and_lowercases():
    text = "Title\n=====\n\n  Some   Text.\n\n.. note:: hidden\n>>> x = 1\n>>> x\n1\n\nEnd."
    assert clean(text) == "Title Some Text. End."
    assert clean(text, lowercase=True) == "title some text. end."


def test_cache_returns_the_same_corpus(tmp_path, small):
    built = build_corpus(SMALL, topics=False, validation_fraction=0.2, seed=3, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("corpus-*.json"))) == 1
    cached = build_corpus(SMALL, topics=False, validation_fraction=0.2, seed=3, cache_dir=tmp_path)
    assert cached == built == small


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(packages=["no_such_package_xyz"]), "packages"),
        (dict(packages=["numpy.linalg"]), "packages"),
        (dict(validation_fraction=0.0), "(0, 1)"),
        (dict(validation_fraction=1.0), "(0, 1)"),
        (dict(min_words=0), "min_words"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, named):
    kwargs = {"packages": ["ufm"], **kwargs}
    with pytest.raises(InputError, match=named.replace("(", r"\(").replace(")", r"\)")):
        build_corpus(**kwargs)


def _toy_corpus():
    train = (Document("a", "the cat, the dog."), Document("b", "the cat sat"))
    validation = (Document("c", "a bird sat"),)
    return Corpus(train, validation, {}, {}, content_hash(train, validation))


def test_tokenizer_vocabulary_counts_and_round_trip():
    # train tokens: the x3, cat x2, ',' '.' dog sat x1 each: 6 distinct
    tokenizer = train_tokenizer(_toy_corpus(), 6)
    assert tokenizer.vocabulary == ("<unk>", "<eod>", "the", "cat", ",", ".")
    # <unk>: dog and sat; <eod>: two train documents
    assert tokenizer.counts.tolist() == [2, 2, 3, 2, 1, 1]
    ids = tokenizer.encode("the cat, the cat.", end_of_document=True)
    assert ids.dtype == np.int32
    assert ids.tolist() == [2, 3, 4, 2, 3, 5, 1]
    assert tokenizer.decode(ids) == "the cat , the cat . <eod>"
    assert tokenizer.encode("a bird sat").tolist() == [0, 0, 0]
    stream = tokenizer.encode_documents(_toy_corpus().train)
    assert stream.tolist() == [2, 3, 4, 2, 0, 5, 1, 2, 3, 0, 1]


def test_tokenizer_size_bounds():
    assert train_tokenizer(_toy_corpus(), 8).size == 8  # 6 distinct + 2 special
    for bad in (2, 9):
        with pytest.raises(InputError, match=r"vocab_size V must be in \[3, 8\]"):
            train_tokenizer(_toy_corpus(), bad)


def test_tokenizer_on_a_real_corpus(small):
    tokenizer = train_tokenizer(small, 1000)
    stream = tokenizer.encode_documents(small.train)
    assert np.bincount(stream, minlength=1000).tolist() == tokenizer.counts.tolist()
    assert tokenizer.counts[2:].min() > 0 and np.all(np.diff(tokenizer.counts[2:]) <= 0)


def test_pydoc_topics_are_documents():
    from pydoc_data.topics import topics

    corpus = build_corpus((), validation_fraction=0.3)
    names = [d.name for d in corpus.train + corpus.validation]
    assert set(names) <= {f"pydoc_data.topics:{key}" for key in topics}
    assert len(names) > 0.8 * len(topics) and corpus.n_words["train"] > 50_000
    assert set(corpus.versions) == {"python"}
