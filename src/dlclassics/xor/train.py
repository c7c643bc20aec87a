"""`xor train`: the three networks trained by gradient descent (Adam, binary cross-entropy)."""

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from dlclassics.core.errors import InputError, diverged
from dlclassics.core.logs import Log, tensorboard
from dlclassics.core.machine import seed_everything
from dlclassics.core.progress import Bar
from dlclassics.core.rundir import CHECKPOINT, RunDir
from dlclassics.core.tables import table
from dlclassics.protocol import Study, Summary
from dlclassics.xor import plots
from dlclassics.xor.config import XorTrainConfig
from dlclassics.xor.data import INPUTS, TARGETS
from dlclassics.xor.model import WEIGHT_NAMES, XorNet, net_name, save_xor
from dlclassics.xor.weights import NetSpec, read_networks

POINTS = ("(0,0)", "(0,1)", "(1,0)", "(1,1)")


def points(net: XorNet) -> tuple[torch.Tensor, torch.Tensor]:
    """The four XOR inputs and their targets, in the network's dtype."""
    dtype = net.out.weight.dtype
    return INPUTS.to(dtype), TARGETS.to(dtype)


def sum_squared_error(net: XorNet) -> float:
    inputs, targets = points(net)
    with torch.no_grad():
        return float(((net(inputs) - targets) ** 2).sum())


def truth_table(net: XorNet) -> list[float]:
    """The network's outputs for (0,0), (0,1), (1,0), (1,1)."""
    with torch.no_grad():
        return net(points(net)[0]).flatten().tolist()


def learned_xor(outputs: list[float]) -> bool:
    return [round(o) for o in outputs] == TARGETS.flatten().int().tolist()


def truth_tables_markdown(results: list) -> str:
    """results.md's truth tables of results that have `k`, `bypass` and `outputs`."""
    rows = [
        {"network": net_name(r.k, r.bypass), "input": point, "output": output}
        for r in results
        for point, output in zip(POINTS, r.outputs, strict=True)
    ]
    return "\n## Truth tables\n\n" + table(
        rows, {"network": "network", "input": "input", "output": "output"}
    )


OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def train(
    net: XorNet,
    epochs: int,
    lr: float,
    optimizer: str = "adam",
    log: Log | None = None,
    bar: Bar | None = None,
) -> list[float]:
    """Full-batch Adam (or SGD) on binary cross-entropy, in the network's dtype; returns the
    loss of every epoch, computed before its step. `bar` counts the epochs."""
    step = OPTIMIZERS[optimizer](net.parameters(), lr=lr)
    inputs, targets = points(net)
    losses = []
    for epoch in range(1, epochs + 1):
        loss = F.binary_cross_entropy(net(inputs), targets)
        step.zero_grad()
        loss.backward()
        step.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):  # before the network is saved
            raise diverged(epoch, losses[-1])
        if log is not None:
            log({"loss": losses[-1]}, epoch)
        if bar is not None and bar.advance():
            bar.show(loss=losses[-1])
    return losses


@dataclass(frozen=True)
class NetTrial:
    """A network: k hidden units, with or without the bypass, and its starting weights where a
    weights file gives them (None: nn.Linear's initialisation from the seed)."""

    k: int
    bypass: bool
    init: NetSpec | None = None

    @property
    def name(self) -> str:
        return net_name(self.k, self.bypass)


@dataclass(frozen=True)
class TrainResult:
    k: int
    bypass: bool
    final_loss: float
    outputs: list[float]
    learned_xor: bool
    weights: dict
    losses: list[float]


def trials(config: XorTrainConfig) -> list[NetTrial]:
    """The networks --k and --bypass name (default: the original's three), each with its
    starting weights from --init's file, which must hold every one of them."""
    nets = [(1, True), (2, False), (4, False)] if config.k is None else [(config.k, config.bypass)]
    if config.init_file is None:
        return [NetTrial(k, bypass) for k, bypass in nets]
    given = {n.name: n for n in read_networks(Path(config.init_file), config.temperature)}
    missing = [net_name(k, bypass) for k, bypass in nets if net_name(k, bypass) not in given]
    if missing:
        raise InputError(
            f"{config.init_file} has no network {', '.join(missing)} (it has {', '.join(given)})"
        )
    return [NetTrial(k, bypass, given[net_name(k, bypass)]) for k, bypass in nets]


def run_trial(
    config: XorTrainConfig, trial: NetTrial, directory: Path, quiet: bool = False
) -> TrainResult:
    """Train one network from the same seed as the others, and save it."""
    seed_everything(config.seed)
    net = XorNet(trial.k, trial.bypass, config.temperature).to(getattr(torch, config.dtype))
    if trial.init is not None:
        net.set_weights(*(getattr(trial.init, name) for name in WEIGHT_NAMES))
    with tensorboard(directory) as log, Bar(trial.name, config.epochs, quiet, unit="epoch") as bar:
        losses = train(net, config.epochs, config.lr, config.optimizer, log, bar)
    save_xor(directory / CHECKPOINT, net, asdict(config))
    outputs = truth_table(net)
    return TrainResult(
        trial.k, trial.bypass, losses[-1], outputs, learned_xor(outputs), net.weights(), losses
    )


def summarize(config: XorTrainConfig, results: list[TrainResult], run: RunDir) -> Summary:
    curves = {net_name(r.k, r.bypass): r.losses for r in results}
    plots.loss_curves(curves, run.plots / "loss_curves.png")
    configs = [{k: v for k, v in asdict(r).items() if k != "losses"} for r in results]
    columns = {"k": "k", "bypass": "bypass", "final loss": "final_loss"}
    columns["learned XOR"] = "learned_xor"
    optimizer = OPTIMIZERS[config.optimizer].__name__  # Adam, SGD
    md = f"# XOR trained ({optimizer}, BCE)\n\n" + table(configs, columns)
    md += truth_tables_markdown(results)
    return Summary({"configs": configs, "loss_curves": curves}, md)


def lines(config: XorTrainConfig, summary: Summary) -> list[str]:
    return [
        f"{net_name(r['k'], r['bypass'])}: final loss {r['final_loss']:.4g}, "
        f"learned XOR: {r['learned_xor']}"
        for r in summary.results["configs"]
    ]


STUDY = Study(trials, run_trial, TrainResult, summarize, lines)
