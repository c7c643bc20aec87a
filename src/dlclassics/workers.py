"""Studies shared through Optuna's storage: worker processes on one machine or many.

A study command started with `--storage URL` is one worker of the study `--study-name` in that
database; `--workers N` starts N of them here, on an SQLite file inside the run directory unless
`--storage` names another database. Each trial of the grid (`experiment.trials(config)`, a "cell")
goes into the study as an enqueued Optuna trial. A worker claims the next waiting one, runs it,
and records its result (a user attribute) and its checkpoint (an artifact) in the storage, so
that any worker can summarise. The worker that finishes the last cell writes the run directory.

A worker that dies mid-trial stops its trial's heartbeat; after the grace period another worker
marks the trial failed, and Optuna's stale-trial callback enqueues it again. SQLite can hand one
waiting trial to two workers at once (Optuna documents it); a cell that ran twice is counted
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
from dataclasses import asdict, replace
from importlib import import_module
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

from dlclassics.bounds import MAX_WORKERS
from dlclassics.checkpoint import CHECKPOINT
from dlclassics.errors import InputError, first_line
from dlclassics.options import make_config
from dlclassics.report import table
from dlclassics.rundir import (
    MAX_RECORD_BYTES,
    RunDir,
    atomic_write_bytes,
    atomic_write_text,
    make_dir,
    open_run,
    parse_json,
    read_run_file,
)
from dlclassics.runtime import AUTO_DEVICE, resolve_device
from dlclassics.study import Experiment, Scale, Summary, parse_result, save_result, trial_dir

EMBEDDED = "study.db"  # the --workers store, in the run directory
ARTIFACTS = "artifacts"  # the file-system artifact store, in the run directory
HEARTBEAT_SECONDS = 2
GRACE_SECONDS = 10  # a running trial without a heartbeat this long belongs to a dead worker
CONNECT_SECONDS = 10  # the bounded wait for a database server, and for a study's creator
# Optuna user attributes: a trial's cell (its name), result and checkpoint artifact; the study's
# command and settings, written last by its creator, once every cell is enqueued.
CELL, RESULT, CHECKPOINT_ID, STUDY = "cell", "result", "checkpoint", "study"
STORE = "artifact_store"  # the study's artifact folder: its creator's run directory's ARTIFACTS
_JITTER = random.Random()  # its own stream: the trials' seeds stay untouched
MACHINE_FIELDS = ("device", "bf16")  # each machine resolves its own; they are not the study's
URL_FORMS = "sqlite:///FILE or postgresql://USER@HOST/DATABASE"

# Where each shared study command keeps its `Experiment`, for `study report`.
EXPERIMENTS = {
    "xor solve": "dlclassics.xor.solve",
    "xor train": "dlclassics.xor.train",
    "xor sweep": "dlclassics.xor.sweep",
    "mnist fc": "dlclassics.mnist.fc",
    "mnist cnn": "dlclassics.mnist.cnn",
    "lm study": "dlclassics.lm.experiment",
}


def shown_url(url: str) -> str:
    """The database URL to print, with its password hidden, even where SQLAlchemy cannot parse
    it (then everything between the scheme and the last '@', where a password would be)."""
    try:
        parsed = sqlalchemy.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        at = url.rfind("@")
        if at < 0:
            return url
        start = url.find("//", 0, at)
        start = start + 2 if start >= 0 else url.find(":", 0, at) + 1
        return url[:start] + "***" + url[at:]
    if "password" in parsed.query:  # libpq takes one there too
        parsed = parsed.update_query_dict({"password": "***"})
    elif parsed.password is None:
        return url  # as given: SQLAlchemy's rendering would escape a path's ':' and such
    return parsed.render_as_string(hide_password=True)


def check_url(url: str) -> sqlalchemy.URL:
    """`url` parsed, or an InputError saying why no shared study can live there; nothing is
    opened or created, so that bad input is refused before a run starts."""
    if not url:
        raise InputError(f"--storage is empty; give {URL_FORMS}")
    shown = shown_url(url)
    try:
        parsed = sqlalchemy.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # ValueError: a port that is no number
        raise InputError(f"--storage {shown!r} is not a database URL ({URL_FORMS})") from None
    cannot = f"cannot open storage {shown}"
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):  # the ones installed with `scale`, and tested
        raise InputError(f"{cannot}: {backend} is not a database dlclassics opens ({URL_FORMS})")
    if parsed.port is not None and not 0 < parsed.port < 2**16:
        raise InputError(f"{cannot}: port {parsed.port} is not between 1 and 65535")
    if backend == "sqlite":
        database = parsed.database or ""
        if not database or ":memory:" in database or parsed.query.get("mode") == "memory":
            raise InputError(
                f"{cannot}: an SQLite database in memory is seen by its own process only; "
                "a shared study needs a file (sqlite:///FILE) or a server"
            )
        path = Path(database)
        if path.is_dir():
            raise InputError(f"{cannot}: {path} is a folder, not a database file")
        if not path.parent.is_dir():
            raise InputError(f"{cannot}: folder {path.parent} does not exist")
    return parsed


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
    """What makes two workers' studies the same: the command and its settings (through JSON),
    but the machine's and the `ignored` ones."""
    settings = json.loads(json.dumps(asdict(config)))
    return {"command": command} | {
        k: v for k, v in settings.items() if k not in MACHINE_FIELDS + ignored
    }


