"""ufm's language-model training step against the same model and step in PyTorch, in one run.

Model (issue 19): `ufm.language.transformer.Transformer`, the decoder-only causal transformer
(token + learned position embeddings, pre-LayerNorm blocks of causal multi-head attention and
a width -> 4 width -> width tanh-GELU MLP, final LayerNorm eps 1e-5, bias-free unembedding),
float32, vocabulary V = 1024, heads 4, trained with AdamW (b1 0.9, b2 0.999, eps 1e-8, no
weight decay) on windows of context + 1 consecutive tokens of one stream drawn from
`ufm.language.synthetic.synthetic_language(1024, 1.0, seed=0)` (order 1), the mean next-token
cross-entropy of every window's tokens 1 .. context.
  ufm:     `train.make_step(train.optimizer(config, steps), batch, context)`, the jitted step
           `train.train` runs (window drawing inside it, warm-up + cosine learning rate), on
           XLA's CPU threads (all cores, its default).
  PyTorch: the same architecture as a torch.nn.Module (F.scaled_dot_product_attention with
           is_causal=True, nn.GELU(approximate="tanh"), nn.LayerNorm(eps=1e-5)), started from
           ufm's initial weights, torch.optim.AdamW at a constant learning rate (the schedule
           costs nothing either way), windows drawn with torch.randint from the same stream,
           eager mode; one column with torch.set_num_threads(cores) and one with 1 thread
           (immune to OpenMP spin-waits when other work shares the cores; --torch-threads
           sets the list).
Same model: on ufm's initial weights and the same windows, both compute the first loss and
its gradient; the script prints the largest differences (float32 rounding, ~1e-6).
Throughput is tokens per second (batch x context predicted tokens per step), warm: the first
--warmup steps (ufm's compilation) are not timed; the figure is the median over --repeats
blocks of --steps steps, wall-clock, and per CPU-second of this process (all its threads: the
fairer figure when other work shares the cores). ratio = ufm / PyTorch (> 1: ufm is faster).

    python benchmarks/bench_language.py [--quick] [--steps 20] [--repeats 3] [--warmup 3]
        [--torch-threads 2]
"""

import argparse
import math
import os
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ufm.language import synthetic, train
from ufm.language.transformer import Transformer

VOCAB = 1024
STREAM_TOKENS = 100_000
CONFIGS = [  # (width, depth, context, batch), heads 4
    (64, 2, 64, 32),
    (128, 2, 64, 32),
    (64, 4, 64, 32),
]


