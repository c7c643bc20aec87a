"""`run_trials` keeps each trial's result in `root/trials/<name>/result.json`, with the config and
trial it ran with: a run with the same settings reuses it, anything else runs the trial again.
A tiny fake experiment stands in for training."""

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pytest
from conftest import read_json

from dlclassics.core.errors import InputError
from dlclassics.study import RESULT_FORMAT, run_trials


@dataclass(frozen=True)
class Config:
    seed: int = 0
    lr: float = 0.5
    sizes: tuple[int, ...] = (1, 2)  # a tuple comes back from JSON as a list


@dataclass(frozen=True)
class Trial:
    name: str
    width: int = 1


@dataclass(frozen=True)
class Result:
    score: float
    steps: int


@dataclass(frozen=True)
class OtherResult:
    accuracy: float


TRIALS = [Trial("a"), Trial("b", width=2), Trial("c", width=3)]


class Experiment:
    """`run_trials` over a fake `run_trial` that records its calls: the names of the trials it
    ran, in order, and the folders and `quiet` it was given."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ran: list[str] = []

    def run_trial(self, config: Config, trial: Trial, directory: Path, quiet: bool) -> Result:
        assert directory == self.root / "trials" / trial.name and directory.is_dir()
        assert quiet is True
        self.ran.append(trial.name)
        return Result(score=config.lr * trial.width, steps=10 * trial.width + config.seed)

    def run(self, config: Config | None = None, trials: list[Trial] = TRIALS) -> list[Result]:
        """`run_trials` of `trials` (by default TRIALS) with `config` (by default Config())."""
        self.ran.clear()
        config = Config() if config is None else config
        return run_trials(config, trials, self.run_trial, Result, self.root, quiet=True)

    def result_json(self, name: str) -> Path:
        return self.root / "trials" / name / "result.json"


@pytest.fixture
def experiment(tmp_path) -> Experiment:
    """An experiment whose three trials have all run once, with the default Config."""
    experiment = Experiment(tmp_path / "run")
    experiment.run()
    assert experiment.ran == ["a", "b", "c"]
    return experiment


def test_each_result_is_saved_with_the_config_and_trial_it_ran_with(experiment):
    record = read_json(experiment.result_json("b"))
    assert record == {
        "format": RESULT_FORMAT,
        "config": {"seed": 0, "lr": 0.5, "sizes": [1, 2]},
        "trial": {"name": "b", "width": 2},
        "result": {"score": 1.0, "steps": 20},
    }


def test_a_second_run_with_the_same_config_reuses_every_result(experiment):
    saved = {t.name: experiment.result_json(t.name).read_bytes() for t in TRIALS}
    # Fresh (equal) objects, as a resumed run reads them back from config.json.
    results = experiment.run(Config(sizes=(1, 2)), [Trial(t.name, t.width) for t in TRIALS])
    assert experiment.ran == []
    assert results == [Result(0.5, 10), Result(1.0, 20), Result(1.5, 30)]
    assert {t.name: experiment.result_json(t.name).read_bytes() for t in TRIALS} == saved


@pytest.mark.parametrize(
    "changed",
    [{"seed": 1}, {"lr": 0.25}, {"sizes": (1, 3)}, {"sizes": (1, 2, 3)}],
    ids=lambda changed: next(iter(changed)),
)
def test_a_changed_config_field_reruns_every_trial(experiment, changed):
    config = replace(Config(), **changed)
    results = experiment.run(config)
    assert experiment.ran == ["a", "b", "c"]
    assert results == [Result(config.lr * t.width, 10 * t.width + config.seed) for t in TRIALS]
    assert read_json(experiment.result_json("a"))["config"] == json.loads(
        json.dumps(asdict(config))
    )
    # The results kept are the new config's: the old one's are gone, and run again.
    experiment.run(config)
    assert experiment.ran == []
    experiment.run(Config())
    assert experiment.ran == ["a", "b", "c"]


def test_a_changed_trial_of_the_same_name_reruns_that_trial_only(experiment):
    trials = [TRIALS[0], Trial("b", width=5), TRIALS[2]]
    results = experiment.run(trials=trials)
    assert experiment.ran == ["b"]
    assert results == [Result(0.5, 10), Result(2.5, 50), Result(1.5, 30)]
    assert read_json(experiment.result_json("b"))["trial"] == {"name": "b", "width": 5}


def test_a_new_trial_runs_and_a_dropped_one_is_left_alone(experiment):
    results = experiment.run(trials=[TRIALS[0], Trial("d", width=4)])
    assert experiment.ran == ["d"]
    assert results == [Result(0.5, 10), Result(2.0, 40)]
    assert experiment.result_json("b").is_file()


def test_a_result_saved_as_another_result_type_reruns_the_trials(experiment):
    ran = []

    def run_trial(config, trial, directory, quiet):
        ran.append(trial.name)
        return OtherResult(accuracy=0.9)

    root = experiment.root
    results = run_trials(Config(), TRIALS, run_trial, OtherResult, root, quiet=True)
    assert ran == ["a", "b", "c"] and results == [OtherResult(0.9)] * 3


def _set(*path_and_value):
    *path, value = path_and_value

    def edit(record: dict) -> dict:
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return record

    return edit


def _drop(*path):
    def edit(record: dict) -> dict:
        target = record
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return record

    return edit


# Each edit of trial b's result.json: the record (a dict) to save as JSON, or the file's text.
DAMAGED = {
    "truncated": lambda record: json.dumps(record)[:40],
    "empty": lambda record: "",
    "not JSON": lambda record: "finished\n",
    "a list": lambda record: [record],
    "format of a newer version": _set("format", RESULT_FORMAT + 1),
    "format of an older version": _drop("format"),
    "format as a string": _set("format", str(RESULT_FORMAT)),
    "an extra top-level key": _set("notes", "x"),
    "no result": _drop("result"),
    "no trial": _drop("trial"),
    "result with an extra field": _set("result", "loss", 0.1),
    "result without a field": _drop("result", "steps"),
    "result a list": _set("result", [1.0, 20]),
    "steps a string": _set("result", "steps", "20"),
    "steps a float": _set("result", "steps", 20.5),
    "steps a bool": _set("result", "steps", True),
    "score null": _set("result", "score", None),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_or_foreign_result_json_reruns_that_trial(experiment, case):
    path = experiment.result_json("b")
    record = read_json(path)
    edited = DAMAGED[case](json.loads(json.dumps(record)))
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    results = experiment.run()
    assert experiment.ran == ["b"]
    assert results == [Result(0.5, 10), Result(1.0, 20), Result(1.5, 30)]
    assert read_json(path) == record  # written again, whole


def test_a_trial_folder_without_result_json_runs(experiment):
    experiment.result_json("c").unlink()  # as a trial interrupted before its end leaves it
    experiment.run()
    assert experiment.ran == ["c"]


@pytest.mark.parametrize("target", ["outside the run", "another trial's result", "missing"])
def test_a_result_json_that_is_a_symbolic_link_is_an_input_error(experiment, tmp_path, target):
    path = experiment.result_json("b")
    link_to = {
        "outside the run": tmp_path / "elsewhere.json",
        "another trial's result": experiment.result_json("a"),
        "missing": tmp_path / "missing.json",
    }[target]
    if target == "outside the run":
        link_to.write_bytes(path.read_bytes())  # the very record: only the link is wrong
    path.unlink()
    path.symlink_to(link_to)
    with pytest.raises(InputError, match="symbolic link"):
        experiment.run()
    assert experiment.ran == []  # trial a was reused; b neither read nor run
    assert path.is_symlink()