def _by_cell(study: optuna.Study, states: tuple[TrialState, ...]) -> dict[str, list[FrozenTrial]]:
    trials: dict[str, list[FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False, states=states):
        if CELL in t.user_attrs:
            trials.setdefault(t.user_attrs[CELL], []).append(t)
    return trials


def prepare(experiment: Experiment, config: Any, url: str, name: str, root: Path) -> None:
    """Create the study with every cell enqueued and its artifact store in the run directory
    `root`, or check that the existing one is this command's with these settings; enqueue again
    the cells that failed and were not retried."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    same = identity(experiment.command, config)
    cells = [t.name for t in experiment.trials(config)]
    try:
        study = optuna.create_study(study_name=name, storage=storage)
        study.set_user_attr(STORE, str((root / ARTIFACTS).resolve()))
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        check_identity(study, name, same)
        live = _by_cell(study, (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE))
        cells = [c for c in cells if c not in live]
    for cell in cells:
        study.enqueue_trial({}, user_attrs={CELL: cell})
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
    config: Any,
    url: str,
    name: str,
    root: Path,
    quiet: bool,
    threads: int | None = None,
    wait: bool = True,
) -> Summary | None:
    """Run waiting trials until every cell has a result (or, with `wait` False, until none is
    waiting). The summary if this worker finished the last cell and wrote the run directory, or
    found the study finished when it started; else None."""
    if threads is not None:
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    cells = {t.name: t for t in experiment.trials(config)}
    store = _artifact_store(study)

    def objective(trial: optuna.Trial) -> float:
        cell = cells.get(trial.user_attrs.get(CELL))
        if cell is None:  # sampled, not dequeued: another worker took the last waiting cell
            raise optuna.TrialPruned("no cell left to run")
        directory = trial_dir(root, cell)
        result = experiment.run_trial(config, cell, directory, quiet=quiet)
        trial.set_user_attr(RESULT, json.loads(json.dumps(asdict(result))))
        checkpoint = upload_artifact(
            artifact_store=store, file_path=str(directory / CHECKPOINT), study_or_trial=trial
        )
        trial.set_user_attr(CHECKPOINT_ID, checkpoint)
        return 0.0  # the value is unused: a grid cell's result is its user attribute

    ran = None  # whether the last pass ran a trial here; None: no pass yet
    while True:
        missing = _unfinished(study, cells)
        if not missing:
            if ran is False:
                return None  # another worker finished the last cell; it writes the run directory
            run = RunDir(root)
            if ran is None and run.finished:
                return _read_summary(run)  # finished before this worker came: it only reports
            return write_run(experiment, config, _collect(experiment, config, study, run), run)
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


def _unfinished(study: optuna.Study, cells: Iterable[str]) -> list[str]:
    """Those of `cells` without a finished trial in the study."""
    done = _by_cell(study, (TrialState.COMPLETE,))
    return [c for c in cells if c not in done]


def _collect(experiment: Experiment, config: Any, study: optuna.Study, run: RunDir) -> list[Any]:
    """Each finished cell's result, from its first finished run, into the run directory (its
    result.json and checkpoint), in grid order; None for the unfinished ones."""
    done = _by_cell(study, (TrialState.COMPLETE,))
    store = _artifact_store(study)
    results = []
    for cell in experiment.trials(config):
        if cell.name not in done:
            results.append(None)
            continue
        first = min(done[cell.name], key=lambda t: t.number)
        directory = make_dir(trial_dir(run.path, cell))
        try:
            _fetch(store, first.user_attrs[CHECKPOINT_ID], directory / CHECKPOINT)
        except ArtifactNotFound:
            # Not bad input but a store out of reach: exit 1, and the run directory stays.
            raise click.ClickException(
                f"{cell.name}'s checkpoint is not in the artifact store {study.user_attrs[STORE]}, "
                "which every worker must share (docs/scale.md)"
            ) from None
        result = parse_result(experiment.result_type, first.user_attrs.get(RESULT))
        if result is None:  # stored by another version: its trial cannot simply run again here
            raise InputError(
                f"{cell.name}'s result in the study is not one this version reads; "
                "summarise it with the version that ran it, or start a new study"
            )
        save_result(config, cell, directory, result)
        results.append(result)
    return results


def write_run(experiment: Experiment, config: Any, results: list[Any], run: RunDir) -> Summary:
    """The run directory of a finished study, as one process would have written it."""
    summary = experiment.summarize(config, results, run)
    run.save_results(summary.results, summary.markdown)
    return summary


def _read_summary(run: RunDir) -> Summary:
    """The summary a finished study's run directory holds, read by its rules (no link followed)."""
    results, markdown = (
        read_run_file(run.path, run.path / name, MAX_RECORD_BYTES)
        for name in ("results.json", "results.md")
    )
    try:
        return Summary(parse_json(results), markdown.decode("utf-8"))
    except ValueError as e:  # UnicodeDecodeError included
        raise InputError(f"{run.path} holds a damaged results.json or results.md: {e}") from None


