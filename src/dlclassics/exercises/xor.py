"""The XOR notebooks' exercises: xor_implementation_and_analysis (hand-set weights, temperature,
the loss) and xor_hyperparameter_exploration (the configuration that fails most, the lone hidden
unit)."""

import itertools
import math
import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from dlclassics.core.errors import InputError, first_line
from dlclassics.core.rundir import RunDir
from dlclassics.exercises import missing, verdict
from dlclassics.xor.analysis import BOOLEAN_FUNCTIONS, unit_function
from dlclassics.xor.data import INPUTS, TARGETS
from dlclassics.xor.model import XorNet
from dlclassics.xor.solutions import HAND_WEIGHTS
from dlclassics.xor.train import POINTS, sum_squared_error, truth_table

COLD = 0.001  # the temperature `xor solve` checks hand-set weights at: the BTU is a step
XOR = tuple(TARGETS.flatten().int().tolist())

# Exercise: the largest temperature at which the hand-set k=2 network's loss stays below BOUND.
BOUND = 0.01
WITHIN = 1.05  # the answer must be the largest such temperature to within 5%

# The lone hidden unit of the bypass exercise: x1 AND NOT x2, on only at (1, 0).
LONE_UNIT = {"hidden_weight": [[1.0, -1.0]], "hidden_bias": [-0.5]}


def _network(spec: Any, k: int, bypass: bool, problems: list[str]) -> XorNet | None:
    """The network of a learner's weights at COLD, or None with the reason in `problems`."""
    if not isinstance(spec, dict):
        problems.append(f"the answer should be a dict of weights, not a {type(spec).__name__}")
        return None
    try:
        return XorNet.from_spec({**spec, "k": k, "bypass": bypass}, COLD)
    except KeyError as e:
        problems.append(f"the answer lacks the key {e}")
    except (InputError, TypeError, ValueError, RuntimeError, OverflowError) as e:
        problems.append(f"these weights do not fit the network: {first_line(e)}")
    return None


def _off_xor(net: XorNet) -> list[str]:
    """A problem for each point where the network's output is not within 0.1 of XOR."""
    return [
        f"at {point} the output is {output:.2f}, XOR is {target}"
        for point, output, target in zip(POINTS, truth_table(net), XOR, strict=True)
        if not abs(output - target) < 0.1
    ]


def _hidden_functions(net: XorNet) -> list[str]:
    units = zip(net.hidden.weight.detach(), net.hidden.bias.tolist(), strict=True)
    return [unit_function(w, b) for w, b in units]


def check_hand_weights(answer: dict | None) -> bool:
    """Exercise: a k=2 network whose hidden units compute OR and NAND, and whose output is XOR."""
    hint = (
        "NAND is the AND unit with every sign flipped (-x1 - x2 + 1.5 is positive except at "
        "(1,1)); the output unit then takes the AND of the two hidden units: h1 + h2 - 1.5"
    )
    if missing(answer, "the dict of the k=2 network's four weights", hint):
        return False
    problems: list[str] = []
    net = _network(answer, 2, False, problems)
    if net is not None:
        functions = _hidden_functions(net)
        if sorted(functions) != ["NAND", "OR"]:
            problems.append(
                f"the hidden units compute {' and '.join(functions)}; this exercise asks for "
                "OR and NAND"
            )
        problems += _off_xor(net)
    return verdict(problems, hint)


def _positive_number(answer: Any, what: str, problems: list[str]) -> float | None:
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real) or not answer > 0:
        problems.append(f"{what} should be a positive number, got {answer!r}")
        return None
    try:
        value = float(answer)  # an int of 400 digits is a Real no float holds
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        problems.append(f"{what} should be finite, got {answer!r:.40}")
        return None
    return value


def _hand_set_loss(temperature: float) -> float:
    """The sum of squared errors of the hand-set k=2 network (OR and AND) at `temperature`."""
    return sum_squared_error(XorNet.from_spec(HAND_WEIGHTS[1], temperature))


