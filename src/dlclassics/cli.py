"""The `dlclassics` command: one subcommand per experiment of the registry, and the tools.

Only click, the configs and the registry load here: a command imports what it runs when it runs,
so `--help` never waits for torch.
"""

import os
import sys
from typing import Any

import click

from dlclassics import __version__
from dlclassics.core.bounds import MAX_WORKERS
from dlclassics.core.errors import InputError, exit_code
from dlclassics.experiments import EXPERIMENTS, Experiment
from dlclassics.lab.cli import export
from dlclassics.lm.cli import lm
from dlclassics.options import machine_options, output_options, resume_option, scale_options
from dlclassics.reproduce.cli import reproduce
from dlclassics.serve.cli import serve
from dlclassics.site.cli import site
from dlclassics.study_cli import study
from dlclassics.tune.cli import tune

MAX_THREADS = MAX_WORKERS  # 4x the cores: more only compete for them


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dlclassics")
@click.option(
    "--threads",
    type=click.IntRange(1, MAX_THREADS),
    help="CPU threads for torch (default: one per core, or OMP_NUM_THREADS); the parts and "
    "workers a command starts get it too. Results agree across thread counts to rounding.",
)
def cli(threads: int | None) -> None:
    """Classic deep-learning experiments, reproduced on a laptop CPU in minutes."""
    if threads is not None:
        # Before torch loads (commands import it when they run), and inherited by every
        # process a command starts.
        os.environ["OMP_NUM_THREADS"] = str(threads)


@click.group()
def xor() -> None:
    """XOR with BTU networks: hand-set weights, training, and the hyperparameter study."""


@click.group()
def mnist() -> None:
    """MNIST (or Fashion-MNIST): logistic regression, an MLP, and small CNNs."""


def experiment_command(experiment: Experiment) -> click.Command:
    """The command of `experiment`: its options, then --resume, --bf16, --device, --out, --quiet
    and the scale options where it takes them; it runs through `pipeline.run`."""

    def run(**params: Any) -> None:
        from dlclassics import pipeline

        pipeline.run(experiment, params)

    command = scale_options(run) if experiment.shared else run
    command = output_options(command)
    command = machine_options(command) if experiment.batch is not None else command
    command = resume_option(command) if experiment.resume else command
    for option in reversed(experiment.options):
        command = option.decorate(experiment.config_type)(command)
    return click.command(experiment.command.split()[1], help=experiment.help)(command)


GROUPS = {"xor": xor, "mnist": mnist, "lm": lm}
for _experiment in EXPERIMENTS:
    GROUPS[_experiment.command.split()[0]].add_command(experiment_command(_experiment))
for _group in (*GROUPS.values(), reproduce, export, serve, site, study, tune):
    cli.add_command(_group)


def main(args: list[str] | None = None) -> None:
    """Entry point: bad input becomes one line on stderr and exit code 2, never a traceback."""
    try:
        code = cli.main(args, prog_name="dlclassics", standalone_mode=False)
    except (InputError, click.ClickException, click.Abort, KeyboardInterrupt) as e:
        sys.exit(exit_code(e))
    sys.exit(code if isinstance(code, int) else 0)
