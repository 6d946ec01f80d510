"""Every claim of the catalog says what its source is made of (issue 15, item 7).

A claim's `source` ends with exactly one tag from this vocabulary, in square brackets:

- ``[read: paper body]``: the statement, its hypotheses and its numbers were read in a paper;
- ``[read: abstract]``: only the abstract was read;
- ``[read: official code @<commit>]``: read in the authors' code at that commit;
- ``[ours: derivation <file> step N]`` (or ``steps N-M``, ``steps N, M``): derived by us, in
  ``derivations/<file>``, whose docstring numbers its steps;
- ``[ours: numerics]``: an observation of ufm's solver, no theorem;

optionally followed by ``; <what was not read>``, e.g. ``; theorem number recalled``.

Rules checked here: a derivation step named in a tag exists in that file's docstring; a claim
expected to come out ``refuted`` or ``disagrees`` on the strength of an abstract alone says
``hypotheses not read`` in its tag; a claim tagged ``ours`` does not attribute its statement to
a paper (no theorem, no author named in the statement) and its source opens by saying whose it
is ("ours: ...", "ufm's question: ...", or for a spherical code "compared with <the code>");
a theorem, corollary, figure or equation number is cited only where a paper body was read, or
marked as recalled; and no source or statement points to notes outside the repository.
"""

import ast
import pathlib
import re

import pytest

from ufm import verify

ROOT = pathlib.Path(__file__).resolve().parent.parent
VOCABULARY = (
    r"read: paper body",
    r"read: abstract",
    r"read: official code @[0-9a-f]{7,40}",
    r"ours: derivation (?P<file>[a-z_]+\.py) steps? (?P<steps>\d+(?:(?:-|, )\d+)*)",
    r"ours: numerics",
)
TAG = re.compile(r"\[(?P<kind>" + "|".join(VOCABULARY) + r")(?:; (?P<note>[^\[\]]+))?\]$")
ANY_TAG = re.compile(r"\[(?:read|ours):")
NOT_READ = "hypotheses not read"  # the phrase a refutation from an abstract alone must carry
NUMBERED = re.compile(r"\b(?:Thm|Theorem|Cor|Corollary|Lemma|Prop|Proposition|Fig|Eq)\.? ?\d")
ATTRIBUTION = re.compile(
    r"\b(?:Thm|Theorem|Cor|Corollary|Lemma|Proposition)\b|et al\.|(?<!ufm)'s (?:theorem|claim)"
    r"|\b(?:Zhu|Tirer|Bruna|Dang|Garrod|Keating|Fisher|Papyan|Jiang|Alcala|Niles-Weed)\b"
)

CLAIMS = verify.catalog()


def _tag(claim) -> re.Match:
    match = TAG.search(claim.source)
    assert match, f"{claim.name}: the source does not end with a tag: {claim.source!r}"
    return match


def _steps(file: str) -> set[int]:
    """The step numbers of a derivation's module docstring ("3. ..." at a line start)."""
    path = ROOT / "derivations" / file
    assert path.is_file(), f"derivations/{file} does not exist"
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return {int(m) for m in re.findall(r"^\s*(\d+)\. ", doc, flags=re.M)}


def _numbers(spec: str) -> set[int]:
    out = set()
    for part in spec.split(", "):
        lo, _, hi = part.partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    return out


def test_the_catalog_is_not_empty():
    assert len(CLAIMS) > 50


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.name for c in CLAIMS])
def test_exactly_one_tag_from_the_vocabulary(claim):
    _tag(claim)
    assert len(ANY_TAG.findall(claim.source)) == 1, claim.source
    assert not ANY_TAG.search(claim.statement), claim.statement


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.name for c in CLAIMS])
def test_derivation_steps_exist(claim):
    tag = _tag(claim)
    if tag["file"] is None:
        return
    missing = _numbers(tag["steps"]) - _steps(tag["file"])
    assert not missing, f"derivations/{tag['file']} has no step {sorted(missing)}"


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.name for c in CLAIMS])
def test_a_refutation_from_an_abstract_says_the_hypotheses_were_not_read(claim):
    tag = _tag(claim)
    if claim.expect in ("refuted", "disagrees") and tag["kind"] == "read: abstract":
        assert NOT_READ in (tag["note"] or ""), claim.source


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.name for c in CLAIMS])
def test_our_claims_are_not_attributed_to_a_paper(claim):
    tag = _tag(claim)
    if tag["kind"].startswith("ours"):
        found = ATTRIBUTION.search(claim.statement)
        assert found is None, f"{claim.name}: {found.group()!r} in {claim.statement!r}"
        assert claim.source.startswith(("ours", "compared with", "ufm's")), claim.source


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.name for c in CLAIMS])
def test_numbered_results_are_read_or_marked_recalled(claim):
    tag = _tag(claim)
    if tag["kind"] == "read: paper body":
        return
    for text in (claim.source, claim.statement):
        if NUMBERED.search(text):
            assert "recalled" in claim.source or "body read" in claim.source, (
                f"{claim.name} cites {NUMBERED.search(text).group()!r} without a paper body "
                "read and without saying it is recalled"
            )


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.name for c in CLAIMS])
def test_no_reference_to_notes_outside_the_repository(claim):
    for text in (claim.source, claim.statement):
        assert "§" not in text and ".md" not in text and "notes" not in text, text


def test_the_vocabulary_rejects_what_it_should():
    bad = (
        "Zhu et al. 2021, Thm 3.1",  # no tag
        "x [read: the paper]",  # not in the vocabulary
        "x [read: official code @main]",  # not a commit
        "x [ours: derivation plain_ufm.py]",  # no step
        "x [read: abstract] more",  # not at the end
    )
    assert not any(TAG.search(s) for s in bad)
    good = TAG.search("x [read: abstract; hypotheses not read]")
    assert good["kind"] == "read: abstract" and good["note"] == NOT_READ
    derived = TAG.search("x [ours: derivation plain_ufm.py steps 10-11]")
    assert derived["file"] == "plain_ufm.py" and _numbers(derived["steps"]) == {10, 11}
    assert _numbers("5, 7") == {5, 7}
