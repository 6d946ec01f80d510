"""The geometry of a next-token UFM's unembedding W (K x d): how its rows' norms follow the
tokens' frequencies, how much they interfere, how uniformly they spread."""

import numpy as np

from ... import metrics

RANK_RTOL = 1e-6  # singular values of W below this fraction of the largest are off


def properties(W: np.ndarray, token_frequencies: np.ndarray) -> dict[str, float]:
    """norm_freq_corr / norm_logfreq_corr: Pearson correlation of the row norms ||w_k|| with
    the tokens' next-token frequencies q_k and with log q_k (tokens with q_k > 0);
    mean_abs_cos: the mean |cos| between distinct rows (0: orthogonal, 1/(K-1): a simplex
    ETF); gnc2_log_mean / gnc2_log_var: `ufm.metrics.gnc2` of the rows; W_rank: the number
    of singular values above RANK_RTOL of the largest."""
    W = np.asarray(W, dtype=float)
    q = np.asarray(token_frequencies, dtype=float)
    norms = np.linalg.norm(W, axis=1)
    seen = q > 0
    out = {
        "norm_freq_corr": _corr(norms[seen], q[seen]),
        "norm_logfreq_corr": _corr(norms[seen], np.log(q[seen])),
    }
    live = norms > 1e-12 * max(norms.max(initial=0.0), 1e-300)
    U = W[live] / norms[live, None]
    C = np.abs(U @ U.T)
    k = C.shape[0]
    out["mean_abs_cos"] = float((C.sum() - np.trace(C)) / (k * (k - 1))) if k > 1 else 0.0
    if k > 1:
        mean, var = metrics.gnc2(W[live])
        out["gnc2_log_mean"], out["gnc2_log_var"] = float(mean), float(var)
    else:
        out["gnc2_log_mean"] = out["gnc2_log_var"] = float("nan")
    s = np.linalg.svd(W, compute_uv=False)
    out["W_rank"] = int(np.sum(s > RANK_RTOL * max(s.max(initial=0.0), 1e-300)))
    return out


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])
