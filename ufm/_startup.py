"""Imported first by `ufm/__init__`: when this process is the ``ufm`` command, a Ctrl-C that
arrives while the heavy libraries load is remembered (`_interrupts.early`), so that one
dropped by JAX's garbage-collector callback still stops a sweep. Library users are untouched.
"""

import os
import sys

from . import _interrupts

_command = sys.argv[0] if sys.argv else ""
if os.path.basename(_command) == "ufm" or _command.endswith(os.path.join("ufm", "cli.py")):
    _interrupts.early()
