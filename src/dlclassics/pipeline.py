"""The one way an experiment's command runs: options -> config -> machine -> checks -> run
directory -> trials (here, on workers, or under torchrun) -> summary -> output.

The order is the guarantee: bad settings or data fail before a run directory exists, a resume
takes its settings from the run it continues, and under torchrun only rank 0 summarises and
prints.
"""

from pathlib import Path
from typing import Any

import click

from dlclassics.core import distributed
from dlclassics.core.bounds import AUTO_DEVICE, conforms
from dlclassics.core.errors import InputError, Interrupted
from dlclassics.core.machine import Machine, resolve_bf16
from dlclassics.core.rundir import CONFIG, RunDir, open_run, saved_machine
from dlclassics.experiments import Experiment
from dlclassics.options import check_scale, make_config, resumed_config
from dlclassics.protocol import Summary
from dlclassics.scale import ONE_PROCESS, Scale
from dlclassics.study import run_trials


def run(experiment: Experiment, params: dict[str, Any]) -> None:
    """Run `experiment` with a command's parameters and print what it found."""
    out, quiet, resume = params.pop("out"), params.pop("quiet"), params.pop("resume", None)
    scale = params.pop("scale", ONE_PROCESS)
    check_scale(scale, out)
    if resume is not None and scale.shared:
        raise click.UsageError(
            "--resume is for one-process runs; a shared study goes on when its workers are "
            "started again"
        )
    if resume is not None:
        config, out = resumed_config(experiment.config_type, experiment.command, resume), resume
        wanted = resumed_machine(resume)
    else:
        config = make_config(experiment.config_type, params)
        wanted = (params.get("device", AUTO_DEVICE), params.get("bf16"))
    machine = on_this_machine(experiment, config, *wanted)
    study = experiment.study.on(machine)
    config = study.prepare(config)  # bad data or sizes fail here, before a run directory
    with open_run(out, experiment.command, config, machine) as run_dir:
        summary = run_study(experiment, config, run_dir, quiet, scale, machine)
    if summary is not None:  # else a torchrun rank but 0: rank 0 summarises
        for line in study.lines(config, summary):
            click.echo(line)
        click.echo(f"wrote {run_dir.path}")
    distributed.finish()


def resumed_machine(directory: Path) -> tuple[str, bool | None]:
    """The device and bf16 the run in `directory` computed with, for its resume: the same
    numbers, where this machine has that device."""
    saved = saved_machine(directory)
    if saved is None:
        return AUTO_DEVICE, None
    if not conforms(saved, Machine):
        raise InputError(f"{directory / CONFIG}: its machine is not a device and a bf16 flag")
    return saved["device"], saved["bf16"]


def on_this_machine(
    experiment: Experiment, config: Any, device: str, bf16: bool | None
) -> Machine | None:
    """Where `experiment` computes here (None: it takes no device); under torchrun, with the
    process group joined."""
    if experiment.batch is None:
        return None
    resolved = distributed.start(device, experiment.batch(config))
    return Machine(str(resolved), resolve_bf16(bf16, resolved))


def run_study(
    experiment: Experiment,
    config: Any,
    run: RunDir,
    quiet: bool,
    scale: Scale = ONE_PROCESS,
    machine: Machine | None = None,
) -> Summary | None:
    """Run the study's trials, summarise them and write the run directory: in this process, or
    shared through Optuna's storage among workers (`dlclassics.workers`, which needs the `scale`
    extra). Under torchrun only rank 0 summarises: the other ranks get None. A Ctrl-C that saved
    a trial's training state exits 130 saying how to go on."""
    try:
        if scale.shared:
            if distributed.launched():
                raise InputError(
                    "torchrun spreads one run over processes and --storage/--workers spread a "
                    "study's runs over workers: use one or the other"
                )
            return load_workers().run_shared(experiment, config, run, quiet, scale, machine)
        study = experiment.study.on(machine)
        results = run_trials(
            config, study.trials(config), study.run_trial, study.result_type, run.path, quiet
        )
    except Interrupted as e:
        if distributed.is_main():
            again = f"--resume {run.path}" if not scale.shared else "the same options"
            click.echo(
                f"interrupted: training state saved to {e.path}; "
                f"continue with: dlclassics {experiment.command} {again}",
                err=True,
            )
        raise click.exceptions.Exit(130) from None
    if not distributed.is_main():
        return None
    summary = study.summarize(config, results, run)
    run.save_results(summary.results, summary.markdown)
    return summary


def load_workers() -> Any:
    """`dlclassics.workers`, which needs Optuna: an InputError saying how to install it."""
    try:
        from dlclassics import workers
    except ImportError as e:
        raise InputError(
            f"--storage and --workers need {e.name}: pip install 'dlclassics[scale]'"
        ) from None
    return workers
