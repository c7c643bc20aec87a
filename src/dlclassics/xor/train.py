"""`xor train`: the three networks trained by gradient descent (Adam, binary cross-entropy)."""

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from dlclassics.core.errors import diverged
from dlclassics.core.logs import Log, tensorboard
from dlclassics.core.machine import seed_everything
from dlclassics.core.progress import Bar
from dlclassics.core.rundir import CHECKPOINT, RunDir
from dlclassics.core.tables import table
from dlclassics.protocol import Study, Summary
from dlclassics.xor import plots
from dlclassics.xor.config import XorTrainConfig
from dlclassics.xor.data import INPUTS, TARGETS
from dlclassics.xor.model import XorNet, net_name, save_xor

POINTS = ("(0,0)", "(0,1)", "(1,0)", "(1,1)")


def sum_squared_error(net: XorNet) -> float:
    with torch.no_grad():
        return float(((net(INPUTS) - TARGETS) ** 2).sum())


def truth_table(net: XorNet) -> list[float]:
    """The network's outputs for (0,0), (0,1), (1,0), (1,1)."""
    with torch.no_grad():
        return net(INPUTS).flatten().tolist()


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


def train(
    net: XorNet, epochs: int, lr: float, log: Log | None = None, bar: Bar | None = None
) -> list[float]:
    """Full-batch Adam on binary cross-entropy; returns the loss of every epoch. `bar` counts
    the epochs."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for epoch in range(1, epochs + 1):
        loss = F.binary_cross_entropy(net(INPUTS), TARGETS)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
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
    """One of the three networks: k hidden units, with or without the bypass."""

    k: int
    bypass: bool

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
    return [NetTrial(1, True), NetTrial(2, False), NetTrial(4, False)]


def run_trial(
    config: XorTrainConfig, trial: NetTrial, directory: Path, quiet: bool = False
) -> TrainResult:
    """Train one network from the same seed as the others, and save it."""
    seed_everything(config.seed)
    net = XorNet(trial.k, trial.bypass, config.temperature)
    with tensorboard(directory) as log, Bar(trial.name, config.epochs, quiet, unit="epoch") as bar:
        losses = train(net, config.epochs, config.lr, log, bar)
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
    md = "# XOR trained (Adam, BCE)\n\n" + table(configs, columns | {"learned XOR": "learned_xor"})
    md += truth_tables_markdown(results)
    return Summary({"configs": configs, "loss_curves": curves}, md)


def lines(config: XorTrainConfig, summary: Summary) -> list[str]:
    return [
        f"{net_name(r['k'], r['bypass'])}: final loss {r['final_loss']:.4g}, "
        f"learned XOR: {r['learned_xor']}"
        for r in summary.results["configs"]
    ]


STUDY = Study(trials, run_trial, TrainResult, summarize, lines)
