"""`dlclassics tune mnist-cnn|lm`: the commands; the search itself is `tune.search`, loaded (with
torch and Optuna) when a command runs."""

from collections.abc import Callable
from typing import Any

import click

from dlclassics.mnist.config import DROPOUT_ARCH
from dlclassics.options import (
    absolute_callback,
    config_option,
    machine_options,
    make_config,
    run_options,
    storage_option,
    study_name_option,
)
from dlclassics.tune.config import CnnSearch, LmSearch, SearchConfig


def _search_options(config_type: type[SearchConfig], command: str) -> Callable[..., Any]:
    """The options every search takes (`command`: "tune lm"): budget, pruner, storage, device
    and run options."""
    options = [
        config_option(config_type, "epochs", help="Each trial's budget."),
        config_option(config_type, "n_trials", help="Trials to run."),
        config_option(config_type, "timeout", help="Start no trial after this many seconds."),
        storage_option(
            "The study's database URL, shared by every process started on it "
            "(default: sqlite in the run directory)."
        ),
        study_name_option(
            f"The study's name in --storage (default: the command, {command.replace(' ', '-')})."
        ),
        config_option(
            config_type, "startup_trials", help="Prune nothing until this many trials completed."
        ),
        config_option(
            config_type,
            "warmup_checks",
            help="Prune no trial before its this-many-th validation check.",
        ),
        machine_options,
        run_options(config_type),
    ]

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def _run(config: SearchConfig, params: dict[str, Any], smallest_batch: int) -> None:
    """The search on this machine's device, in the run directory; then what was best."""
    from dlclassics.core import distributed
    from dlclassics.core.machine import Machine, resolve_bf16
    from dlclassics.core.rundir import open_run
    from dlclassics.tune.search import TARGETS, best_line, search

    device = distributed.start(params["device"], smallest_batch)
    machine = Machine(str(device), resolve_bf16(params["bf16"], device))
    target = TARGETS[type(config)]
    config = target.prepare(config)  # bad data or sizes fail here, before the run directory
    with open_run(params["out"], target.command, config, machine) as run:
        study = (params["storage"], params["study_name"])
        results = search(config, run, params["quiet"], *study, machine)
    click.echo(best_line(results, target))
    click.echo(f"wrote {run.path}")


@click.group()
def tune() -> None:
    """Search settings with Optuna (TPE, median pruning); needs the `scale` extra."""


@tune.command("mnist-cnn")
@config_option(CnnSearch, "archs", help="Architectures to choose from.")
@config_option(CnnSearch, "lr", help="low,high (log).")
@config_option(CnnSearch, "batch_sizes", help="Batch sizes to try.")
@config_option(CnnSearch, "dropout", help=f"low,high: {DROPOUT_ARCH}'s dropout rate.")
@config_option(CnnSearch, "eval_every", help="Iterations between checks.")
@config_option(CnnSearch, "dataset", help="Which dataset (see `mnist cnn --help`).")
@config_option(
    CnnSearch,
    "data_dir",
    type=click.Path(file_okay=False),
    callback=absolute_callback,
    show_default=False,
    help="Folder of the four IDX files (default: downloaded and cached).",
)
@_search_options(CnnSearch, "tune mnist-cnn")
def mnist_cnn(**params: Any) -> None:
    """The three CNNs, learning rate, batch size and dropout, for balanced validation accuracy."""
    config = make_config(CnnSearch, params)
    _run(config, params, min(config.batch_sizes))


@tune.command("lm")
@config_option(
    LmSearch,
    "corpus",
    type=click.Path(dir_okay=False),
    callback=absolute_callback,
    help="UTF-8 text, one sentence per line (default: Simple English Wikipedia, downloaded once).",
)
@config_option(LmSearch, "vocab_size", help="Words in the vocabulary, besides the 4 specials.")
@config_option(LmSearch, "batch_size", help="Sentences per optimiser step.")
@config_option(LmSearch, "lr", help="low,high (log).")
@config_option(LmSearch, "embedding_sizes", help="Embedding widths to try.")
@config_option(LmSearch, "hidden_sizes", help="LSTM widths to try.")
@config_option(LmSearch, "layers", help="Layer counts.")
@_search_options(LmSearch, "tune lm")
def lm(**params: Any) -> None:
    """Learning rate, embedding and hidden sizes and layers, for validation perplexity."""
    config = make_config(LmSearch, params)
    _run(config, params, config.batch_size)
