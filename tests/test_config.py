"""Configs check themselves: a tampered config.json read back by --resume, counts and sizes of
10^9 to 10^15 on every command, --workers, --seed, --device and relative data paths. Each bad
value is one line on stderr and exit code 2, before anything is allocated or a run directory
made."""

import importlib
import json
import math
import pkgutil
import time
import typing
from dataclasses import asdict, fields, is_dataclass
from types import SimpleNamespace

import pytest
from conftest import (
    TINY_LM,
    assert_one_line_error,
    invoke_cli,
    read_json,
    run_limited,
    write_corpus,
    write_idx_set,
)

import dlclassics
from dlclassics import __version__
from dlclassics.core import bounds
from dlclassics.core.errors import InputError
from dlclassics.core.machine import resolve_device
from dlclassics.lm.config import LmStudyConfig, LmTrainConfig
from dlclassics.lm.corpus import MAX_SENTENCE_WORDS
from dlclassics.lm.experiment import check_cost, study_trials
from dlclassics.lm.model import ModelConfig
from dlclassics.lm.words import SPECIALS
from dlclassics.mnist.config import CnnConfig
from dlclassics.options import absolute, resumed_config
from dlclassics.reproduce.config import ReproduceConfig
from dlclassics.workers import worker_count

# JSON values of the wrong type for each annotated type: bool is not a number, a number not a
# string, a list not a scalar (nor a scalar a list), null only where None is a setting.
WRONG_TYPES = {
    int: [True, "5", 5.5, [5], None],
    int | None: [False, "5", 5.5, [5]],
    float: [True, "0.1", [0.1], None],
    str: [1, True, ["cpu"], None],
    str | None: [1, False, ["x"]],
    bool: [1, "true", None],
    bool | None: [0, "false"],
    tuple[str, ...]: ["single_conv", 1, None, [1], [["xor-solve"]]],
    tuple[int, ...]: [50, "50", None, [True], [50.5]],
}

NAN, INF = float("nan"), float("inf")
SHARED_RANGES = {
    "lr": [0, -1.0, NAN, INF, 10**400],
    "seed": [-1, 2**63, 2**64],
}
LM_RANGES = SHARED_RANGES | {
    "corpus": ["/nonexistent/corpus.txt", "/"],
    "vocab_size": [0, -5, 10**8],
    "max_length": [0, 10**7],
    "embedding_size": [0, 10**9],
    "hidden_size": [0, 10**9],
    "epochs": [0, 10**15],
    "batch_size": [0, 10**12],
    "max_steps": [0],
    "checkpoint_every": [0],
    "layers": [0, 3],
    "direction": ["sideways"],
}
CNN_RANGES = SHARED_RANGES | {
    "dataset": ["emnist"],
    "data_dir": ["/nonexistent/idx"],
    "archs": [[], ["lenet"]],
    "batch_sizes": [[], [0], [10**9]],
    "target_accuracy": [0, 1.5, NAN],
    "max_epochs": [0, 10**9],
    "eval_every": [0, 10**12],
}
REPRODUCE_RANGES = {
    "parts": [[], ["nope"]],
    "dataset": ["emnist"],
    "data_dir": ["/nonexistent/idx"],
    "corpus": ["/nonexistent/corpus.txt"],
    "workers": [0, 9999, 10**15],
    "seed": [-1, 2**64],
}


def tampered(config_type: type, ranges: dict[str, list]) -> list:
    """(field, edit) pairs: each field missing, of each wrong type and out of range; an unknown
    field. An edit maps the saved settings to the tampered ones."""
    hints = typing.get_type_hints(config_type)
    cases = [("unknown", lambda s: s | {"colour": "blue"})]
    for f in fields(config_type):
        cases.append((f.name, lambda s, n=f.name: {k: v for k, v in s.items() if k != n}))
        values = WRONG_TYPES[hints[f.name]] + ranges.get(f.name, [])
        cases += [(f.name, lambda s, n=f.name, v=v: s | {n: v}) for v in values]
    return cases


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "corpus": write_corpus(root / "corpus.txt"),
        "idx": write_idx_set(root / "idx", n_train=300, n_test=50),
    }


