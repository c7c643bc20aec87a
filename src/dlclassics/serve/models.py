"""Finding the demo's models (by default the newest trained ones under runs/) and loading them.

A run directory says which command made it in its config.json, and keeps each trained model in
`trials/<name>/checkpoint.pt`; `mnist cnn` also keeps the model it chose as `checkpoint.pt` at
the top. The search goes down any depth, so that the models of a `dlclassics reproduce` run (its
`lm-study/` and `mnist-cnn/` run directories) are found as well as those of a single command.

A model that cannot be found or loaded is not an error here: the demo serves the other tabs and
shows the reason in that model's tab.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlclassics.core.checkpoint import MAX_WEIGHT, check_weights, load_checkpoint
from dlclassics.core.errors import InputError, first_line
from dlclassics.core.rundir import CHECKPOINT, RESULT, TRIALS
from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.model import load_language_model
from dlclassics.mnist.models import load_classifier

LM_COMMANDS = ("lm train", "lm study")
MNIST_COMMAND = "mnist cnn"
NO_LM = "no language model found: train one with `dlclassics lm train`"
NO_MNIST = "no digit classifier found: train one with `dlclassics mnist cnn`"


def _runs_of(runs: Path, commands: tuple[str, ...]) -> Iterator[Path]:
    """The run directories anywhere under `runs` that one of `commands` made."""
    for config in runs.glob("**/config.json"):
        try:
            command = json.loads(config.read_text(encoding="utf-8")).get("command")
        except (OSError, ValueError, AttributeError):
            continue
        if command in commands:
            yield config.parent


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
    not what the demo's next-word box suggests (a reverse model can still be passed by name).
    """
    checkpoints = [
        checkpoint
        for run in _runs_of(runs, LM_COMMANDS)
        for checkpoint in (run / TRIALS).glob(f"*/{CHECKPOINT}")
    ]
    forward = [c for c in checkpoints if _direction(c.parent) == "forward"]
    newest = _newest(forward or checkpoints)
    return newest.parent if newest else None


def newest_mnist_model(runs: Path) -> Path | None:
    """The newest `mnist cnn` run directory holding its chosen model, anywhere under `runs`."""
    checkpoints = [run / CHECKPOINT for run in _runs_of(runs, (MNIST_COMMAND,))]
    newest = _newest([c for c in checkpoints if c.is_file()])
    return newest.parent if newest else None


@dataclass
class Loaded:
    """A model, or the one-line reason there is none."""

    model: Any = None
    source: Path | None = None
    message: str = ""


@dataclass
class LanguageModelSlot(Loaded):
    vocab: Vocabulary | None = None


def load_lm(path: Path | None) -> LanguageModelSlot:
    """The language model at `path`: a checkpoint, a trial folder or an `lm train` run."""
    if path is None:
        return LanguageModelSlot(message=NO_LM)
    try:
        model, vocab = load_language_model(path, "cpu")
        check_weights(path, model, model.state_dict(), bound=MAX_WEIGHT)
    except InputError as e:  # the loaders refuse every malformed file so: the other tabs serve
        return LanguageModelSlot(source=path, message=f"{NO_LM} ({first_line(e)})")
    return LanguageModelSlot(model=model, source=path, vocab=vocab)


def load_mnist(path: Path | None) -> Loaded:
    """The classifier at `path`: a checkpoint, or an `mnist cnn` run holding its chosen one."""
    if path is None:
        return Loaded(message=NO_MNIST)
    try:
        model = load_classifier(path, "cpu")
        check_weights(path, model, model.state_dict(), bound=MAX_WEIGHT)
    except InputError as e:  # the loaders refuse every malformed file so: the other tabs serve
        return Loaded(source=path, message=f"{NO_MNIST} ({first_line(e)})")
    return Loaded(model=model, source=path)
