"""Gradient training of the XOR networks (Adam, binary cross-entropy)."""

import torch
import torch.nn.functional as F

from dlclassics.xor.data import INPUTS, TARGETS
from dlclassics.xor.model import XorNet


def sum_squared_error(net: XorNet) -> float:
    with torch.no_grad():
        return float(((net(INPUTS) - TARGETS) ** 2).sum())


def truth_table(net: XorNet) -> list[float]:
    """The network's outputs for (0,0), (0,1), (1,0), (1,1)."""
    with torch.no_grad():
        return net(INPUTS).flatten().tolist()


def learned_xor(outputs: list[float]) -> bool:
    return [round(o) for o in outputs] == TARGETS.flatten().int().tolist()


def train(net: XorNet, epochs: int, lr: float) -> list[float]:
    """Full-batch Adam on binary cross-entropy; returns the loss of every epoch."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        loss = F.binary_cross_entropy(net(INPUTS), TARGETS)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