def base_config(command: str, data: dict) -> object:
    """A valid config of `command` on the tests' data."""
    corpus, idx = str(data["corpus"]), str(data["idx"])
    if command.startswith("lm"):
        config_type = LmTrainConfig if command == "lm train" else LmStudyConfig
        return config_type(corpus=corpus, embedding_size=8, hidden_size=8)
    if command == "mnist cnn":
        return CnnConfig(data_dir=idx)
    return ReproduceConfig(quick=True, data_dir=idx, corpus=corpus)


def write_run(directory, command: str, settings: dict) -> None:
    directory.mkdir()
    record = {"command": command, "version": __version__, "processes": 1} | settings
    (directory / "config.json").write_text(json.dumps(record))


COMMANDS = {
    "lm train": (LmTrainConfig, LM_RANGES),
    "lm study": (LmStudyConfig, LM_RANGES | {"length": [0, 10**9]}),
    "mnist cnn": (CnnConfig, CNN_RANGES),
    "reproduce": (ReproduceConfig, REPRODUCE_RANGES),
}
TAMPERED = [
    pytest.param(command, field, edit, id=f"{command.replace(' ', '-')}-{field}-{i}")
    for command, (config_type, ranges) in COMMANDS.items()
    for i, (field, edit) in enumerate(tampered(config_type, ranges))
]


@pytest.mark.parametrize("command", COMMANDS)
def test_the_untampered_config_is_read_back_as_it_was(tmp_path, data, command):
    config = base_config(command, data)
    write_run(tmp_path / "run", command, asdict(config))
    assert resumed_config(type(config), command, tmp_path / "run") == config


@pytest.mark.parametrize("command, field, edit", TAMPERED)
def test_a_tampered_config_json_is_one_line_exit_2(tmp_path, data, command, field, edit):
    settings = edit(json.loads(json.dumps(asdict(base_config(command, data)))))
    run = tmp_path / "run"
    write_run(run, command, settings)
    result = invoke_cli(*command.split(), "--resume", str(run), "--quiet")
    assert_one_line_error(result)
    # The field and the file; for data that is not there, the path. NaN and Infinity are not
    # JSON: the file is refused whole.
    value = settings.get(field)
    named = field in result.stderr and "config.json" in result.stderr
    if isinstance(value, float) and not math.isfinite(value):
        named = f"is not a '{command}' run directory" in result.stderr
    assert named or str(value) in result.stderr, result.stderr
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]  # nothing ran


@pytest.mark.parametrize("change", ["older", "newer"])
def test_a_run_of_another_version_says_so(tmp_path, data, change):
    settings = asdict(base_config("reproduce", data))
    if change == "older":  # written before this version added corpus_sha256
        del settings["corpus_sha256"]
    else:
        settings["a_later_setting"] = 1
    write_run(tmp_path / "run", "reproduce", settings)
    result = invoke_cli("reproduce", "--resume", str(tmp_path / "run"), "--quiet")
    assert_one_line_error(result)
    assert f"the run was written by {'an' if change == 'older' else 'a'} {change} version" in (
        result.stderr
    )


def test_reproduce_resumed_after_its_corpus_moved_names_the_path(tmp_path, data):
    corpus = write_corpus(tmp_path / "moved.txt")
    settings = asdict(ReproduceConfig(quick=True, parts=("lm-study",), corpus=str(corpus)))
    write_run(tmp_path / "run", "reproduce", settings)
    corpus.rename(tmp_path / "elsewhere.txt")
    result = invoke_cli("reproduce", "--resume", str(tmp_path / "run"), "--quiet")
    assert_one_line_error(result)
    assert str(corpus) in result.stderr and "config.json" in result.stderr


def test_relative_data_paths_are_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "corpus.txt")
    args = ["--corpus", "corpus.txt", *TINY_LM, "--epochs", "1", "--max-steps", "2", "--quiet"]
    result = invoke_cli("lm", "train", *args, "--out", "run")
    assert result.returncode == 0, result.stderr
    assert read_json(tmp_path / "run" / "config.json")["corpus"] == str(tmp_path / "corpus.txt")
    assert absolute("idx") == str(tmp_path / "idx")
    assert (absolute(""), absolute(None)) == ("", None)  # no path: the default data


