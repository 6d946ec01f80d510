"""The two kinds of failure ufm tells apart.

``InputError`` (a ValueError, so ``except ValueError`` still catches it): the caller's
input is wrong, a parameter out of range, a malformed file or flag; the message names the
parameter and what is allowed. The CLI exits 2 on it. Any other exception raised while ufm
works is a failure of ufm itself (or of a library under it), never reported as bad input:
the CLI exits 1 and says so.
"""


class InputError(ValueError):
    """Bad input, named in the message: a parameter, its allowed range and the value given."""


class PrecisionWarning(UserWarning):
    """The precision in use cannot give what was asked for: float32 (``jax_enable_x64`` off)
    rounds hyperparameters to 7 digits and cannot reach ufm's default tolerance."""
