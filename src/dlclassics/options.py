"""Command-line options: those of a config's fields (`Option`), and those every command shares.

Nothing here imports torch: building the commands, and `--help`, stays fast.
"""

import dataclasses
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from dlclassics.core.bounds import AUTO_DEVICE, MAX_WORKERS, Items
from dlclassics.core.errors import InputError
from dlclassics.scale import Scale, check_url

C = TypeVar("C")
DEVICE_HELP = f"'cpu', 'cuda', 'cuda:1', ... ('{AUTO_DEVICE}': CUDA when present)."


def config_option(config_type: type, name: str, *decls: str, **kwargs: Any) -> Callable:
    """A click option for field `name` of a config dataclass, with that field's default and,
    unless given a type or callback, the bounds of its rule (`config_type.RULES`): the dataclass
    is the one place a default or a bound lives. A tuple default shows as "a,b"."""
    field = {f.name: f for f in dataclasses.fields(config_type)}[name]
    default = field.default
    if isinstance(default, tuple):
        default = ",".join(str(v) for v in default)
    rule = getattr(config_type, "RULES", {}).get(name)
    if "type" not in kwargs and "callback" not in kwargs:
        if isinstance(rule, Items):
            kwargs["callback"] = comma_list(rule.item.click_type)
        elif hasattr(rule, "click_type"):
            kwargs["type"] = rule.click_type
    decls = decls or ("--" + name.replace("_", "-"),)
    kwargs.setdefault("show_default", default is not None)
    return click.option(*decls, name, default=default, **kwargs)


class Option:
    """The option of config field `field`: its help, its declarations (default: --field-name)
    and click's other settings (a type, a callback, is_flag); default and bounds come from the
    config (`config_option`)."""

    def __init__(self, field: str, help: str, *decls: str, **settings: Any) -> None:
        self.field, self.help, self.decls, self.settings = field, help, decls, settings

    def decorate(self, config_type: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return config_option(config_type, self.field, *self.decls, help=self.help, **self.settings)

    def argv(self, value: Any) -> list[str]:
        """The command-line words that set the field to `value`."""
        decl = self.decls[0] if self.decls else "--" + self.field.replace("_", "-")
        if "/" in decl:  # --extra/--no-extra
            on, off = decl.split("/")
            return [on if value else off]
        if self.settings.get("is_flag"):
            return [decl] if value else []
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        return [decl, str(value)]


def absolute(path: str | Path | None) -> str | None:
    """A data path made absolute, so that the config.json it goes into is read the same from any
    folder; "" and None (no path: the default data) stay as they are."""
    return str(Path(path).resolve()) if path else path


def absolute_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """`absolute` as a click callback, for a data path option."""
    return absolute(value)


def make_config(config_type: type[C], params: Mapping[str, Any], **overrides: Any) -> C:
    """The config from a command's parameters (those that are fields), lists made tuples; the
    config checks itself (`dlclassics.core.bounds`)."""
    names = {f.name for f in dataclasses.fields(config_type)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if k in names}
    return config_type(**(values | overrides))


OUT = click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Run directory (default: a fresh timestamped folder under runs/).",
)
QUIET = click.option("--quiet", is_flag=True, help="No progress bars (the results still print).")


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--out and --quiet, in that order on --help."""
    return OUT(QUIET(f))


def run_options(config_type: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--out, --seed (the config's default) and --quiet, in that order on --help."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        return OUT(config_option(config_type, "seed", help="Random seed.")(QUIET(f)))

    return decorate


def check_scale(scale: Scale, out: Path | None) -> None:
    """A UsageError for the --storage/--study-name/--workers/--no-wait that mean nothing."""
    if scale.storage is not None and out is None:
        raise click.UsageError("--storage needs --out: every worker writes one run directory")
    if not scale.wait and (scale.storage is None or scale.workers is not None):
        raise click.UsageError("--no-wait is for one worker on --storage, without --workers")
    if scale.study_name is not None and not scale.shared:
        raise click.UsageError("--study-name is for --storage or --workers")


def checked_storage(ctx: click.Context, param: click.Parameter, url: str | None) -> str | None:
    """A --storage callback: the URL checked as the options are read, before any data is
    loaded or run directory made (`scale.check_url`; nothing is opened)."""
    if url is not None:
        check_url(url)
    return url


def storage_option(
    help: str = "Share the trials with every worker started on this database "
    "(sqlite:///FILE, postgresql://USER:PASSWORD@HOST/DB); needs the `scale` extra.",
    required: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--storage, its URL checked as the options are read (`checked_storage`). It is never in a
    config: a database URL may hold a password, which config.json must not."""
    return click.option("--storage", callback=checked_storage, required=required, help=help)