def torch_model_class(torch):
    """The PyTorch twin of `ufm.language.transformer.Transformer` (module docstring)."""
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self, width, heads):
            super().__init__()
            self.heads = heads
            self.attention_norm = nn.LayerNorm(width, eps=1e-5)
            self.qkv = nn.Linear(width, 3 * width)
            self.attention_out = nn.Linear(width, width)
            self.mlp_norm = nn.LayerNorm(width, eps=1e-5)
            self.mlp_in = nn.Linear(width, 4 * width)
            self.mlp_out = nn.Linear(4 * width, width)
            self.gelu = nn.GELU(approximate="tanh")

        def forward(self, x):
            B, T, width = x.shape
            q, k, v = self.qkv(self.attention_norm(x)).split(width, dim=-1)
            q, k, v = (a.view(B, T, self.heads, -1).transpose(1, 2) for a in (q, k, v))
            mixed = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.attention_out(mixed.transpose(1, 2).reshape(B, T, width))
            return x + self.mlp_out(self.gelu(self.mlp_in(self.mlp_norm(x))))

    class TorchTransformer(nn.Module):
        def __init__(self, vocab, width, depth, heads, context):
            super().__init__()
            self.token_embedding = nn.Parameter(torch.zeros(vocab, width))
            self.position_embedding = nn.Parameter(torch.zeros(context, width))
            self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
            self.final_norm = nn.LayerNorm(width, eps=1e-5)
            self.unembedding = nn.Linear(width, vocab, bias=False)

        def forward(self, tokens):  # (B, T) -> logits (B, T, V)
            x = self.token_embedding[tokens] + self.position_embedding[: tokens.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.unembedding(self.final_norm(x))

    return TorchTransformer


def paired_parameters(model: Transformer, net) -> list[tuple[np.ndarray, object]]:
    """[(ufm array, the torch parameter it corresponds to)] for every parameter."""
    pairs = [
        (model.token_embedding, net.token_embedding),
        (model.position_embedding, net.position_embedding),
    ]
    for ours, theirs in zip(model.blocks, net.blocks, strict=True):
        for norm in ("attention_norm", "mlp_norm"):
            pairs += [
                (getattr(ours, norm).scale, getattr(theirs, norm).weight),
                (getattr(ours, norm).shift, getattr(theirs, norm).bias),
            ]
        for dense in ("qkv", "attention_out", "mlp_in", "mlp_out"):
            pairs += [
                (getattr(ours, dense).weight, getattr(theirs, dense).weight),
                (getattr(ours, dense).bias, getattr(theirs, dense).bias),
            ]
    pairs += [
        (model.final_norm.scale, net.final_norm.weight),
        (model.final_norm.shift, net.final_norm.bias),
        (model.unembedding.weight, net.unembedding.weight),
    ]
    return pairs


def torch_twin(torch, model: Transformer, heads: int):
    """A torch model holding a copy of `model`'s weights."""
    width = model.token_embedding.shape[1]
    net = torch_model_class(torch)(model.vocab_size, width, len(model.blocks), heads, model.context)
    with torch.no_grad():
        for ours, theirs in paired_parameters(model, net):
            theirs.copy_(torch.from_numpy(np.array(ours, dtype=np.float32)))
    return net


def same_model_check(torch, model: Transformer, net, windows: np.ndarray) -> tuple[float, float]:
    """(|loss difference|, max |gradient difference| / max |gradient|) on the same windows."""
    loss, grads = jax.value_and_grad(train.next_token_loss)(model, jnp.asarray(windows))
    w = torch.from_numpy(windows.astype(np.int64))
    logits = net(w[:, :-1])
    theirs = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), w[:, 1:].ravel()
    )
    net.zero_grad()
    theirs.backward()
    pairs = paired_parameters(grads, net)
    gap = max(float(np.max(np.abs(np.asarray(g) - p.grad.numpy()))) for g, p in pairs)
    scale = max(float(np.max(np.abs(np.asarray(g)))) for g, _ in pairs)
    return abs(float(loss) - float(theirs.detach())), gap / scale


