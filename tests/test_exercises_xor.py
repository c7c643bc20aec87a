"""The XOR notebooks' exercise checks: each solution passes, an unfilled answer (None) fails
without raising, and typical wrong answers fail with a reason."""

import functools
import time

import numpy as np
import pytest
import torch

from dlclassics.core.rundir import RunDir
from dlclassics.exercises import xor
from dlclassics.xor.model import XorNet
from dlclassics.xor.solutions import HAND_WEIGHTS
from dlclassics.xor.train import sum_squared_error

OR_NAND = {
    "hidden_weight": [[1.0, 1.0], [-1.0, -1.0]],
    "hidden_bias": [-0.5, 1.5],
    "out_weight": [1.0, 1.0],
    "out_bias": -1.5,
}


@functools.cache
def largest_temperature(bound: float) -> float:
    """The solution of the temperature exercise, found as a learner would: on a fine grid."""
    grid = torch.linspace(0.01, 1.0, 991).tolist()
    below = [t for t in grid if sum_squared_error(XorNet.from_spec(HAND_WEIGHTS[1], t)) < bound]
    return max(below)


def bce(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * torch.log(outputs) + (1 - targets) * torch.log(1 - outputs)).mean()


def fake_sweep(path, failures: list[int]):
    """A finished `xor sweep` run directory whose configurations failed so often."""
    grid = [(0.1, 2, False), (0.01, 2, False), (0.01, 4, True), (0.25, 1, True)]
    configs = [
        {"lr": lr, "hidden": hidden, "bypass": bypass, "runs": 15, "failures": f}
        for (lr, hidden, bypass), f in zip(grid, failures, strict=True)
    ]
    RunDir(path).save_results({"configs": configs}, "# XOR hyperparameter study\n")
    return path


HELPFUL = {
    "AND",
    "OR",
    "NAND",
    "NOR",
    "x1 AND NOT x2",
    "NOT x1 AND x2",
    "x1 OR NOT x2",
    "NOT x1 OR x2",
}

# Per exercise: its check, the solution, typical wrong answers and what the check says of each.
EXERCISES = {
    "hand_weights": (
        xor.check_hand_weights,
        OR_NAND,
        [
            ({k: v for k, v in HAND_WEIGHTS[1].items() if k not in ("k", "bypass")}, "OR and AND"),
            ({**OR_NAND, "out_bias": -0.5}, "at (0,0) the output is 1.00"),
            ({**OR_NAND, "hidden_weight": [[1.0, 1.0]]}, "must have shape (2, 2)"),
            ({"hidden_weight": [[1.0, 1.0], [-1.0, -1.0]]}, "lacks the key 'hidden_bias'"),
            ("OR and NAND", "should be a dict"),
            ({**OR_NAND, "out_bias": 10**400}, "too large to convert to float"),
        ],
    ),
    "temperature": (
        xor.check_temperature,
        largest_temperature(xor.BOUND),
        [
            (0.1, "is still below"),
            (0.2, "not below 0.01"),
            (-1.0, "positive number"),
            (float("nan"), "positive number"),
            (True, "positive number"),
            (10**400, "should be finite"),
        ],
    ),
    "bce": (
        xor.check_bce,
        bce,
        [
            (lambda p, y: -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).sum(), "the sum"),
            (lambda p, y: (y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean(), "the sign"),
            (lambda p, y: ((p - y) ** 2).mean(), "the loss is 0.2990"),
            (lambda p, y: -(y * torch.log(p)), "one number"),
            (lambda p, y: 1 / 0, "raised ZeroDivisionError"),
            (0.69, "should be a function"),
        ],
    ),
    "bypass_output": (
        xor.check_bypass_output,
        {"out_weight": [-1.0, 1.0, 2.0], "out_bias": -0.5},
        [
            ({"out_weight": [1.0, 1.0, -2.0], "out_bias": -0.5}, "at (1,0) the output is 0.00"),
            ({"out_weight": [1.0, 1.0], "out_bias": -0.5}, "must have shape (3,)"),
            (
                {**xor.LONE_UNIT, "out_weight": [-1.0, 1.0, 2.0], "out_bias": -0.5},
                "a dict of out_weight and out_bias",
            ),
            ([-1.0, 1.0, 2.0], "should be a dict"),
        ],
    ),
    "helpful_units": (
        xor.check_helpful_units,
        HELPFUL,
        [
            ({"AND"}, "7 more functions"),
            (HELPFUL | {"XOR"}, "no single unit computes XOR"),
            (HELPFUL | {"x1"}, "with h = x1"),
            (HELPFUL | {"and"}, "not the name of a function: and"),
            ("AND", "a set of names"),
        ],
    ),
}


@pytest.mark.parametrize("name", EXERCISES)
def test_the_solution_passes(name, capsys):
    check, solution, _ = EXERCISES[name]
    assert check(solution) is True
    assert capsys.readouterr().out == "pass\n"


@pytest.mark.parametrize("name", EXERCISES)
def test_an_unfilled_answer_fails_without_raising(name, capsys):
    check, _, _ = EXERCISES[name]
    assert check(None) is False
    out = capsys.readouterr().out
    assert out.startswith("not yet: fill in") and "\nhint: " in out


@pytest.mark.parametrize(
    "name,wrong,reason",
    [(name, wrong, reason) for name, (_, _, cases) in EXERCISES.items() for wrong, reason in cases],
)
def test_a_wrong_answer_fails_with_its_reason(name, wrong, reason, capsys):
    check = EXERCISES[name][0]
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert reason in out and "pass" not in out.splitlines()
    assert out.splitlines()[-1].startswith("hint: ")


def test_the_helpful_functions_are_the_eight_with_one_or_three_points_on():
    assert xor.helpful_functions() == HELPFUL


def test_the_temperature_solution_is_the_largest_to_within_five_percent():
    t = largest_temperature(xor.BOUND)
    assert 0.14 < t < 0.16  # the crossing of the bound, about 0.151
    assert xor.check_temperature(t * 0.97) is True
    assert xor.check_temperature(t * 0.9) is False
    assert xor.check_temperature(np.float32(t)) is True  # numpy's numbers are numbers too


def test_most_failures_reads_the_run(tmp_path, capsys):
    run = fake_sweep(tmp_path / "run", [5, 13, 7, 0])
    assert xor.check_most_failures((0.01, 2, False), run) is True
    assert xor.check_most_failures(None, run) is False
    assert "fill in" in capsys.readouterr().out
    assert xor.check_most_failures((0.25, 1, True), run) is False
    assert "failed 0 of its 15 runs; another configuration failed 13 times" in (
        capsys.readouterr().out
    )
    assert xor.check_most_failures((0.5, 1, True), run) is False
    assert "no configuration lr 0.5" in capsys.readouterr().out
    assert xor.check_most_failures("lr 0.01", run) is False
    assert "a tuple (lr, hidden, bypass)" in capsys.readouterr().out


def test_most_failures_accepts_any_of_a_tie(tmp_path):
    # Quick settings: every lr 0.01 run reaches the 10,000-epoch cap.
    run = fake_sweep(tmp_path / "run", [0, 5, 5, 1])
    assert xor.check_most_failures((0.01, 2, False), run) is True
    assert xor.check_most_failures([0.01, np.int64(4), True], run) is True
    assert xor.check_most_failures((0.1, 2, False), run) is False


@pytest.mark.parametrize("name", EXERCISES)
def test_a_check_is_fast(name):
    check, solution, _ = EXERCISES[name]
    start = time.perf_counter()
    check(solution)
    assert time.perf_counter() - start < 0.5