def check_temperature(answer: float | None) -> bool:
    """Exercise: the largest temperature at which the hand-set k=2 network's loss is below
    BOUND, to within 5% (below the bound the loss only grows with the temperature)."""
    hint = (
        "compute sum_squared_error(XorNet.from_spec(HAND_WEIGHTS[1], T)) over many temperatures "
        f"(np.geomspace(0.01, 1, 500), say) and keep the largest T whose loss is below {BOUND}"
    )
    if missing(answer, "the temperature T, a number", hint):
        return False
    problems: list[str] = []
    temperature = _positive_number(answer, "the temperature", problems)
    if temperature is not None:
        loss, warmer = _hand_set_loss(temperature), _hand_set_loss(temperature * WITHIN)
        if not loss < BOUND:
            problems.append(f"at T = {temperature:g} the loss is {loss:.4g}, not below {BOUND}")
        elif warmer < BOUND:
            problems.append(
                f"at T = {temperature * WITHIN:.4g}, {WITHIN - 1:.0%} warmer, the loss is still "
                f"below {BOUND} ({warmer:.4g}): look for the largest such temperature"
            )
    return verdict(problems, hint)


# Outputs and targets on which a learner's loss function is compared with PyTorch's.
LOSS_CASES = [
    (torch.tensor([[0.1], [0.8], [0.6], [0.3]]), TARGETS),
    (torch.tensor([[0.9], [0.2], [0.5], [0.05]]), TARGETS),
]


def _loss_problem(answer: Callable, outputs: torch.Tensor, targets: torch.Tensor) -> str | None:
    """What is wrong with the learner's loss function on these outputs, if anything."""
    expected = float(F.binary_cross_entropy(outputs, targets))
    try:
        got = torch.as_tensor(answer(outputs.clone(), targets.clone()), dtype=torch.float32)
    except Exception as e:  # the learner's code: any error is an answer to report
        return f"your function raised {type(e).__name__}: {first_line(e)}"
    if got.numel() != 1:
        return f"the loss should be one number, got shape {tuple(got.shape)}"
    value = float(got)
    if math.isclose(value, expected, rel_tol=1e-4):
        return None
    if math.isclose(value, len(outputs) * expected, rel_tol=1e-4):
        return "this is the sum over the four points: the training loop takes the mean"
    if math.isclose(value, -expected, rel_tol=1e-4):
        return "the sign: the loss is minus the log-likelihood, so it is positive"
    shown = [round(v, 2) for v in outputs.flatten().tolist()]
    return f"for outputs {shown} the loss is {expected:.4f}, your function gives {value:.4f}"


def check_bce(answer: Callable | None) -> bool:
    """Exercise: the binary cross-entropy of outputs and targets, as `train` minimises it."""
    hint = (
        "the loss is the mean over the points of -(y log p + (1 - y) log(1 - p)); with torch "
        "tensors: -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()"
    )
    if missing(answer, "your function bce(outputs, targets)", hint):
        return False
    if not callable(answer):
        return verdict([f"the answer should be a function, not a {type(answer).__name__}"], hint)
    found = (_loss_problem(answer, outputs, targets) for outputs, targets in LOSS_CASES)
    return verdict([p for p in found if p][:1], hint)  # the first wrong case says enough


def _configuration(answer: Any, problems: list[str]) -> tuple[float, int, bool] | None:
    if not isinstance(answer, tuple | list) or len(answer) != 3:
        problems.append(f"the answer should be a tuple (lr, hidden, bypass), got {answer!r}")
        return None
    lr, hidden, bypass = answer
    if (
        not isinstance(lr, numbers.Real)
        or not isinstance(hidden, numbers.Integral)
        or not isinstance(bypass, bool)
    ):
        problems.append(f"(lr, hidden, bypass) should be a number, an int and a bool: {answer!r}")
        return None
    return float(lr), int(hidden), bypass


def check_most_failures(answer: tuple | None, run: Path) -> bool:
    """Exercise: the configuration of the `xor sweep` in `run` whose runs failed most often (any
    of them where several tie)."""
    hint = (
        "read the failures column of the study's table: a run fails when it has not met the "
        "stopping rule by --max-epochs; compare the learning rates first"
    )
    if missing(answer, "your prediction, a tuple (lr, hidden, bypass)", hint):
        return False
    problems: list[str] = []
    chosen = _configuration(answer, problems)
    if chosen is not None:
        configs = RunDir(run).read_results()[0]["configs"]
        lr, hidden, bypass = chosen
        found = [
            c
            for c in configs
            if math.isclose(c["lr"], lr) and c["hidden"] == hidden and c["bypass"] == bypass
        ]
        most = max(c["failures"] for c in configs)
        if not found:
            problems.append(
                f"the study has no configuration lr {lr:g}, {hidden} hidden, bypass {bypass}: "
                "pick one of the rows of its table"
            )
        elif found[0]["failures"] < most:
            c = found[0]
            problems.append(
                f"lr {lr:g}, {hidden} hidden, bypass {bypass} failed {c['failures']} of its "
                f"{c['runs']} runs; another configuration failed {most} times"
            )
    return verdict(problems, hint)


