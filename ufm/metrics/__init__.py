"""Neural-collapse metrics NC1-NC4 (and CDNV, GNC2, UNC3), every published variant by name.

- In-memory features, jittable: `nc1_pinv(H, y, K)`, ..., `summary(H, y, K, W, b)`.
- Real networks' features at any scale: `report(H, labels, W=None)` and `Accumulator`
  (streaming class statistics, tiled pair statistics), behind `ufm metrics FILE`.

Definitions, sources (each reference implementation at the commit that was checked) and
where peers disagree: `DEFINITIONS` and the docstrings.
"""

from ._core import metrics as from_stats
from ._data import agreement as agreement
from ._data import cdnv as cdnv
from ._data import centred_means as centred_means
from ._data import class_means as class_means
from ._data import global_mean as global_mean
from ._data import gnc2 as gnc2
from ._data import nc1_pinv as nc1_pinv
from ._data import nc1_svd as nc1_svd
from ._data import nc1_trace as nc1_trace
from ._data import nc2_equiangularity as nc2_equiangularity
from ._data import nc2_equinorm as nc2_equinorm
from ._data import nc2_etf_error as nc2_etf_error
from ._data import nc2_maxangle as nc2_maxangle
from ._data import nc2_of_error as nc2_of_error
from ._data import nc3_self_duality as nc3_self_duality
from ._data import nc3_uncentred as nc3_uncentred
from ._data import nc4_agreement as nc4_agreement
from ._data import scatter_traces as scatter_traces
from ._data import summary as summary
from ._report import DEFINITIONS as DEFINITIONS
from ._report import Accumulator as Accumulator
from ._report import report as report
from ._stats import ClassStats as ClassStats
from ._stats import class_stats as class_stats

__all__ = ["from_stats"]
