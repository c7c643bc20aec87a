"""What a config accepts: each field's type and bounds, checked by the config itself.

Every experiment's config dataclass lists its fields' rules in `RULES` and calls `validate` from
`__post_init__`, so a config from the command line and one read back from config.json (--resume)
pass the same checks, and `options.config_option` gives the field's option the same bounds. A
count or size has a stated maximum: a value that cannot fit is refused before anything is
allocated or started.
"""

import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import resource
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import click

from dlclassics.core.errors import InputError

MAX_SEED = 2**63 - 1  # torch.manual_seed takes any int64; negative seeds are refused for clarity
MAX_PARAMETERS = 2**31  # a model's weights, in elements: 8 GiB of float32
# More workers than this only compete for the cores, each with a copy of torch in memory.
MAX_WORKERS = 4 * (os.cpu_count() or 1)
AUTO_DEVICE = "auto"  # CUDA when present, else the CPU
DEVICE_NAME = re.compile(r"cpu|cuda(?::(\d+))?")  # beside AUTO_DEVICE, what --device accepts


def _shown(value: Any, spec: str = "") -> str:
    """`value` for a message: an integer of over 4,300 digits has no str() in Python."""
    if isinstance(value, int) and abs(value) >= 10**100:
        return "a number of over 100 digits"
    return format(value, spec)


class Rule(Protocol):
    def check(self, name: str, value: Any) -> None: ...


Rules = Mapping[str, Rule]


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf: nan passes every comparison-based bound."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


@dataclass(frozen=True)
class Int:
    """An integer from `low` to `high`."""

    low: int
    high: int

    def check(self, name: str, value: Any) -> None:
        if not self.low <= value <= self.high:
            raise InputError(
                f"{name} must be from {self.low:,} to {self.high:,}, got {_shown(value, ',')}"
            )

    @property
    def click_type(self) -> click.ParamType:
        return click.IntRange(self.low, self.high)


@dataclass(frozen=True)
class Real:
    """A finite number from `low` (excluded if `low_open`) to `high`."""

    low: float
    high: float = math.inf
    low_open: bool = False

    def check(self, name: str, value: Any) -> None:
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            number = math.inf
        too_low = number <= self.low if self.low_open else number < self.low
        if not math.isfinite(number) or too_low or number > self.high:
            low = f"> {self.low}" if self.low_open else f">= {self.low}"
            high = f" and <= {self.high}" if math.isfinite(self.high) else ""
            raise InputError(f"{name} must be a finite number {low}{high}, got {_shown(value)}")

    @property
    def click_type(self) -> click.ParamType:
        high = self.high if math.isfinite(self.high) else None
        return FiniteFloatRange(self.low, high, min_open=self.low_open)


@dataclass(frozen=True)
class OneOf:
    choices: tuple[str, ...]

    def check(self, name: str, value: Any) -> None:
        if value not in self.choices:
            raise InputError(f"{name} must be one of {', '.join(self.choices)}, got {value!r}")

    @property
    def click_type(self) -> click.ParamType:
        return click.Choice(self.choices)


@dataclass(frozen=True)
class Items:
    """1 to `most` items, each checked by `item`."""

    item: Rule
    most: int

    def check(self, name: str, value: Any) -> None:
        if not 1 <= len(value) <= self.most:
            raise InputError(f"{name} must hold 1 to {self.most} values, got {len(value)}")
        for v in value:
            self.item.check(name, v)


@dataclass(frozen=True)
class Device:
    """'auto', 'cpu', 'cuda' or 'cuda:N'; whether this machine has it is `resolve_device`'s."""

    def check(self, name: str, value: Any) -> None:
        if value != AUTO_DEVICE and not DEVICE_NAME.fullmatch(value):
            raise InputError(f"{name} must be auto, cpu, cuda or cuda:N, got {value!r}")


@dataclass(frozen=True)
class ExistingPath:
    """A data file or folder that must exist (a run read back may point at moved data)."""

    folder: bool

    def check(self, name: str, value: Any) -> None:
        path = Path(value)
        if not (path.is_dir() if self.folder else path.is_file()):
            kind = "folder" if self.folder else "file"
            raise InputError(f"{name}: no {kind} {value}")


SEED = Int(0, MAX_SEED)
POSITIVE = Real(0, low_open=True)
# Useful learning rates are well below 1; at 1e300 torch's Adam fails with a RuntimeError in its
# update instead of the loss diverging, so a bound is what keeps that one line.
LR = Real(0, 1e3, low_open=True)


def conforms(value: Any, hint: Any) -> bool:
    """Whether `value` (read from JSON, or a config's field) is of type `hint`: a dataclass or
    TypedDict (a dict of exactly its keys), a list or tuple, a dict with string keys, a union, or
    a plain type. An int is a float; a bool is no number (Python's isinstance says otherwise)."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if isinstance(hint, type) and (typing.is_typeddict(hint) or dataclasses.is_dataclass(hint)):
        fields = typing.get_type_hints(hint)
        return (
            isinstance(value, dict)
            and value.keys() == fields.keys()
            and all(conforms(value[k], h) for k, h in fields.items())
        )
    if origin in (list, tuple) or hint in (list, tuple):
        item = args[0] if args else Any
        return isinstance(value, origin or hint) and all(conforms(v, item) for v in value)
    if origin is dict or hint is dict:
        item = args[1] if args else Any
        return isinstance(value, dict) and all(
            isinstance(k, str) and conforms(v, item) for k, v in value.items()
        )
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, hint)


@functools.cache
def _field_types(config_type: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_type)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_type)}


TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    type(None): "null",
}


def _type_name(kind: Any) -> str:
    """The type in config.json's terms: a tuple is a list there, None null."""
    if isinstance(kind, types.UnionType):
        return " or ".join(_type_name(k) for k in typing.get_args(kind))
    if typing.get_origin(kind) is tuple:
        return f"a list, each {_type_name(typing.get_args(kind)[0])}"
    return TYPE_NAMES.get(kind, str(kind))


def validate(config: Any) -> None:
    """Every field of the dataclass `config` of its annotated type and within `config.RULES`."""
    rules: Rules = type(config).RULES
    for name, kind in _field_types(type(config)).items():
        value = getattr(config, name)
        if not conforms(value, kind):
            shown = json.dumps(value, default=repr)  # as config.json writes it
            raise InputError(f"{name} must be {_type_name(kind)}, got {shown}")
        if name in rules and value is not None:
            rules[name].check(name, value)


def check_parameters(what: str, count: int) -> None:
    if count > MAX_PARAMETERS:
        raise InputError(f"{what} would have {count:,} parameters, over {MAX_PARAMETERS:,}")


CGROUP_MEMORY = Path("/sys/fs/cgroup/memory.max")


def memory_limit() -> int:
    """The memory this process may have: the least of the machine's RAM, its address-space limit
    (ulimit -v) and its cgroup's limit (a container's), the last two where they are set."""
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft)
    with contextlib.suppress(OSError, ValueError):  # no cgroup v2, or its "max": no limit
        limits.append(int(CGROUP_MEMORY.read_text()))
    return min(limits)


def check_memory(what: str, nbytes: float) -> None:
    """Refuse what would need more than the memory this process may have."""
    limit = memory_limit()
    if nbytes > limit:
        raise InputError(
            f"{what} would need about {nbytes / 2**30:,.1f} GiB; this process may have "
            f"{limit / 2**30:,.1f} GiB"
        )
