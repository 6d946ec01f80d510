"""Dual-head knowledge distillation (Yang et al., arXiv 2411.08937) as a UFM.

problem.py holds the loss and init (make.py checks the keywords), losses.py the logit losses
as the official code defines them, teachers.py the teacher logits, theory.py the reduction
to a few scalars under a collapsed teacher, predict.py what `ufm.theory` returns,
gradients.py the gradient cosines, claims.py what `ufm verify` checks.
"""

from .losses import LOGIT_LOSSES as LOGIT_LOSSES
from .problem import DhkdProblem as DhkdProblem
from .theory import Setting as Setting
from .theory import reduced as reduced
