import json

import pytest

from dlclassics.errors import InputError
from dlclassics.rundir import open_run, write_json


def test_write_json_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json(path, {"a": 1})

    def broken_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr("dlclassics.rundir.os.replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_bad_input_removes_the_new_run_directory(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(InputError), open_run(out, "test", {"seed": 0}):
        assert (out / "config.json").exists()
        raise InputError("bad")
    assert not out.exists()


def test_other_failures_keep_the_directory_without_results(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), open_run(out, "test", {"seed": 0}):
        raise RuntimeError("crash")
    assert (out / "config.json").exists()
    assert not (out / "results.json").exists()


def test_an_existing_run_directory_can_be_reused(tmp_path):
    out = tmp_path / "run"
    with open_run(out, "test", {"seed": 0}) as run:
        run.save_results({"x": 1}, "# x\n")
    with open_run(out, "test", {"seed": 1}) as run:
        run.save_results({"x": 2}, "# x\n")
    assert json.loads((out / "results.json").read_text()) == {"x": 2}
    assert json.loads((out / "config.json").read_text())["seed"] == 1


def test_a_run_directory_is_not_reused_by_another_command(tmp_path):
    out = tmp_path / "run"
    with open_run(out, "lm train", {"seed": 0}) as run:
        run.save_results({"x": 1}, "# x\n")
    with (
        pytest.raises(InputError, match="holds a `dlclassics lm train` run"),
        open_run(out, "xor solve", {"seed": 0}),
    ):
        pass
    assert json.loads((out / "config.json").read_text())["command"] == "lm train"