def ufm_throughput(stream, model, config, args) -> tuple[list[float], list[float]]:
    """Per timed block: (wall seconds, CPU seconds) of args.steps warm ufm steps."""
    steps = args.warmup + args.repeats * args.steps
    optim = train.optimizer(config, steps)
    step = train.make_step(optim, config.batch, config.context)
    state = optim.init(eqx.filter(model, eqx.is_inexact_array))  # as train.train does
    keys = jax.random.split(jax.random.PRNGKey(1), steps)
    for key in keys[: args.warmup]:
        model, state, loss = step(model, state, key, stream)
    jax.block_until_ready(loss)
    walls, cpus = [], []
    for r in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for key in keys[args.warmup + r * args.steps : args.warmup + (r + 1) * args.steps]:
            model, state, loss = step(model, state, key, stream)
        jax.block_until_ready(loss)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def torch_throughput(torch, stream, net, config, args) -> tuple[list[float], list[float]]:
    """Per timed block: (wall seconds, CPU seconds) of args.steps warm PyTorch steps."""
    F = torch.nn.functional
    tokens = torch.from_numpy(stream.astype(np.int64))
    offsets = torch.arange(config.context + 1)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(1)

    def step():
        starts = torch.randint(
            0, len(tokens) - config.context, (config.batch,), generator=generator
        )
        windows = tokens[starts[:, None] + offsets]
        optimizer.zero_grad(set_to_none=True)
        logits = net(windows[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(args.warmup):
        step()
    walls, cpus = [], []
    for _ in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.steps):
            step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def load_note(cores: int) -> str:
    """The 1-minute load average, and a warning when other work competes for the cores."""
    load = os.getloadavg()[0]
    note = f"load average {load:.1f} on {cores} cores"
    if load > cores + 0.5:
        note += ": OTHER WORK COMPETES for the cores, wall figures are low (CPU ones less so)"
    return note


def run_config(torch, stream, shape, args, cores) -> dict:
    """Check the two models agree, time both, and return the row's figures."""
    width, depth, context, batch = shape
    config = train.TransformerConfig(
        VOCAB, width=width, depth=depth, heads=4, context=context, batch=batch
    )
    model = Transformer(VOCAB, width, depth, 4, context, key=jax.random.PRNGKey(0))
    tokens = context * batch * args.steps
    walls, cpus = ufm_throughput(jnp.asarray(stream), model, config, args)
    row = {
        "config": f"w{width} d{depth} ctx{context} b{batch}",
        "ufm": tokens / statistics.median(walls),
        "ufm_cpu": tokens / statistics.median(cpus),
    }
    if torch is None:
        return row
    starts = np.random.default_rng(2).integers(0, len(stream) - context, batch)
    windows = stream[starts[:, None] + np.arange(context + 1)]
    row["loss_gap"], row["grad_gap"] = same_model_check(
        torch, model, torch_twin(torch, model, 4), windows
    )
    for threads in args.torch_threads:
        torch.set_num_threads(threads)
        net = torch_twin(torch, model, 4)
        walls, cpus = torch_throughput(torch, stream, net, config, args)
        row[f"torch{threads}"] = tokens / statistics.median(walls)
        row[f"torch{threads}_cpu"] = tokens / statistics.median(cpus)
    torch.set_num_threads(cores)
    return row


def print_row(row: dict, threads: list[int], header: bool) -> None:
    """One configuration's line: tokens/s of each side, ratios, and the same-model check."""
    cells = [("configuration", f"{row['config']}", 20), ("ufm tok/s", f"{row['ufm']:,.0f}", 11)]
    for t in threads:
        if f"torch{t}" in row:
            cells += [
                (f"torch {t}thr tok/s", f"{row[f'torch{t}']:,.0f}", 17),
                ("ratio", f"{row['ufm'] / row[f'torch{t}']:.2f}", 6),
                ("ratio CPU", f"{row['ufm_cpu'] / row[f'torch{t}_cpu']:.2f}", 10),
            ]
    if "loss_gap" in row:
        cells += [("|loss diff|", f"{row['loss_gap']:.1e}", 12)]
        cells += [("grad diff/max", f"{row['grad_gap']:.1e}", 14)]
    if header:
        print("".join(f"{name:>{w}}" for name, _, w in cells))
    print("".join(f"{value:>{w}}" for _, value, w in cells), flush=True)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first configuration only")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps a block (20; --quick: 10)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--torch-threads", type=int, nargs="+", default=None)
    args = parser.parse_args(argv)
    args.steps = args.steps or (10 if args.quick else 20)
    started, cores = time.perf_counter(), os.cpu_count()
    args.torch_threads = args.torch_threads or sorted({cores, 1}, reverse=True)
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed (pip install torch): reporting ufm's numbers only.")
    language = synthetic.synthetic_language(VOCAB, 1.0, seed=0)
    stream = language.sample(1, STREAM_TOKENS, seed=0)[0]
    versions = f"jax {jax.__version__}" + ("" if torch is None else f", torch {torch.__version__}")
    print(
        f"V = {VOCAB}, heads 4, float32, AdamW; stream of {STREAM_TOKENS} synthetic tokens "
        f"(entropy rate {language.entropy_rate:.3f} nats); {args.warmup} untimed steps, then "
        f"median of {args.repeats} blocks of {args.steps} steps; {cores} CPU cores, XLA: all, "
        f"torch threads {args.torch_threads}; {versions}"
    )
    print(f"at the start: {load_note(cores)}\n", flush=True)
    rows = []
    for i, shape in enumerate(CONFIGS[:1] if args.quick else CONFIGS):
        rows.append(run_config(torch, stream, shape, args, cores))
        print_row(rows[-1], args.torch_threads, header=i == 0)
    print(
        "\nratio = ufm / PyTorch tokens per second (> 1: ufm faster); ratio CPU: the same per "
        "CPU-second of this process.\nsame model: |loss diff| and max |gradient diff| / max "
        "|gradient| on ufm's initial weights and the same windows (float32 rounding: ~1e-6)."
    )
    print(f"at the end: {load_note(cores)}; {time.perf_counter() - started:.0f} s in all")
    bad = [r["config"] for r in rows if r.get("loss_gap", 0) > 1e-5 or r.get("grad_gap", 0) > 1e-4]
    if bad or any(math.isnan(r["ufm"]) for r in rows):
        print(f"THE TWO IMPLEMENTATIONS DISAGREE on {', '.join(bad)}")
    return rows


if __name__ == "__main__":
    main()
