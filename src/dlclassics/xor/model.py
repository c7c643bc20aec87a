"""The XOR network: 2 inputs, k hidden units, 1 output, optional bypass, BTU activations."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlclassics.core.checkpoint import save_checkpoint
from dlclassics.core.errors import InputError

# The weights of a network as `set_weights` takes them and a weights file holds them.
WEIGHT_NAMES = ("hidden_weight", "hidden_bias", "out_weight", "out_bias")


def net_name(k: int, bypass: bool) -> str:
    """The name of a network and of its trial: k1-bypass, k2, k4."""
    return f"k{k}" + ("-bypass" if bypass else "")


def btu(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """Binary threshold unit 1 / (1 + exp(-x / T)): a step function as T -> 0."""
    return torch.sigmoid(x / temperature)


class XorNet(nn.Module):
    """With bypass, the output layer sees [x1, x2, h1..hk]: inputs first, then hidden units."""

    def __init__(self, k: int, bypass: bool, temperature: float) -> None:
        super().__init__()
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        if temperature <= 0:
            raise InputError(f"temperature must be positive, got {temperature}")
        self.k, self.bypass, self.temperature = k, bypass, temperature
        self.hidden = nn.Linear(2, k)
        self.out = nn.Linear(k + (2 if bypass else 0), 1)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], temperature: float) -> "XorNet":
        """The network a weights spec describes: its `k` and `bypass`, and the weights
        `set_weights` takes (a hand-set network of `solutions`, or one of a --weights file)."""
        net = cls(spec["k"], spec["bypass"], temperature)
        net.set_weights(*(spec[name] for name in WEIGHT_NAMES))
        return net

    def hidden_activations(self, x: torch.Tensor) -> torch.Tensor:
        return btu(self.hidden(x), self.temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden_activations(x)
        if self.bypass:
            h = torch.cat((x, h), dim=1)
        return btu(self.out(h), self.temperature)

    def set_weights(
        self,
        hidden_weight: list[list[float]],
        hidden_bias: list[float],
        out_weight: list[float],
        out_bias: float,
    ) -> None:
        """Set every weight by hand; shapes are checked against this network's k and bypass."""
        expected = {
            "hidden_weight": (self.hidden.weight, (self.k, 2)),
            "hidden_bias": (self.hidden.bias, (self.k,)),
            "out_weight": (self.out.weight, (self.out.in_features,)),
        }
        given = {
            "hidden_weight": hidden_weight,
            "hidden_bias": hidden_bias,
            "out_weight": out_weight,
        }
        with torch.no_grad():
            for name, (param, shape) in expected.items():
                value = torch.as_tensor(given[name], dtype=param.dtype)
                if tuple(value.shape) != shape:
                    raise InputError(
                        f"{name} must have shape {shape} for k={self.k}, "
                        f"bypass={self.bypass}; got {tuple(value.shape)}"
                    )
                param.copy_(value.reshape(param.shape))
            self.out.bias.fill_(float(out_bias))

    def weights(self) -> dict[str, list]:
        return {
            "hidden_weight": self.hidden.weight.tolist(),
            "hidden_bias": self.hidden.bias.tolist(),
            "out_weight": self.out.weight.flatten().tolist(),
            "out_bias": self.out.bias.item(),
        }


def save_xor(path: Path, net: XorNet, config: dict[str, Any]) -> Path:
    model_args = {"k": net.k, "bypass": net.bypass, "temperature": net.temperature}
    return save_checkpoint(path, net, model_args, config)
