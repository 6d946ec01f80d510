"""Knowledge distillation in ufm.networks and the dhkd experiment: the objective against an
independent numpy forward pass, the dual head's gradient separation, the official code's
gradient projection, the step-late schedule, the unchanged default training, the variant
axis and the teacher in the store, the comparison's statistics and geometry, the quick
experiment end to end."""

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm.errors import InputError
from ufm.networks import Training, dataset, dhkd, read, train
from ufm.networks import training as tr

T_BINARY, T_KD = 2.0, 4.0


@pytest.fixture(scope="module")
def small():
    """A 3-class Gaussian mixture (36 training samples) with made-up teacher logits."""
    data = dataset("gaussian", K=3, dim=4, per_class=15, data_seed=1)
    rng = np.random.default_rng(0)
    logits = [3 * rng.standard_normal((x.shape[0], 3)) for x in (data.x_train, data.x_test)]
    return data.with_teacher(*logits, {"made": "up"})


# ----------------------------------------------------------------------------------------
# The objective, independently.


def _numpy_forward(net, x):
    """(h, z, z2) of a one-hidden-layer MLP, in numpy from its arrays."""
    layer = net.hidden[0]
    h = np.maximum(x @ np.asarray(layer.weight).T + np.asarray(layer.bias), 0.0)
    head = lambda d: h @ np.asarray(d.weight).T + np.asarray(d.bias)  # noqa: E731
    return h, head(net.classifier), None if net.head2 is None else head(net.head2)


def _numpy_logit_loss(name, z, zt, T):
    """Per-sample logit losses from their definitions (rows: samples)."""
    if name == "kd":
        soft = lambda a: np.exp(a / T) / np.exp(a / T).sum(1, keepdims=True)  # noqa: E731
        p, q = soft(zt), soft(z)
        return T**2 * np.sum(p * np.log(p / q), axis=1)
    if name == "binary-kl":
        q, r = 1 / (1 + np.exp(-zt / T)), 1 / (1 + np.exp(-z / T))
        entry = q * np.log(q / r) + (1 - q) * np.log((1 - q) / (1 - r))
        return T**2 * entry.sum(1)
    d = 1 / (1 + np.exp(-(z - zt) / T))  # binary-kl-norm: KL(Bernoulli(1/2) || Bernoulli(d))
    return T**2 * np.sum(0.5 * np.log(0.5 / d) + 0.5 * np.log(0.5 / (1 - d)), axis=1)


def _numpy_objective(net, data, t: Training):
    x, y = data.x_train, data.y_train
    h, z, z2 = _numpy_forward(net, x)
    log_p = z - z.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    ce = -np.mean(log_p[np.arange(y.size), y])
    student = z if t.heads == 1 else z2
    logit = np.mean(_numpy_logit_loss(t.distill, student, data.teacher_train, t.temperature))
    leaves = jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array))
    if t.decay_all:
        decay = sum(np.sum(np.asarray(a) ** 2) for a in leaves)
    else:
        decay = sum(np.sum(np.asarray(w) ** 2) for w in net.weights())
    return t.gamma * ce + t.alpha * logit + t.weight_decay / 2 * decay


def _jax_objective(net, data, t: Training):
    N = data.x_train.shape[0]
    static = tr.Static(
        t.loss, 1, N, False, t.schedule, t.epochs, t.distill, t.heads, False, t.decay_all
    )
    hp = {
        k: jnp.asarray(getattr(t, k))
        for k in ("weight_decay", "feature_decay", "gamma", "alpha", "temperature")
    }
    x = jnp.asarray(data.x_train)
    onehot = jax.nn.one_hot(data.y_train, data.K, dtype=x.dtype)
    return tr._objective(net, x, onehot, hp, static, N, jnp.asarray(data.teacher_train))


def _trained_ish(data, t: Training):
    """A network with nonzero biases everywhere (so that decay_all matters)."""
    net = tr.build(data, t, jax.random.PRNGKey(3))
    leaves, tree = jax.tree_util.tree_flatten(net)
    rng = np.random.default_rng(5)
    noisy = [
        a + 0.3 * rng.standard_normal(a.shape) if eqx.is_inexact_array(a) else a for a in leaves
    ]
    return jax.tree_util.tree_unflatten(tree, noisy)


