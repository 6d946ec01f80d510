"""`ufm --version` and the help of every subcommand and model, as a new user reads them:
plain text (no reST markup from docstrings) and every option's default shown."""

import argparse
import re

import pytest

import ufm
from ufm import _cli_parser, cli


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Every parser by its command line: 'ufm', 'ufm solve', 'ufm solve plain', ..."""
    found = {}

    def walk(name: str, parser: argparse.ArgumentParser) -> None:
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(f"{name} {sub}", child)

    walk("ufm", _cli_parser.build())
    return found


PARSERS = parsers()


def help_text(command: str, capsys) -> str:
    """What `command --help` prints, through `ufm.cli.main` as the console script runs it."""
    with pytest.raises(SystemExit) as stop:
        cli.main([*command.split()[1:], "--help"])
    out, err = capsys.readouterr()
    assert stop.value.code == 0 and err == ""
    return out


def flat(text: str) -> str:
    return " ".join(text.split())


def rendered(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """One option's entry in its parser's help, rendered by argparse as in --help."""
    formatter = parser._get_formatter()
    formatter.add_argument(action)
    return flat(formatter.format_help())


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    out, _ = capsys.readouterr()
    assert stop.value.code == 0
    assert out == f"ufm {ufm.__version__}\n"


def test_every_command_and_model_has_a_parser():
    for name in ufm.REGISTRY:
        assert f"ufm solve {name}" in PARSERS and f"ufm sweep {name}" in PARSERS
    for command in ("solve", "sweep", "plot", "repair", "metrics", "verify", "features"):
        assert f"ufm {command}" in PARSERS


@pytest.mark.parametrize("command", list(PARSERS))
def test_help_is_plain_text(command, capsys):
    text = help_text(command, capsys)
    assert "``" not in text and not re.search(r":\w+:`", text), text
    assert "`" not in text, text  # no inline code markup either


def test_model_lines_come_without_markup(capsys):
    """Each model's line: its `summary` attribute if it has one, else its docstring's first
    line, with the docstring's ``code`` quotes dropped."""
    text = flat(help_text("ufm solve", capsys))
    for name, cls in ufm.REGISTRY.items():
        line = getattr(cls, "summary", None)
        if not isinstance(line, str):
            line = cls.__doc__.strip().splitlines()[0]
        assert f"{name} {flat(line.replace('``', ''))}" in text, name


@pytest.mark.parametrize("command", list(PARSERS))
def test_every_option_with_a_default_shows_it(command, capsys):
    parser = PARSERS[command]
    text = flat(help_text(command, capsys))
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings:
            continue
        default = action.default
        if default is None or default is argparse.SUPPRESS or default is False:
            continue
        shown = f"(default: {default})"
        assert shown in rendered(parser, action), (command, action.option_strings)
        assert shown in text, (command, action.option_strings)


@pytest.mark.parametrize("name", list(ufm.REGISTRY))
def test_sweep_flags_show_the_models_defaults(name):
    """A sweep leaves out the flags not given (the model's default applies): the help still
    names that default."""
    parser = PARSERS[f"ufm sweep {name}"]
    options = {a.dest: a for a in parser._actions if a.option_strings}
    for h in ufm.REGISTRY[name].hypers:
        if h.default is None or h.default is False:
            continue
        assert f"(default: {h.default})" in rendered(parser, options[h.name]), h.name
