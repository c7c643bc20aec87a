"""The runs `serve` shows by default: the newest language model, digit classifier, XOR and XOR
study runs under runs/.

A run directory says which command made it in its config.json, and keeps each trained model in
`trials/<name>/checkpoint.pt`. The search goes down any depth, so that the parts of a
`dlclassics reproduce` run (its `lm-study/`, `mnist-cnn/`, ... run directories) are found as well
as single commands' runs. "Newest" is the run holding the newest trial checkpoint.
"""

import json
from collections.abc import Iterator
from pathlib import Path

from dlclassics.core.checkpoint import load_checkpoint
from dlclassics.core.errors import InputError
from dlclassics.core.rundir import CHECKPOINT, RESULT, TRIALS

LM_COMMANDS = ("lm train", "lm study")
# A CNN first: the digit canvas's best classifier; an `mnist fc` run where there is none.
MNIST_COMMANDS = (("mnist cnn",), ("mnist fc",))
XOR_COMMANDS = ("xor solve", "xor train")
STUDY_COMMANDS = ("xor sweep",)  # the XOR tab's study explorer


def _runs_of(runs: Path, commands: tuple[str, ...]) -> Iterator[Path]:
    """The run directories anywhere under `runs` that one of `commands` made."""
    for config in runs.glob("**/config.json"):
        try:
            command = json.loads(config.read_text(encoding="utf-8")).get("command")
        except (OSError, ValueError, AttributeError):
            continue
        if command in commands:
            yield config.parent


def _checkpoints(runs: Path, commands: tuple[str, ...]) -> list[Path]:
    """The trial checkpoints of the runs of `commands` under `runs`."""
    return [c for run in _runs_of(runs, commands) for c in (run / TRIALS).glob(f"*/{CHECKPOINT}")]


def _newest(files: list[Path]) -> Path | None:
    return max(files, key=lambda f: f.stat().st_mtime, default=None)


def _direction(trial: Path) -> str | None:
    """The trial's reading direction: from its result.json's trial record, which is small, else
    from the checkpoint's model arguments."""
    try:
        record = json.loads((trial / RESULT).read_text(encoding="utf-8"))
        return record["trial"]["direction"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return load_checkpoint(trial / CHECKPOINT)["model_args"]["direction"]
    except (InputError, KeyError, TypeError):
        return None


def newest_lm_model(runs: Path) -> Path | None:
    """The trial folder of the newest language model of an `lm train` or `lm study` run.

    Forward models come first: a reverse one predicts the word before the typed text, which is
    not what a next-word box suggests (a study's run, exported whole, brings its reverse ones).
    """
    checkpoints = _checkpoints(runs, LM_COMMANDS)
    forward = [c for c in checkpoints if _direction(c.parent) == "forward"]
    newest = _newest(forward or checkpoints)
    return newest.parent if newest else None


def newest_run(runs: Path, commands: tuple[str, ...]) -> Path | None:
    """The run directory of one of `commands` under `runs` holding the newest trial
    checkpoint."""
    newest = _newest(_checkpoints(runs, commands))
    return newest.parent.parent.parent if newest else None  # <run>/trials/<name>/checkpoint.pt


def newest_mnist_model(runs: Path) -> Path | None:
    """The newest `mnist cnn` run directory holding a trained model, else the newest
    `mnist fc` one."""
    return next(filter(None, (newest_run(runs, c) for c in MNIST_COMMANDS)), None)


def newest_runs(runs: Path) -> list[Path]:
    """The runs `serve` exports by default: the newest language model's run (a study's whole),
    the newest digit classifier's, the newest XOR run and the newest XOR study, those there
    are."""
    lm = newest_lm_model(runs)
    picks = [lm.parent.parent if lm else None, newest_mnist_model(runs)]
    picks += [newest_run(runs, XOR_COMMANDS), newest_run(runs, STUDY_COMMANDS)]
    return [run for run in picks if run is not None]
