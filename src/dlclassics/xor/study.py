"""The study: train every candidate run at once, then apply 'until N successes or M runs'."""

import time
from dataclasses import dataclass

import numpy as np
import torch

from dlclassics.xor.analysis import count_functions
from dlclassics.xor.sweep import Config, Protocol, RunResults, train_batched, xavier_init


@dataclass
class Study:
    configs: list[dict]
    seconds: float
    run_epochs: int
    hidden_units: list[dict]


def runs_used(succeeded: list[bool], successes: int) -> int:
    """How many runs the one-after-another protocol makes: it stops at the N-th success."""
    count = 0
    for i, ok in enumerate(succeeded):
        count += ok
        if count == successes:
            return i + 1
    return len(succeeded)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarise(config: Config, runs: RunResults, idx: list[int], protocol: Protocol) -> dict:
    used = idx[: runs_used([bool(runs.succeeded[i]) for i in idx], protocol.successes)]
    ok = [i for i in used if runs.succeeded[i]]
    epochs = [int(runs.epochs[i]) for i in ok]
    return {
        "lr": config.lr,
        "hidden": config.hidden,
        "bypass": config.bypass,
        "runs": len(used),
        "successes": len(ok),
        "failures": len(used) - len(ok),
        "epochs": epochs,
        "mean_epochs": _mean(epochs),
        "std_epochs": float(np.std(epochs)) if epochs else None,
        "mean_train_loss": _mean([float(runs.train_loss[i]) for i in ok]),
        "mean_val_loss": _mean([float(runs.val_loss[i]) for i in ok]),
        "run_indices": used,
    }


def run_study(
    grid: list[Config], protocol: Protocol, generator: torch.Generator, quiet: bool = True
) -> Study:
    """Every configuration gets `max_runs` candidate runs, all trained together in one batch."""
    candidates = [c for c in grid for _ in range(protocol.max_runs)]
    init = xavier_init(candidates, generator)
    start = time.perf_counter()
    runs = train_batched(candidates, init, protocol, quiet=quiet)
    seconds = time.perf_counter() - start

    summaries, hidden_units = [], []
    for k, config in enumerate(grid):
        idx = list(range(k * protocol.max_runs, (k + 1) * protocol.max_runs))
        summary = summarise(config, runs, idx, protocol)
        if config.hidden == 1:
            units = [
                (runs.weights.hidden[:2, 0, i], float(runs.weights.hidden[2, 0, i]))
                for i in summary["run_indices"]
                if runs.succeeded[i]
            ]
            hidden_units.append(
                {
                    "lr": config.lr,
                    "bypass": config.bypass,
                    "functions": count_functions(units),
                    "units": [{"weight": w.tolist(), "bias": b} for w, b in units],
                }
            )
        summaries.append(summary)
    run_epochs = sum(
        int(runs.epochs[i]) if runs.succeeded[i] else protocol.max_epochs
        for s in summaries
        for i in s.pop("run_indices")
    )
    return Study(summaries, seconds, run_epochs, hidden_units)
