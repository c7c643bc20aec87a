"""LSTM language-model training speed: `dlclassics lm train` against the original loops.

Runs, side by side and interleaved round by round (so that a busy machine slows all alike):
  - ../shared/baselines/lm_seed_padded.py: the original loop, every sentence padded to the longest;
  - ../shared/baselines/lm_stream.py: one padding-free token stream, the practical ceiling;
  - `dlclassics lm train` with its defaults (length buckets, loss on real tokens, fused Adam,
    bf16 autocast where the CPU has it), and with --no-bf16 to show what bf16 gives.
All count real target tokens trained per second, same model (embedding 300, LSTM 256, batch 128).

Usage: python benchmarks/lm_throughput.py [--corpus PATH] [--rounds 2] [--layers 1]
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ROOT.parent / "shared" / "baselines"
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "text" / "coco.valannotations.txt"


def baseline(script: str, corpus: Path, batches: int, layers: int) -> float:
    out = subprocess.run(
        [sys.executable, script, str(corpus), "--batches", str(batches), "--layers", str(layers)],
        cwd=BASELINES,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"tokens_per_s=(\d+)", out).group(1))


def ours(corpus: Path, steps: int, layers: int, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        command = ["lm", "train", "--corpus", str(corpus), "--layers", str(layers)]
        command += ["--max-steps", str(steps), "--out", str(run), "--quiet", *extra]
        subprocess.run(
            [sys.executable, "-c", "from dlclassics.cli import main; main()", *command],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads((run / "results.json").read_text())["train_tokens_per_second"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--padded-batches", type=int, default=10)
    ap.add_argument("--stream-batches", type=int, default=20)
    ap.add_argument("--steps", type=int, default=60, help="optimiser steps of ours")
    a = ap.parse_args()
    runs = {
        "padded (lm_seed_padded.py)": lambda: baseline(
            "lm_seed_padded.py", a.corpus, a.padded_batches, a.layers
        ),
        "stream (lm_stream.py)": lambda: baseline(
            "lm_stream.py", a.corpus, a.stream_batches, a.layers
        ),
        "ours (lm train)": lambda: ours(a.corpus, a.steps, a.layers, []),
        "ours --no-bf16": lambda: ours(a.corpus, a.steps, a.layers, ["--no-bf16"]),
    }
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(a.rounds):
        for name, measure in runs.items():
            speeds[name].append(measure())
            print(f"round {r + 1}: {name}: {speeds[name][-1]:,.0f} tokens/s", flush=True)
    median = {name: statistics.median(v) for name, v in speeds.items()}
    print(f"\n{a.corpus.name}, {a.layers} layer(s), median of {a.rounds} rounds:")
    for name, value in median.items():
        print(f"  {name:28s} {value:8,.0f} tokens/s")
    padded, stream = median["padded (lm_seed_padded.py)"], median["stream (lm_stream.py)"]
    for name in ("ours (lm train)", "ours --no-bf16"):
        print(
            f"  {name}: {median[name] / padded:.2f}x the padded loop (target >= 4), "
            f"{median[name] / stream:.2f}x the stream (target >= 0.9)"
        )


if __name__ == "__main__":
    main()
