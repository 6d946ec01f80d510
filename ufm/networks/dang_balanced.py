"""Dang et al.'s experiment on balanced classes (`ufm experiment dang-balanced`): the same
networks and comparison as `dang`, with 135 training samples in every class."""

from .dang import compare, plot, setup_balanced

NAME = "dang-balanced"
SUMMARY = "Dang et al.: appended linear layers against the deep linear UFM, balanced classes"


def setup(quick: bool = False):
    return setup_balanced(quick)


__all__ = ["compare", "plot", "setup"]
