"""Command-line parsing details shared by the `ufm` subcommands."""

import argparse
import os


def to_int(text: str) -> int:
    """An integer from '12', '-3' or '1e6' (scientific notation of a whole number); a
    ValueError otherwise."""
    try:
        return int(text)
    except ValueError:
        value = float(text)  # a ValueError for text that is no number
    if not value.is_integer():
        raise ValueError(f"not an integer: {text!r}")
    return int(value)


def integer(text: str) -> int:
    """An argparse type: an integer, also written like 1e6."""
    try:
        return to_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None


def integer_list(text: str) -> list[int]:
    """An argparse type: comma-separated integers ('0,1,2', '150,15')."""
    try:
        return [to_int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas; got {text!r}"
        ) from None


def _numbers(text: str) -> bool:
    """Whether `text` is a number or comma-separated numbers ('-1e-3', '-1e-3,1e-3')."""
    try:
        [float(x) for x in text.split(",")]
    except ValueError:
        return False
    return True


def join_negative_values(argv: list | None) -> list[str]:
    """`argv` (default sys.argv[1:]) with ``--flag -1e-3`` joined into ``--flag=-1e-3``.

    argparse reads a token that starts with '-' as an option, not as the value of the flag
    before it, unless it matches its negative-number pattern, which has no exponent and no
    commas: ``--lambda-H -1e-3`` failed with "expected one argument" before ufm could say
    what is wrong with the value. Joined, every numeric flag gets its value and ufm's own
    range check names it. ufm takes no negative numbers as positional arguments, and a
    flag that takes no value still rejects one ('ignored explicit argument').
    """
    import sys

    tokens = [
        os.fspath(a) if not isinstance(a, str) else a
        for a in (sys.argv[1:] if argv is None else argv)
    ]
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            out += tokens[i:]
            break
        value = tokens[i + 1] if i + 1 < len(tokens) else ""
        flag = token.startswith("--") and "=" not in token and len(token) > 2
        if flag and value.startswith("-") and _numbers(value):
            out.append(f"{token}={value}")
            i += 2
        else:
            out.append(token)
            i += 1
    return out
