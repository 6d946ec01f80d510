"""The public model registry: `ufm.register`, `ufm.make`, `ufm.REGISTRY` and the
``ufm.models`` entry-point group, including a plug-in that cannot be loaded."""

import importlib.metadata
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

import ufm
from ufm import registry
from ufm.models.mixup import MixupProblem
from ufm.models.plain import PlainProblem
from ufm.problem import AbstractClassProblem, AbstractProblem, Hyper
from ufm.registry import REGISTRY, Registry

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ["plain", "deep-linear", "vicinity", "mixup", "dhkd", "next-token"]
GROUP = "ufm.models"


@pytest.fixture
def names():
    """Model names a test registers; each is removed afterwards, whatever happened."""
    taken: list[str] = []
    yield taken
    for name in taken:
        REGISTRY.remove(name)


def plain_ce_minimum(K: int, n: int, lam: float) -> float:
    """Balanced CE minimum of the plain UFM, lambda_W = lambda_H = lam (Zhu et al. 2021's
    ETF; derivations/plain_ufm.py step 4): -ln(1 - (K-1) s) + (K-1) s ln(1/s - (K-1))."""
    s = math.sqrt(n) * lam
    return -math.log(1 - (K - 1) * s) + (K - 1) * s * math.log(1 / s - (K - 1))


# ---------------------------------------------------------------------------------------
# The built-ins


def test_builtins_listed_in_order():
    assert list(REGISTRY)[: len(BUILTIN)] == BUILTIN
    assert all(name in REGISTRY for name in BUILTIN)
    assert REGISTRY["plain"] is PlainProblem


def test_order_does_not_depend_on_which_model_loads_first():
    fresh = Registry()
    assert fresh["mixup"] is MixupProblem  # loaded before the others
    assert list(fresh)[: len(BUILTIN)] == BUILTIN
    assert [name for name, _ in fresh.items()][: len(BUILTIN)] == BUILTIN


# ---------------------------------------------------------------------------------------
# register, replace, remove


def test_register_make_replace_remove(names):
    names.append("plain-copy")
    ufm.register("plain-copy", PlainProblem)
    assert "plain-copy" in REGISTRY and list(REGISTRY)[-1] == "plain-copy"
    problem = ufm.make("plain-copy", loss="ce", K=4, n=5, d=8, lambda_W=0.01, lambda_H=0.01)
    assert isinstance(problem, PlainProblem)
    assert ufm.theory(problem).loss == pytest.approx(plain_ce_minimum(4, 5, 0.01), rel=1e-13)

    with pytest.raises(ufm.InputError, match="'plain-copy' is registered already") as info:
        ufm.register("plain-copy", MixupProblem)
    assert "replace=True" in str(info.value) and "\n" not in str(info.value)
    assert REGISTRY["plain-copy"] is PlainProblem  # unchanged by the refusal

    position = list(REGISTRY).index("plain-copy")
    ufm.register("plain-copy", MixupProblem, replace=True)
    assert REGISTRY["plain-copy"] is MixupProblem
    assert list(REGISTRY).index("plain-copy") == position  # replaced in place

    REGISTRY.remove("plain-copy")
    assert "plain-copy" not in REGISTRY
    with pytest.raises(ufm.InputError, match="model must be one of .*got 'plain-copy'"):
        ufm.make("plain-copy")
    assert list(REGISTRY)[: len(BUILTIN)] == BUILTIN


def test_a_builtin_name_is_taken():
    with pytest.raises(ufm.InputError, match="model 'plain' is registered already"):
        ufm.register("plain", MixupProblem)
    assert REGISTRY["plain"] is PlainProblem


@pytest.mark.parametrize("name", ["Label-Smoothing", "label_smoothing", "", "-ls", "ls-", "a--b"])
def test_bad_names(name):
    with pytest.raises(ufm.InputError, match="model name must be lowercase") as info:
        ufm.register(name, PlainProblem)
    assert repr(name) in str(info.value) and "\n" not in str(info.value)
    assert name not in REGISTRY


def test_a_name_that_is_not_a_string():
    with pytest.raises(ufm.InputError, match="got 3"):
        ufm.register(3, PlainProblem)


class NotAProblem:
    name = "not-a-problem"
    hypers = (Hyper("K", "int", 2, "classes"),)


@pytest.mark.parametrize("cls", [NotAProblem, int, "ufm.models.plain:PlainProblem"])
def test_a_class_that_is_not_a_problem(cls):
    with pytest.raises(ufm.InputError, match="model 'odd': .*subclass ufm.problem.AbstractProblem"):
        ufm.register("odd", cls)
    assert "odd" not in REGISTRY


class HalfDone(AbstractProblem):
    """Implements only the loss."""

    name: ClassVar[str] = "half-done"
    hypers: ClassVar[tuple[Hyper, ...]] = (Hyper("K", "int", 2, "classes"),)

    def loss(self, params):
        return 0.0


class NoCounts(AbstractClassProblem):
    """Every method, but AbstractClassProblem's abstract fields left undeclared."""

    name: ClassVar[str] = "no-counts"
    hypers: ClassVar[tuple[Hyper, ...]] = (Hyper("K", "int", 2, "classes"),)
    make = PlainProblem.make
    loss = PlainProblem.loss
    init = PlainProblem.init
    theory = PlainProblem.theory
    hyperparameters = PlainProblem.hyperparameters


