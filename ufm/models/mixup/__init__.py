"""The mixup UFM of Fisher, Meng & Papyan (2024): features of mixed pairs of classes.

problem.py holds the loss and init, theory.py the closed forms, claims.py what
`ufm verify` checks.
"""

from .data import beta_quadrature as beta_quadrature
from .data import make_columns as make_columns
from .data import parse_mix as parse_mix
from .data import soft_labels as soft_labels
from .problem import MixupProblem as MixupProblem
from .problem import properties as properties
from .theory import NEWTON_STEPS as NEWTON_STEPS
from .theory import ROUNDOFF as ROUNDOFF
from .theory import SOURCE as SOURCE
from .theory import SOURCE_ETF as SOURCE_ETF
from .theory import SOURCE_LEARNED_CE as SOURCE_LEARNED_CE
from .theory import SOURCE_LEARNED_MSE as SOURCE_LEARNED_MSE
from .theory import ce_logits as ce_logits
from .theory import centred_basis as centred_basis
from .theory import kappa as kappa
from .theory import mixed_gaps as mixed_gaps
from .theory import mse_feature_scale as mse_feature_scale
from .theory import same_class_gap as same_class_gap
