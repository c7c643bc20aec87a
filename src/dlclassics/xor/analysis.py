"""What a lone hidden unit computes: the Boolean function of its thresholded output."""

from collections import Counter

import torch

from dlclassics.xor.data import INPUTS

# Keyed by the truth table on (0,0), (0,1), (1,0), (1,1).
BOOLEAN_FUNCTIONS = {
    (0, 0, 0, 0): "FALSE",
    (0, 0, 0, 1): "AND",
    (0, 0, 1, 0): "x1 AND NOT x2",
    (0, 0, 1, 1): "x1",
    (0, 1, 0, 0): "NOT x1 AND x2",
    (0, 1, 0, 1): "x2",
    (0, 1, 1, 0): "XOR",
    (0, 1, 1, 1): "OR",
    (1, 0, 0, 0): "NOR",
    (1, 0, 0, 1): "XNOR",
    (1, 0, 1, 0): "NOT x2",
    (1, 0, 1, 1): "x1 OR NOT x2",
    (1, 1, 0, 0): "NOT x1",
    (1, 1, 0, 1): "NOT x1 OR x2",
    (1, 1, 1, 0): "NAND",
    (1, 1, 1, 1): "TRUE",
}


def unit_function(weight: torch.Tensor, bias: float) -> str:
    """The Boolean function of a sigmoid unit read as on (1) where its output exceeds 1/2."""
    on = (INPUTS @ weight.float() + bias) > 0
    return BOOLEAN_FUNCTIONS[tuple(int(b) for b in on.tolist())]


def count_functions(units: list[tuple[torch.Tensor, float]]) -> dict[str, int]:
    return dict(Counter(unit_function(w, b) for w, b in units).most_common())
