"""ufm's network training against the same training written as a PyTorch loop, in one run.

Training (issue 17's speed goal): digits (1438 training samples of 64 inputs, K = 10), an MLP
of widths (256, 256), ReLU, no batch norm, classifier W h + b; objective mean cross-entropy
+ 5e-4/2 sum_l ||W_l||_F^2 over the three weight matrices (biases not decayed); full batch,
300 epochs, SGD with momentum 0.9 (v <- 0.9 v + g, theta <- theta - lr v), lr 0.05 on a cosine
over the epochs (epoch e = 1..E uses 0.05/2 (1 + cos(pi (e - 1)/E))); after every epoch both
loops evaluate the training set's loss and error and the test set's loss and error. Float64 on
both sides, on this machine's CPU cores.
  ufm:     `ufm.networks.training.run(data, Training(...), record=(E,))`: one jitted JAX loop
           over the epochs (in segments of 25), the end state recorded. "first call" is the
           first in the process (compilation included: what a user waits for); "later calls"
           the median of --repeats more.
  PyTorch: torch.nn.Sequential(Linear, ReLU, Linear, ReLU, Linear), torch.optim.SGD(
           momentum=0.9) (the same update as optax.sgd), LambdaLR with the same cosine, the
           weight decay as a term of the loss over the weight matrices only, evaluation under
           no_grad every epoch; one column with torch.set_num_threads(cores) and one with 1
           thread (a baseline immune to OpenMP spin-waits when other work shares the cores;
           --torch-threads sets the list). It starts from ufm's initial weights (--torch-init
           own: torch's kaiming_normal_ He init instead), so the full-batch curves must agree
           to rounding: the script checks it. First call and the median of --repeats more, as
           for ufm; --compile adds a torch.compile column (its first call compiles).
  minibatch: the same with batch size 128 (11 batches an epoch, the remainder of the
           shuffled 1438 left out, as ufm does); each side draws its own batch order.
Times are seconds, wall-clock and this process's CPU time (all threads; the fairer figure
when other work shares the cores: the script prints the load average and warns); ratio =
PyTorch / ufm (> 1: ufm is faster). Without PyTorch installed it says so and reports ufm only.

    python benchmarks/bench_train.py [--quick] [--repeats 1] [--no-minibatch] [--compile]
        [--torch-threads 2 1] [--torch-init ufm|own] [--epochs E]
"""

import argparse
import dataclasses
import math
import os
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

from ufm.networks import dataset, mlp, training  # noqa: E402

SETTINGS = dict(widths=(256, 256), loss="ce", weight_decay=5e-4, lr=0.05, momentum=0.9)
METRICS = ("train_loss", "objective", "train_error", "test_loss", "test_error")


@dataclasses.dataclass
class Timing:
    """Seconds of the first call and the median of the later ones (nan: none), wall-clock and
    this process's CPU time (all its threads: less sensitive to other work on the machine)."""

    first: float
    later: float
    first_cpu: float
    later_cpu: float