def _worker_process(*args: Any) -> None:
    """A `--workers` process: `_work`, with bad input reported as the command line would."""
    try:
        _work(*args)
    except InputError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


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
    experiment: Experiment, config: Any, run: RunDir, quiet: bool, scale: Scale
) -> Summary:
    """This process as one worker of the study (`--storage`), or N worker processes here
    (`--workers N`, each with 1/N of this process's threads); the summary once it is written."""
    url = scale.storage or f"sqlite:///{(run.path / EMBEDDED).resolve()}"
    name = scale.study_name or experiment.command.replace(" ", "-")
    prepare(experiment, config, url, name, run.path)
    if scale.workers is None:
        summary = _work(experiment, config, url, name, run.path, quiet, wait=scale.wait)
        if summary is None:
            click.echo(f"study {name}: no trial left here; the last one's worker writes {run.path}")
            raise click.exceptions.Exit(0)
        return summary
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    cells = [t.name for t in experiment.trials(config)]
    if run.finished and not _unfinished(study, cells):
        return _read_summary(run)  # finished before: only report, once here, not in each worker
    count = worker_count(scale.workers, len(cells))
    threads = max(1, torch.get_num_threads() // count)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch threads
    args = (experiment, config, url, name, run.path, quiet, threads)
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
        write_run(experiment, config, results, run)  # its last worker died while writing
    return _read_summary(run)


def report(url: str, name: str, out: Path) -> str:
    """`study report`: the run directory of the study so far; a line saying how far it is."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise InputError(f"no study {name!r} in {shown_url(url)}") from None
    identity, saved = study.user_attrs.get(STUDY), study.user_attrs.get("config")
    if identity is None or identity.get("command") not in EXPERIMENTS or saved is None:
        raise InputError(f"study {name!r} is not a dlclassics study")
    experiment = import_module(EXPERIMENTS[identity["command"]]).EXPERIMENT
    config = make_config(experiment.config_type, saved)
    if hasattr(config, "device"):
        config = replace(config, device=str(resolve_device(AUTO_DEVICE)))  # this machine's
    with open_run(out, experiment.command, config) as run:
        results = _collect(experiment, config, study, run)
        cells = experiment.trials(config)
        finished = sum(r is not None for r in results)
        twice = sum(len(ts) > 1 for ts in _by_cell(study, (TrialState.COMPLETE,)).values())
        status = f"study {name}: {finished} of {len(cells)} trials finished, {twice} ran twice"
        if finished == len(cells):
            write_run(experiment, config, results, run)
        else:
            state = _cell_states(study)
            rows = [{"trial": c.name, "state": state.get(c.name, "not started")} for c in cells]
            md = f"# {experiment.command}: unfinished\n\n{status}.\n\n"
            atomic_write_text(
                run.path / "results.md", md + table(rows, {"trial": "trial", "state": "state"})
            )
    return f"{status}; wrote {run.path}"


def _cell_states(study: optuna.Study) -> dict[str, str]:
    """Each cell's furthest state: finished, running, waiting or failed."""
    order = [TrialState.FAIL, TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE]
    names = {TrialState.COMPLETE: "finished", TrialState.FAIL: "failed"}
    states: dict[str, str] = {}
    for state in order:
        for cell in _by_cell(study, (state,)):
            states[cell] = names.get(state, state.name.lower())
    return states
