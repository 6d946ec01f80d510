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
from ufm.networks import Training, dataset, dhkd, dhkd_shift, read, train
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
    teacher = data.teacher_train + t.teacher_shift  # every teacher logit shifted by m
    logit = np.mean(_numpy_logit_loss(t.distill, student, teacher, t.temperature))
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
        for k in ("weight_decay", "feature_decay", "gamma", "alpha", "temperature", "teacher_shift")
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
        {"distill": "binary-kl", "temperature": T_BINARY, "teacher_shift": 2.5},
        {"distill": "binary-kl-norm", "heads": 2, "teacher_shift": -1.5},
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
        for k in ("weight_decay", "feature_decay", "gamma", "alpha", "temperature", "teacher_shift")
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
        ({"teacher_shift": 1.0}, "teacher_shift: only with"),
        ({"distill": "kd", "teacher_shift": float("nan")}, "teacher_shift: must be a finite"),
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
    # a store made before the shifted students existed: refused, not extended
    shifted = methods | dhkd_shift.variants(methods, (2.0,), ("dual",))
    with pytest.raises(InputError, match="made with grid="):
        train(teacher, fixed, {"method": shifted}, seeds=(0,), record=(2,), out=out,
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
# The shifted teacher (dhkd_shift).


def test_softmax_kd_does_not_see_the_teacher_shift(small):
    t = Training(widths=(5,), distill="kd", temperature=T_KD, decay_all=True)
    net = _trained_ish(small, t)
    shifted = dataclasses.replace(t, teacher_shift=3.0)
    assert float(_jax_objective(net, small, shifted)) == pytest.approx(
        float(_jax_objective(net, small, t)), rel=1e-13
    )
    binary = dataclasses.replace(t, distill="binary-kl", temperature=T_BINARY)
    moved = dataclasses.replace(binary, teacher_shift=3.0)
    assert (
        abs(float(_jax_objective(net, small, moved)) - float(_jax_objective(net, small, binary)))
        > 0.1
    )


def test_the_shift_is_recorded_only_where_set():
    assert "teacher_shift" not in Training(distill="kd").as_dict()
    assert Training(distill="kd", teacher_shift=2).as_dict()["teacher_shift"] == 2.0


def test_a_dual_ce_heads_row_sum_ignores_the_shift_a_single_heads_does_not(small):
    """CE's logit gradient sums to zero over the classes, so the dual CE head's 1^T W1 and
    its bias's sum move by the decay alone: the same with and without the shift (same seed).
    On one head BinaryKL sees the shift and moves both."""
    base = Training(widths=(5,), epochs=6, batch_size=12, decay_all=True, temperature=T_BINARY)
    trained = {}
    for heads, distill in ((2, "binary-kl-norm"), (1, "binary-kl")):
        for m in (0.0, 3.0):
            t = dataclasses.replace(base, heads=heads, distill=distill, teacher_shift=m)
            trained[heads, m] = tr.network(small, t, tr.run(small, t, record=(6,))["parameters"])
    sums = lambda net, head: (  # noqa: E731
        np.asarray(head(net).weight).sum(axis=0),
        float(np.asarray(head(net).bias).sum()),
    )
    ce = lambda net: net.classifier  # noqa: E731
    (w0, b0), (w3, b3) = sums(trained[2, 0.0], ce), sums(trained[2, 3.0], ce)
    np.testing.assert_allclose(w3, w0, rtol=1e-12, atol=1e-15)
    assert b3 == pytest.approx(b0, rel=1e-12, abs=1e-15)
    assert not np.allclose(
        np.asarray(ce(trained[2, 3.0]).weight), np.asarray(ce(trained[2, 0.0]).weight)
    )
    second = lambda net: net.head2  # noqa: E731
    assert sums(trained[2, 3.0], second)[1] - sums(trained[2, 0.0], second)[1] > 0.01
    (v0, c0), (v3, c3) = sums(trained[1, 0.0], ce), sums(trained[1, 3.0], ce)
    assert np.linalg.norm(v3 - v0) > 1e-3 and c3 - c0 > 0.01


def test_logit_levels_of_hand_made_heads():
    rng = np.random.default_rng(7)
    K, d, N = 4, 3, 9
    H = np.abs(rng.standard_normal((d, N)))  # post-ReLU features
    centred = rng.standard_normal((K, d))
    centred -= centred.mean(axis=0)  # rows sum to zero
    common = np.array([0.3, -0.2, 0.5])
    b = np.array([0.4, -0.1, 0.2, 0.3])
    for W, bias in ((centred, None), (centred + common, b), (np.tile(common, (K, 1)), b)):
        got = dhkd_shift.logit_levels(W, bias, H)
        Z = W @ H + (0 if bias is None else bias[:, None])  # every logit, then their mean
        assert got["mean_logit"] == pytest.approx(Z.mean(), rel=1e-13, abs=1e-15)
        assert got["mean_logit_rows"] == pytest.approx((W @ H).mean(), rel=1e-13, abs=1e-15)
        assert got["bias_mean"] == (None if bias is None else pytest.approx(0.2, rel=1e-14))
        row_sum = np.sqrt(sum(W[:, j].sum() ** 2 for j in range(d)))
        assert got["row_sum"] == pytest.approx(row_sum, rel=1e-13, abs=1e-15)
        frobenius = np.sqrt((W**2).sum())
        assert got["row_sum_fraction"] == pytest.approx(row_sum / frobenius, rel=1e-13, abs=1e-15)
    assert dhkd_shift.logit_levels(centred, None, H)["row_sum"] == pytest.approx(0, abs=1e-14)
    equal_rows = dhkd_shift.logit_levels(np.tile(common, (K, 1)), b, H)
    assert equal_rows["row_sum_fraction"] == pytest.approx(np.sqrt(K), rel=1e-13)
    assert dhkd_shift.logit_levels(np.zeros((K, d)), None, H)["row_sum_fraction"] is None


def test_shifted_labels_and_settings():
    got = dhkd_shift.variants(dhkd.METHODS, (2.0, 4.0))
    assert list(got) == ["ce+binary-kl@m=2", "dual@m=2", "ce+binary-kl@m=4", "dual@m=4"]
    assert got["dual@m=4"] == dhkd.METHODS["dual"] | {"teacher_shift": 4.0}
    assert dhkd_shift.parse("dual@m=4") == ("dual", 4.0) and dhkd_shift.parse("dual") is None
    assert dhkd_shift.display("ce+binary-kl@m=2", dhkd.LABELS) == "(c) CE+BKL m=2"
    assert list(dhkd.METHODS) == [  # the six unshifted students, unchanged
        "ce", "binary-kl", "ce+binary-kl", "dual", "ce+kd", "dual+projection"
    ]  # fmt: skip


def _level_row(method, seed, mean_logit, common_mode, row_sum, head2_mean=None):
    head = lambda ml, cm, rs: {  # noqa: E731
        "common_mode": cm, "row_sum": rs, "row_sum_fraction": rs / 3, "bias_mean": ml / 2,
        "mean_logit": ml, "mean_logit_rows": ml / 2,
    }  # fmt: skip
    return {
        "method": method, "seed": seed, "accuracy": 0.9 + 0.01 * seed, "train_error": 0.0,
        "nc1": 0.1, "terminal_phase": True, "head1": head(mean_logit, common_mode, row_sum),
        "head2": None if head2_mean is None else head(head2_mean, 0.01, 0.1),
    }  # fmt: skip


def _shift_rows(dual_row_sum_drift=0.0, single_follows=True):
    rows = []
    for s in range(3):
        rows += [
            _level_row("ce+binary-kl", s, 0.01 * s, 0.01, 0.2),
            _level_row("ce+binary-kl@m=2", s, (1.8 if single_follows else 0.3) + 0.02 * s,
                       0.2 + 0.01 * s, 1.5),
            _level_row("dual", s, 0.05, 0.05, 0.4 + s, head2_mean=0.003 * s),
            _level_row("dual@m=2", s, 0.06, 0.05, (0.4 + s) * (1 + dual_row_sum_drift),
                       head2_mean=1.9 + 0.01 * s),
        ]  # fmt: skip
    return rows


def _shift_summary(rows):
    names = dict.fromkeys(r["method"] for r in rows)
    summaries = {m: dhkd.method_summary([r for r in rows if r["method"] == m]) for m in names}
    return dhkd_shift.summary(rows, summaries, teacher_mean=0.001)


def test_shift_summary_and_the_prediction_judged_on_synthetic_rows():
    got = _shift_summary(_shift_rows())
    single, dual = got["students"]["ce+binary-kl@m=2"], got["students"]["dual@m=2"]
    want = np.array([(1.8 + 0.02 * s - 0.01 * s) / 2 for s in range(3)])
    assert single["head1"]["followed"]["mean"] == pytest.approx(want.mean(), rel=1e-13)
    assert single["head1"]["followed"]["se"] == pytest.approx(want.std(ddof=1) / np.sqrt(3))
    assert single["teacher_mean_logit"] == pytest.approx(2.001)
    grow = single["head1"]["common_mode_minus_unshifted"]
    assert grow["difference"] == pytest.approx(0.2, rel=1e-13) and grow["resolved"]
    assert dual["head1_row_sum_change"] == 0.0
    assert dual["head1"]["followed"]["mean"] == pytest.approx(0.005, rel=1e-12)
    want2 = np.array([(1.9 + 0.01 * s - 0.003 * s) / 2 for s in range(3)])
    assert dual["head2"]["followed"]["mean"] == pytest.approx(want2.mean(), rel=1e-13)
    assert got["single_minus_dual"]["2"]["difference"] == pytest.approx(0.0, abs=1e-15)
    assert got["prediction"] == dict.fromkeys(
        ("single_follows_shift", "single_common_row_grows", "dual_ce_row_sum_only_decays",
         "dual_ce_mean_logit_stays", "dual_head2_follows_shift", "holds"), True,
    )  # fmt: skip
    assert "holds: yes" in got["verdict"]
    broken = _shift_summary(_shift_rows(dual_row_sum_drift=0.01, single_follows=False))
    judged = broken["prediction"]
    assert broken["students"]["dual@m=2"]["head1_row_sum_change"] == pytest.approx(0.01)
    assert not judged["dual_ce_row_sum_only_decays"] and not judged["single_follows_shift"]
    assert judged["dual_head2_follows_shift"] and not judged["holds"]
    assert "single_follows_shift, dual_ce_row_sum_only_decays fails" in broken["verdict"]
    unshifted = [r for r in _shift_rows() if "@" not in r["method"]]
    assert _shift_summary(unshifted) is None


# ----------------------------------------------------------------------------------------
# End to end.


@pytest.mark.slow  # ~40 s on 2 loaded cores: a teacher and six compiled student trainings
def test_quick_experiment_and_figure(tmp_path):
    from test_figures import _load, check_layout

    fig_module = _load("dhkd_networks")
    data = fig_module.compute(quick=True, store=tmp_path / "s", names=("dhkd",))
    got = data["comparisons"]["dhkd"]
    json.dumps(got, allow_nan=False)
    summary = got["summary"]
    shifted = ["ce+binary-kl@m=2", "dual@m=2"]
    assert list(summary["methods"]) == list(dhkd.METHODS) + shifted
    assert summary["seeds"] == 2 and len(got["runs"]) == 16
    from ufm.networks import open_training

    ds = open_training(tmp_path / "s" / "dhkd.zarr")
    x = jnp.asarray(read.data(ds).x_train)
    for row in got["runs"]:
        status = read.status(ds, row["point"], row["epoch"])
        assert row["accuracy"] == pytest.approx(1 - status["test_error"], abs=0)
        W, _ = read.classifier(ds, row["point"], row["epoch"])
        centred = np.linalg.norm(W.mean(axis=0)) / np.linalg.norm(W, axis=1).max()
        assert row["head1"]["common_mode"] == pytest.approx(centred, rel=1e-12)
        net = read.trained_network(ds, row["point"])
        assert (row["head2"] is None) == (net.head2 is None)
        feats, logits = net.features(x, reference=x)  # the mean logit, from the network
        assert row["head1"]["mean_logit"] == pytest.approx(float(logits.mean()), rel=1e-9)
        if net.head2 is not None:
            second = float(net.head2(feats[-1]).mean())
            assert row["head2"]["mean_logit"] == pytest.approx(second, rel=1e-9)
    assert "reproduces" in summary["verdict"]
    shift = summary["shift"]
    assert list(shift["students"]) == shifted
    assert shift["students"]["dual@m=2"]["head1_row_sum_change"] < 1e-10  # exact in theory
    assert shift["prediction"]["dual_ce_row_sum_only_decays"]
    fig = fig_module.plot(data, tmp_path / "d.png")
    check_layout(fig_module, fig, tmp_path / "d.png")
