"""How long `--help` takes: the command line's start-up, beside the import of torch it avoids.

Every command's `--help` runs in a fresh process, several times; the median is printed, and the
same for `python -c "import torch"`, so the ratio reads the same on a fast or a slow machine
(the goal: every `--help` under 0.5 s; before the registry loaded lazily, 1.6 s here, more than
torch's import).

Usage: python benchmarks/cli_help.py [--rounds 5]
"""

import argparse
import statistics
import subprocess
import sys
import time

from dlclassics.cli import cli

GOAL_SECONDS = 0.5


def seconds(command: list[str], rounds: int) -> float:
    """The median wall time of `command` in a fresh process."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def commands() -> list[list[str]]:
    """Every command and group, as words after `dlclassics`."""
    found = [[]]
    for name, command in cli.commands.items():
        found.append([name])
        found += [[name, sub] for sub in getattr(command, "commands", {})]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch = seconds([sys.executable, "-c", "import torch"], args.rounds)
    print(f"import torch: {torch:.3f} s")
    slowest = 0.0
    for words in commands():
        took = seconds([sys.executable, "-m", "dlclassics", *words, "--help"], args.rounds)
        slowest = max(slowest, took)
        print(f"dlclassics {' '.join(words)} --help: {took:.3f} s ({took / torch:.2f}x torch)")
    verdict = "under" if slowest < GOAL_SECONDS else "OVER"
    print(f"slowest: {slowest:.3f} s, {verdict} the {GOAL_SECONDS} s goal")


if __name__ == "__main__":
    main()
