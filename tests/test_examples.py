"""Every example in README.md and docs/**/*.md runs as written.

Fenced blocks tagged ``python`` (or ``py``) and ``bash``/``console``/``shell``/``sh`` are
extracted page by page and run in document order, in a fresh temporary directory per page:

- python blocks of a page share one namespace, like the cells of a notebook, in one fresh
  interpreter per page (so an example must switch float64 on itself, as a user must), with
  every warning raised as an error, as the test suite does;
- shell blocks run line by line through bash, each line asserting exit code 0. In a
  ``console`` block only the lines after ``$ `` are commands; the other lines are the
  output shown, and a shown ``verdict`` line must match the verdict printed. Lines
  starting with ``pip install`` or ``mkdocs`` are skipped. Every other command must start
  with ``ufm`` or ``python``: ``ufm ...`` runs as ``python -m ufm.cli ...`` and ``python``
  is this interpreter, both importing ufm from this working tree (not from whatever copy
  is installed), and a script path such as ``benchmarks/bench_plain.py`` is taken from the
  repository root.

An HTML comment on the line before a block marks it: ``<!-- slow -->`` runs it only under
``-m slow`` (the slow run of a page runs all its blocks, slow or not, in order), and
``<!-- no-run: reason -->`` never runs it. The default run is kept short: examples that
compile large problems or call ``ufm`` many times are marked slow.
"""

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON_TAGS = {"python", "py"}
SHELL_TAGS = {"bash", "console", "shell", "sh"}
MARK = re.compile(r"^\s*<!--\s*(slow|no-run:\s*(?P<reason>.*?))\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
SKIPPED = ("pip install", "pip3 install", "mkdocs")
COMMAND_TIMEOUT = 900  # seconds, for one command of a slow example
PAGE_TIMEOUT = 3600  # seconds, for all the examples of one page


@dataclasses.dataclass
class Block:
    page: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    mark: str  # "run", "slow" or "no-run"
    reason: str = ""


# the tutorial's blocks are pieces of a user's module (`# file: ...`) and the session that uses
# it: tests/test_tutorial.py assembles and runs them as written, and checks their output
OWN_RUNNER = {"docs/tutorial.md"}


def pages() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in found if p.relative_to(ROOT).as_posix() not in OWN_RUNNER]


def extract(text: str, page: str) -> list[Block]:
    """The fenced blocks of a markdown text, each with the mark of the line before it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    previous = ""  # the last non-blank line before the current one
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            if lines[i].strip():
                previous = lines[i]
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        info = opening["info"].strip()
        lang = info.split()[0].lower() if info else ""
        body, j = [], i + 1
        while j < len(lines):
            closing = lines[j].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        marked = MARK.match(previous)
        mark, reason = "run", ""
        if marked:
            mark = "slow" if marked[1] == "slow" else "no-run"
            reason = (marked["reason"] or "").strip()
        blocks.append(Block(page, i + 1, lang, "\n".join(body) + "\n", mark, reason))
        previous = ""
        i = j + 1
    return blocks


def runnable(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    rel = page.relative_to(ROOT).as_posix()
    return [b for b in extract(text, rel) if b.lang in PYTHON_TAGS | SHELL_TAGS]


def commands(block: Block) -> list[tuple[int, str, list[str]]]:
    """(line, command, output lines shown after it) for each command of a shell block."""
    out: list[tuple[int, str, list[str]]] = []
    lines = block.code.splitlines()
    k = 0
    while k < len(lines):
        line, number = lines[k], block.line + 1 + k
        k += 1
        if block.lang == "console":
            if not line.startswith("$ "):
                if out:
                    out[-1][2].append(line)
                continue
            line = line[2:]
        text = line.strip()
        while text.endswith("\\") and k < len(lines):  # a continued line
            text = text[:-1].rstrip() + " " + lines[k].strip()
            k += 1
        if text and not text.startswith("#"):
            out.append((number, text, []))
    return out


def shell_line(command: str) -> str | None:
    """The command as it is run here, or None for a line that is skipped."""
    if command.startswith(SKIPPED):
        return None
    word, _, rest = command.partition(" ")
    python = shlex.quote(sys.executable)
    if word == "ufm":
        return f"{python} -m ufm.cli {rest}"
    if word == "python":
        script = rest.split(" ", 1)[0]
        if script.endswith(".py") and not script.startswith("/") and (ROOT / script).is_file():
            rest = shlex.quote(str(ROOT / script)) + rest[len(script) :]
        return f"{python} {rest}"
    raise AssertionError(f"an example command must start with ufm or python: {command!r}")


def steps(blocks: list[Block]) -> list[dict]:
    """The page as a list of steps for the driver below."""
    out = []
    for b in blocks:
        where = f"{b.page}:{b.line}"
        if b.lang in PYTHON_TAGS:
            out.append({"kind": "python", "where": where, "code": b.code})
            continue
        for number, command, shown in commands(b):
            run = shell_line(command)
            if run is not None:
                out.append(
                    {
                        "kind": "shell",
                        "where": f"{b.page}:{number}",
                        "command": command,
                        "run": run,
                        "shown": shown,
                    }
                )
    return out


def _verdict(lines: list[str]) -> str | None:
    for line in lines:
        if line.startswith("verdict"):
            return line.split()[1].rstrip(":") if len(line.split()) > 1 else None
    return None


def drive(path: str) -> int:
    """Run a page's steps (written as JSON to `path`) in the working directory: python in
    one namespace, shell commands through bash. Prints where a step failed; exit 1."""
    import traceback
    import warnings

    warnings.simplefilter("error")
    with open(path) as f:
        page = json.load(f)
    namespace: dict = {"__name__": "__main__"}
    for step in page:
        print(f"--- {step['where']} ({step['kind']})", flush=True)
        if step["kind"] == "python":
            try:
                exec(compile(step["code"], step["where"], "exec"), namespace)
            except BaseException:
                traceback.print_exc()
                print(f"FAILED: the python block at {step['where']}", flush=True)
                return 1
            continue
        print(f"$ {step['command']}", flush=True)
        proc = subprocess.run(
            ["bash", "-c", step["run"]],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        sys.stdout.write(proc.stdout[-4000:])
        sys.stdout.write(proc.stderr[-4000:])
        if proc.returncode != 0:
            print(f"FAILED: exit code {proc.returncode} at {step['where']}", flush=True)
            return 1
        shown = _verdict(step["shown"])
        if shown is not None and _verdict(proc.stdout.splitlines()) != shown:
            print(f"FAILED: the page shows 'verdict {shown}' at {step['where']}", flush=True)
            return 1
    return 0


def run_page(blocks: list[Block], tmp_path: Path, cache: Path) -> None:
    plan = tmp_path.parent / f"{tmp_path.name}-steps.json"
    plan.write_text(json.dumps(steps(blocks)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["UFM_CACHE_DIR"] = str(cache)
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(plan)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout[-12000:] + proc.stderr[-4000:]


def does_something(block: Block) -> bool:
    """Whether a block runs anything (a shell block may hold only skipped lines)."""
    if block.lang in PYTHON_TAGS:
        return True
    return any(not command.startswith(SKIPPED) for _, command, _ in commands(block))


ALL = {p.relative_to(ROOT).as_posix(): runnable(p) for p in pages()}
DEFAULT = [p for p, bs in ALL.items() if any(b.mark == "run" and does_something(b) for b in bs)]
SLOW = [p for p, bs in ALL.items() if any(b.mark == "slow" and does_something(b) for b in bs)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One persistent compilation cache for every example of the session."""
    return tmp_path_factory.mktemp("jax-cache")


