"""XOR study speed: the batched trainer's fused epochs, its Python epochs and the original loop.

Builds the fused epochs (fused.py) afresh in a temporary extension folder, for their one-time
build time; then, round by round, trains the full default study with the Python epochs and with
the fused ones, in this process, and runs `../shared/baselines/xor_seed_loop.py` on a sample of
runs for its microseconds per run-epoch. Prints medians and ranges over the rounds, the ratios
(the loop credited with both cores: two processes would halve its time), and the CPU.

Usage: python benchmarks/xor_sweep.py [--rounds 5] [--baseline PATH] [--loop-runs 3]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from dlclassics.core.machine import seed_everything
from dlclassics.xor import fused
from dlclassics.xor.batched import RunResults, train_batched, xavier_init
from dlclassics.xor.config import SweepConfig, grid
from dlclassics.xor.sweep import StudyResult, run_epochs

ROOT = Path(__file__).resolve().parents[1]


def cpu() -> str:
    """The CPU's model, whether it has AVX-512, and the instructions PyTorch's kernels use."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", info)
    flags = re.search(r"flags\s*:\s*(.+)", info)
    avx512 = "unknown" if flags is None else "yes" if "avx512f" in flags[1].split() else "no"
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{model[1] if model else 'unknown CPU'}; avx512f: {avx512}; torch kernels: {capability}"


def loop_us_per_run_epoch(script: Path, runs: int) -> float:
    """The loop's speed on the configuration it runs most of: lr 0.1, 2 hidden units."""
    out = subprocess.run(
        [sys.executable, str(script), "0.1", "2", "0", str(runs)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"us_per_epoch=([\d.]+)", out).group(1))


def train(config: SweepConfig, use_fused: bool) -> tuple[RunResults, float]:
    """The default study, as `xor sweep` trains it; and the seconds it took."""
    candidates = [p for p in grid(config) for _ in range(config.max_runs)]
    init = xavier_init(candidates, seed_everything(config.seed))
    start = time.perf_counter()
    runs = train_batched(candidates, init, config, fused=use_fused)
    return runs, time.perf_counter() - start


def same(a: RunResults, b: RunResults) -> bool:
    return all(
        torch.equal(getattr(a, name), getattr(b, name))
        for name in ("succeeded", "epochs", "train_loss", "val_loss")
    )


def spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}} to {max(values):{fmt}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--baseline", type=Path, default=ROOT.parent / "shared/baselines/xor_seed_loop.py"
    )
    parser.add_argument("--loop-runs", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU: {cpu()}")

    with tempfile.TemporaryDirectory() as build:
        os.environ["TORCH_EXTENSIONS_DIR"] = build
        start = time.perf_counter()
        if fused.load_epochs() is None:
            sys.exit("the fused epochs did not build: see the warning above")
        print(f"fused epochs built in {time.perf_counter() - start:.1f} s (once; cached after)")

    config = SweepConfig()
    seconds = {"python": [], "fused": []}
    loop_us = []
    for i in range(args.rounds):
        python, seconds_python = train(config, use_fused=False)
        runs, seconds_fused = train(config, use_fused=True)
        if not same(runs, python):
            sys.exit("the fused epochs' results differ from the Python epochs'")
        seconds["python"].append(seconds_python)
        seconds["fused"].append(seconds_fused)
        loop_us.append(loop_us_per_run_epoch(args.baseline, args.loop_runs))
        print(
            f"round {i + 1}: Python epochs {seconds_python:.2f} s, fused {seconds_fused:.2f} s, "
            f"loop {loop_us[-1]:.0f} us/run-epoch",
            flush=True,
        )

    result = StudyResult(
        seconds_fused,
        runs.succeeded.tolist(),
        runs.epochs.tolist(),
        runs.train_loss.tolist(),
        runs.val_loss.tolist(),
    )
    epochs = run_epochs(config, result)
    loop_rates = [2 * 1e6 / us for us in loop_us]  # both cores
    rates = {k: [epochs / s for s in v] for k, v in seconds.items()}
    speedups = [p / f for p, f in zip(seconds["python"], seconds["fused"], strict=True)]
    print(f"\ndefault study: {epochs:,} run-epochs; medians (and ranges) of {args.rounds} rounds")
    print(f"loop:           {spread(loop_us, '.0f')} us/run-epoch on one core")
    for name, key in (("Python epochs", "python"), ("fused epochs", "fused")):
        print(f"{name + ':':15} {spread(seconds[key], '.2f')} s")
    print("identical results (epochs, losses): yes")
    print(f"fused / Python epochs, round by round: {spread(speedups, '.2f')}x")
    for name, key in (("Python", "python"), ("fused", "fused")):
        ratio = [r / loop for r, loop in zip(rates[key], loop_rates, strict=True)]
        print(f"{name} epochs / the loop on two cores: {spread(ratio, '.0f')}x")


if __name__ == "__main__":
    main()
