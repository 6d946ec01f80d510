"""The deep linear UFM: M linear layers on free features, cross-entropy or MSE.

problem.py holds the loss and init, theory.py the closed forms, claims.py what
`ufm verify` checks.
"""

from .problem import DeepLinearProblem as DeepLinearProblem
from .theory import SOURCE_CE as SOURCE_CE
from .theory import SOURCE_CE_M1 as SOURCE_CE_M1
from .theory import SOURCE_MSE as SOURCE_MSE
from .theory import SOURCE_MSE_BIAS_IMB as SOURCE_MSE_BIAS_IMB
from .theory import beta_star as beta_star
from .theory import etf_beaten as etf_beaten
from .theory import etf_best as etf_best
from .theory import etf_energy as etf_energy
from .theory import etf_logits as etf_logits
from .theory import etf_slope as etf_slope
from .theory import minority_threshold as minority_threshold
from .theory import mu as mu
from .theory import orthoplex_best as orthoplex_best
from .theory import orthoplex_energy as orthoplex_energy
from .theory import orthoplex_logits as orthoplex_logits
from .theory import orthoplex_slope as orthoplex_slope
