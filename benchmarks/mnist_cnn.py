"""double_conv at batch 50: the original per-sample DataLoader loop vs ours, side by side.

Ours is `dlclassics.mnist.train.train` as `mnist cnn` runs it, with its validation check every 100
iterations included (the protocol) and bf16 autocast where the CPU computes bf16 natively; again
with one check at the end, which is what the original (../shared/baselines/mnist_seed_loader.py,
run as it is) measures: it has no validation at all; and in float32 (--no-bf16).
Every measurement is a fresh process, as a user's run is: in one long process, our loop run after
the original one measured up to 30% slower than before it. The measurements alternate for a few
rounds so that load on a shared machine hits them alike; medians are printed.
Usage: python benchmarks/mnist_cnn.py [--data-dir DIR] [--iterations 500] [--rounds 5]
"""

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BASELINE = SHARED / "baselines" / "mnist_seed_loader.py"


def ours_images_per_s(data_dir: Path, iterations: int, eval_every: int, bf16: bool) -> float:
    from dlclassics.core.machine import resolve_bf16
    from dlclassics.mnist.data import batch_generator, load
    from dlclassics.mnist.models import build, to_device
    from dlclassics.mnist.train import train

    data = load("fashion-mnist", data_dir, seed=0)
    torch.manual_seed(0)
    model = to_device(build("double_conv"), torch.device("cpu"))
    result = train(
        model,
        data,
        batch_size=50,
        lr=1e-3,
        max_iterations=iterations,
        eval_every=eval_every,
        generator=batch_generator(0),
        restore_best=True,
        bf16=bf16 and resolve_bf16(None, torch.device("cpu")),
    )
    return result.iterations * 50 / result.seconds


# name: (validation every N iterations, bf16 where native)
OURS = {
    "ours": (100, True),
    "ours without validation": (None, True),
    "ours --no-bf16": (100, False),
}


def measure(which: str, data_dir: Path, iterations: int) -> dict[str, float]:
    """images/s of one fresh process: the baseline's two loops, or one of ours."""
    if which == "baseline":
        command = [str(BASELINE), str(data_dir), str(iterations)]
    else:
        command = [__file__, "--ours", which]
        command += ["--data-dir", str(data_dir), "--iterations", str(iterations)]
    out = subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, check=True
    ).stdout
    return {name: float(v) for name, v in re.findall(r"^([\w -]+):\s+(\d+) images/s", out, re.M)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED / "data" / "fashion-mnist")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ours", choices=OURS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ours:
        every, bf16 = OURS[args.ours]
        speed = ours_images_per_s(args.data_dir, args.iterations, every or args.iterations, bf16)
        print(f"{args.ours}: {speed:.0f} images/s")
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    speeds: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for which in ("baseline", *OURS):
            for name, value in measure(which, args.data_dir, args.iterations).items():
                speeds.setdefault(name, []).append(value)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in speeds.items()))
    median = {name: statistics.median(v) for name, v in speeds.items()}
    print(f"medians over {args.rounds} rounds of {args.iterations} iterations:")
    print(f"  original, per-sample DataLoader: {median['per-sample DataLoader']:8,.0f} images/s")
    print(f"  original, in-memory tensors:     {median['in-memory tensors']:8,.0f} images/s")
    print(f"  dlclassics train, val every 100: {median['ours']:8,.0f} images/s")
    print(f"  dlclassics train, one val at end:{median['ours without validation']:8,.0f} images/s")
    print(f"  dlclassics train, --no-bf16:     {median['ours --no-bf16']:8,.0f} images/s")
    base = median["per-sample DataLoader"]
    print(f"ratio: {median['ours'] / base:.2f}x with validation (target >= 1.5), ", end="")
    print(f"{median['ours without validation'] / base:.2f}x without, ", end="")
    print(f"{median['ours --no-bf16'] / base:.2f}x in float32 with validation")


if __name__ == "__main__":
    main()