def timed_calls(train, repeats: int):
    """Call train(0), train(1), ..., train(repeats): (Timing, the first call's result)."""
    walls, cpus, first = [], [], None
    for seed in range(repeats + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        out = train(seed)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        first = out if seed == 0 else first
    later = lambda xs: statistics.median(xs[1:]) if len(xs) > 1 else math.nan
    return Timing(walls[0], later(walls), cpus[0], later(cpus)), first


def ufm_trainer(data, setup: training.Training):
    """ufm's training as a user calls it (each call from the setup's seed: the same run)."""
    return lambda _: training.run(data, setup, record=(setup.epochs,))


def initial_weights(data, setup: training.Training) -> list[np.ndarray]:
    """ufm's initial [W1, b1, W2, b2, W, b] for `setup.seed`, as `training.run` draws them."""
    _, k_init = jax.random.split(jax.random.PRNGKey(setup.seed))
    net = mlp.init(k_init, data.x_train.shape[1], setup.widths, 0, data.K, False, True)
    layers = [*net.hidden, net.classifier]
    return [np.asarray(a, dtype=np.float64) for d in layers for a in (d.weight, d.bias)]


def ufm_initial_check(data, setup: training.Training, weights) -> float:
    """Max |difference| between ufm's recorded epoch-0 features (every layer) and classifier
    and those of `weights`: 0 when the PyTorch side starts where ufm does."""
    start = training.run(data, setup, record=(0,))["records"][0]
    h, diffs = data.x_train, []
    for (w, b), recorded in zip(
        zip(weights[:-2:2], weights[1:-2:2], strict=True), start["features_train"], strict=True
    ):
        h = np.maximum(h @ w.T + b, 0.0)
        diffs.append(np.max(np.abs(h - recorded)))
    diffs.append(np.max(np.abs(weights[-2] - start["classifier"])))
    return float(max(diffs))


def torch_trainer(torch, data, setup: training.Training, init, compiled: bool):
    """A function that trains once with PyTorch from `init` (a list of arrays, or None for
    torch's own He init) and returns the per-epoch history and the final parameters."""
    F = torch.nn.functional
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train).long()
    xt, yt = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test).long()
    N, E = x.shape[0], setup.epochs
    batch = N if setup.batch_size in (0, N) else setup.batch_size
    batches = N // batch
    cosine = lambda e: 0.5 * (1 + math.cos(math.pi * e / E))  # e = epochs done: 0..E-1

    def train(seed: int):
        torch.manual_seed(seed)
        dims = [x.shape[1], *setup.widths]
        layers = []
        for i in range(len(setup.widths)):
            layers += [torch.nn.Linear(dims[i], dims[i + 1]), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers, torch.nn.Linear(dims[-1], data.K))
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for i, m in enumerate(linears):
                if init is not None:
                    m.weight.copy_(torch.tensor(init[2 * i]))
                    m.bias.copy_(torch.tensor(init[2 * i + 1]))
                else:  # He-normal for ReLU layers, 1/fan-in for the classifier, as ufm
                    last = i == len(linears) - 1
                    torch.nn.init.kaiming_normal_(
                        m.weight, nonlinearity="linear" if last else "relu"
                    )
                    m.bias.zero_()
        weights = [m.weight for m in linears]
        forward = torch.compile(model) if compiled else model
        optimizer = torch.optim.SGD(model.parameters(), lr=setup.lr, momentum=setup.momentum)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
        history = {k: torch.empty(E) for k in METRICS}
        for epoch in range(E):
            full = [slice(None)]
            order = (
                torch.randperm(N)[: batches * batch].view(batches, batch) if batches > 1 else full
            )
            for rows in order:
                optimizer.zero_grad(set_to_none=True)
                decay = sum(w.square().sum() for w in weights)
                loss = F.cross_entropy(forward(x[rows]), y[rows])
                (loss + 0.5 * setup.weight_decay * decay).backward()
                optimizer.step()
            schedule.step()
            with torch.no_grad():
                logits, logits_t = forward(x), forward(xt)
                history["train_loss"][epoch] = F.cross_entropy(logits, y)
                decay = sum(w.square().sum() for w in weights)
                history["objective"][epoch] = (
                    history["train_loss"][epoch] + 0.5 * setup.weight_decay * decay
                )
                history["train_error"][epoch] = (logits.argmax(-1) != y).double().mean()
                history["test_loss"][epoch] = F.cross_entropy(logits_t, yt)
                history["test_error"][epoch] = (logits_t.argmax(-1) != yt).double().mean()
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        return {k: v.numpy() for k, v in history.items()}, flat.numpy()

    return train


def first_zero(errors: np.ndarray) -> int | None:
    """The first epoch (1-based) whose training error is 0; None if never."""
    zero = np.flatnonzero(np.asarray(errors) == 0)
    return int(zero[0]) + 1 if zero.size else None


def summary(history: dict) -> dict:
    """Final numbers of one run's per-epoch history."""
    out = {k: float(history[k][-1]) for k in METRICS}
    out["first_zero"] = first_zero(history["train_error"])
    out["terminal"] = training.terminal_epoch(np.asarray(history["train_error"]))
    return out


def table(title: str, columns: dict[str, tuple[Timing, dict]]) -> None:
    """Print one variant's columns {name: (timing, summary)} side by side, ratios to ufm's."""
    ours = columns["ufm (JAX)"][0]
    seconds = lambda s: f"{s:.2f}" if math.isfinite(s) else "n/a"
    ratio = lambda a, b: f"{a / b:.2f}" if math.isfinite(a / b) else "n/a"
    epoch = lambda e: "never" if e in (None, -1) else f"{e}"
    rows = [
        ("first call, wall [s] (ufm compiles)", lambda t, s: seconds(t.first)),
        ("first call, CPU [s]", lambda t, s: seconds(t.first_cpu)),
        ("later calls, median wall [s]", lambda t, s: seconds(t.later)),
        ("later calls, median CPU [s]", lambda t, s: seconds(t.later_cpu)),
        ("ratio to ufm, first call wall", lambda t, s: ratio(t.first, ours.first)),
        ("ratio to ufm, later calls wall", lambda t, s: ratio(t.later, ours.later)),
        ("ratio to ufm, later calls CPU", lambda t, s: ratio(t.later_cpu, ours.later_cpu)),
        ("final train loss (CE)", lambda t, s: f"{s['train_loss']:.6g}"),
        ("final objective (CE + decay)", lambda t, s: f"{s['objective']:.6g}"),
        ("final train error", lambda t, s: f"{s['train_error']:.4f}"),
        ("final test error", lambda t, s: f"{s['test_error']:.4f}"),
        ("final test loss (CE)", lambda t, s: f"{s['test_loss']:.4g}"),
        ("first epoch with train error 0", lambda t, s: epoch(s["first_zero"])),
        ("train error 0 from epoch on", lambda t, s: epoch(s["terminal"])),
    ]
    print(title)
    print(f"{'':<38}" + "".join(f"{name:>16}" for name in columns))
    for name, cell in rows:
        print(f"{name:<38}" + "".join(f"{cell(*c):>16}" for c in columns.values()))
    missing = [name for name, (_, s) in columns.items() if s["first_zero"] is None]
    if missing:
        print(f"NOT at zero training error within the epochs: {', '.join(missing)}")


