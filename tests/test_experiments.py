"""Every entry of the registry, end to end at its quick settings: the command it declares runs
the config it declares, through the one pipeline, into a complete run directory."""

from dataclasses import asdict

import pytest
from conftest import invoke_cli, read_json, write_corpus, write_idx_set

from dlclassics.experiments import EXPERIMENTS, PARTS, find
from dlclassics.protocol import Study

# What a command adds to its settings when it checks its data: the data's sha256.
RECORDED_AFTER_CHECKS = ("data_sha256", "corpus_sha256")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "idx": str(write_idx_set(root / "idx", n_train=300, n_test=50).resolve()),
        "corpus": str(write_corpus(root / "corpus.txt", n=200).resolve()),
    }


def test_every_experiment_is_found_by_its_command_and_its_name():
    for experiment in EXPERIMENTS:
        assert find(experiment.command) is find(experiment.name) is experiment
    assert [p.name for p in PARTS] == [e.name for e in EXPERIMENTS if e.part]
    with pytest.raises(KeyError):
        find("xor solvee")


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda e: e.name)
def test_the_quick_settings_are_a_config_of_the_experiment(experiment):
    assert isinstance(experiment.quick, experiment.config_type)
    assert isinstance(experiment.study, Study)
    fields = {f for f in asdict(experiment.quick)}
    assert {o.field for o in experiment.options} <= fields


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda e: e.name)
def test_every_experiment_runs_end_to_end_at_its_quick_settings(experiment, data, tmp_path):
    config = experiment.with_data(experiment.quick, "mnist", data["idx"], data["corpus"])
    out = tmp_path / "run"
    args = [*experiment.command.split(), *experiment.argv(config), "--out", str(out), "--quiet"]
    result = invoke_cli(*args)
    assert result.returncode == 0, result.stderr
    saved = read_json(out / "config.json")
    assert saved["command"] == experiment.command
    settings = {k: v for k, v in asdict(config).items() if k not in RECORDED_AFTER_CHECKS}
    assert {k: saved[k] for k in settings} == {
        k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()
    }
    assert ("machine" in saved) == (experiment.batch is not None)
    results = read_json(out / "results.json")
    assert results and (out / "results.md").read_text().startswith("# ")
    trials = experiment.study.trials(config)
    for trial in trials:
        assert (out / "trials" / trial.name / "result.json").is_file()
    assert result.stdout.endswith(f"wrote {out}\n")
