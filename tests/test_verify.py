"""Every claim of the catalog gets its expected verdict (the slow ones with -m slow)."""

import pytest

import ufm
from ufm import verify

CLAIMS = [
    pytest.param(c, id=c.name, marks=() if c.quick else pytest.mark.slow) for c in verify.catalog()
]


@pytest.mark.parametrize("claim", CLAIMS)
def test_claim(claim):
    result = verify.run(claim)
    assert result["verdict"] == claim.expect, result["reason"]
    if claim.expect == "agrees":
        assert result["found"]["converged"]
        assert abs(result["loss_gap"]) <= 1e-9
        if claim.model == "plain":  # convex-like: every restart finds the global value
            assert result["found"]["loss_spread"] <= 1e-9


def test_catalog_names_are_unique_and_cover_every_regime():
    names = [c.name for c in verify.catalog()]
    assert len(names) == len(set(names))
    regime = {c.name: ufm.theory(ufm.make(c.model, **c.hyper)).regime for c in verify.catalog()}
    assert set(regime.values()) == {
        "collapsed",
        "minority_collapse",
        "zero",
        "low_rank",
        "not_applicable",
    }
    quick = {regime[c.name] for c in verify.select(quick=True)}
    assert {"collapsed", "minority_collapse", "zero"} <= quick
    assert any(isinstance(c.hyper.get("n"), tuple) for c in verify.catalog())  # imbalanced


def test_select():
    assert all(c.quick for c in verify.select(quick=True))
    assert [c.name for c in verify.select(["ce-etf"])] == ["ce-etf"]
    with pytest.raises(ValueError, match="unknown claim"):
        verify.select(["nope"])
