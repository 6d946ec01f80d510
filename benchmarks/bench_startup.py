"""What a first run costs (issue 20): the commands a new user types, each in a fresh process.

Rows: `python -c "import ufm"`; the headline solve (`ufm solve plain --loss ce --K 10 --n 100
--d 64 --bias --lambda-W 5e-4 --lambda-H 5e-4 --lambda-b 5e-4 --json`); `ufm verify --quick`;
with --full also `ufm verify`. Each command gets its own empty persistent compilation cache
(UFM_CACHE_DIR in a temporary folder): "cold" is the first run, with nothing compiled yet
(what a new user waits for), "warm" the same command again on the cache the first run
filled. Wall: seconds from start to exit. CPU: user + system seconds of the child process
(`resource.getrusage(RUSAGE_CHILDREN)` before and after), all its threads together, so CPU
above wall means parallel work. Goals (cold wall): solve < 2 s, verify --quick < 20 s,
verify < 90 s; `import ufm` has none of its own (it is part of each).

    python benchmarks/bench_startup.py [--full] [--only import,solve,quick,full]
"""

import argparse
import dataclasses
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADLINE = "solve plain --loss ce --K 10 --n 100 --d 64 --bias"
HEADLINE += " --lambda-W 5e-4 --lambda-H 5e-4 --lambda-b 5e-4 --json"
GOALS = {"import": None, "solve": 2.0, "quick": 20.0, "full": 90.0}  # cold wall, seconds


@dataclasses.dataclass(frozen=True)
class Timing:
    """One run of a command: wall and child CPU seconds, and its exit code."""

    wall: float
    cpu: float
    code: int


def ufm_command() -> list[str]:
    """The `ufm` console script of this interpreter's environment, or `python -m ufm.cli`."""
    script = Path(sys.executable).with_name("ufm")
    if script.exists():
        return [str(script)]
    found = shutil.which("ufm")
    return [found] if found else [sys.executable, "-m", "ufm.cli"]


def commands() -> dict[str, tuple[str, list[str]]]:
    """name -> (the command as a user types it, the argv run)."""
    ufm = ufm_command()
    return {
        "import": ('python -c "import ufm"', [sys.executable, "-c", "import ufm"]),
        "solve": (f"ufm {HEADLINE}", [*ufm, *HEADLINE.split()]),
        "quick": ("ufm verify --quick", [*ufm, "verify", "--quick"]),
        "full": ("ufm verify", [*ufm, "verify"]),
    }


def child_env(cache_dir: str) -> dict[str, str]:
    """This environment with the CLI's cache at `cache_dir`: JAX_COMPILATION_CACHE_DIR is
    dropped (it would take precedence over UFM_CACHE_DIR and share a cache across runs)."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["UFM_CACHE_DIR"] = cache_dir
    return env


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: list[str], env: dict[str, str]) -> Timing:
    """Run `argv` to its end (output discarded), timing wall and child CPU."""
    cpu, start = _child_cpu(), time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"{' '.join(argv)}: exit {proc.returncode}\n{proc.stderr.decode()[-2000:]}")
    return Timing(wall, _child_cpu() - cpu, proc.returncode)


def cold_and_warm(argv: list[str]) -> tuple[Timing, Timing]:
    """The command on an empty compilation cache, then again on the cache it filled."""
    with tempfile.TemporaryDirectory(prefix="ufm-startup-") as cache:
        env = child_env(str(Path(cache) / "jax"))
        cold = run_once(argv, env)
        return cold, run_once(argv, env)


def row(name: str, command: str, cold: Timing, warm: Timing) -> dict:
    """One line of the table: the goal is on the cold wall time, and a failed run misses it."""
    goal = GOALS[name]
    met = "-" if goal is None else ("yes" if cold.wall < goal and cold.code == 0 else "no")
    if cold.code or warm.code:
        met = f"no (exit {cold.code or warm.code})"
    return {
        "command": command,
        "name": name,
        "cold_wall": cold.wall,
        "cold_cpu": cold.cpu,
        "warm_wall": warm.wall,
        "warm_cpu": warm.cpu,
        "goal": "-" if goal is None else f"< {goal:g} s",
        "met": met,
    }


def table(rows: list[dict]) -> str:
    """The rows as a fixed-width table (seconds to 2 decimals), the command on its own line
    when it is too long for the first column."""
    head = f"{'command':<28}{'cold wall':>10}{'cold CPU':>10}{'warm wall':>10}{'warm CPU':>10}"
    lines = [head + f"  {'goal (cold)':<12}met", "-" * (len(head) + 18)]
    for r in rows:
        name = r["command"] if len(r["command"]) <= 27 else r["name"]
        numbers = [r[k] for k in ("cold_wall", "cold_cpu", "warm_wall", "warm_cpu")]
        lines.append(f"{name:<28}" + "".join(f"{x:>10.2f}" for x in numbers))
        lines[-1] += f"  {r['goal']:<12}{r['met']}"
        if name != r["command"]:
            lines.append(f"  ({r['command']})")
    return "\n".join(lines)


def device() -> str:
    """The default JAX device of a child process, as the commands see it."""
    code = "import jax; d = jax.devices()[0]; print(d.platform, d.device_kind, len(jax.devices()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode or len(out.stdout.split()) < 3:
        return "unknown"
    platform, *kind, count = out.stdout.split()
    kind = " ".join(kind)
    return f"{count} x {platform if kind == platform else f'{platform} ({kind})'}"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also time `ufm verify` (minutes)")
    parser.add_argument(
        "--only", help="comma-separated rows to time: import, solve, quick, full (implies it)"
    )
    args = parser.parse_args(argv)
    names = ["import", "solve", "quick"] + (["full"] if args.full else [])
    if args.only:
        names = [n.strip() for n in args.only.split(",")]
        unknown = set(names) - set(GOALS)
        if unknown:
            parser.error(f"--only: unknown {sorted(unknown)}; choose from {', '.join(GOALS)}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"device: {device()}, {cores} CPU cores; each command in a fresh process")
    rows = []
    for name in names:
        command, argv_ = commands()[name]
        rows.append(row(name, command, *cold_and_warm(argv_)))
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
