"""XOR study speed: the batched trainer against the original one-run-at-a-time loop, side by side.

Runs `../shared/baselines/xor_seed_loop.py` on a sample of runs for its microseconds per
run-epoch, then the full default study batched, and prints run-epochs per second of both and
their ratio, with the loop credited with both cores (two processes would halve its time).

Usage: python benchmarks/xor_sweep.py [--baseline PATH] [--loop-runs 3]
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from dlclassics.xor.config import SweepConfig
from dlclassics.xor.sweep import StudyTrial, run_epochs, run_trial

ROOT = Path(__file__).resolve().parents[1]


def loop_us_per_run_epoch(script: Path, runs: int) -> float:
    """The loop's speed on the configuration it runs most of: lr 0.1, 2 hidden units."""
    out = subprocess.run(
        [sys.executable, str(script), "0.1", "2", "0", str(runs)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"us_per_epoch=([\d.]+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", type=Path, default=ROOT.parent / "shared/baselines/xor_seed_loop.py"
    )
    parser.add_argument("--loop-runs", type=int, default=3)
    args = parser.parse_args()

    loop_us = loop_us_per_run_epoch(args.baseline, args.loop_runs)
    loop_rate = 2 * 1e6 / loop_us  # both cores

    config = SweepConfig()
    with tempfile.TemporaryDirectory() as directory:
        study = run_trial(config, StudyTrial(), Path(directory), quiet=True)
    epochs = run_epochs(config, study)
    rate = epochs / study.seconds

    print(
        f"loop:    {loop_us:.1f} us/run-epoch on one core -> {loop_rate:,.0f} run-epochs/s on two"
    )
    print(f"batched: {epochs:,} run-epochs in {study.seconds:.2f} s -> {rate:,.0f} run-epochs/s")
    print(f"full study with the loop on two cores: {epochs / loop_rate:.0f} s")
    print(f"ratio: {rate / loop_rate:.0f}x")


if __name__ == "__main__":
    main()
