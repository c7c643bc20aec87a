"""`xor solve`: networks with hand-set weights, checked on the four XOR points."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dlclassics.core.checkpoint import MAX_WEIGHT, check_weights
from dlclassics.core.errors import InputError, first_line
from dlclassics.core.logs import tensorboard
from dlclassics.core.machine import seed_everything
from dlclassics.core.rundir import CHECKPOINT, RunDir, parse_json, read_regular
from dlclassics.core.tables import table
from dlclassics.protocol import Study, Summary
from dlclassics.xor.config import SolveConfig
from dlclassics.xor.model import XorNet, net_name, save_xor
from dlclassics.xor.solutions import HAND_WEIGHTS
from dlclassics.xor.train import learned_xor, sum_squared_error, truth_table, truth_tables_markdown

# A weights file holds a few small networks: the built-in one is 600 bytes.
MAX_WEIGHTS_BYTES = 2**20


@dataclass(frozen=True)
class SolveTrial:
    """One network and its weights: the trial carries them, so that a weights file edited
    between two runs in the same folder is not mistaken for a finished trial."""

    k: int
    bypass: bool
    hidden_weight: list[list[float]]
    hidden_bias: list[float]
    out_weight: list[float]
    out_bias: float

    @property
    def name(self) -> str:
        return net_name(self.k, self.bypass)

    def network(self, temperature: float) -> XorNet:
        return XorNet.from_spec(asdict(self), temperature)


@dataclass(frozen=True)
class SolveResult:
    k: int
    bypass: bool
    loss: float
    outputs: list[float]
    weights: dict
    solves_xor: bool


def _read_specs(path: Path) -> list[dict[str, Any]]:
    try:
        specs = parse_json(read_regular(path, MAX_WEIGHTS_BYTES, "weights file"))
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InputError(f"cannot read weights file {path}: {first_line(e)}") from e
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise InputError(f"{path}: expected a JSON list of networks like the built-in ones")
    if not specs:
        raise InputError(f"{path}: the list of networks is empty")
    return specs


def _trial(spec: dict[str, Any], temperature: float) -> SolveTrial:
    try:
        trial = SolveTrial(
            int(spec["k"]),
            bool(spec["bypass"]),
            spec["hidden_weight"],
            spec["hidden_bias"],
            spec["out_weight"],
            float(spec["out_bias"]),
        )
        rows = trial.hidden_weight
        # Checked before the network is built: a huge k would allocate gigabytes first.
        if not isinstance(rows, list) or len(rows) != trial.k:
            got = len(rows) if isinstance(rows, list) else type(rows).__name__
            raise InputError(
                f"hidden_weight must have shape ({trial.k}, 2) for k={trial.k}; got {got}"
            )
        # The shapes and values checked now, before a run directory exists.
        net = trial.network(temperature)
        check_weights(f"the network k={trial.k}", net, net.state_dict(), bound=MAX_WEIGHT)
    except KeyError as e:
        raise InputError(f"network description lacks {e}") from e
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: an int of 400 digits
        raise InputError(f"bad weights for k={spec.get('k')}: {e}") from e
    return trial


def trials(config: SolveConfig) -> list[SolveTrial]:
    """The networks of the weights file (or the built-in ones); InputError on a bad one."""
    specs = _read_specs(Path(config.weights_file)) if config.weights_file else HAND_WEIGHTS
    found = [_trial(spec, config.temperature) for spec in specs]
    names = [t.name for t in found]
    if len(set(names)) < len(names):
        raise InputError(f"two networks share a name (k and bypass): {', '.join(names)}")
    return found


def run_trial(
    config: SolveConfig, trial: SolveTrial, directory: Path, quiet: bool = False
) -> SolveResult:
    """Evaluate one hand-set network and save it."""
    seed_everything(config.seed)
    net = trial.network(config.temperature)
    outputs, loss = truth_table(net), sum_squared_error(net)
    with tensorboard(directory) as log:
        log({"sse": loss}, 0)
    save_xor(directory / CHECKPOINT, net, asdict(config))
    return SolveResult(trial.k, trial.bypass, loss, outputs, net.weights(), learned_xor(outputs))


def summarize(config: SolveConfig, results: list[SolveResult], run: RunDir) -> Summary:
    configs = [asdict(r) for r in results]
    columns = {"k": "k", "bypass": "bypass", "SSE loss": "loss", "solves XOR": "solves_xor"}
    md = "# XOR by hand\n\n" + table(configs, columns) + truth_tables_markdown(results)
    return Summary({"temperature": config.temperature, "configs": configs}, md)


def _checked(config: SolveConfig) -> SolveConfig:
    trials(config)  # a bad --weights file fails here, before the run directory
    return config


def lines(config: SolveConfig, summary: Summary) -> list[str]:
    out = []
    for r in summary.results["configs"]:
        outputs = [round(o, 4) for o in r["outputs"]]
        out.append(f"{net_name(r['k'], r['bypass'])}: loss {r['loss']:.4g}, outputs {outputs}")
        out.append(f"  weights {json.dumps(r['weights'])}")
    return out


STUDY = Study(trials, run_trial, SolveResult, summarize, lines, prepare=_checked)
