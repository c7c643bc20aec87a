"""Studies shared through Optuna's storage: worker processes on one machine or many.

A study command started with `--storage URL` is one worker of the study `--study-name` in that
database; `--workers N` starts N of them here, on an SQLite file inside the run directory unless
`--storage` names another database. Each trial of the grid (`study.trials(config)`) goes into
the study as an enqueued Optuna trial, named by a user attribute. A worker claims the next
waiting one, runs it, and records its result (a user attribute) and its checkpoint (an
artifact) in the storage, so that any worker can summarise. The worker that finishes the last
trial writes the run directory.

A worker that dies mid-trial stops its trial's heartbeat; after the grace period another worker
marks the trial failed, and Optuna's stale-trial callback enqueues it again. SQLite can hand one
waiting trial to two workers at once (Optuna documents it); a trial that ran twice is counted
once, from its first finished run.

Optuna is imported only here, so a one-process run never needs it.
"""

import json
import multiprocessing
import random
import sys
import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import optuna
import sqlalchemy
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from dlclassics.core.bounds import MAX_WORKERS
from dlclassics.core.errors import InputError, exit_code, first_line
from dlclassics.core.machine import Machine
from dlclassics.core.rundir import (
    CHECKPOINT,
    RESULTS_MD,
    RunDir,
    atomic_write_bytes,
    atomic_write_text,
    make_dir,
    open_run,
)
from dlclassics.core.tables import table
from dlclassics.experiments import Experiment, find
from dlclassics.options import make_config
from dlclassics.protocol import Summary
from dlclassics.scale import Scale, check_url, shown_url
from dlclassics.study import parse_result, save_result, trial_dir

ARTIFACTS = "artifacts"  # the file-system artifact store, in the run directory
HEARTBEAT_SECONDS = 2
GRACE_SECONDS = 10  # a running trial without a heartbeat this long belongs to a dead worker
CONNECT_SECONDS = 10  # the bounded wait for a database server, and for a study's creator
# Optuna user attributes: the name of the trial of ours an Optuna trial runs, its result and its
# checkpoint artifact; the study's command and settings, written last by its creator, once every
# trial is enqueued.
NAME, RESULT, CHECKPOINT_ID, STUDY = "trial", "result", "checkpoint", "study"
STORE = "artifact_store"  # the study's artifact folder: its creator's run directory's ARTIFACTS
_JITTER = random.Random()  # its own stream: the trials' seeds stay untouched


def open_storage(url: str) -> RDBStorage:
    """Optuna's RDB storage at `url`, with heartbeats; an InputError for a URL that is not a
    database's (`check_url`), or a database that does not answer within CONNECT_SECONDS."""
    parsed = check_url(url)
    shown = shown_url(url)
    engine_kwargs: dict[str, Any] = {}
    if parsed.drivername == "postgresql":  # SQLAlchemy's default driver is psycopg2; ours is 3
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_SECONDS}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                parsed.render_as_string(hide_password=False),
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(),
            )
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as e:
        line = first_line(e)
        if parsed.password:  # in case a driver's message quotes the URL
            line = line.replace(parsed.password, "***")
        raise InputError(f"cannot open storage {shown}: {line}") from None


def identity(command: str, config: Any, ignored: tuple[str, ...] = ()) -> dict[str, Any]:
    """What makes two workers' studies the same: the command and its settings (through JSON)
    but the `ignored` ones. Each worker's machine is its own: it is no setting."""
    settings = json.loads(json.dumps(asdict(config)))
    return {"command": command} | {k: v for k, v in settings.items() if k not in ignored}


