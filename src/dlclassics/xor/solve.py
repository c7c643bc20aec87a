"""`xor solve`: networks with hand-set weights, checked on the four XOR points."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from dlclassics.core.logs import tensorboard
from dlclassics.core.machine import seed_everything
from dlclassics.core.rundir import CHECKPOINT, RunDir
from dlclassics.core.tables import table
from dlclassics.protocol import Study, Summary
from dlclassics.xor.config import SolveConfig
from dlclassics.xor.model import net_name, save_xor
from dlclassics.xor.solutions import HAND_WEIGHTS
from dlclassics.xor.train import learned_xor, sum_squared_error, truth_table, truth_tables_markdown
from dlclassics.xor.weights import NetSpec, checked, read_networks


@dataclass(frozen=True)
class SolveResult:
    k: int
    bypass: bool
    loss: float
    outputs: list[float]
    weights: dict
    solves_xor: bool


def trials(config: SolveConfig) -> list[NetSpec]:
    """The networks of the weights file (or the built-in ones); InputError on a bad one."""
    if config.weights_file:
        return read_networks(Path(config.weights_file), config.temperature)
    return [checked(spec, config.temperature) for spec in HAND_WEIGHTS]


def run_trial(
    config: SolveConfig, trial: NetSpec, directory: Path, quiet: bool = False
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
