"""A text corpus built from what is already installed: no download.

Documents are CPython's `pydoc_data.topics` (one per topic) and the docstrings of installed
packages (module, class and function docstrings, read with `ast` from the source files; the
packages' modules are never imported). Each document is named by its module path and qualified
name (``numpy.linalg._linalg:svd``). The text is cleaned of non-prose reST/numpydoc markup
(underline rules, doctest blocks, directive lines, role markup), whitespace-normalized,
optionally lowercased; short documents are dropped and exact duplicates removed (first by
name wins). Each document goes to validation when a seeded hash of its *name* falls below the
validation fraction, so adding a package does not move any other document between splits.

The content hash (SHA-256) covers every document's split, name and cleaned text in name
order: it changes when any text changes and does not depend on file-system order.
"""

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ufm.errors import InputError

DEFAULT_PACKAGES = ("numpy", "scipy", "sympy", "jax")
SPLITS = ("train", "validation")
_CACHE_FORMAT = 1

_RULE = re.compile(r"^\s*([-=~^*+#`:'\"._])\1{2,}\s*$")
_DIRECTIVE = re.compile(r"^\s*\.\.\s")
_ROLE = re.compile(r":[\w:+.-]+:`([^`<]*?)(?:\s*<[^`>]*>)?`")
_BACKTICKS = re.compile(r"`+([^`]*)`+_?")


@dataclass(frozen=True)
class Document:
    """One document: a unique name (module path + qualified name, or pydoc topic) and text."""

    name: str
    text: str

    @property
    def n_words(self) -> int:
        """Whitespace-separated words of the cleaned text."""
        return len(self.text.split())


@dataclass(frozen=True)
class Corpus:
    """The documents of each split, in name order, and what they were built from.

    `versions`: package name -> installed version (``python`` for the pydoc topics);
    `settings`: the cleaning and split settings; `content_hash`: SHA-256 hex digest of the
    cleaned, split text (see `content_hash`).
    """

    train: tuple[Document, ...]
    validation: tuple[Document, ...]
    versions: dict[str, str]
    settings: dict = field(default_factory=dict)
    content_hash: str = ""

    def split(self, name: str) -> tuple[Document, ...]:
        """The documents of split `name` ("train" or "validation")."""
        if name not in SPLITS:
            raise InputError(f"split must be one of {SPLITS}, got {name!r}")
        return getattr(self, name)

    @property
    def n_documents(self) -> dict[str, int]:
        """Documents per split."""
        return {s: len(self.split(s)) for s in SPLITS}

    @property
    def n_words(self) -> dict[str, int]:
        """Whitespace-separated words per split."""
        return {s: sum(d.n_words for d in self.split(s)) for s in SPLITS}


def clean(text: str, lowercase: bool = False) -> str:
    """Docstring text as prose: no underline rules, doctest blocks (``>>>`` lines and the
    output up to the next blank line), Markdown code fences, directive lines or role markup;
    whitespace collapsed."""
    kept, in_doctest, in_fence = [], False, False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):  # a Markdown code fence opens or closes
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if stripped.startswith(">>>"):
            in_doctest = True
        if in_doctest:
            in_doctest = bool(stripped)
            continue
        if _RULE.match(line) or _DIRECTIVE.match(line):
            continue
        kept.append(line)
    prose = _BACKTICKS.sub(r"\1", _ROLE.sub(r"\1", "\n".join(kept)))
    prose = " ".join(prose.split())
    return prose.lower() if lowercase else prose


def content_hash(train, validation) -> str:
    """SHA-256 of every document's split, name and text, each split in name order."""
    digest = hashlib.sha256()
    for split, documents in zip(SPLITS, (train, validation), strict=True):
        for doc in sorted(documents, key=lambda d: d.name):
            digest.update(f"{split}\0{doc.name}\0{doc.text}\0".encode())
    return digest.hexdigest()


def in_validation(name: str, validation_fraction: float, seed: int) -> bool:
    """Whether document `name` goes to validation: a seeded hash of the name, uniform on
    [0, 1), below the fraction. Depends on nothing but the name, the fraction and the seed."""
    digest = hashlib.sha256(f"{seed}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < validation_fraction


def _package_root(package: str) -> Path:
    if not package.isidentifier():
        raise InputError(f"packages: {package!r} is not a top-level package name")
    spec = importlib.util.find_spec(package)  # a top-level spec: nothing is imported
    if spec is None or spec.origin is None:
        raise InputError(f"packages: {package!r} is not installed (an importable top-level name)")
    return Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)


def _source_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.py") if "tests" not in p.relative_to(root).parts)


def _module_name(path: Path, root: Path) -> str:
    if root.is_file():
        return root.stem
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _docstrings(tree: ast.Module):
    """(qualified name, docstring) of the module ("" name), its classes and functions."""
    found = [("", ast.get_docstring(tree))]
    stack = [(node, "") for node in reversed(tree.body)]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            found.append((name, ast.get_docstring(node)))
            stack.extend((child, f"{name}.") for child in reversed(node.body))
    return [(name, doc) for name, doc in found if doc]