def _by_name(study: optuna.Study, states: tuple[TrialState, ...]) -> dict[str, list[FrozenTrial]]:
    """The study's Optuna trials in `states`, by the name of the trial of ours each ran."""
    runs: dict[str, list[FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False, states=states):
        if NAME in t.user_attrs:
            runs.setdefault(t.user_attrs[NAME], []).append(t)
    return runs


def prepare(experiment: Experiment, config: Any, url: str, name: str, root: Path) -> None:
    """Create the study with every trial enqueued and its artifact store in the run directory
    `root`, or check that the existing one is this command's with these settings; enqueue again
    the trials that failed and were not retried."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    same = identity(experiment.command, config)
    names = [t.name for t in experiment.study.trials(config)]
    try:
        study = optuna.create_study(study_name=name, storage=storage)
        study.set_user_attr(STORE, str((root / ARTIFACTS).resolve()))
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        check_identity(study, name, same)
        live = _by_name(study, (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE))
        names = [n for n in names if n not in live]
    for trial_name in names:
        study.enqueue_trial({}, user_attrs={NAME: trial_name})
    study.set_user_attr(STUDY, same)
    study.set_user_attr("config", json.loads(json.dumps(asdict(config))))


def check_identity(study: optuna.Study, name: str, expected: dict[str, Any]) -> None:
    """An InputError unless the study `name` was made by the `expected` command and settings."""
    deadline = time.monotonic() + CONNECT_SECONDS  # its creator may still be enqueueing
    while STUDY not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.2)
    saved = study.user_attrs.get(STUDY)
    if saved is None:
        raise InputError(f"study {name!r} is not a dlclassics study; choose another --study-name")
    if saved != expected:
        if saved.get("command") != expected["command"]:
            what = f"a `dlclassics {saved.get('command')}` study"
        else:
            keys = sorted(
                k for k in saved.keys() | expected.keys() if saved.get(k) != expected.get(k)
            )
            what = f"this command's study with other settings ({', '.join(keys)})"
        raise InputError(f"study {name!r} is {what}; choose another --study-name")


def _work(
    experiment: Experiment,
    machine: Machine | None,
    config: Any,
    url: str,
    name: str,
    root: Path,
    quiet: bool,
    threads: int | None = None,
    wait: bool = True,
) -> Summary | None:
    """Run waiting trials until every trial has a result (or, with `wait` False, until none is
    waiting). The summary if this worker finished the last trial and wrote the run directory, or
    found the study finished when it started; else None. Its trials compute on `machine`."""
    if threads is not None:
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    trials = {t.name: t for t in experiment.study.trials(config)}
    store = _artifact_store(study)

    def objective(run: optuna.Trial) -> float:
        trial = trials.get(run.user_attrs.get(NAME))
        if trial is None:  # sampled, not dequeued: another worker took the last waiting trial
            raise optuna.TrialPruned("no trial left to run")
        directory = trial_dir(root, trial)
        result = experiment.study.on(machine).run_trial(config, trial, directory, quiet=quiet)
        run.set_user_attr(RESULT, json.loads(json.dumps(asdict(result))))
        checkpoint = upload_artifact(
            artifact_store=store, file_path=str(directory / CHECKPOINT), study_or_trial=run
        )
        run.set_user_attr(CHECKPOINT_ID, checkpoint)
        return 0.0  # the value is unused: a trial's result is its user attribute

    ran = None  # whether the last pass ran a trial here; None: no pass yet
    while True:
        missing = _unfinished(study, trials)
        if not missing:
            if ran is False:
                return None  # another worker finished the last trial; it writes the run directory
            run_dir = RunDir(root)
            if ran is None and run_dir.finished:
                return Summary(*run_dir.read_results())  # finished before: it only reports
            results = _collect(experiment, config, study, run_dir)
            return write_run(experiment, machine, config, results, run_dir)
        if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            study.optimize(objective, n_trials=1)
            ran = True
            continue
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            failed = ", ".join(missing)
            raise click.ClickException(
                f"trials {failed} failed (their worker printed why); "
                "start a worker again to run them again"
            )
        if not wait:
            return None  # the running trials' workers finish them
        # Others are running: wait, in case one of them dies. Jittered, so that two waiting
        # workers do not find a dead one's trial stale at the same instant: on SQLite both
        # could fail it, and each enqueue it again.
        time.sleep(HEARTBEAT_SECONDS * _JITTER.uniform(0.5, 1.5))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)  # and its callback enqueues their trials again
        ran = False


def _artifact_store(study: optuna.Study) -> FileSystemArtifactStore:
    """The study's checkpoints: a folder every worker and `study report` must reach."""
    path = Path(study.user_attrs[STORE])
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def _fetch(store: FileSystemArtifactStore, artifact_id: str, path: Path) -> None:
    """The artifact into `path`, written atomically: two workers may write one run directory."""
    with store.open_reader(artifact_id) as reader:
        atomic_write_bytes(path, reader.read())


def _unfinished(study: optuna.Study, names: Iterable[str]) -> list[str]:
    """Those of the trials `names` not finished in the study."""
    done = _by_name(study, (TrialState.COMPLETE,))
    return [n for n in names if n not in done]


def _collect(experiment: Experiment, config: Any, study: optuna.Study, run: RunDir) -> list[Any]:
    """Each finished trial's result, from its first finished run, into the run directory (its
    result.json and checkpoint), in grid order; None for the unfinished ones."""
    done = _by_name(study, (TrialState.COMPLETE,))
    store = _artifact_store(study)
    results = []
    for trial in experiment.study.trials(config):
        if trial.name not in done:
            results.append(None)
            continue
        first = min(done[trial.name], key=lambda t: t.number)
        directory = make_dir(trial_dir(run.path, trial))
        try:
            _fetch(store, first.user_attrs[CHECKPOINT_ID], directory / CHECKPOINT)
        except ArtifactNotFound:
            # Not bad input but a store out of reach: exit 1, and the run directory stays.
            raise click.ClickException(
                f"{trial.name}'s checkpoint is not in the artifact store "
                f"{study.user_attrs[STORE]}, which every worker must share (docs/scale.md)"
            ) from None
        result = parse_result(experiment.study.result_type, first.user_attrs.get(RESULT))
        if result is None:  # stored by another version: its trial cannot simply run again here
            raise InputError(
                f"{trial.name}'s result in the study is not one this version reads; "
                "summarise it with the version that ran it, or start a new study"
            )
        save_result(config, trial, directory, result)
        results.append(result)
    return results


def write_run(
    experiment: Experiment, machine: Machine | None, config: Any, results: list[Any], run: RunDir
) -> Summary:
    """The run directory of a finished study, as one process would have written it."""
    summary = experiment.study.on(machine).summarize(config, results, run)
    run.save_results(summary.results, summary.markdown)
    return summary


def _worker_process(command: str, *args: Any) -> None:
    """A `--workers` process: `_work` on the experiment of `command` (the registry's entries hold
    functions, which a spawned process finds by name), errors reported as the command line
    would."""
    try:
        _work(find(command), *args)
    except (InputError, click.ClickException, KeyboardInterrupt) as e:
        sys.exit(exit_code(e))


def worker_count(workers: int, trials: int) -> int:
    """The workers to start: one per trial at most, since a worker runs one trial at a time, and
    MAX_WORKERS at most: a resumed run's count may be that of a machine with more cores."""
    if workers > MAX_WORKERS:
        click.echo(f"note: {MAX_WORKERS} workers on this machine, not {workers}", err=True)
        workers = MAX_WORKERS
    if workers > trials:
        click.echo(f"note: {trials} trials, so {trials} workers, not {workers}", err=True)
    return min(workers, trials)


def run_shared(
    experiment: Experiment,
    config: Any,
    run: RunDir,
    quiet: bool,
    scale: Scale,
    machine: Machine | None = None,
) -> Summary:
    """This process as one worker of the study (`--storage`), or N worker processes here
    (`--workers N`, each with 1/N of this process's threads), computing on `machine`; the
    summary once it is written."""
    url, name = scale.url(run.path), scale.name(experiment.command)
    prepare(experiment, config, url, name, run.path)
    if scale.workers is None:
        summary = _work(experiment, machine, config, url, name, run.path, quiet, wait=scale.wait)
        if summary is None:
            click.echo(f"study {name}: no trial left here; the last one's worker writes {run.path}")
            raise click.exceptions.Exit(0)
        return summary
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    names = [t.name for t in experiment.study.trials(config)]
    if run.finished and not _unfinished(study, names):
        return Summary(*run.read_results())  # finished before: report once here, not per worker
    count = worker_count(scale.workers, len(names))
    threads = max(1, torch.get_num_threads() // count)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch threads
    args = (experiment.command, machine, config, url, name, run.path, quiet, threads)
    processes = [spawn.Process(target=_worker_process, args=args) for _ in range(count)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    if not run.finished:
        results = _collect(experiment, config, study, run)
        if None in results:
            codes = [p.exitcode for p in processes]
            raise click.ClickException(
                f"the study is unfinished (worker exit codes {codes}); "
                "run the same command again to continue it"
            )
        write_run(experiment, machine, config, results, run)  # its last worker died writing
    return Summary(*run.read_results())


def study_report(url: str, name: str, out: Path) -> str:
    """`study report`: the run directory of the study so far; a line saying how far it is."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise InputError(f"no study {name!r} in {shown_url(url)}") from None
    identity, saved = study.user_attrs.get(STUDY), study.user_attrs.get("config")
    try:
        experiment = find(identity["command"])
    except (KeyError, TypeError):
        experiment = None
    if experiment is None or saved is None:
        raise InputError(f"study {name!r} is not a dlclassics study")
    config = make_config(experiment.config_type, saved)
    machine = Machine.here() if experiment.batch is not None else None  # this one's
    with open_run(out, experiment.command, config, machine) as run:
        results = _collect(experiment, config, study, run)
        trials = experiment.study.trials(config)
        finished = sum(r is not None for r in results)
        twice = sum(len(ts) > 1 for ts in _by_name(study, (TrialState.COMPLETE,)).values())
        status = f"study {name}: {finished} of {len(trials)} trials finished, {twice} ran twice"
        if finished == len(trials):
            write_run(experiment, machine, config, results, run)
        else:
            state = _trial_states(study)
            rows = [{"trial": t.name, "state": state.get(t.name, "not started")} for t in trials]
            md = f"# {experiment.command}: unfinished\n\n{status}.\n\n"
            atomic_write_text(
                run.path / RESULTS_MD, md + table(rows, {"trial": "trial", "state": "state"})
            )
    return f"{status}; wrote {run.path}"


def _trial_states(study: optuna.Study) -> dict[str, str]:
    """Each trial's furthest state: finished, running, waiting or failed."""
    order = [TrialState.FAIL, TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE]
    shown = {TrialState.COMPLETE: "finished", TrialState.FAIL: "failed"}
    states: dict[str, str] = {}
    for state in order:
        for trial_name in _by_name(study, (state,)):
            states[trial_name] = shown.get(state, state.name.lower())
    return states
