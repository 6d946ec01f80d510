"""ufm's own models, one package each: ``plain``, ``deep_linear``, ``vicinity``, ``mixup``.

Each package holds ``problem.py`` (the loss, init and data), ``theory.py`` (the closed
forms), ``claims.py`` (what `ufm verify` checks) and, where its paper has one, the paper's
analysis. `ufm.registry` names them for `ufm.make`; nothing here registers anything.
"""

from .deep_linear import DeepLinearProblem as DeepLinearProblem
from .mixup import MixupProblem as MixupProblem
from .plain import PlainProblem as PlainProblem
from .vicinity import VicinityProblem as VicinityProblem