WORST = [10**9, 10**12, 10**15]


@pytest.fixture(scope="module")
def lm_model(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("lm") / "run"
    args = ["--corpus", str(data["corpus"]), *TINY_LM, "--epochs", "1", "--max-steps", "2"]
    result = invoke_cli("lm", "train", *args, "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    return out


def command_args(name: str, data: dict, model) -> list[str]:
    """A fast command line of each command, on the tests' data."""
    corpus, idx = str(data["corpus"]), str(data["idx"])
    lm_fast = ["--corpus", corpus, *TINY_LM, "--epochs", "1", "--max-steps", "2"]
    return {
        "xor train": ["xor", "train", "--epochs", "10"],
        "xor sweep": ["xor", "sweep", "--max-epochs", "50", "--max-runs", "2", "--no-extra"],
        "mnist fc": ["mnist", "fc", "--data-dir", idx, "--iterations", "2"],
        "mnist cnn": ["mnist", "cnn", "--data-dir", idx, "--archs", "single_conv"],
        "lm train": ["lm", "train", *lm_fast],
        "lm study": ["lm", "study", *lm_fast],
        "lm generate": ["lm", "generate", "--model", str(model)],
        "lm next": ["lm", "next", "--model", str(model), "love"],
        "tune lm": ["tune", "lm", "--corpus", corpus, "--n-trials", "1"],
        "tune mnist-cnn": ["tune", "mnist-cnn", "--data-dir", idx, "--n-trials", "1"],
    }[name]


COUNT_OPTIONS = {
    "xor train": ["--epochs"],
    "xor sweep": ["--max-epochs", "--patience", "--successes", "--max-runs", "--hidden"],
    "mnist fc": ["--iterations", "--batch-size"],
    "mnist cnn": ["--batch-sizes", "--max-epochs", "--eval-every"],
    "lm train": [
        *("--vocab-size", "--max-length", "--embedding-size", "--hidden-size", "--epochs"),
        *("--batch-size", "--max-steps", "--checkpoint-every"),
    ],
    "lm study": ["--length"],
    "lm generate": ["--length", "--count"],
    "lm next": ["--top-k"],
    "tune lm": [
        *("--n-trials", "--epochs", "--startup-trials", "--warmup-checks", "--vocab-size"),
        *("--batch-size", "--embedding-sizes", "--hidden-sizes", "--layers"),
    ],
    "tune mnist-cnn": ["--batch-sizes", "--eval-every"],
}
WORST_CASES = [
    pytest.param(name, option, value, id=f"{name.replace(' ', '-')}{option}={value:.0e}")
    for name, options in COUNT_OPTIONS.items()
    for option in options
    for value in WORST
]


def assert_refused_or_ran(result, out, elapsed: float) -> None:
    """Exit 2 in one line and no run directory left, or a run that finished; in seconds."""
    assert elapsed < 30, elapsed
    if result.returncode == 0:
        return
    assert_one_line_error(result, out)


@pytest.mark.slow
@pytest.mark.parametrize("name, option, value", WORST_CASES)
def test_worst_case_counts_are_refused_or_run_safely(tmp_path, data, lm_model, name, option, value):
    if name.startswith("tune"):
        pytest.importorskip("optuna")
    out = tmp_path / "run"
    args = command_args(name, data, lm_model)
    if not name.startswith("lm generate") and not name.startswith("lm next"):
        args += ["--out", str(out), "--quiet"]
    start = time.monotonic()
    result = run_limited(*args, option, str(value))
    assert_refused_or_ran(result, out, time.monotonic() - start)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        # 2^33 weights in the LSTM alone, within the options' bounds
        ["lm", "train", "--embedding-size", "100000", "--hidden-size", "100000"],
        # A million sentences a batch: their logits alone need terabytes
        ["lm", "train", "--batch-size", "1000000"],
        # The largest model of a search's ranges, before its first trial
        ["tune", "lm", "--embedding-sizes", "8,100000", "--hidden-sizes", "100000"],
    ],
    ids=["parameters", "batch-memory", "tune-parameters"],
)
def test_a_language_model_that_cannot_fit_is_refused_before_a_run_directory(tmp_path, data, args):
    if args[0] == "tune":
        pytest.importorskip("optuna")
    out = tmp_path / "run"
    result = run_limited(*args, "--corpus", str(data["corpus"]), "--epochs", "1", "--out", str(out))
    assert_one_line_error(result, out)
    assert "parameters" in result.stderr or "GiB" in result.stderr


