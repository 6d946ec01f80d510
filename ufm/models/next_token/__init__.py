"""The next-token UFM: a free feature per context, its next-token distribution as target.

problem.py holds the loss and init, data.py the sources (synthetic Markov language, one-hot,
corpus bigrams), theory.py the certified convex minimum, geometry.py the unembedding's
geometry, claims.py what `ufm verify` checks.
"""

from .data import Contexts as Contexts
from .data import bigram_counts as bigram_counts
from .data import contexts_from_counts as contexts_from_counts
from .geometry import properties as properties
from .problem import NextTokenProblem as NextTokenProblem
from .theory import convex_bound as convex_bound
from .theory import plain_mapping as plain_mapping
