"""Every metric `ufm.metrics.report` computes: its formula and where it comes from."""

DEFINITIONS: dict[str, str] = {
    "nc1": "(1/K) Tr(Sigma_W Sigma_B^+), Papyan, Han & Donoho 2020 (default NC1); the "
    "pinv drops eigenvalues of Sigma_B <= d eps x the largest, as torch.linalg.pinv in "
    "rhubarbwu/neural-collapse @ c05a0b8 (count: data.nc1_dropped_directions)",
    "nc1_svd": "(1/K) sum over the top min(K-1, d) eigenpairs of Sigma_B of u^T Sigma_W u / "
    "lambda, no cut: Han et al. 2022, as Papyan et al.'s notebook computes it "
    "(neuralcollapse/neuralcollapse @ 7f12011, which leaves out the 1/K)",
    "nc1_trace": "Tr Sigma_W / Tr Sigma_B, Tirer et al. 2023 Eq. (3)",
    "cdnv": "mean over pairs of (s_k^2 + s_k'^2)/2 / ||mu_k - mu_k'||^2, ddof 0, "
    "Galanti et al. 2022 (default CDNV)",
    "cdnv_ddof1": "cdnv with s_k^2 = sum ||h - mu_k||^2 / (n_k - 1) (felixsh/nc-toolbox @ a527f99)",
    "cdnv_lc": "cdnv with ||mu_k - mu_k'||^4 (distance exponent 2), Wu & Papyan 2024 "
    "(rhubarbwu/linguistic-collapse @ 9e25020 analyze.py); not scale-free",
    "nc2": "|| G/||G|| - P_K/sqrt(K-1) ||_F, G = Gram of centred means: distance to the "
    "simplex ETF, Tirer et al. 2023 Sec. 5",
    "nc2_of": "|| G/||G|| - I/sqrt(K) ||_F, G = Gram of uncentred means: distance to an "
    "orthogonal frame (bias-free MSE)",
    "nc2_equinorm": "std/mean of ||mu_k - mu_G||, Papyan et al. 2020",
    "nc2_equinorm_sq": "std/mean of ||mu_k - mu_G||^2 (rhubarbwu/linguistic-collapse @ "
    "93a42a0; @ 9e25020 it uses norms and log-norms)",
    "nc2_equiangularity": "std over pairs of cos(mu_k - mu_G, mu_k' - mu_G), Papyan et al. 2020",
    "nc2_maxangle": "mean over pairs of |cos + 1/(K-1)|, Papyan et al. 2020",
    "nc2_cos_mean": "mean over pairs of the cosines (Linguistic Collapse 'interference', "
    "rhubarbwu/linguistic-collapse @ 93a42a0; @ 9e25020 raw dot products)",
    "nc2_cos_max": "largest cosine between two centred means: cos of the smallest angle",
    "gnc2": "variance over pairs of log(1/||u_k - u_k'||), u = unit centred means: GNC2 "
    "hyperspherical uniformity, Wu & Papyan 2024 (rhubarbwu/neural-collapse @ c05a0b8 "
    "kernel_stats with log_kernel)",
    "gnc2_log_mean": "mean over pairs of log(1/||u_k - u_k'||): logarithmic energy, "
    "Liu et al. 2023",
    "gnc2_riesz_mean": "mean over pairs of sign(s) ||u_k - u_k'||^-s, s = d-2 (Riesz kernel, "
    "Liu et al. 2023); overflows for large d",
    "gnc2_riesz_var": "variance over pairs of the Riesz kernel",
    "nc2_W": "nc2 of the classifier Gram W W^T, Zhu et al. 2021 (tding1/Neural-Collapse "
    "@ 04ef586 compute_ETF)",
    "nc2_W_equinorm": "std/mean of ||w_k||",
    "nc3": "|| W^T/||W|| - Mtilde/||Mtilde|| ||_F^2, centred means: self-duality, "
    "Papyan et al. 2020 (default NC3)",
    "nc3_uncentred": "nc3 with uncentred means (orthogonal-frame self-duality)",
    "nc3_alignment": "|| W Mtilde/||W Mtilde|| - P_K/sqrt(K-1) ||_F "
    "(rhubarbwu/neural-collapse @ c05a0b8 self_duality_error)",
    "nc3_cos_mean": "mean over k of cos(w_k, mu_k - mu_G)",
    "unc3": "std/mean over k of cos(w_k, mu_k - mu_G): uniform duality UNC3, Wu & Papyan 2024",
    "nc4": "fraction of samples where argmax_k (W h + b)_k is the nearest class mean, "
    "Papyan et al. 2020 (agreement; 1 - NC4 mismatch)",
    "nc4_per_class": "nc4 averaged per class instead of per sample",
}