def test_a_sweep_that_cannot_fit_is_refused_before_a_run_directory(tmp_path):
    lrs = ",".join(str(i / 100) for i in range(1, 101))
    hiddens = ",".join(str(h) for h in range(1, 101))
    out = tmp_path / "run"
    args = ["--lrs", lrs, "--hidden", hiddens, "--max-runs", "10000", "--out", str(out)]
    result = invoke_cli("xor", "sweep", *args)
    assert_one_line_error(result, out)
    assert "GiB" in result.stderr


@pytest.mark.parametrize("limit", ["rlimit", "cgroup"])
def test_memory_is_checked_against_the_process_limits_not_only_the_ram(
    tmp_path, monkeypatch, limit
):
    import resource

    from dlclassics.core import bounds

    if limit == "rlimit":
        monkeypatch.setattr(resource, "getrlimit", lambda kind: (2**30, resource.RLIM_INFINITY))
        monkeypatch.setattr(bounds, "CGROUP_MEMORY", tmp_path / "absent")
    else:
        (tmp_path / "memory.max").write_text(f"{2**30}\n")
        monkeypatch.setattr(bounds, "CGROUP_MEMORY", tmp_path / "memory.max")
    bounds.check_memory("half a GiB", 2**29)
    with pytest.raises(InputError, match=r"about 2\.0 GiB; this process may have 1\.0 GiB"):
        bounds.check_memory("two", 2**31)
    (tmp_path / "memory.max").write_text("max\n")  # no cgroup limit
    monkeypatch.setattr(bounds, "CGROUP_MEMORY", tmp_path / "memory.max")
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (resource.RLIM_INFINITY,) * 2)
    bounds.check_memory("two", 2**31)


WORKER_COMMANDS = [
    ["xor", "solve"],
    ["xor", "train"],
    ["xor", "sweep"],
    ["mnist", "fc"],
    ["mnist", "cnn"],
    ["lm", "study"],
    ["reproduce"],
]