@pytest.mark.parametrize(
    "settings",
    [
        {"distill": "binary-kl", "temperature": T_BINARY},
        {"distill": "binary-kl", "gamma": 0.0, "temperature": T_BINARY},
        {"distill": "binary-kl-norm", "heads": 2, "temperature": T_BINARY, "alpha": 0.7},
        {"distill": "kd", "temperature": T_KD, "gamma": 1.3, "decay_all": False},
        {"distill": "binary-kl-norm", "heads": 2, "decay_all": False, "weight_decay": 0.1},
    ],
)
def test_distillation_objective_matches_numpy(small, settings):
    t = Training(widths=(5,), **({"decay_all": True, "weight_decay": 0.03} | settings))
    net = _trained_ish(small, t)
    want = _numpy_objective(net, small, t)
    assert float(_jax_objective(net, small, t)) == pytest.approx(want, rel=1e-12, abs=0)


def test_dual_head_ce_head_gets_no_gradient_from_the_logit_loss(small):
    base = Training(widths=(5,), weight_decay=0.0, distill="binary-kl-norm", heads=2)
    net = _trained_ish(small, base)

    def grads(t):
        params, rest = eqx.partition(net, eqx.is_inexact_array)
        return jax.grad(lambda p: _jax_objective(eqx.combine(p, rest), small, t))(params)

    logit_only = grads(dataclasses.replace(base, gamma=0.0))
    assert not np.any(np.asarray(logit_only.classifier.weight))
    assert not np.any(np.asarray(logit_only.classifier.bias))
    assert np.any(np.asarray(logit_only.head2.weight)) and np.any(
        np.asarray(logit_only.hidden[0].weight)
    )
    ce_only = grads(dataclasses.replace(base, alpha=0.0))
    assert not np.any(np.asarray(ce_only.head2.weight)) and not np.any(
        np.asarray(ce_only.head2.bias)
    )
    # one head: the logit loss does reach the classifier
    single = Training(widths=(5,), weight_decay=0.0, distill="binary-kl-norm", gamma=0.0)
    params, rest = eqx.partition(
        tr.build(small, single, jax.random.PRNGKey(3)), eqx.is_inexact_array
    )
    g = jax.grad(lambda p: _jax_objective(eqx.combine(p, rest), small, single))(params)
    assert np.any(np.asarray(g.classifier.weight))


# ----------------------------------------------------------------------------------------
# The official code's --ga.


def _official_projection(g_ce, g_kd):
    """helper/optimizer.py's _project_conflicting for [gamma CE, alpha KD], transcribed:
    each g_i in a copy of the gradients loses its component along grads[0] if their dot is
    negative; the merged gradient is the sum."""
    grads = [np.array(g_ce, float), np.array(g_kd, float)]
    pc = [g.copy() for g in grads]
    for g_i in pc:
        dot = float(np.dot(g_i, grads[0]))
        if dot < 0:
            g_i -= dot * grads[0] / np.linalg.norm(grads[0]) ** 2
    return pc[0] + pc[1]


@pytest.mark.parametrize(
    "g_ce, g_kd",
    [
        ([1.0, 0.0, 2.0], [-3.0, 1.0, 0.5]),  # conflicting: dot = -2
        ([1.0, 0.0, 2.0], [3.0, 1.0, 0.5]),  # agreeing: unchanged
        ([0.0, 2.0, 0.0], [1.0, 0.0, 5.0]),  # orthogonal: unchanged
        ([0.0, 0.0, 0.0], [1.0, -1.0, 0.0]),  # no CE gradient (gamma = 0): unchanged
    ],
)
def test_projection_is_the_official_codes(g_ce, g_kd):
    got = np.asarray(tr.project(jnp.asarray(g_kd), jnp.asarray(g_ce))) + np.asarray(g_ce)
    np.testing.assert_allclose(got, _official_projection(g_ce, g_kd), rtol=1e-15, atol=1e-15)
    if np.dot(g_ce, g_kd) < 0:  # the projected part is orthogonal to g_ce
        assert np.dot(got - np.asarray(g_ce), g_ce) == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize("teacher", ["made-up", "against the labels"])
