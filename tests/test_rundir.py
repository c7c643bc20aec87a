import json
import os
import stat
from dataclasses import dataclass

import pytest
import torch

from dlclassics import __version__
from dlclassics.core.checkpoint import save_checkpoint
from dlclassics.core.errors import InputError
from dlclassics.core.rundir import open_run, read_config, write_json
from dlclassics.options import make_config


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...] = (2, 4)
    name: str | None = None
    seed: int = 0


def test_write_json_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json(path, {"a": 1})

    def broken_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr("dlclassics.core.rundir.os.replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002])
def test_atomic_writes_keep_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        with open(tmp_path / "plain", "w") as f:
            f.write("x")
        write_json(tmp_path / "results.json", {"a": 1})
        save_checkpoint(tmp_path / "checkpoint.pt", torch.nn.Linear(1, 1), {}, {})
    finally:
        os.umask(previous)
    want = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert want == 0o666 & ~umask
    for name in ("results.json", "checkpoint.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name


def test_bad_input_removes_the_new_run_directory(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(InputError), open_run(out, "test", Settings()):
        assert (out / "config.json").exists()
        raise InputError("bad")
    assert not out.exists()


def test_bad_input_keeps_a_new_run_directory_another_worker_writes_in(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(InputError), open_run(out, "test", Settings()):
        (out / "trials" / "a").mkdir(parents=True)  # another worker of the study, meanwhile
        raise InputError("bad")
    assert (out / "trials" / "a").is_dir()


def test_a_folder_holding_only_another_workers_temporary_file_is_taken(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".config.json.1a2b3c4d.tmp").write_text("{")  # its config.json, half-way there
    with open_run(out, "test", Settings()):
        pass
    assert json.loads((out / "config.json").read_text())["command"] == "test"
    (out / "notes.txt").write_text("mine")
    (out / "config.json").unlink()
    with pytest.raises(InputError, match="not a dlclassics run"), open_run(out, "test", Settings()):
        pass


def test_other_failures_keep_the_directory_without_results(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), open_run(out, "test", Settings()):
        raise RuntimeError("crash")
    assert (out / "config.json").exists()
    assert not (out / "results.json").exists()


def test_an_existing_run_directory_can_be_reused(tmp_path):
    out = tmp_path / "run"
    with open_run(out, "test", Settings()) as run:
        run.save_results({"x": 1}, "# x\n")
    with open_run(out, "test", Settings(seed=1)) as run:
        run.save_results({"x": 2}, "# x\n")
    assert json.loads((out / "results.json").read_text()) == {"x": 2}
    assert json.loads((out / "config.json").read_text())["seed"] == 1


def test_a_run_directory_is_not_reused_by_another_command(tmp_path):
    out = tmp_path / "run"
    with open_run(out, "lm train", Settings()) as run:
        run.save_results({"x": 1}, "# x\n")
    with (
        pytest.raises(InputError, match="holds a `dlclassics lm train` run"),
        open_run(out, "xor solve", Settings()),
    ):
        pass
    assert json.loads((out / "config.json").read_text())["command"] == "lm train"


def test_config_json_is_the_command_the_version_the_processes_and_every_field(tmp_path):
    with open_run(tmp_path / "run", "test", Settings(sizes=(3,), seed=7)):
        pass
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved == {
        "command": "test",
        "version": __version__,
        "processes": 1,
        "sizes": [3],
        "name": None,
        "seed": 7,
    }


def test_read_config_rebuilds_the_same_config(tmp_path):
    config = Settings(sizes=(3, 5), name="x", seed=7)
    with open_run(tmp_path / "run", "test", config):
        pass
    assert make_config(Settings, read_config(tmp_path / "run", "test")) == config


@pytest.mark.parametrize("config_json", [None, "not json", '{"command": "other"}', "[1]"])
def test_read_config_refuses_what_is_not_that_commands_run(tmp_path, config_json):
    if config_json is not None:
        (tmp_path / "config.json").write_text(config_json)
    with pytest.raises(InputError, match="is not a 'test' run directory"):
        read_config(tmp_path, "test")