def package_docstrings(package: str):
    """Every (name, raw docstring) of `package`'s source files, in sorted file order."""
    root = _package_root(package)
    for path in _source_files(root):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escapes in old docstrings
                tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue  # templates and sources for other Python versions
        module = _module_name(path, root)
        for qualname, doc in _docstrings(tree):
            yield (f"{module}:{qualname}" if qualname else module), doc


def _topics():
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield f"pydoc_data.topics:{key}", topics[key]


def package_version(package: str) -> str:
    """The installed distribution version of top-level `package` ("unknown" if none)."""
    names = importlib.metadata.packages_distributions().get(package, [package])
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _fingerprint(packages) -> str:
    """Path, size and modification time of every source file: editable installs change
    their text without changing their version."""
    digest = hashlib.sha256()
    for package in packages:
        root = _package_root(package)
        for path in _source_files(root):
            stat = path.stat()
            digest.update(f"{package}\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _collect(packages, settings) -> list[Document]:
    """Cleaned, long-enough, deduplicated documents in name order (first name wins)."""
    raw: dict[str, str] = {}
    sources = [_topics()] if settings["topics"] else []
    sources += [package_docstrings(p) for p in packages]
    for source in sources:
        for name, text in source:
            unique, k = name, 2
            while unique in raw:  # a property and its setter share a qualified name
                unique, k = f"{name}#{k}", k + 1
            raw[unique] = text
    documents, seen = [], set()
    for name in sorted(raw):
        text = clean(raw[name], settings["lowercase"])
        key = hashlib.sha256(text.encode()).digest()
        if len(text.split()) < settings["min_words"] or key in seen:
            continue
        seen.add(key)
        documents.append(Document(name, text))
    return documents


def _check(packages, validation_fraction, min_words, seed):
    if not (isinstance(validation_fraction, int | float) and 0 < validation_fraction < 1):
        raise InputError(
            f"validation_fraction must be in the open interval (0, 1), got {validation_fraction!r}"
        )
    if not (isinstance(min_words, int) and min_words >= 1):
        raise InputError(f"min_words must be an integer >= 1, got {min_words!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if isinstance(packages, str):
        raise InputError(f"packages must be a sequence of package names, got {packages!r}")
    for package in packages:
        _package_root(package)


def build_corpus(
    packages=DEFAULT_PACKAGES,
    *,
    validation_fraction: float = 0.1,
    seed: int = 0,
    min_words: int = 8,
    lowercase: bool = False,
    topics: bool = True,
    cache_dir: str | Path | None = None,
) -> Corpus:
    """The corpus of `packages`' docstrings (and the pydoc topics when `topics`).

    `validation_fraction` in (0, 1): expected share of documents in validation; `seed` picks
    which; `min_words`: documents with fewer words after cleaning are dropped. `cache_dir`:
    a directory to keep the built corpus in, keyed by Python and package versions, the
    source files' sizes and times, and the settings (None: no cache).
    """
    packages = tuple(packages)
    _check(packages, validation_fraction, min_words, seed)
    settings = dict(
        validation_fraction=float(validation_fraction),
        seed=seed,
        min_words=min_words,
        lowercase=bool(lowercase),
        topics=bool(topics),
        packages=list(packages),
    )
    versions = {p: package_version(p) for p in packages}
    if topics:
        versions["python"] = ".".join(map(str, sys.version_info[:3]))
    cache = _cache_path(cache_dir, packages, versions, settings)
    if cache is not None and cache.is_file():
        return _load(cache)
    documents = _collect(packages, settings)
    splits = {s: [] for s in SPLITS}
    for doc in documents:
        splits[SPLITS[in_validation(doc.name, validation_fraction, seed)]].append(doc)
    train, validation = tuple(splits["train"]), tuple(splits["validation"])
    corpus = Corpus(train, validation, versions, settings, content_hash(train, validation))
    if cache is not None:
        _save(corpus, cache)
    return corpus


def _cache_path(cache_dir, packages, versions, settings) -> Path | None:
    if cache_dir is None:
        return None
    key = json.dumps(
        dict(format=_CACHE_FORMAT, versions=versions, settings=settings),
        sort_keys=True,
    )
    key += _fingerprint(packages)
    return Path(cache_dir) / f"corpus-{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def _save(corpus: Corpus, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dict(
        versions=corpus.versions,
        settings=corpus.settings,
        content_hash=corpus.content_hash,
        **{s: [[d.name, d.text] for d in corpus.split(s)] for s in SPLITS},
    )
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data))
    partial.replace(path)  # a reader never sees half a file


def _load(path: Path) -> Corpus:
    data = json.loads(path.read_text())
    train, validation = (tuple(Document(n, t) for n, t in data[s]) for s in SPLITS)
    recomputed = content_hash(train, validation)
    if recomputed != data["content_hash"]:
        raise RuntimeError(f"corpus cache {path} is corrupt: its content hash does not match")
    return Corpus(train, validation, data["versions"], data["settings"], recomputed)