def test_projected_step_gradient_is_three_separate_gradients(small, teacher):
    if teacher == "against the labels":  # CE raises the true class, this teacher lowers it
        against = [-5.0 * np.eye(3)[y] for y in (small.y_train, small.y_test)]
        small = small.with_teacher(*against, {})
    t = Training(widths=(5,), distill="binary-kl", projection=True, decay_all=True)
    net = _trained_ish(small, t)
    params, rest = eqx.partition(net, eqx.is_inexact_array)
    N = small.x_train.shape[0]
    static = tr.Static("ce", 1, N, False, "constant", 1, "binary-kl", 1, True, True)
    hp = {
        k: jnp.asarray(getattr(t, k))
        for k in ("weight_decay", "feature_decay", "gamma", "alpha", "temperature")
    }
    x, zt = jnp.asarray(small.x_train), jnp.asarray(small.teacher_train)
    onehot = jax.nn.one_hot(small.y_train, 3, dtype=x.dtype)
    got = tr._gradient(params, rest, x, onehot, zt, hp, static, N)

    def term(i):
        def f(p):
            net = eqx.combine(p, rest)
            feats, logits = net.features(x)
            terms = tr._distill_terms(net, feats, logits, onehot, zt, hp, static)
            return (*terms, tr._penalty(net, feats, hp, N, True))[i]

        return jax.flatten_util.ravel_pytree(jax.grad(f)(params))[0]

    g_ce, g_l, g_p = (np.asarray(term(i)) for i in range(3))
    if teacher == "against the labels":
        assert np.dot(g_ce, g_l) < 0  # the two gradients conflict: the rule acts
    want = _official_projection(g_ce, g_l) + g_p
    np.testing.assert_allclose(jax.flatten_util.ravel_pytree(got)[0], want, rtol=1e-12, atol=1e-15)


def test_step_late_schedule_is_the_codes_150_180_210_of_240():
    static = tr.Static("ce", 1, 1, False, "step-late", 240)
    hp = {"lr": jnp.asarray(0.05)}
    for epoch in range(1, 241):  # the code: lr * 0.1 ** sum(epoch > [150, 180, 210])
        want = 0.05 * 0.1 ** int(np.sum(epoch > np.array([150, 180, 210])))
        assert float(tr._lr(hp, jnp.asarray(epoch - 1), static)) == pytest.approx(want, rel=1e-14)


