"""Finding the demo's models (by default the newest trained ones under runs/) and loading them.

The search goes down any depth, so that the models of a `dlclassics reproduce` run (its
`lm-study/models/*` and `mnist-cnn/`) are found as well as those of a single command.

A model that cannot be found or loaded is not an error here: the demo serves the other tabs and
shows the reason in that model's tab.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlclassics.errors import InputError
from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.model import MODEL_FILES, load_config
from dlclassics.lm.model import load_model as load_lm_model
from dlclassics.mnist.models import MODEL_FILE
from dlclassics.mnist.models import load_model as load_mnist_model

NO_LM = "no language model found: train one with `dlclassics lm train`"
NO_MNIST = "no digit classifier found: train one with `dlclassics mnist cnn`"


def _newest(files: list[Path]) -> Path | None:
    return max(files, key=lambda f: f.stat().st_mtime, default=None)


def _reads_forward(model_dir: Path) -> bool:
    try:
        return load_config(model_dir).direction == "forward"
    except (OSError, ValueError, TypeError):
        return False


def newest_lm_dir(runs: Path) -> Path | None:
    """The newest `lm train` run, or model of an `lm study`, anywhere under `runs`.

    Forward models come first: a reverse one predicts the word before the typed text, which is
    not what the demo's next-word box suggests (a reverse model can still be passed by name).
    """
    weights = runs.glob("**/model.pt")
    complete = [w for w in weights if all((w.parent / n).is_file() for n in MODEL_FILES)]
    forward = [w for w in complete if _reads_forward(w.parent)]
    newest = _newest(forward or complete)
    return newest.parent if newest else None


def newest_mnist_dir(runs: Path) -> Path | None:
    """The newest `mnist cnn` run anywhere under `runs` (its best model is checkpoints/best.pt)."""
    newest = _newest(list(runs.glob(f"**/checkpoints/{MODEL_FILE}")))
    return newest.parent.parent if newest else None


@dataclass
class Loaded:
    """A model, or the one-line reason there is none."""

    model: Any = None
    source: Path | None = None
    message: str = ""


@dataclass
class LanguageModelSlot(Loaded):
    vocab: Vocabulary | None = None


def load_lm(directory: Path | None) -> LanguageModelSlot:
    if directory is None:
        return LanguageModelSlot(message=NO_LM)
    try:
        model, vocab = load_lm_model(directory, "cpu")
    except InputError as e:
        return LanguageModelSlot(source=directory, message=f"{NO_LM} ({e})")
    return LanguageModelSlot(model=model, source=directory, vocab=vocab)


def load_mnist(directory: Path | None) -> Loaded:
    if directory is None:
        return Loaded(message=NO_MNIST)
    try:
        model = load_mnist_model(directory, "cpu")
    except InputError as e:
        return Loaded(source=directory, message=f"{NO_MNIST} ({e})")
    return Loaded(model=model, source=directory)