def check_bypass_output(answer: dict | None) -> bool:
    """Exercise: the output weights of a k=1 bypass network whose hidden unit is LONE_UNIT
    (x1 AND NOT x2), so that the network computes XOR."""
    hint = (
        "the output unit sees x1, x2 and h, in that order, and h is 1 only at (1,0); start from "
        "x2 - x1 (1 at (0,1), -1 at (1,0)), let h add enough at (1,0), then pick the bias"
    )
    if missing(answer, "the dict with out_weight (three numbers) and out_bias", hint):
        return False
    problems: list[str] = []
    if not isinstance(answer, dict) or answer.keys() - {"out_weight", "out_bias"}:
        problems.append(f"the answer should be a dict of out_weight and out_bias, got {answer!r}")
    else:  # the hidden unit is LONE_UNIT's, whatever the answer says
        net = _network({**answer, **LONE_UNIT}, 1, True, problems)
        if net is not None:
            problems += _off_xor(net)
    return verdict(problems, hint)


def _one_unit_computes(features: torch.Tensor, targets: tuple[int, ...]) -> bool:
    """Whether one threshold unit computes `targets` on the rows of `features` (0s and 1s, at
    most 3 columns). Weights in -2..2 and half-integer biases are enough: every threshold
    function of up to three Boolean inputs has such weights."""
    weights = torch.tensor(list(itertools.product(range(-2, 3), repeat=features.shape[1])))
    biases = torch.arange(-7, 7) + 0.5
    on = (features @ weights.T.float()).unsqueeze(2) + biases > 0  # (points, weights, biases)
    wanted = torch.tensor(targets, dtype=torch.bool).view(-1, 1, 1)
    return bool((on == wanted).all(0).any())


def helpful_functions() -> set[str]:
    """The functions a lone hidden unit can compute that let a bypass network's output unit,
    seeing x1, x2 and the unit, compute XOR."""
    return {
        name
        for table, name in BOOLEAN_FUNCTIONS.items()
        if _one_unit_computes(INPUTS, table)
        and _one_unit_computes(torch.cat([INPUTS, torch.tensor(table).view(4, 1)], 1), XOR)
    }


def check_helpful_units(answer: set | None) -> bool:
    """Exercise: every Boolean function the lone hidden unit of a bypass network could compute
    for the network to compute XOR."""
    hint = (
        "a function helps when a single unit can compute it (not XOR or XNOR) and it gives the "
        "output unit something the inputs alone do not (not x1, NOT x2, TRUE, ...): count how "
        "many of the four points each function is on at"
    )
    if missing(answer, "a set of function names, such as {'AND'}", hint):
        return False
    if not isinstance(answer, set | list | tuple) or not all(isinstance(n, str) for n in answer):
        return verdict([f"the answer should be a set of names, got {answer!r}"], hint)
    names, helpful = set(answer), helpful_functions()
    problems = []
    unknown = sorted(names - set(BOOLEAN_FUNCTIONS.values()))
    if unknown:
        known = ", ".join(BOOLEAN_FUNCTIONS.values())
        problems.append(f"not the name of a function: {', '.join(unknown)} (the names: {known})")
    for name in sorted(names & {"XOR", "XNOR"}):
        problems.append(f"no single unit computes {name}: that is why XOR needs a hidden layer")
    for name in sorted(names - helpful - {"XOR", "XNOR"} - set(unknown)):
        problems.append(
            f"with h = {name} the output unit gets nothing the inputs do not already give it"
        )
    if helpful - names:
        problems.append(
            f"{len(helpful - names)} more functions would do: take each function that is on at "
            "one corner of the square only, and its complement"
        )
    return verdict(problems, hint)