def variant(torch, data, setup, args, title: str) -> dict:
    """Time one training setting both ways, print the table and the agreement check, and
    return {"columns": {name: (Timing, summary)}, "check": {...} (full batch, same start)}."""
    timing, result = timed_calls(ufm_trainer(data, setup), args.repeats)
    columns = {"ufm (JAX)": (timing, summary(result["history"]))}
    out = {"columns": columns, "check": None}
    if torch is None:
        table(title, columns)
        return out
    init = initial_weights(data, setup) if args.torch_init == "ufm" else None
    eager = torch_trainer(torch, data, setup, init, False)
    runs = []
    for threads in args.torch_threads:
        torch.set_num_threads(threads)
        timing, run = timed_calls(eager, args.repeats)
        columns[f"PyTorch {threads} thr"] = (timing, summary(run[0]))
        runs.append(run)
    history, params = runs[0]  # the first thread count's, for the agreement check
    torch.set_num_threads(args.torch_threads[0])
    if args.compile:
        compiled, (compiled_history, _) = timed_calls(
            torch_trainer(torch, data, setup, init, True), args.repeats
        )
        columns[f"compile {args.torch_threads[0]} thr"] = (compiled, summary(compiled_history))
    table(title, columns)
    if init is not None and setup.batch_size == 0:
        out["check"] = check = {
            "initial_features": ufm_initial_check(data, setup, init),
            "curves": max(
                float(np.max(np.abs(result["history"][k] - history[k]))) for k in METRICS
            ),
            "final_parameters": float(np.max(np.abs(result["parameters"] - params))),
        }
        print(
            "same training (full batch, same start), max |ufm - PyTorch|: initial features "
            f"{check['initial_features']:.1e}, per-epoch losses/errors {check['curves']:.1e}, "
            f"final parameters {check['final_parameters']:.1e}"
        )
    print(flush=True)
    return out


def load_torch():
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed (pip install torch): reporting ufm's numbers only.\n")
        return None
    torch.set_default_dtype(torch.float64)
    return torch


def load_note(cores: int) -> str:
    """The 1-minute load average, and a warning when other work competes for the cores."""
    load = os.getloadavg()[0]
    if load <= cores + 0.5:
        return f"load average {load:.1f} on {cores} cores"
    return (
        f"load average {load:.1f} on {cores} cores: OTHER WORK COMPETES for the cores, so "
        "wall times are inflated (CPU times less so); PyTorch's OpenMP threads spin-wait and "
        "suffer most with more than one thread (compare --torch-threads 1)"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 epochs instead of 300")
    parser.add_argument("--repeats", type=int, default=1, help="later calls timed per side")
    parser.add_argument("--epochs", type=int, default=None, help="default 300 (--quick: 30)")
    parser.add_argument("--no-minibatch", action="store_true", help="full batch only")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--torch-init", choices=("ufm", "own"), default="ufm")
    parser.add_argument(
        "--torch-threads", type=int, nargs="+", default=None, help="default: the cores, and 1"
    )
    args = parser.parse_args(argv)
    epochs = args.epochs or (30 if args.quick else 300)
    cores = os.cpu_count()
    args.torch_threads = args.torch_threads or sorted({cores, 1}, reverse=True)
    torch = load_torch()
    data = dataset("digits")
    print(
        f"digits: {data.x_train.shape[0]} training / {data.x_test.shape[0]} test samples of "
        f"{data.x_train.shape[1]} inputs, K = {data.K}; MLP {SETTINGS['widths']}, CE, wd "
        f"{SETTINGS['weight_decay']}, SGD momentum {SETTINGS['momentum']}, lr {SETTINGS['lr']} "
        f"cosine, {epochs} epochs, float64"
    )
    versions = f"jax {jax.__version__}" + ("" if torch is None else f", torch {torch.__version__}")
    threads = "" if torch is None else f"; torch threads {args.torch_threads}"
    print(
        f"device: {jax.devices()[0].device_kind}, {cores} CPU cores (XLA: all, its default)"
        f"{threads}; {versions}; PyTorch starts from "
        f"{'ufm' if args.torch_init == 'ufm' else 'its own He'} initial weights"
    )
    print(f"at the start: {load_note(cores)}\n", flush=True)
    full = training.Training(**SETTINGS, epochs=epochs)
    out = {"full": variant(torch, data, full, args, "full batch (1 step an epoch)")}
    if not args.no_minibatch:
        mini = training.Training(**SETTINGS, epochs=epochs, batch_size=128)
        out["minibatch"] = variant(torch, data, mini, args, "minibatch 128 (11 steps an epoch)")
    print(f"at the end: {load_note(cores)}")
    return out


if __name__ == "__main__":
    main()
