"""derivations/dhkd_geometry.py: its sympy checks run, and its sign rule holds for the model's
own gradients at symmetric collapse points (independent: jax autodiff of the full loss)."""

import numpy as np

import ufm
from derivations import dhkd_geometry as dv
from ufm.models.dhkd import conflict, gradients


def test_the_derivation_runs():
    out = dv.derive()
    assert set(out) >= {"inner_W_K3", "inner_sample_K5", "y_K4"}


def test_every_cosine_has_the_sign_of_phi_o_minus_phi_t():
    """Step 2 against autodiff of the model: per row, per sample and full batch."""
    problem = ufm.make("dhkd", teacher_margin=3.0, teacher_shift=1.0, logit_loss="binary-kl-norm")
    for b, h0 in ((0.4, 0.0), (1.5, 0.7), (4.0, 1.0)):
        params = conflict.collapse_point(problem, 1.2, b, 0.3, h0)
        cos = gradients.cosines(problem, params)
        Z = params["W"] @ params["H"][:, :: problem.counts[0]]
        u = (Z[:, 0] - np.asarray(problem.Zt)[:, 0]) / float(problem.T)
        phi = float(problem.T) * (1 / (1 + np.exp(-u)) - 0.5)  # binary-kl-norm's derivative
        sign = np.sign(phi[1] - phi[0])
        assert np.sign(cos["W"]) == np.sign(cos["H"]) == sign
        assert all(np.sign(r) == sign for r in cos["W_rows"])
        assert cos["H_conflicting_samples"] == (1.0 if sign < 0 else 0.0)
