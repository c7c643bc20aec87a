"""The package's shape: layers without import cycles, one registry, thin commands, and a command
line whose every command answers --help and refuses a bad value in one line."""

import ast
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from conftest import assert_one_line_error, invoke_cli

import dlclassics
from dlclassics.cli import cli
from dlclassics.experiments import EXPERIMENTS

SRC = Path(dlclassics.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """The package's modules that `path` imports anywhere: at the top, inside functions, under
    TYPE_CHECKING."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from dlclassics.lm import experiment` imports a module; `... import words` a name.
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        found |= {n for n in names if n in MODULES and MODULES[n].name != "__init__.py"}
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, or with a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_module_imports_itself_through_others():
    graph = {name: _imports(path) - {name} for name, path in MODULES.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_module_is_loaded_by_a_name_in_a_string():
    for path in MODULES.values():
        assert "import_module" not in path.read_text(), path


def test_the_run_directory_owns_its_file_names():
    files = {
        name: sum(p.read_text().count(f'"{name}"') for p in MODULES.values())
        for name in (
            "tensorboard",
            "results.json",
            "result.json",
            "checkpoint.pt",
            "train_state.pt",
        )
    }
    assert files == dict.fromkeys(files, 1)


def test_one_registry_of_experiments():
    defined = [p for p in MODULES.values() if "\nEXPERIMENTS" in p.read_text()]
    assert [_module_name(p) for p in defined] == ["dlclassics.experiments"]
    commands = [e.command for e in EXPERIMENTS]
    assert len(set(commands)) == len(commands)


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


COMMANDS = _commands(cli)


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_function_is_short(path, command):
    """Its body, without the docstring, fits in 25 lines: the work is in the pipeline."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(command.callback)))
    body = tree.body[0].body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    lines = body[-1].end_lineno - body[0].lineno + 1
    assert lines <= 25, f"{' '.join(path)}: {lines} lines"


def test_every_experiment_has_its_command():
    assert {e.command for e in EXPERIMENTS} <= {" ".join(p) for p, _ in COMMANDS}


@pytest.mark.parametrize("path", [(), *{p[:1] for p, _ in COMMANDS}, *(p for p, _ in COMMANDS)])
def test_every_command_answers_help(path):
    result = invoke_cli(*path, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: dlclassics {' '.join(path)}".rstrip())


def _bad_value(param: click.Parameter) -> str | None:
    """A value `param` refuses, if its type has one."""
    kind = param.type
    if isinstance(kind, click.IntRange | click.FloatRange):
        return "nan" if isinstance(kind, click.FloatRange) else "1.5"
    if isinstance(kind, click.Choice):
        return "no-such-choice"
    if isinstance(kind, click.types.IntParamType | click.types.FloatParamType):
        return "many"
    return None


def _takes_out(command: click.Command) -> bool:
    return any("--out" in getattr(p, "opts", ()) for p in command.params)


BAD_VALUES = [
    (path, param.opts[0], value, _takes_out(command))
    for path, command in COMMANDS
    for param in command.params
    if isinstance(param, click.Option) and not param.is_flag
    if (value := _bad_value(param)) is not None
]


@pytest.mark.parametrize(
    "path,option,value,takes_out", BAD_VALUES, ids=[f"{' '.join(p)} {o}" for p, o, *_ in BAD_VALUES]
)
def test_a_bad_value_is_one_line_and_no_run_directory(tmp_path, path, option, value, takes_out):
    out = tmp_path / "run"
    result = invoke_cli(*path, option, value, *(["--out", str(out)] if takes_out else []))
    assert_one_line_error(result, out)
    assert option in result.stderr


def test_the_commands_are_listed_without_torch():
    code = "import sys, dlclassics.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_option_says_what_it_does(path, command):
    unexplained = [
        p.opts[0]
        for p in command.params
        if isinstance(p, click.Option) and not p.hidden and not p.help
    ]
    assert unexplained == []


def test_openmp_threads_wait_passively_unless_told_otherwise():
    code = "import os, dlclassics; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert default.stdout == "PASSIVE\n"
    told = env | {"OMP_WAIT_POLICY": "ACTIVE"}
    kept = subprocess.run([sys.executable, "-c", code], env=told, capture_output=True, text=True)
    assert kept.stdout == "ACTIVE\n"


def test_threads_reach_torch_in_the_command_and_in_the_processes_it_starts(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    code = (
        "from dlclassics.cli import cli; import os, subprocess, sys\n"
        "cli.main(['--threads', '1', 'xor', '--help'], standalone_mode=False)\n"
        "import torch; print(torch.get_num_threads())\n"
        "child = [sys.executable, '-c', 'import torch; print(torch.get_num_threads())']\n"
        "print(subprocess.run(child, capture_output=True, text=True).stdout.strip())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.splitlines()[-2:] == ["1", "1"], result.stderr


def test_no_test_module_imports_another():
    """Shared helpers live in conftest.py; a test module imported by another would run its tests
    twice over and tie the modules together."""
    tests = Path(__file__).parent
    importing = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            importing += [f"{path.name}: {n}" for n in names if n.startswith("test_")]
    assert importing == []


@pytest.mark.parametrize(
    "option,value",
    [
        (p.opts[0], _bad_value(p))
        for p in cli.params
        if isinstance(p, click.Option) and _bad_value(p)
    ],
)
def test_a_bad_value_of_the_commands_own_options_is_one_line(option, value):
    result = invoke_cli(option, value, "xor", "--help")
    assert_one_line_error(result)
    assert option in result.stderr
