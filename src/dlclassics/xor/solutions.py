"""Hand-computed weights that solve XOR with a step-like BTU (any small temperature)."""

from typing import Any

# Every pre-activation sits at +-0.5 (or further) from zero, so the BTU saturates as T -> 0.
HAND_WEIGHTS: list[dict[str, Any]] = [
    {
        # h = AND(x1, x2); out = x1 + x2 - 2h: the bypass carries the inputs, h cancels (1, 1).
        "k": 1,
        "bypass": True,
        "hidden_weight": [[1.0, 1.0]],
        "hidden_bias": [-1.5],
        "out_weight": [1.0, 1.0, -2.0],
        "out_bias": -0.5,
    },
    {
        # h1 = OR, h2 = AND; out = h1 AND NOT h2.
        "k": 2,
        "bypass": False,
        "hidden_weight": [[1.0, 1.0], [1.0, 1.0]],
        "hidden_bias": [-0.5, -1.5],
        "out_weight": [1.0, -1.0],
        "out_bias": -0.5,
    },
    {
        # One unit per input pattern (00, 01, 10, 11); out = OR of the units for 01 and 10.
        "k": 4,
        "bypass": False,
        "hidden_weight": [[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]],
        "hidden_bias": [0.5, -0.5, -0.5, -1.5],
        "out_weight": [0.0, 1.0, 1.0, 0.0],
        "out_bias": -0.5,
    },
]
