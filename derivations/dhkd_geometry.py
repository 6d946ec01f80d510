"""The distillation UFM at symmetric collapse points: the two losses' gradient cosines, and
which class-mean Grams nonnegative (post-ReLU) features can have (sympy).

Convention and notation as in derivations/dhkd.py: P = I - J/K, J = 1 1^T, n samples per
class. A symmetric collapse point has collapsed features with class means Hbar (d, K) and a
head W (K, d) whose Grams are in span{P, J}: W W^T = alpha' P + beta' J, Hbar^T Hbar =
alpha P + beta J (an ETF plus a common row or feature component, any scales). All of this is
ours; the paper's abstract states the conflict claim, its argument was not read.

The steps:

1. Logit gradients at a symmetric point.  With the class-mean logits Zbar = A P + M J the
   class-mean logit gradient of CE is G_ce = -K p_o P (p_o the softmax of another class; the
   columns sum to zero), and that of a logit loss acting entry by entry with derivative
   phi'_t on the target and phi'_o on the other classes is G_l = y P + z J with
   y = phi'_t - phi'_o (checked for K = 3, 4, 5 with symbolic entries).
2. Inner products.  The data gradients are (n/N) G Hbar^T on W and (1/N) W^T G Y on H, so
   <grad_W CE, grad_W l> is proportional to tr(G_ce (alpha P + beta J) G_l^T) = x alpha y (K-1)
   and <grad_H CE, grad_H l> to tr(G_ce^T (alpha' P + beta' J) G_l) = x alpha' y (K-1), with
   x = -K p_o; per row k of W and per sample (a column of G), the same with (K-1)/K.  Every
   cosine (full batch on W and on H, per row, per sample) has the sign of -y = phi'_o -
   phi'_t whenever alpha, alpha' > 0: the two gradients conflict on the head exactly where
   they conflict on the features, namely where the logit loss pushes the target logit up
   less (or down more) than the other logits (phi'_t > phi'_o).
3. Nonnegative realizations.  Nonnegative vectors have nonnegative inner products, so a
   class-mean Gram a I + b J with b < 0 has no nonnegative realization.  With b >= 0 and
   d >= K the means x e_c + y (e_1 + ... + e_K), x = sqrt(a), K y^2 + 2 x y = b (y >= 0),
   have Gram x^2 I + (2 x y + K y^2) J = a I + b J; an orthogonal Q maps the free minimizer's
   means onto them (equal Grams), and turning the heads by the same Q keeps every logit, so
   the nonnegative problem reaches the free one's minimum.
"""

import sympy as sp

K_VALUES = (3, 4, 5)


def _P(k: int) -> sp.Matrix:
    return sp.eye(k) - sp.ones(k, k) / k


def _gradients(k: int) -> dict[str, sp.Expr]:
    """Step 1: the class-mean logit gradients at a symmetric point."""
    po, ft, fo = sp.symbols("p_o phi_t phi_o")
    pt = 1 - (k - 1) * po
    G_ce = sp.Matrix(k, k, lambda i, j: (pt - 1) if i == j else po)
    assert sp.simplify(G_ce + k * po * _P(k)) == sp.zeros(k, k)
    G_l = sp.Matrix(k, k, lambda i, j: ft if i == j else fo)
    y, z = ft - fo, (ft - fo) / k + fo
    assert sp.simplify(G_l - (y * _P(k) + z * sp.ones(k, k))) == sp.zeros(k, k)
    return {"G_ce": G_ce, "G_l": G_l, "x": -k * po, "y": y}


def _inner_products(k: int) -> dict[str, sp.Expr]:
    """Step 2: the inner products on W, on H, per row and per sample."""
    g = _gradients(k)
    al, be = sp.symbols("alpha beta")
    gram = al * _P(k) + be * sp.ones(k, k)
    on_W = (g["G_ce"] * gram * g["G_l"].T).trace()
    on_H = (g["G_ce"].T * gram * g["G_l"]).trace()
    row = (g["G_ce"] * gram * g["G_l"].T)[0, 0]
    sample = (g["G_ce"][:, 0].T * gram * g["G_l"][:, 0])[0, 0]
    expected = g["x"] * al * g["y"] * (k - 1)
    for value, factor in (
        (on_W, 1),
        (on_H, 1),
        (row, sp.Rational(1, k)),
        (sample, sp.Rational(1, k)),
    ):
        assert sp.simplify(value - factor * expected) == 0
    return {f"inner_W_K{k}": sp.factor(on_W), f"inner_sample_K{k}": sp.factor(sample)}


def _nonnegative(k: int) -> dict[str, sp.Expr]:
    """Step 3: x e_c + y 1 has the Gram a I + b J."""
    a, b = sp.symbols("a b", nonnegative=True)
    x = sp.sqrt(a)
    y = (-x + sp.sqrt(x**2 + k * b)) / k
    assert sp.simplify(k * y**2 + 2 * x * y - b) == 0
    means = x * sp.eye(k) + y * sp.ones(k, k)
    assert sp.simplify(means.T * means - (a * sp.eye(k) + b * sp.ones(k, k))) == sp.zeros(k, k)
    return {f"y_K{k}": y}


def derive() -> dict[str, sp.Expr]:
    out: dict[str, sp.Expr] = {}
    for k in K_VALUES:
        out |= _inner_products(k) | _nonnegative(k)
    return out


if __name__ == "__main__":
    for name, expr in derive().items():
        print(f"{name} = {expr}")