@pytest.mark.slow
@pytest.mark.parametrize("command", WORKER_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("workers", [9999, 10**9, 10**12, 10**15])
def test_more_workers_than_4x_the_cores_are_refused(tmp_path, command, workers):
    out = tmp_path / "run"
    result = run_limited(*command, "--workers", str(workers), "--out", str(out), timeout=30)
    assert_one_line_error(result, out)
    assert "--workers" in result.stderr


def test_workers_above_the_trial_count_start_one_per_trial(capsys):
    assert worker_count(8, 3) == 3
    assert "note: 3 trials, so 3 workers, not 8" in capsys.readouterr().err
    assert worker_count(2, 3) == 2
    assert capsys.readouterr().err == ""


def test_a_resumed_runs_workers_beyond_this_machine_start_its_maximum(monkeypatch, capsys):
    monkeypatch.setattr("dlclassics.workers.MAX_WORKERS", 2)
    assert worker_count(16, 3) == 2
    assert "note: 2 workers on this machine, not 16" in capsys.readouterr().err
    config = ReproduceConfig(parts=("xor-solve",), workers=1024)  # a 256-core machine's run
    assert config.workers == 1024


@pytest.mark.slow
def test_a_study_of_one_trial_on_two_workers_starts_one(tmp_path):
    pytest.importorskip("optuna")
    args = ["xor", "sweep", "--max-epochs", "30", "--max-runs", "2", "--successes", "1"]
    result = run_limited(*args, "--workers", "2", "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "note: 1 trials, so 1 workers, not 2" in result.stderr


@pytest.mark.parametrize("seed", ["-1", str(2**63), str(2**64), str(10**30)])
@pytest.mark.parametrize("command", [["xor", "solve"], ["xor", "train"], ["lm", "generate"]])
def test_a_seed_outside_0_to_2_63_is_refused(tmp_path, command, seed):
    out = ["--model", str(tmp_path)] if command[1] == "generate" else ["--out", str(tmp_path / "r")]
    result = invoke_cli(*command, *out, "--seed", seed)
    assert_one_line_error(result, tmp_path / "r")
    assert "--seed" in result.stderr


def test_the_largest_seed_runs(tmp_path):
    result = invoke_cli("xor", "solve", "--seed", str(2**63 - 1), "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("device", ["meta", "mps", "xpu", "cuda:99", "cpu:0", "vulkan", ""])
def test_devices_other_than_cpu_and_cuda_are_refused(tmp_path, data, device):
    out = tmp_path / "run"
    args = ["--data-dir", str(data["idx"]), "--iterations", "2", "--out", str(out)]
    assert_one_line_error(invoke_cli("mnist", "fc", *args, "--device", device), out)
    with pytest.raises(InputError):
        resolve_device(device)
    result = invoke_cli("lm", "generate", "--model", str(tmp_path), "--device", device)
    assert_one_line_error(result)


def _config_types() -> list[type]:
    """Every dataclass with RULES in the package."""
    found = set()
    for module in pkgutil.walk_packages(dlclassics.__path__, "dlclassics."):
        if module.name.startswith("dlclassics.serve") or module.name.endswith(
            ("notebook", "__main__")
        ):
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if is_dataclass(value) and isinstance(value, type) and "RULES" in vars(value):
                found.add(value)
    return sorted(found, key=lambda t: f"{t.__module__}.{t.__name__}")


@pytest.mark.parametrize(
    "config_type", _config_types(), ids=lambda t: f"{t.__module__[11:]}.{t.__name__}"
)
def test_every_config_builds_at_its_defaults(config_type):
    if config_type is ModelConfig:  # no defaults: the original protocol's 2-layer model
        config = ModelConfig(10_004, 2, "forward", 300, 256)
    else:
        config = config_type()
    bounds.validate(config)
    assert set(config_type.RULES) <= {f.name for f in fields(config_type)}


PROTOCOL_SENTENCES = 29_741  # the original corpus


@pytest.mark.parametrize(("gib", "refused"), [(24, False), (4, True)])
def test_the_original_protocol_fits_24_gib_but_not_4(monkeypatch, gib, refused):
    monkeypatch.setattr(bounds, "memory_limit", lambda: gib * 2**30)
    config = LmStudyConfig()  # vocabulary 10,000, embedding 300, hidden 256, 1 and 2 layers
    assert config.max_length is None  # no limit but the corpus reader's
    # The longest sentence the reader keeps, in the 80% of the corpus trained on.
    longest = ["w"] * MAX_SENTENCE_WORDS
    train = [longest] + [["w"]] * (PROTOCOL_SENTENCES * 8 // 10 - 1)
    data = SimpleNamespace(
        vocab=[*SPECIALS, *map(str, range(config.vocab_size))],
        sentences=SimpleNamespace(train=train),
    )
    if refused:  # a batch of 128 sentences of 1,000 words needs about 17 GiB
        with pytest.raises(InputError, match="GiB"):
            check_cost(config, data, study_trials(config))
    else:
        check_cost(config, data, study_trials(config))


@pytest.mark.parametrize(
    "machine",
    [
        {"device": "cpu"},
        {"device": 3, "bf16": False},
        "cpu",
        {"device": "cpu", "bf16": "no"},
        {"device": "tpu", "bf16": False},
    ],
)
def test_a_resumed_run_whose_machine_was_tampered_with_is_one_line_exit_2(tmp_path, data, machine):
    config = base_config("mnist cnn", data)
    write_run(tmp_path / "run", "mnist cnn", asdict(config) | {"machine": machine})
    result = invoke_cli("mnist", "cnn", "--resume", str(tmp_path / "run"))
    assert_one_line_error(result)
    assert "machine" in result.stderr or "device" in result.stderr