def study_name_option(
    help: str, required: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--study-name: a shared study's name in its --storage."""
    return click.option("--study-name", required=required, help=help)


def scale_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--storage, --study-name and --workers (docs/scale.md), given to the command as one
    `scale` argument (a Scale); the command must also take --out."""

    @functools.wraps(f)
    def command(
        *args: Any,
        storage: str | None,
        study_name: str | None,
        workers: int | None,
        wait: bool,
        **kwargs: Any,
    ) -> Any:
        scale = Scale(storage, study_name, workers, wait)
        check_scale(scale, kwargs["out"])
        return f(*args, scale=scale, **kwargs)

    options = [
        storage_option(),
        study_name_option("The study's name in --storage (default: the command, e.g. mnist-cnn)."),
        click.option(
            "--workers",
            type=click.IntRange(1, MAX_WORKERS),
            help="Run the trials in this many processes here (each with 1/N of the threads; "
            "one per trial at most), on --storage or an SQLite file in the run directory.",
        ),
        click.option(
            "--wait/--no-wait",
            default=True,
            help="With --storage: --no-wait leaves once no trial is waiting, instead of staying "
            "to rerun the trial of a worker that dies (`reproduce` moves on to its next part).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def resume_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--resume DIR: continue a run, interrupted or killed, with its own settings."""
    return click.option(
        "--resume",
        type=click.Path(path_type=Path, file_okay=False, exists=True),
        help="Continue the interrupted or killed run in this directory, with its settings "
        "(other options are ignored); finished trials are kept.",
    )(f)


def resumed_config(config_type: type[C], command: str, directory: Path) -> C:
    """The config a `command` run in `directory` was started with (for --resume): every field,
    no other, each checked as the command line's would be."""
    from dlclassics.core.rundir import CONFIG, read_config

    saved = read_config(directory, command)
    source = Path(directory) / CONFIG
    names = [f.name for f in dataclasses.fields(config_type)]
    unknown = [k for k in saved if k not in names]
    missing = [k for k in names if k not in saved]
    if unknown or missing:
        what = f"unknown setting {unknown[0]!r}" if unknown else f"no setting {missing[0]!r}"
        other = "a newer" if unknown else "an older"
        raise InputError(f"{source}: {what}: the run was written by {other} version of dlclassics")
    try:
        return make_config(config_type, saved)
    except InputError as e:
        raise InputError(f"{source}: {e}") from None


def device_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--device, for the commands that load a model rather than train one."""
    return click.option("--device", default=AUTO_DEVICE, show_default=True, help=DEVICE_HELP)(f)


def machine_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--bf16/--no-bf16 and --device: where a command computes, decided on the machine that runs
    it (`core.machine.Machine`), never among its settings."""
    f = device_option(f)
    return click.option(
        "--bf16/--no-bf16",
        default=None,
        help="bfloat16 autocast (default: on where the device computes bf16 natively).",
    )(f)


def comma_list(
    item: click.ParamType,
) -> Callable[[click.Context, click.Parameter, str], list]:
    """A click callback turning "0.1,0.01" (or "a,b") into [0.1, 0.01], each value checked by
    `item` (the click type of a `bounds` rule)."""

    def parse(ctx: click.Context, param: click.Parameter, value: str) -> list:
        words = [v.strip() for v in value.split(",")]
        if not any(words):
            raise click.BadParameter(f"expected a comma-separated list, got {value!r}")
        if "" in words:  # "2,,4": a value left out, more likely a typo than meant
            raise click.BadParameter(f"{value!r} has an empty item")
        return [item.convert(v, param, ctx) for v in words]

    return parse