def test_a_ce_heads_mean_row_is_its_initial_one_decayed():
    """CE's gradient rows sum to zero over the classes, so the head's mean row moves by the
    weight decay alone: m_t = c_t m_0, with c_t from SGD-momentum on wd/2 c^2 (optax's
    trace v <- g + mu v, p <- p - lr v). A loss whose logit gradient does not sum to zero
    (BinaryKL) moves it."""
    data = dataset("gaussian", K=3, dim=4, per_class=15, data_seed=1)
    t = Training(widths=(6,), epochs=5, batch_size=8, decay_all=True, weight_decay=0.05)
    t = dataclasses.replace(t, schedule="step-late", lr=0.1)
    key = jax.random.split(jax.random.PRNGKey(t.seed))[1]  # run()'s initialization key
    start = np.asarray(tr.build(data, t, key).classifier.weight).mean(axis=0)
    end = tr.network(data, t, tr.run(data, t, record=(5,))["parameters"])
    c, v = 1.0, 0.0
    for epoch in range(1, 6):
        lr = 0.1 * 0.1 ** sum((epoch - 1) / 5 >= f for f in (5 / 8, 3 / 4, 7 / 8))
        for _ in range(data.x_train.shape[0] // 8):
            v = t.weight_decay * c + t.momentum * v
            c -= lr * v
    np.testing.assert_allclose(
        np.asarray(end.classifier.weight).mean(axis=0), c * start, rtol=1e-10
    )


# ----------------------------------------------------------------------------------------
# Defaults, settings, the store.

# A regression value recorded with the substrate as it was before distillation existed
# (commit ffa5861): Training(widths=(32, 32), epochs=7) on digits, 20 per class, seed 0.
BEFORE_OBJECTIVE = [
    2.7290491815046205, 2.5484755834372756, 2.3905158546847143, 2.2786952001026353,
    2.21057857921284, 2.177056582427118, 2.167840621409457,
]  # fmt: skip


def test_default_training_is_unchanged():
    t = Training(widths=(32, 32), epochs=7)
    assert t.as_dict().keys() == {
        "widths", "depth", "batch_norm", "bias", "loss", "weight_decay", "feature_decay",
        "mixup_alpha", "lr", "momentum", "schedule", "epochs", "batch_size", "seed",
    }  # fmt: skip
    data = dataset("digits", train_per_class=20)
    result = tr.run(data, t, record=(7,))
    np.testing.assert_allclose(result["history"]["objective"], BEFORE_OBJECTIVE, rtol=1e-13)
    explicit = dataclasses.replace(t, distill="none", heads=1, gamma=1.0, projection=False)
    again = tr.run(data, explicit, record=(7,))
    assert np.array_equal(again["parameters"], result["parameters"])


@pytest.mark.parametrize(
    "settings, needle",
    [
        ({"distill": "kld"}, "distill: one of"),
        ({"heads": 2}, "heads: only with knowledge distillation"),
        ({"gamma": 0.5}, "gamma: only with"),
        ({"distill": "kd", "heads": 3}, "heads: 1 or 2"),
        ({"distill": "kd", "temperature": 0.0}, "temperature: must be a finite number > 0"),
        ({"distill": "kd", "alpha": -1.0}, "alpha: must be a finite number >= 0"),
        ({"distill": "kd", "mixup_alpha": 0.2}, "mixup_alpha: must be 0"),
    ],
)
def test_bad_distillation_settings_are_refused(settings, needle):
    with pytest.raises(InputError, match=needle):
        Training(**settings)


def test_distillation_needs_a_teacher():
    with pytest.raises(InputError, match="carries no teacher logits"):
        tr.run(
            dataset("gaussian", K=3, dim=4, per_class=10),
            Training(widths=(4,), distill="kd", epochs=1),
            (1,),
        )


def test_variant_axis_and_teacher_in_a_resumable_store(small, tmp_path):
    fixed = Training(widths=(4,), epochs=2, decay_all=True, batch_size=12)
    teacher = tr.teach(small, fixed)  # the same compiled training as the "ce" students
    assert teacher.teacher["training"]["widths"] == [4] and teacher.sha1 != small.sha1
    methods = {"ce": {}, "dual": {"distill": "binary-kl-norm", "heads": 2}}
    out = tmp_path / "s.zarr"
    ds = train(
        teacher, fixed, {"method": methods}, seeds=(0,), record=(2,), out=out, progress=False
    )
    assert list(ds["method"].values) == ["ce", "dual"]
    assert ds.attrs["variants"]["method"]["dual"] == {"distill": "binary-kl-norm", "heads": 2}
    assert read.training(ds, {"method": "dual", "seed": 0}).heads == 2
    assert read.training(ds, {"method": "ce", "seed": 0}) == dataclasses.replace(fixed, seed=0)
    rebuilt = read.data(ds)  # the teacher's logits come back from the store
    np.testing.assert_array_equal(rebuilt.teacher_train, teacher.teacher_train)
    W2, b2 = read.classifier(ds, {"method": "dual", "seed": 0}, 2, head=2)
    net = read.trained_network(ds, {"method": "dual", "seed": 0})
    np.testing.assert_array_equal(W2, np.asarray(net.head2.weight))
    with pytest.raises(InputError, match="head: 1, or 2"):
        read.classifier(ds, {"method": "ce", "seed": 0}, 2, head=2)
    calls = []
    again = train(teacher, fixed, {"method": methods}, seeds=(0,), record=(2,), out=out,
                  resume=True, progress=lambda done, total: calls.append(done))  # fmt: skip
    assert calls == []  # nothing trained again
    np.testing.assert_array_equal(again["parameters"].values, ds["parameters"].values)
    changed = {"ce": {}, "dual": {"distill": "binary-kl", "heads": 2}}  # same labels
    with pytest.raises(InputError, match="variants"):
        train(teacher, fixed, {"method": changed}, seeds=(0,), record=(2,), out=out,
              resume=True, progress=False)  # fmt: skip


@pytest.mark.parametrize(
    "grid, needle",
    [
        ({"weight_decay": {"a": {}}}, "variant axis needs a name that is not a training"),
        ({"method": {"a": {"colour": 1}}}, "not a grid setting"),
        ({"method": {"a": {"seed": 1}}}, "not a grid setting"),
        ({"method": {"a": {"lr": 0.1}}, "lr": [0.1, 0.2]}, "sets lr, also a grid axis"),
        ({"method": {"a": {"epochs": "many"}}}, "epochs must be int"),
    ],
)
def test_bad_variant_axes_are_refused(small, grid, needle):
    with pytest.raises(InputError, match=needle):
        train(small, Training(widths=(4,), epochs=1), grid, progress=False)


# ----------------------------------------------------------------------------------------
# The comparison's pieces on synthetic numbers.


def _etf_rows(K: int, d: int) -> np.ndarray:
    """K centred simplex vertices in d dimensions (unit norm), as rows."""
    simplex = (np.eye(K) - 1 / K) * np.sqrt(K / (K - 1))
    frame = np.linalg.qr(np.random.default_rng(2).standard_normal((d, K)))[0]
    return simplex @ frame.T


def test_head_geometry_of_an_etf_with_and_without_a_common_mode():
    K, d, n = 4, 6, 5
    W = _etf_rows(K, d)
    labels = np.repeat(np.arange(K), n)
    H = 2.0 * W[labels].T  # collapsed features at the classifier's rows: NC3 exact
    g = dhkd.head_geometry(W, H, labels, K)
    assert g["common_mode"] == pytest.approx(0.0, abs=1e-14)
    assert g["etf_uncentred"] == pytest.approx(0.0, abs=1e-12)
    assert g["etf_centred"] == pytest.approx(0.0, abs=1e-12)
    assert g["nc3"] == pytest.approx(0.0, abs=1e-12)
    u = np.linalg.qr(np.column_stack([W.T, np.ones(d)]))[0][:, K - 1]  # orthogonal to the rows
    shifted = W + 0.5 * u  # every row gets the same component: |mean| = 0.5
    g = dhkd.head_geometry(shifted, H, labels, K)
    assert g["common_mode"] == pytest.approx(0.5 / np.sqrt(1 + 0.25), rel=1e-12)
    assert g["etf_centred"] == pytest.approx(0.0, abs=1e-12)
    G = shifted @ shifted.T  # the uncentred Gram: 1.25 on the diagonal, -1/3 + 0.25 off it
    P = np.eye(K) - 1 / K
    want = np.linalg.norm(G / np.linalg.norm(G) - P / np.sqrt(K - 1))
    assert g["etf_uncentred"] == pytest.approx(want, rel=1e-12) and want > 0.1


def test_mean_se_and_paired_differences():
    assert dhkd.mean_se([1.0, 2.0, None, 4.0]) == {
        "mean": pytest.approx(7 / 3),
        "se": pytest.approx(np.std([1, 2, 4], ddof=1) / np.sqrt(3)),
        "n": 3,
    }
    assert dhkd.mean_se([0.5])["se"] is None and dhkd.mean_se([])["mean"] is None
    rows = [
        {"method": m, "seed": s, "accuracy": a}
        for m, accs in (("x", (0.9, 0.8, 0.85)), ("y", (0.8, 0.75, 0.8)))
        for s, a in enumerate(accs)
    ]
    got = dhkd.paired(rows, "x", "y")
    diffs = np.array([0.1, 0.05, 0.05])
    assert got["difference"] == pytest.approx(diffs.mean())
    assert got["se"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(3))
    assert got["resolved"] and got["seeds"] == 3


def _rows(accuracies: dict[str, list[float]]) -> list[dict]:
    return [
        {"method": m, "seed": s, "accuracy": a}
        for m, accs in accuracies.items()
        for s, a in enumerate(accs)
    ]


def test_ordering_reproduces_only_when_every_part_holds():
    paper = {
        "ce": [0.90, 0.91, 0.92],
        "binary-kl": [0.905, 0.915, 0.925],
        "ce+binary-kl": [0.88, 0.89, 0.90],
        "dual": [0.93, 0.94, 0.95],
    }
    summaries = {m: {"accuracy": dhkd.mean_se(a)} for m, a in paper.items()}
    got = dhkd.ordering(_rows(paper), summaries)
    assert got["reproduces"] and got["best"] == "dual" and all(got["holds"].values())
    assert got["resolved"]["dual_best"]
    flipped = paper | {"ce+binary-kl": [0.95, 0.96, 0.97]}
    summaries = {m: {"accuracy": dhkd.mean_se(a)} for m, a in flipped.items()}
    got = dhkd.ordering(_rows(flipped), summaries)
    assert not got["reproduces"] and got["best"] == "ce+binary-kl"
    assert not got["holds"]["single_worse_than_ce"] and got["resolved"]["dual_best"]


# ----------------------------------------------------------------------------------------
# End to end.


@pytest.mark.slow  # ~60 s on 2 loaded cores: a teacher and six compiled student trainings
def test_quick_experiment_and_figure(tmp_path):
    from test_figures import _load, check_layout

    fig_module = _load("dhkd_networks")
    data = fig_module.compute(quick=True, store=tmp_path / "s", names=("dhkd",))
    got = data["comparisons"]["dhkd"]
    json.dumps(got, allow_nan=False)
    summary = got["summary"]
    assert list(summary["methods"]) == list(dhkd.METHODS)
    assert summary["seeds"] == 2 and len(got["runs"]) == 12
    from ufm.networks import open_training

    ds = open_training(tmp_path / "s" / "dhkd.zarr")
    for row in got["runs"]:
        status = read.status(ds, row["point"], row["epoch"])
        assert row["accuracy"] == pytest.approx(1 - status["test_error"], abs=0)
        W, _ = read.classifier(ds, row["point"], row["epoch"])
        centred = np.linalg.norm(W.mean(axis=0)) / np.linalg.norm(W, axis=1).max()
        assert row["head1"]["common_mode"] == pytest.approx(centred, rel=1e-12)
        assert (row["head2"] is None) == (row["method"] not in ("dual", "dual+projection"))
    assert "reproduces" in summary["verdict"]
    fig = fig_module.plot(data, tmp_path / "d.png")
    check_layout(fig_module, fig, tmp_path / "d.png")
