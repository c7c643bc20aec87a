"""Weights files: a JSON list of networks, as `xor solve --weights` and `xor train --init` read
them (and as the lab's XOR page downloads them): [{k, bypass, hidden_weight, hidden_bias,
out_weight, out_bias}], out_weight holding the bypass weights first, as solutions.py does."""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dlclassics.core.checkpoint import MAX_WEIGHT, check_weights
from dlclassics.core.errors import InputError, first_line
from dlclassics.core.rundir import parse_json, read_regular
from dlclassics.xor.model import XorNet, net_name

# A weights file holds a few small networks: the built-in one is 600 bytes.
MAX_WEIGHTS_BYTES = 2**20


@dataclass(frozen=True)
class NetSpec:
    """One network and its weights. As a trial it carries them, so that a weights file edited
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


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        specs = parse_json(read_regular(path, MAX_WEIGHTS_BYTES, "weights file"))
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InputError(f"cannot read weights file {path}: {first_line(e)}") from e
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise InputError(f"{path}: expected a JSON list of networks like the built-in ones")
    if not specs:
        raise InputError(f"{path}: the list of networks is empty")
    return specs


def checked(spec: dict[str, Any], temperature: float) -> NetSpec:
    """The network `spec` describes, every shape and value checked; InputError otherwise."""
    try:
        net = NetSpec(
            int(spec["k"]),
            bool(spec["bypass"]),
            spec["hidden_weight"],
            spec["hidden_bias"],
            spec["out_weight"],
            float(spec["out_bias"]),
        )
        rows = net.hidden_weight
        # Checked before the network is built: a huge k would allocate gigabytes first.
        if not isinstance(rows, list) or len(rows) != net.k:
            got = f"{len(rows)} rows" if isinstance(rows, list) else f"a {type(rows).__name__}"
            raise InputError(
                f"hidden_weight must have shape ({net.k}, 2) for k={net.k}: {net.k} rows of 2; "
                f"got {got}"
            )
        # The shapes and values checked now, before a run directory exists.
        built = net.network(temperature)
        check_weights(f"the network k={net.k}", built, built.state_dict(), bound=MAX_WEIGHT)
    except KeyError as e:
        raise InputError(f"network description lacks {e}") from e
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: an int of 400 digits
        raise InputError(f"bad weights for k={spec.get('k')}: {e}") from e
    return net


def read_networks(path: Path, temperature: float) -> list[NetSpec]:
    """The networks of a weights file, each checked, no two of the same name."""
    found = [checked(spec, temperature) for spec in _read(path)]
    names = [n.name for n in found]
    if len(set(names)) < len(names):
        raise InputError(f"two networks share a name (k and bypass): {', '.join(names)}")
    return found
