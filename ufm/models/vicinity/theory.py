"""Closed forms of the vicinity UFM (Tirer, Huang & Niles-Weed 2023); derivations/vicinity.py."""

import numpy as np

from ..plain.theory import threshold

SOURCE = (
    "Tirer, Huang & Niles-Weed 2023, arXiv 2210.16658 (body read in the ICLR 2023 submission, "
    "numbered as there)"
)
SOURCE_COR22 = f"{SOURCE}, Cor 2.2; derivations/vicinity.py step 3"


# ----------------------------------------------------------------------------------------
# Closed forms (numpy), canonical units, balanced classes (derivations/vicinity.py steps 6-9).


def from_paper(K: int, n: int, lambda_W: float, lambda_H: float, beta: float) -> dict:
    """Canonical (lambda_W, lambda_H, beta) from the paper's: lW^T/K, lH^T/N, beta^T/N."""
    N = K * n
    return {"lambda_W": lambda_W / K, "lambda_H": lambda_H / N, "beta": beta / N}


def gamma_parallel(K, n, lambda_W, lambda_H, beta):
    """Exact first-order shrink of within-class noise inside the span of the class means:
    beta / (beta + sqrt(n lambda_H / lambda_W) / N), N = K n (derivations/vicinity.py step 6)."""
    return beta / (beta + np.sqrt(n * lambda_H / lambda_W) / (K * n))


def gamma_perp(lambda_H, beta):
    """... and orthogonal to it: beta / (beta + lambda_H)."""
    return beta / (beta + lambda_H)


def nc1_ratio(K, n, lambda_W, lambda_H, beta, e_parallel):
    """Predicted NC1(H_{1/beta}) / NC1(H0) for H0 = H* + small within-class noise with a
    fraction `e_parallel` of its energy in the span of the means (isotropic: K/d)."""
    g_par = gamma_parallel(K, n, lambda_W, lambda_H, beta)
    g_perp = gamma_perp(lambda_H, beta)
    return g_par**2 * e_parallel + g_perp**2 * (1 - e_parallel)


def theorem_4_2(K, n, lambda_W, lambda_H, beta) -> dict[str, float]:
    """Thm 4.2 in canonical units: extreme singular values of the blocks of the large-beta
    operator F (Eq. 5) at a collapsed H0; F_kk full rank, F_kk' (k != k') rank 1.

    diag_min holds for beta >= sqrt(n lambda_H/lambda_W)/N (paper: beta^T >= sqrt(lH^T/lW^T));
    below it an eigenvalue of Eq. 5 turns negative (derivations/vicinity.py). The exact F's
    smallest value is `gamma_parallel` for every beta."""
    c = threshold(K, n, lambda_W, lambda_H)
    return {
        "diag_max": 1.0,
        "diag_min": 1 - np.sqrt(n * lambda_H / lambda_W) / (K * n * beta),
        "off_max": 2 * lambda_H * (1 - c) / beta,
        "off_rank": 1,
    }


def eq5_spectrum(K, n, d, lambda_W, lambda_H, beta) -> list[tuple[float, int]]:
    """Every singular value of a diagonal block F_kk of Eq. 5 with its multiplicity
    (derivations/vicinity.py steps 6 and 8); they sum to d n."""
    c = threshold(K, n, lambda_W, lambda_H)
    return [
        (1 - np.sqrt(n * lambda_H / lambda_W) / (K * n * beta), K * (n - 1)),
        (1 - lambda_H / beta, (d - K) * (n - 1)),
        (1.0, d - K),
        (1 - 2 * lambda_H * (1 - c) / beta, K - 1),
        (1 - 4 * lambda_H * (1 - c) / beta, 1),
    ]


# ----------------------------------------------------------------------------------------
# H0: reading, checking, generating.