def test_a_class_with_abstract_parts_left():
    with pytest.raises(ufm.InputError, match="model 'half-done': HalfDone leaves") as info:
        ufm.register("half-done", HalfDone)
    for method in ("hyperparameters", "init", "labels", "make", "theory"):
        assert method in str(info.value)
    assert "loss" not in str(info.value).split("leaves")[1]
    with pytest.raises(ufm.InputError, match="NoCounts leaves .*counts") as info:
        ufm.register("no-counts", NoCounts)
    for field in ("bias", "lambda_H", "loss_name"):
        assert field in str(info.value)
    assert "half-done" not in REGISTRY and "no-counts" not in REGISTRY


def test_hypers_and_name_are_required(names):
    class NoHypers(PlainProblem):
        hypers: ClassVar[tuple] = ()

    class NotHypers(PlainProblem):
        hypers: ClassVar[tuple] = ("K",)

    for cls in (NoHypers, NotHypers):
        with pytest.raises(ufm.InputError, match="hypers must be a non-empty tuple of ufm.Hyper"):
            ufm.register("plain-variant", cls)

    class Renamed(PlainProblem):
        name: ClassVar = None

    with pytest.raises(ufm.InputError, match="Renamed.name must be a string"):
        ufm.register("plain-variant", Renamed)
    assert "plain-variant" not in REGISTRY


# ---------------------------------------------------------------------------------------
# Entry points


def fake_entry_points(monkeypatch, entries: dict[str, str]) -> None:
    """What importlib.metadata reports for the ufm.models group while the test runs."""
    points = [importlib.metadata.EntryPoint(k, v, GROUP) for k, v in entries.items()]

    def entry_points(*, group):
        return points if group == GROUP else []

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", entry_points)


def test_an_entry_point_is_listed_after_the_builtins_and_loads(monkeypatch):
    fake_entry_points(monkeypatch, {"plain-plugin": "ufm.models.plain:PlainProblem"})
    fresh = Registry()
    assert list(fresh) == [*BUILTIN, "plain-plugin"]
    monkeypatch.setattr(registry, "REGISTRY", fresh)  # what ufm.make looks in
    problem = ufm.make("plain-plugin", loss="ce", K=4, n=5, d=8, lambda_W=0.01, lambda_H=0.01)
    assert ufm.theory(problem).loss == pytest.approx(plain_ce_minimum(4, 5, 0.01), rel=1e-13)


def test_a_broken_entry_point_leaves_the_builtins_working(monkeypatch):
    fake_entry_points(monkeypatch, {"broken-model": "no_such_module_for_ufm:Problem"})
    fresh = Registry()
    monkeypatch.setattr(registry, "REGISTRY", fresh)
    assert list(fresh) == [*BUILTIN, "broken-model"]  # not imported until asked for
    problem = ufm.make("plain", loss="ce", K=4, n=5, d=8, lambda_W=0.01, lambda_H=0.01)
    assert ufm.theory(problem).loss == pytest.approx(plain_ce_minimum(4, 5, 0.01), rel=1e-13)

    why = r"model 'broken-model': cannot load 'no_such_module_for_ufm:Problem' \(entry point"
    for _ in range(2):  # the same message every time it is asked for
        with pytest.raises(ImportError, match=why) as info:
            ufm.make("broken-model")
        assert "ModuleNotFoundError" in str(info.value)
    assert list(fresh) == BUILTIN  # known broken: left out of the listing
    assert [name for name, _ in fresh.items()] == BUILTIN
    assert fresh["deep-linear"].name == "deep-linear"


def test_listing_a_broken_entry_point_warns_and_skips_it(monkeypatch):
    fake_entry_points(
        monkeypatch,
        {"broken-model": "no_such_module_for_ufm:Problem", "not-a-model": "json:loads"},
    )
    fresh = Registry()
    with pytest.warns(UserWarning) as caught:
        models = fresh.items()  # what the `ufm` command and `ufm verify` iterate
    assert [name for name, _ in models] == BUILTIN
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "broken-model" in messages[0] and "no_such_module_for_ufm" in messages[0]
    assert "not-a-model" in messages[1] and "'json:loads'" in messages[1]
    assert "subclass ufm.problem.AbstractProblem" in messages[1]
    assert fresh.values() == [cls for _, cls in models]


def test_an_entry_point_may_not_take_a_builtin_name(monkeypatch):
    fake_entry_points(monkeypatch, {"plain": "ufm.models.mixup:MixupProblem"})
    fresh = Registry()
    with pytest.warns(UserWarning, match="names model 'plain', which ufm already has"):
        assert list(fresh) == BUILTIN
    assert fresh["plain"] is PlainProblem


def test_register_cannot_take_an_entry_points_name(monkeypatch):
    fake_entry_points(monkeypatch, {"plain-plugin": "ufm.models.plain:PlainProblem"})
    fresh = Registry()
    with pytest.raises(ufm.InputError, match="'plain-plugin' is registered already"):
        fresh.add("plain-plugin", MixupProblem)
    fresh.add("plain-plugin", MixupProblem, replace=True)
    assert fresh["plain-plugin"] is MixupProblem


def test_the_ufm_command_survives_a_broken_plugin(tmp_path):
    """A dist-info whose entry point cannot be imported: `ufm verify --list` still lists the
    built-in catalog and says on stderr which entry point was left out, and why."""
    info = tmp_path / "brokenplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\nbroken-model = no_such_module_for_ufm:Problem\n"
    )
    env = dict(os.environ)
    path = [str(tmp_path), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    env["UFM_CACHE_DIR"] = str(tmp_path / "jax-cache")
    proc = subprocess.run(
        [sys.executable, "-m", "ufm.cli", "verify", "--list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ce-etf (quick)" in proc.stdout
    assert "broken-model" in proc.stderr and "no_such_module_for_ufm" in proc.stderr
    assert "Traceback" not in proc.stderr
