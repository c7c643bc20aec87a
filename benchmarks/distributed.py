"""Data-parallel scaling on one machine: 1 process x 1 thread, 1 process x N threads and
N processes x 1 thread (N: the cores).

Measures the training loops of `lm train` (real target tokens/s, on the europarl corpus, default
model) and `mnist cnn` (images/s of double_conv at batch 50 on Fashion-MNIST, its one validation
check at the end included, sharded too) with the same global batch every way: in one process on
one core, in one process using every core, and under torchrun with one process per core (gloo).
Every measurement is a fresh process or job; the layouts alternate for a few rounds so that load
on a shared machine hits them alike. Medians are printed, with the scaling efficiency of the N
processes (their throughput over N times that of one process on one core) and their speed-up over
one process using the N cores through threads.
Usage: python benchmarks/distributed.py [--rounds 3] [--lm-steps 150] [--cnn-iterations 300]
       [--corpus PATH] [--data-dir DIR]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def lm_tokens_per_s(corpus: Path, steps: int) -> float:
    import torch

    from dlclassics.core import distributed
    from dlclassics.core.machine import resolve_bf16, seed_everything
    from dlclassics.lm.batches import encode
    from dlclassics.lm.config import LmTrainConfig
    from dlclassics.lm.experiment import load_data, train_trials, trial_model
    from dlclassics.lm.model import LanguageModel
    from dlclassics.lm.train import LoopConfig, Progress, train

    device = distributed.start("cpu", LmTrainConfig.batch_size)
    config = LmTrainConfig(
        corpus=str(corpus), max_steps=steps, device="cpu", bf16=resolve_bf16(None, device)
    )
    data = load_data(config)
    (trial,) = train_trials(config)
    rows = encode(data.sentences.train, data.vocab, trial.direction)
    seed_everything(0)
    model = LanguageModel(trial_model(config, trial, len(data.vocab)))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    progress = train(
        model,
        optimizer,
        Progress(),
        (rows, []),
        LoopConfig.of(config),
        device,
        log=lambda *_: None,
        save_state=lambda _: Path(),
        quiet=True,
    )
    return progress.tokens_per_second


def cnn_images_per_s(data_dir: Path, iterations: int) -> float:
    import torch

    from dlclassics.core import distributed
    from dlclassics.core.machine import resolve_bf16
    from dlclassics.mnist.data import batch_generator, load
    from dlclassics.mnist.models import build, to_device
    from dlclassics.mnist.train import train

    device = distributed.start("cpu", 50)
    data = load("fashion-mnist", data_dir, seed=0)
    torch.manual_seed(0)
    model = to_device(build("double_conv"), device)
    result = train(
        model,
        data,
        batch_size=50,
        lr=1e-3,
        max_iterations=iterations,
        eval_every=iterations,
        generator=batch_generator(0),
        bf16=resolve_bf16(None, device),
    )
    return result.iterations * 50 / result.seconds


def measure(which: str, processes: int, threads: int, args: argparse.Namespace) -> float:
    """Throughput of one fresh process or torchrun job, as rank 0 prints it."""
    worker = [str(Path(__file__)), "--worker", which]
    worker += ["--corpus", str(args.corpus), "--data-dir", str(args.data_dir)]
    worker += ["--lm-steps", str(args.lm_steps), "--cnn-iterations", str(args.cnn_iterations)]
    if processes == 1:
        command = [sys.executable, *worker]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc-per-node", str(processes), *worker]
    # torchrun gives each process one thread (and `distributed.start` cores / processes).
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lm-steps", type=int, default=150)
    parser.add_argument("--cnn-iterations", type=int, default=300)
    parser.add_argument("--corpus", type=Path, default=SHARED / "data/text/europarl.40.txt")
    parser.add_argument("--data-dir", type=Path, default=SHARED / "data/fashion-mnist")
    parser.add_argument("--worker", choices=["lm", "cnn"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        if args.worker == "lm":
            per_s = lm_tokens_per_s(args.corpus, args.lm_steps)
        else:
            per_s = cnn_images_per_s(args.data_dir, args.cnn_iterations)
        if int(os.environ.get("RANK", 0)) == 0:
            print(json.dumps({"per_s": per_s}))
        return

    cores = len(os.sched_getaffinity(0))
    layouts = {
        "1 process x 1 thread": (1, 1),
        f"1 process x {cores} threads": (1, cores),
        f"{cores} processes x 1 thread": (cores, 1),
    }
    for which, unit in (("lm", "tokens/s"), ("cnn", "images/s")):
        seen: dict[str, list[float]] = {name: [] for name in layouts}
        for _ in range(args.rounds):
            for name, (processes, threads) in layouts.items():
                seen[name].append(measure(which, processes, threads, args))
        medians = {name: statistics.median(values) for name, values in seen.items()}
        print(f"\n{which} ({unit}, median of {args.rounds} rounds):")
        for name, values in seen.items():
            rounds = ", ".join(f"{v:,.0f}" for v in values)
            print(f"  {name}: {medians[name]:,.0f}  (rounds: {rounds})")
        alone, threaded, processes = medians.values()
        print(f"  scaling efficiency of {cores} processes: {processes / (cores * alone):.2f}")
        print(f"  {cores} processes over 1 process x {cores} threads: {processes / threaded:.2f}")


if __name__ == "__main__":
    main()
