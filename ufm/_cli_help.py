"""The `ufm` help text: plain words (no reST markup) and every meaningful default shown."""

import argparse
import re

# ``code``, `code` and :role:`target` as written in docstrings
_MARKUP = re.compile(r"(?::[\w.]+:)?`{1,2}([^`]+)`{1,2}")


class Formatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help unless its default is None, SUPPRESS or
    False (a flag that is off), or the help already states its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text is None or "%(default)" in text or "(default" in text:
            return text
        if action.default is None or action.default is argparse.SUPPRESS:
            return text
        if action.default is False or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def plain(text: str) -> str:
    """`text` with docstring markup removed: ``ufm.make("plain")`` -> ufm.make("plain")."""
    return _MARKUP.sub(r"\1", text)


def model_help(cls) -> str:
    """One plain line for a model in `ufm solve --help`: the class's `summary` attribute if
    it has one, else the first line of its docstring."""
    summary = getattr(cls, "summary", None)
    if not isinstance(summary, str):
        lines = (cls.__doc__ or "").strip().splitlines()
        summary = lines[0] if lines else cls.__name__
    return plain(summary.strip())
