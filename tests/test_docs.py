"""The documentation stays honest: the site builds, links resolve, no path leaves the
repository, and the pages that are references (command line, metrics, guarantees) name
what the code has."""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BUILTIN_MODELS = ("plain", "deep-linear", "vicinity", "mixup")


def without_fences(text: str) -> str:
    """The markdown without its fenced blocks."""
    return re.sub(r"^([ ]*)(`{3,}|~{3,})[^\n]*\n.*?^\1\2[ ]*$", "", text, flags=re.S | re.M)


def text_outside_code(text: str) -> str:
    """The markdown without fenced blocks and code spans (links in code are not links)."""
    return re.sub(r"(`+)(?!`).+?(?<!`)\1(?!`)", "", without_fences(text), flags=re.S)


LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)


def links(text: str) -> list[str]:
    body = text_outside_code(text)
    return LINK.findall(body) + REFERENCE.findall(body)


def slugs(path: Path) -> set[str]:
    """Anchors a page's headings get: mkdocs' (Python-Markdown toc) and GitHub's, plus
    explicit `{#id}` attributes."""
    found = set()
    for line in without_fences(path.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        title = heading[1]
        explicit = re.search(r"\{[^}]*#([\w-]+)[^}]*\}\s*$", title)
        if explicit:
            found.add(explicit[1])
            title = title[: explicit.start()]
        plain = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", title).strip().lower()
        mkdocs = re.sub(r"[^\w\s-]", "", plain)
        found.add(re.sub(r"[-\s]+", "-", mkdocs).strip("-"))
        found.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", plain)))  # GitHub
    return found


def test_mkdocs_builds_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        # not --quiet: it hides the warnings from the counter that makes --strict fail
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    for page in ("index.html", "cli/index.html", "api/ufm/index.html"):
        assert (tmp_path / page).is_file()
    # the API pages were generated from the docstrings, not left empty
    api = (tmp_path / "api" / "ufm" / "index.html").read_text(encoding="utf-8")
    assert 'id="ufm.make"' in api and 'id="ufm.sweep"' in api


def test_every_relative_link_resolves_inside_the_repository():
    bad = []
    for page in PAGES:
        for target in links(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            where = f"{page.relative_to(ROOT)}: {target}"
            dest = (page.parent / path).resolve() if path else page
            if not dest.is_relative_to(ROOT):
                bad.append(f"{where} (outside the repository)")
            elif not dest.exists():
                bad.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and "api" not in dest.relative_to(ROOT).parts:
                if anchor not in slugs(dest):
                    bad.append(f"{where} (no heading with that anchor)")
    assert not bad, "\n".join(bad)


def test_link_and_anchor_helpers():
    text = "[a](x.md#b-c) ![i](img.png) `[no](code.md)` [r]: ref.md\n\n[r]: y.md"
    assert links(text) == ["x.md#b-c", "img.png", "y.md"]


def test_no_file_refers_to_a_path_outside_the_repository():
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    needle = ".." + "/shared"  # spelled so that this file does not match itself
    hits = []
    for name in filter(None, listed.decode().split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if needle in line:
                hits.append(f"{name}:{number}: {line.strip()}")
    assert not hits, "\n".join(hits)


def subcommands() -> dict[str, list[str]]:
    """Every option string of every `ufm` subcommand (and, for solve and sweep, of each of
    ufm's own models), by subcommand, as `ufm.cli.main` builds the parser."""
    from ufm import cli

    def options(parser: argparse.ArgumentParser) -> list[str]:
        return [
            s
            for a in parser._actions
            if not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)
            for s in a.option_strings
        ]

    def children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                return dict(a.choices)
        return {}

    out = {}
    for name, sub in children(cli._cli_parser.build()).items():
        flags = options(sub)
        models = children(sub)
        for model in BUILTIN_MODELS if models else ():
            flags += [f for f in options(models[model]) if f not in flags]
        out[name] = flags
    return out


def sections(text: str) -> dict[str, str]:
    """The level-2 sections of a page, by heading."""
    parts = re.split(r"^## +(.*)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_the_cli_page_names_every_flag_of_every_subcommand():
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    by_heading = sections(page)
    missing = []
    commands = subcommands()
    assert {"solve", "sweep", "plot", "repair", "metrics", "verify", "features"} <= set(commands)
    for command, flags in commands.items():
        heading = [h for h in by_heading if re.search(rf"\bufm {command}\b", h)]
        if not heading:
            missing.append(f"no section '## `ufm {command}`'")
            continue
        body = by_heading[heading[0]]
        for flag in flags:
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", body):
                missing.append(f"ufm {command}: {flag}")
    assert not missing, "docs/cli.md does not mention:\n" + "\n".join(missing)
    for code in ("0", "1", "2", "130", "143"):
        assert re.search(rf"^\| {code} \|", by_heading["Exit codes"], re.M), code


def test_the_metrics_page_names_every_metric():
    from ufm.metrics import DEFINITIONS

    page = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    missing = [name for name in DEFINITIONS if f"`{name}`" not in page]
    assert not missing, f"docs/metrics.md does not define {missing}"


def test_every_test_the_docs_name_exists():
    defined = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M))
    named = {
        (page.relative_to(ROOT).as_posix(), name)
        for page in PAGES
        for name in re.findall(r"`(test_\w+)`", page.read_text(encoding="utf-8"))
    }
    missing = sorted(f"{page}: {name}" for page, name in named if name not in defined)
    assert not missing, "\n".join(missing)


PATH_SPAN = re.compile(
    r"`((?:ufm|derivations|figures|tests|benchmarks|docs)/[\w./-]+\.(?:py|md|png))`"
)
MODEL_PAGES = {  # docs page -> the model's package and derivation
    "plain": ("plain", "plain_ufm"),
    "deep_linear": ("deep_linear", "deep_linear"),
    "vicinity": ("vicinity", "vicinity"),
    "mixup": ("mixup", "mixup"),
}


def test_every_repository_path_the_docs_name_exists():
    for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        for path in PATH_SPAN.findall(page.read_text(encoding="utf-8")):
            assert (ROOT / path).exists(), f"{page.relative_to(ROOT)} names {path}"


@pytest.mark.parametrize("page", list(MODEL_PAGES))
def test_each_model_page_names_its_problem_closed_forms_claims_derivation_figure_tests(page):
    package, derivation = MODEL_PAGES[page]
    named = set(PATH_SPAN.findall((ROOT / "docs" / "models" / f"{page}.md").read_text()))
    for part in ("problem", "theory", "claims"):
        assert f"ufm/models/{package}/{part}.py" in named, part
    assert f"derivations/{derivation}.py" in named
    assert any(p.startswith("figures/") and p.endswith(".py") for p in named), "figure"
    assert any(p.startswith("tests/test_") for p in named), "tests"
