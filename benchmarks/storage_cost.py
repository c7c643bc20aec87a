"""What a shared study's storage costs per trial: one worker runs a grid of trials that do no
work (each saves a 1 MB checkpoint), through `dlclassics.workers`, on the embedded SQLite store
and, given a URL, on PostgreSQL. The time per trial is everything but training: enqueueing,
claiming, heartbeats, the result, the checkpoint artifact, and writing the trials' folders.

Usage: python benchmarks/storage_cost.py [--trials 50] [--postgres postgresql://USER:PW@HOST/DB]
"""

import argparse
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from dlclassics.core.rundir import CHECKPOINT, RunDir, atomic_write_bytes
from dlclassics.experiments import Experiment
from dlclassics.protocol import Study, Summary
from dlclassics.scale import EMBEDDED, Scale
from dlclassics.workers import run_shared


@dataclass(frozen=True)
class Config:
    trials: int = 50
    seed: int = 0


@dataclass(frozen=True)
class Trial:
    index: int

    @property
    def name(self) -> str:
        return f"trial{self.index}"


@dataclass(frozen=True)
class Result:
    index: int


def trials(config: Config) -> list[Trial]:
    return [Trial(i) for i in range(config.trials)]


def run_trial(config: Config, trial: Trial, directory: Path, quiet: bool = False) -> Result:
    atomic_write_bytes(directory / CHECKPOINT, bytes(1 << 20))
    return Result(trial.index)


def summarize(config: Config, results: list[Result], run: RunDir) -> Summary:
    return Summary({"trials": len(results)}, "")


NOOP_STUDY = Study(trials, run_trial, Result, summarize, lines=lambda config, summary: [])
NOOP = Experiment(
    "benchmark noop", "no work", "Trials that do no work.", Config, (), lambda: NOOP_STUDY, Config()
)


def per_trial_ms(config: Config, storage: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp))
        url = storage or f"sqlite:///{Path(tmp) / EMBEDDED}"
        start = time.perf_counter()
        run_shared(NOOP, config, run, True, Scale(url, f"bench-{uuid.uuid4().hex}"))
        return (time.perf_counter() - start) / config.trials * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--postgres", help="a PostgreSQL URL to measure as well")
    args = parser.parse_args()
    config = Config(args.trials)
    print(f"embedded SQLite: {per_trial_ms(config, None):.1f} ms per trial")
    if args.postgres:
        print(f"PostgreSQL: {per_trial_ms(config, args.postgres):.1f} ms per trial")


if __name__ == "__main__":
    main()
