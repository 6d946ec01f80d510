"""The shape of the package (issue 15): one package per model, imports that point down, small
modules and functions, and public names that mean one thing."""

import ast
import graphlib
import importlib
from pathlib import Path

import pytest

import ufm

ROOT = Path(ufm.__file__).parent
MODELS = ["plain", "deep_linear", "vicinity", "mixup"]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ufm modules `name` imports at module level (what runs when it is imported)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import x` depends on x, not on the package
                sub = f"{target}.{alias.name}"
                deps.add(sub if sub in modules else target)
    return (deps & modules.keys()) - {name}


def test_module_level_imports_have_no_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["ufm.solve"] >= {"ufm.problem"}  # the walk sees relative imports
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on a cycle


def test_model_problems_and_closed_forms_import_no_solver_or_runner():
    """A model's problem and theory sit below solve/check/verify; its claims sit above."""
    modules = _modules()
    for model in MODELS:
        for part in ("problem", "theory"):
            name = f"ufm.models.{model}.{part}"
            deps = _imports(name, modules[name], modules)
            assert not deps & {"ufm.solve", "ufm.check", "ufm.verify", "ufm.sweeps"}, name


def test_every_model_is_a_package_with_problem_theory_and_claims():
    for model in MODELS:
        for part in ("__init__", "problem", "theory", "claims"):
            assert (ROOT / "models" / model / f"{part}.py").is_file(), (model, part)
        assert importlib.import_module(f"ufm.models.{model}.claims").CLAIMS


def test_ufm_never_imports_sympy_or_the_scripts():
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                bad = [n for n in names if n.split(".")[0] in {"sympy", "derivations", "figures"}]
                assert not bad, (name, bad)


def test_modules_and_functions_are_small():
    long_modules, long_functions = [], []
    for name, path in _modules().items():
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            long_modules.append((name, len(source.splitlines())))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long_functions.append((name, node.name, lines))
    assert not long_modules, long_modules
    assert not long_functions, long_functions


def test_ufm_theory_is_the_function_and_no_module_shadows_it():
    assert callable(ufm.theory) and ufm.theory.__module__ == "ufm"
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("ufm.theory")
    problem = ufm.make("plain", loss="mse", K=3, n=2, d=4, lambda_W=0.01, lambda_H=0.01)
    assert ufm.theory(problem).loss == pytest.approx(problem.theory().loss, rel=0, abs=0)


def test_help_lists_the_public_api():
    text = ufm.__doc__ or ""
    for name in ufm.__all__:
        assert f"ufm.{name}" in text, name
        assert getattr(ufm, name) is not None
    # the paper analyses and the plot module work after `import ufm` as documented
    assert ufm.models.vicinity.VicinityProblem is ufm.REGISTRY["vicinity"]
    assert callable(ufm.plot.phase_diagram)
    from ufm.models.vicinity import central_path, linear_response

    assert callable(central_path.flow) and callable(linear_response.response)


@pytest.mark.parametrize(
    "model, hyper",
    [
        ("plain", dict(loss="ce")),
        ("plain", dict(loss="mse", bias=True)),
        ("deep-linear", dict(loss="mse")),
        ("deep-linear", dict(loss="ce")),
        ("vicinity", {}),
        ("mixup", dict(loss="mse", classifier="learned")),
        ("mixup", dict(loss="mse")),
        ("mixup", dict(loss="ce", classifier="learned")),
    ],
)
def test_static_eliminates_features_agrees_with_tracing_optimal_features(model, hyper):
    """The cheap per-model answer every solve asks for equals the contract's generic one."""
    problem = ufm.make(model, **hyper)
    generic = ufm.AbstractProblem.eliminates_features(problem)
    assert problem.eliminates_features() is generic
