"""Closed forms of the plain UFM (numpy, elementwise); derivations/plain_ufm.py derives them."""

import numpy as np

SOURCE_CE = (
    "Zhu et al. 2021, arXiv 2105.02375 (abstract read: the global minimizers are simplex ETFs; "
    "the theorem, recalled as Thm 3.1, and its hypotheses recalled); norms and loss: "
    "derivations/plain_ufm.py steps 3-4"
)
SOURCE_MSE = (
    "Tirer & Bruna 2022, arXiv 2202.08087, Thm 3.1 (read as restated in the body of Tirer, "
    "Huang & Niles-Weed 2023); derivations/plain_ufm.py step 6"
)
SOURCE_MSE_BIAS = (
    "derivations/plain_ufm.py step 7 (ours; that Tirer & Bruna 2022, arXiv 2202.08087, state "
    "this case is recalled, not read)"
)
SOURCE_GOF = (
    "Dang et al. 2023, arXiv 2301.00437, the M = 1 case (abstract; official code at commit "
    "0e2a53daa3f3); derivations/plain_ufm.py step 8"
)
SOURCE_MSE_BIAS_IMB = (
    "derivations/plain_ufm.py steps 5 and 7 (ours: the centred labels, soft-thresholded)"
)
SOURCE_ZERO = (
    "derivations/plain_ufm.py step 9 (ours: the zero solution is global iff "
    "||grad_Z L(0)||_op <= sqrt(lambda_W lambda_H))"
)
SOURCE_CONVEX = (
    "derivations/plain_convex.py (ours: the factorization bound and the collapse reduction give a "
    "convex program in the K x K class-mean logits weighted by the class counts; the same "
    "program, with cross-entropy, is the one Hong & Ling 2023, arXiv 2309.09725, solve with a "
    "conic solver, abstract read); solved by ufm.models.plain.convex to a certified duality gap"
)
SOURCE_NARROW = (
    "derivations/plain_ufm.py steps 10-11 (ours: the nuclear-norm problem under rank Z <= d, "
    "von Neumann's trace inequality)"
)


# ----------------------------------------------------------------------------------------
# Closed forms (numpy, elementwise). Balanced: n per class, s = sqrt(n lambda_W lambda_H),
# c = K s; the nonzero branch holds iff c < 1.


def threshold(K, n, lambda_W, lambda_H):
    """c = K sqrt(n lambda_W lambda_H): collapse to zero iff c >= 1 (balanced CE and MSE)."""
    return K * np.sqrt(n * lambda_W * lambda_H)


def ce_margin(K, n, lambda_W, lambda_H):
    """Optimal margin a* = ln(1/s - (K-1)) of the ETF energy ln(1+(K-1)e^-a) + (K-1) s a."""
    s = np.sqrt(n * lambda_W * lambda_H)
    return np.log(1 / s - (K - 1))


def ce_min_loss(K, n, lambda_W, lambda_H):
    """-ln(1 - (K-1) s) + (K-1) s a* if c < 1, else ln K."""
    s = np.sqrt(n * lambda_W * lambda_H)
    with np.errstate(invalid="ignore", divide="ignore"):
        # log1p: at s ~ 1e-12, 1 - (K-1) s loses ~1e-5 of the result to rounding
        inner = -np.log1p(-(K - 1) * s) + (K - 1) * s * ce_margin(K, n, lambda_W, lambda_H)
    return np.where(K * s < 1, inner, np.log(K))


def ce_w_norm2(K, n, lambda_W, lambda_H):
    """||w_k||^2 = (K-1)/K sqrt(n lambda_H/lambda_W) a* (interior branch)."""
    return (K - 1) / K * np.sqrt(n * lambda_H / lambda_W) * ce_margin(K, n, lambda_W, lambda_H)


def ce_h_norm2(K, n, lambda_W, lambda_H):
    """||h_{k,i}||^2 = lambda_W/(n lambda_H) ||w_k||^2 (interior branch)."""
    return lambda_W / (n * lambda_H) * ce_w_norm2(K, n, lambda_W, lambda_H)


def mse_min_loss(K, n, lambda_W, lambda_H, bias, d=None):
    """No bias: c - c^2/2 (c < 1) else 1/2; unregularized bias: (K-1)/K times that.

    Width d below the r = K (no bias) or K - 1 (bias) label directions: only min(d, r) of
    them can be on, the others cost 1/(2K) each: (d/K)(c - c^2/2) + (r - d)/(2K) for d < r
    and c < 1 (derivations/plain_ufm.py step 11)."""
    c = threshold(K, n, lambda_W, lambda_H)
    per = np.where(c < 1, c - c**2 / 2, 0.5) / K  # one direction's share
    r = K - 1 if bias else K
    kept = r if d is None else np.minimum(d, r)
    return kept * per + (r - kept) / (2 * K)


def mse_rho(K, n, lambda_W, lambda_H):
    """Class-mean Gram scale: Hbar^T Hbar = rho I (no bias) or rho P_K (bias)."""
    c = threshold(K, n, lambda_W, lambda_H)
    return np.maximum(1 - c, 0) * np.sqrt(lambda_W / (n * lambda_H))


def mse_w_norm2(K, n, lambda_W, lambda_H):
    """||w_k||^2 = (1-c) sqrt(n lambda_H/lambda_W) without bias ((K-1)/K of it with bias)."""
    c = threshold(K, n, lambda_W, lambda_H)
    return np.maximum(1 - c, 0) * np.sqrt(n * lambda_H / lambda_W)


def gof_alive(n_k, N, lambda_W, lambda_H):
    """Imbalanced bias-free MSE: class k is alive iff n_k > N^2 lambda_W lambda_H."""
    return n_k > N**2 * lambda_W * lambda_H


def gof_own_logit(n_k, N, lambda_W, lambda_H):
    """w_k . hbar_k = 1 - N sqrt(lambda_W lambda_H / n_k) if alive, else 0."""
    return np.maximum(1 - N * np.sqrt(lambda_W * lambda_H / n_k), 0)


def gof_class_loss(n_k, N, lambda_W, lambda_H):
    """Class k's share of the minimum: sqrt(n_k lW lH) - N lW lH/2 if alive, else n_k/(2N)."""
    alive = np.sqrt(n_k * lambda_W * lambda_H) - N * lambda_W * lambda_H / 2
    return np.where(gof_alive(n_k, N, lambda_W, lambda_H), alive, n_k / (2 * N))


def gof_w_norm2(n_k, N, lambda_W, lambda_H):
    """||w_k||^2 = sqrt(n_k lambda_H/lambda_W) - N lambda_H if alive, else 0."""
    return np.maximum(np.sqrt(n_k * lambda_H / lambda_W) - N * lambda_H, 0)


def gof_hbar_norm2(n_k, N, lambda_W, lambda_H):
    """||hbar_k||^2 = sqrt(lambda_W/(n_k lambda_H)) - N lambda_W/n_k if alive, else 0."""
    return np.maximum(np.sqrt(lambda_W / (n_k * lambda_H)) - N * lambda_W / n_k, 0)