@pytest.mark.parametrize("page", DEFAULT)
def test_examples_run_as_written(page, tmp_path, cache):
    run_page([b for b in ALL[page] if b.mark == "run"], tmp_path, cache)


@pytest.mark.slow
@pytest.mark.parametrize("page", SLOW)
def test_slow_examples_run_as_written(page, tmp_path, cache):
    run_page([b for b in ALL[page] if b.mark != "no-run"], tmp_path, cache)


def test_the_readme_has_a_running_python_example_and_skips_are_explained():
    readme = ALL["README.md"]
    assert any(b.lang in PYTHON_TAGS and b.mark == "run" for b in readme)
    for blocks in ALL.values():
        for b in blocks:
            assert b.mark != "no-run" or b.reason, f"{b.page}:{b.line}: no-run needs a reason"


def test_extraction_reads_marks_fences_and_console_prompts():
    text = "\n".join(
        [
            "Some text.",
            "",
            "<!-- slow -->",
            "```python",
            "x = 1",
            "```",
            "<!-- no-run: it installs -->",
            "```bash",
            "pip install .",
            "```",
            "- a list item:",
            "",
            "  ```console",
            "  $ ufm verify ce-etf \\",
            "      --json out.json",
            "  1 passed, 0 failed",
            "  verdict   AGREES: fine",
            "  ```",
            "````text",
            "```python",
            "not a block of its own",
            "```",
            "````",
        ]
    )
    blocks = extract(text, "page.md")
    assert [(b.lang, b.mark, b.line) for b in blocks] == [
        ("python", "slow", 4),
        ("bash", "no-run", 8),
        ("console", "run", 13),
        ("text", "run", 19),
    ]
    assert blocks[1].reason == "it installs"
    (number, command, shown), *rest = commands(blocks[2])
    assert (number, command, rest) == (14, "ufm verify ce-etf --json out.json", [])
    assert shown == ["1 passed, 0 failed", "verdict   AGREES: fine"]
    assert _verdict(shown) == "AGREES"
    assert shell_line("pip install '.[docs]' && mkdocs serve") is None
    assert shell_line("mkdocs build --strict") is None
    assert shell_line("ufm verify ce-etf").endswith("-m ufm.cli verify ce-etf")
    with pytest.raises(AssertionError, match="must start with ufm or python"):
        shell_line("rm -rf /")


if __name__ == "__main__":
    sys.exit(drive(sys.argv[1]))
