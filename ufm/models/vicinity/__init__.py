"""The perturbed-vicinity UFM of Tirer, Huang & Niles-Weed (2023): MSE features kept near H0.

Its paper's analysis lives beside it: `central_path` (the flow of Thm 3.1) and
`linear_response` (the large-beta operator of Thm 4.1-4.2).

problem.py holds the loss and init, theory.py the closed forms, claims.py what
`ufm verify` checks.
"""

from .problem import VicinityProblem as VicinityProblem
from .theory import SOURCE as SOURCE
from .theory import SOURCE_COR22 as SOURCE_COR22
from .theory import eq5_spectrum as eq5_spectrum
from .theory import from_paper as from_paper
from .theory import gamma_parallel as gamma_parallel
from .theory import gamma_perp as gamma_perp
from .theory import nc1_ratio as nc1_ratio
from .theory import theorem_4_2 as theorem_4_2
