"""double_conv at batch 50: the original per-sample DataLoader loop vs ours, side by side.

Ours is `dlclassics.mnist.train.fit` with its validation check every 100 iterations included;
the original (../shared/baselines/mnist_seed_loader.py) has no validation at all. The two
alternate for a few rounds so that load on a shared machine hits both alike; medians are printed.
Usage: python benchmarks/mnist_cnn.py [--data-dir DIR] [--iterations 500] [--rounds 3]
"""

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from dlclassics.mnist.data import batch_generator, load
from dlclassics.mnist.models import build
from dlclassics.mnist.train import fit, place

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _baseline_module():
    path = SHARED / "baselines" / "mnist_seed_loader.py"
    spec = importlib.util.spec_from_file_location("mnist_seed_loader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def baseline_images_per_s(base, x, y, iterations: int) -> float:
    """The original loop, verbatim in substance: per-sample Dataset, DataLoader, batch 50."""
    torch.manual_seed(0)
    model = base.DoubleConv()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loader = DataLoader(base.PerSample(x, y), batch_size=50, shuffle=True)
    it = iter(loader)
    start = time.perf_counter()
    for _ in range(iterations):
        try:
            xb, yb = next(it)
        except StopIteration:
            it = iter(loader)
            xb, yb = next(it)
        loss = F.nll_loss(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return iterations * 50 / (time.perf_counter() - start)


def ours_images_per_s(data, iterations: int) -> float:
    torch.manual_seed(0)
    model = place(build("double_conv"), torch.device("cpu"))
    result = fit(
        model,
        data,
        batch_size=50,
        lr=1e-3,
        max_iterations=iterations,
        eval_every=100,
        generator=batch_generator(0),
    )
    return result.iterations * 50 / result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED / "data" / "fashion-mnist")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = _baseline_module()
    x = base.idx(args.data_dir / "train-images-idx3-ubyte.gz")
    y = base.idx(args.data_dir / "train-labels-idx1-ubyte.gz")
    data = load("fashion-mnist", args.data_dir, seed=0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    baseline, ours = [], []
    for r in range(args.rounds):
        baseline.append(baseline_images_per_s(base, x, y, args.iterations))
        ours.append(ours_images_per_s(data, args.iterations))
        print(f"round {r + 1}: baseline {baseline[-1]:,.0f} images/s, ours {ours[-1]:,.0f}")
    b, o = statistics.median(baseline), statistics.median(ours)
    print(f"per-sample DataLoader (original): {b:,.0f} images/s")
    print(f"dlclassics fit, val every 100:    {o:,.0f} images/s")
    print(f"ratio: {o / b:.2f}x")


if __name__ == "__main__":
    main()
