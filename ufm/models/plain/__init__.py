"""The plain UFM: one linear classifier on free features, cross-entropy or MSE.

problem.py holds the loss and init, theory.py the closed forms, claims.py what
`ufm verify` checks.
"""

from .problem import PlainProblem as PlainProblem
from .theory import SOURCE_CE as SOURCE_CE
from .theory import SOURCE_GOF as SOURCE_GOF
from .theory import SOURCE_MSE as SOURCE_MSE
from .theory import SOURCE_MSE_BIAS as SOURCE_MSE_BIAS
from .theory import SOURCE_MSE_BIAS_IMB as SOURCE_MSE_BIAS_IMB
from .theory import SOURCE_NARROW as SOURCE_NARROW
from .theory import SOURCE_ZERO as SOURCE_ZERO
from .theory import ce_h_norm2 as ce_h_norm2
from .theory import ce_margin as ce_margin
from .theory import ce_min_loss as ce_min_loss
from .theory import ce_w_norm2 as ce_w_norm2
from .theory import gof_alive as gof_alive
from .theory import gof_class_loss as gof_class_loss
from .theory import gof_hbar_norm2 as gof_hbar_norm2
from .theory import gof_own_logit as gof_own_logit
from .theory import gof_w_norm2 as gof_w_norm2
from .theory import mse_min_loss as mse_min_loss
from .theory import mse_rho as mse_rho
from .theory import mse_w_norm2 as mse_w_norm2
from .theory import threshold as threshold
