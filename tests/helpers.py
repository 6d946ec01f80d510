"""Case lists shared by the tests: points on both sides of every threshold."""

import pytest

IMB = (100, 100, 10, 10)  # N = 220; minorities die at N^2 lW lH > 10 (lam > 0.01437)


def plain(loss, **kw):
    return {"loss": loss, "K": 4, "n": 5, "d": 8} | kw


# balanced K=4, n=5: c = K sqrt(n) lam = 8.944 lam for equal lambdas; c = 1 at lam = 0.1118
SOLVER_CASES = [
    pytest.param(plain("ce", lambda_W=0.01, lambda_H=0.01), id="ce-etf"),
    pytest.param(plain("ce", lambda_W=0.1, lambda_H=0.1), id="ce-below-threshold"),
    pytest.param(plain("ce", lambda_W=0.12, lambda_H=0.12), id="ce-zero"),
    pytest.param(plain("ce", bias=True, lambda_W=0.01, lambda_H=0.01), id="ce-free-bias"),
    pytest.param(plain("ce", bias=True, lambda_W=0.12, lambda_H=0.12), id="ce-free-bias-zero"),
    pytest.param(
        plain("ce", bias=True, lambda_W=0.02, lambda_H=0.005, lambda_b=0.01),
        id="ce-regularized-bias",
    ),
    pytest.param(plain("ce", d=3, lambda_W=0.01, lambda_H=0.01), id="ce-d-equals-K-1"),
    pytest.param(plain("mse", lambda_W=0.05, lambda_H=0.01), id="mse-of"),
    pytest.param(plain("mse", lambda_W=0.1, lambda_H=0.1), id="mse-below-threshold"),
    pytest.param(plain("mse", lambda_W=0.12, lambda_H=0.12), id="mse-zero"),
    pytest.param(plain("mse", bias=True, lambda_W=0.05, lambda_H=0.01), id="mse-bias-etf"),
    pytest.param(plain("mse", bias=True, lambda_W=0.12, lambda_H=0.12), id="mse-bias-zero"),
    pytest.param(plain("mse", n=IMB, lambda_W=0.005, lambda_H=0.005), id="mse-gof"),
    pytest.param(plain("mse", n=IMB, lambda_W=0.013, lambda_H=0.013), id="mse-gof-below-minority"),
    pytest.param(plain("mse", n=IMB, lambda_W=0.016, lambda_H=0.016), id="mse-minority-collapse"),
    pytest.param(plain("mse", n=IMB, lambda_W=0.05, lambda_H=0.05), id="mse-imbalanced-zero"),
    pytest.param(
        plain("mse", n=IMB, bias=True, lambda_W=0.005, lambda_H=0.005), id="mse-bias-imbalanced"
    ),
    pytest.param(
        plain("mse", n=IMB, bias=True, lambda_W=0.02, lambda_H=0.02),
        id="mse-bias-imbalanced-minority",
    ),
    pytest.param(plain("ce", n=IMB, lambda_W=0.05, lambda_H=0.05), id="ce-imbalanced-zero"),
    pytest.param(
        plain("ce", n=IMB, bias=True, lambda_W=0.05, lambda_H=0.05),
        id="ce-imbalanced-free-bias-zero",
    ),
]
