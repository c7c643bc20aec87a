"""The registry: every experiment, its command, settings, options and quick settings.

The command line (`dlclassics.cli`), `reproduce`, the shared workers, `study report` and the
notebooks all go through `EXPERIMENTS`. An entry names its config type (a torch-free dataclass)
and loads its `Study` (the torch code) only when it runs, through an import inside a function:
listing the experiments, or `--help`, never waits for torch.

Adding an experiment: a package with its config and its study module, and one entry here.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import click

from dlclassics.lm.config import LmStudyConfig, LmTrainConfig
from dlclassics.mnist.config import DROPOUT_ARCH, CnnConfig, FcConfig
from dlclassics.options import Option, absolute_callback
from dlclassics.protocol import Study
from dlclassics.xor.config import SolveConfig, SweepConfig, XorTrainConfig


@dataclass(frozen=True)
class Experiment:
    """One experiment. `quick`: its settings at a size that runs in seconds (`reproduce
    --quick`, the notebooks, the tests); `data`: "mnist" or "corpus", the data it reads; `batch`:
    for an experiment that computes on a device (--device, --bf16), the smallest global batch
    of a config (every torchrun process needs a row of it); `part`: whether `reproduce` runs it;
    `resume`: whether it takes --resume; `shared`: whether its trials can be spread over workers
    (--storage, --workers)."""

    command: str  # "mnist cnn": the command line's, config.json's and a shared study's name
    title: str
    help: str
    config_type: type
    options: Sequence[Option]
    load: Callable[[], Study]
    quick: Any
    data: str = ""
    batch: Callable[[Any], int] | None = None
    part: bool = True
    resume: bool = False
    shared: bool = True

    @property
    def name(self) -> str:
        """The command as one word, "mnist-cnn": its reproduce part, its study's default name."""
        return self.command.replace(" ", "-")

    @property
    def study(self) -> Study:
        return self.load()

    def with_data(self, config: Any, dataset: str, data_dir: str | None, corpus: str | None) -> Any:
        """`config` reading the given data (None: the default, downloaded)."""
        if self.data == "mnist":
            return replace(config, dataset=dataset, data_dir=data_dir or "")
        if self.data == "corpus":
            return replace(config, corpus=corpus)
        return config

    def argv(self, config: Any) -> list[str]:
        """The options that give `config` (those of its settings that are not the defaults)."""
        default = self.config_type()
        args = []
        for option in self.options:
            value = getattr(config, option.field)
            if value != getattr(default, option.field):
                args += option.argv(value)
        return args


def _xor_solve() -> Study:
    from dlclassics.xor import solve

    return solve.STUDY


def _xor_train() -> Study:
    from dlclassics.xor import train

    return train.STUDY


def _xor_sweep() -> Study:
    from dlclassics.xor import sweep

    return sweep.STUDY


def _mnist_fc() -> Study:
    from dlclassics.mnist import fc

    return fc.STUDY


def _mnist_cnn() -> Study:
    from dlclassics.mnist import cnn

    return cnn.STUDY


def _lm_train() -> Study:
    from dlclassics.lm import experiment

    return experiment.TRAIN_STUDY


def _lm_study() -> Study:
    from dlclassics.lm import experiment

    return experiment.STUDY


SEED = Option("seed", "Random seed: the same seed gives the same results.json.")
MNIST_DATA = (
    Option(
        "dataset",
        "Which dataset: its class names and title, and the files to download when --data-dir "
        "is not given.",
    ),
    Option(
        "data_dir",
        "Folder of the four IDX files, gzipped or not (default: downloaded and cached under "
        "$DLCLASSICS_DATA or ~/.cache/dlclassics).",
        type=click.Path(file_okay=False),
        callback=absolute_callback,
        show_default=False,
    ),
)
MNIST_TRAINING = (Option("lr", "Adam's learning rate."),)
CORPUS = Option(
    "corpus",
    "UTF-8 text, one sentence per line (default: Simple English Wikipedia, downloaded once into "
    "$DLCLASSICS_DATA).",
    type=click.Path(dir_okay=False),
    callback=absolute_callback,
)
LM_TRAINING = (
    CORPUS,
    Option("vocab_size", "Words in the vocabulary (the most frequent), besides the 4 specials."),
    Option("max_length", "Drop longer sentences (words)."),
    Option("embedding_size", "Width of the word embeddings."),
    Option("hidden_size", "Width of each LSTM layer."),
    Option("epochs", "Passes over the training sentences."),
    Option("batch_size", "Sentences per optimiser step."),
    Option("lr", "Adam's learning rate."),
    Option("max_steps", "Stop after this many optimiser steps."),
    Option(
        "checkpoint_every",
        "Save the training state every this many steps (and after every epoch), so a killed run "
        "resumes from there.",
    ),
)

EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        "xor solve",
        "XOR with hand-set weights",
        "Hand-set weights that solve XOR for k=1 with bypass, k=2 and k=4.",
        SolveConfig,
        (
            Option("temperature", "The BTU's temperature T in 1/(1+exp(-x/T))."),
            Option(
                "weights_file",
                "JSON list of networks to check instead of the built-in hand-set ones.",
                "--weights",
                type=click.Path(dir_okay=False),
            ),
            SEED,
        ),
        _xor_solve,
        quick=SolveConfig(),
    ),
    Experiment(
        "xor train",
        "XOR networks trained",
        "Train k=1 (bypass), k=2 and k=4 (or one network) with Adam and binary cross-entropy.",
        XorTrainConfig,
        (
            Option("temperature", "The BTU's temperature T in 1/(1+exp(-x/T))."),
            Option("epochs", "Full-batch steps on the four points."),
            Option("lr", "The optimiser's learning rate."),
            Option("k", "Train only the network of k hidden units (default: the three)."),
            Option("bypass", "With --k: the inputs also feed the output unit.", is_flag=True),
            Option("optimizer", "Adam, as the original, or plain full-batch SGD."),
            Option(
                "init_file",
                "Start from these weights (a JSON list of networks, as `xor solve --weights` "
                "reads), not from nn.Linear's initialisation.",
                "--init",
                type=click.Path(dir_okay=False),
            ),
            Option("dtype", "float64 repeats the lab page's training to 1e-9."),
            SEED,
        ),
        _xor_train,
        quick=XorTrainConfig(),
    ),
    Experiment(
        "xor sweep",
        "XOR hyperparameter study",
        "The hyperparameter study: lr x hidden x bypass, all runs trained as one batch.",
        SweepConfig,
        (
            Option("lrs", "Learning rates of the grid."),
            Option("hiddens", "Hidden-layer widths (each with and without bypass).", "--hidden"),
            Option(
                "extra",
                "Add the original's extra configuration: lr 0.25, 1 hidden unit, bypass.",
                "--extra/--no-extra",
            ),
            Option("max_epochs", "Stop a run after this many epochs."),
            Option("patience", "Early stopping: epochs without improvement before a run stops."),
            Option("min_delta", "Early stopping: the least decrease of the validation loss."),
            Option("goal", "A run succeeds only if its best validation loss is below this."),
            Option("successes", "Stop a configuration's runs after this many successes."),
            Option("max_runs", "Runs of a configuration at most."),
            SEED,
        ),
        _xor_sweep,
        quick=SweepConfig(max_epochs=10_000, max_runs=5, successes=3),
    ),
    Experiment(
        "mnist fc",
        "MNIST: fully connected",
        "Logistic regression and a 784-200-200-10 MLP, trained with Adam.",
        FcConfig,
        (
            Option("iterations", "Optimiser steps of each model."),
            Option("batch_size", "Images per step."),
            *MNIST_TRAINING,
            *MNIST_DATA,
            SEED,
        ),
        _mnist_fc,
        quick=FcConfig(iterations=300),
        data="mnist",
        batch=lambda config: config.batch_size,
    ),
    Experiment(
        "mnist cnn",
        "MNIST: CNNs",
        "Three small CNNs at each batch size, trained until a validation accuracy target.",
        CnnConfig,
        (
            Option("archs", "Architectures to train."),
            Option("batch_sizes", "Batch sizes."),
            Option("target_accuracy", "Stop a run once validation accuracy reaches this."),
            Option("max_epochs", "Stop a run after this many epochs."),
            Option("eval_every", "Check validation accuracy every this many iterations."),
            Option("dropout", f"{DROPOUT_ARCH}'s dropout rate."),
            *MNIST_TRAINING,
            *MNIST_DATA,
            SEED,
        ),
        _mnist_cnn,
        quick=CnnConfig(max_epochs=1, target_accuracy=0.5, eval_every=50),
        data="mnist",
        batch=lambda config: min(config.batch_sizes),
        resume=True,
    ),
    Experiment(
        "lm train",
        "LSTM language model",
        "Train one LSTM language model and report its perplexities.",
        LmTrainConfig,
        (
            Option("layers", "LSTM layers."),
            Option("direction", "Read sentences forward or reversed."),
            *LM_TRAINING,
            SEED,
        ),
        _lm_train,
        quick=LmTrainConfig(
            epochs=1, max_steps=20, vocab_size=2000, embedding_size=64, hidden_size=64
        ),
        data="corpus",
        batch=lambda config: config.batch_size,
        part=False,
        resume=True,
        shared=False,
    ),
    Experiment(
        "lm study",
        "LSTM language model, forward and reverse",
        "The original study: 1 and 2 layers x forward and reverse, perplexity and samples.",
        LmStudyConfig,
        (
            Option("start", "Words to generate from."),
            Option("length", "Words in each sentence."),
            Option("stop_at_eos", "End a sentence early where the model says so.", is_flag=True),
            Option("sentence", "A sentence to score besides the generated ones."),
            *LM_TRAINING,
            SEED,
        ),
        _lm_study,
        quick=LmStudyConfig(
            epochs=1, max_steps=20, vocab_size=2000, embedding_size=64, hidden_size=64
        ),
        data="corpus",
        batch=lambda config: config.batch_size,
        resume=True,
    ),
)

PARTS = tuple(e for e in EXPERIMENTS if e.part)


def find(command: str) -> Experiment:
    """The experiment of `command` ("mnist cnn") or of its part name ("mnist-cnn")."""
    for experiment in EXPERIMENTS:
        if command in (experiment.command, experiment.name):
            return experiment
    raise KeyError(command)
