"""The run directory every command writes, and the names of its files.

A run directory holds `config.json`, `results.json` (written last: the marker of a finished run),
`results.md`, `plots/` and `trials/<name>/`; a trial's folder holds its `result.json`,
`checkpoint.pt`, the `train_state.pt` of a training under way and its `tensorboard/` logs.

Files are written to a temporary name and renamed into place, so a crash or Ctrl-C never leaves a
half-written file. A run that fails on bad input removes the directory it created. In a torchrun
job only rank 0 writes the run directory.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from dlclassics import __version__
from dlclassics.core import distributed
from dlclassics.core.errors import InputError, first_line

# Of a data file read or downloaded: GitHub serves at most 100 MiB for one file and MNIST's
# largest is 26 MB, so every real one fits, and a server that sends more, a body that inflates
# past it or a huge local file fills neither the disk nor memory.
MAX_DATA_BYTES = 128 * 2**20
# Of what a run writes and reads back besides its checkpoints: config.json, result.json,
# results.md, a plot. The largest is the result.json of an xor train of 10^6 epochs, whose
# losses take about 30 MB.
MAX_RECORD_BYTES = 64 * 2**20

# A run's files and folders,
CONFIG, RESULTS, RESULTS_MD = "config.json", "results.json", "results.md"
PLOTS, TRIALS = "plots", "trials"
# and a trial's.
RESULT, CHECKPOINT, STATE = "result.json", "checkpoint.pt", "train_state.pt"
TENSORBOARD = "tensorboard"


def create_temporary(path: Path) -> tuple[int, Path]:
    """A new file next to `path`, open for writing. Unlike mkstemp's 0600, it is created with
    mode 0666 less the umask, as a plain open() would, so the renamed file has the usual mode."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def _temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _reason(e: OSError) -> str:
    return (e.strerror or first_line(e)).lower()


def make_dir(path: Path) -> Path:
    """`path` as a folder, with its parents; a file in the way or a folder that cannot be made
    (read-only, full) is an InputError naming it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise InputError(f"{blocking} is not a folder") from None
        raise InputError(f"cannot create the folder {path}: {_reason(e)}") from None
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `path` through a temporary file renamed into place; a failure to write (a full
    disk, a read-only folder, a folder in the way) is an InputError naming it, and leaves the
    previous file, if any, and no temporary file."""
    make_dir(path.parent)
    try:
        fd, tmp = create_temporary(path)
    except OSError as e:
        raise InputError(f"cannot write {path}: {_reason(e)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise InputError(f"cannot write {path}: {_reason(e)}") from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    # NaN and infinities are not JSON: what produces them writes null instead.
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes | str) -> Any:
    """JSON as `write_json` writes it: NaN and infinities, and nesting deeper than Python's
    recursion limit, are a ValueError."""
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_regular(path: Path, max_bytes: int, what: str = "", follow: bool = True) -> bytes:
    """The bytes of `path`, a regular file of at most `max_bytes`, else an InputError naming it
    (`what` says what it is: "corpus"). The checks are on the opened file, so a FIFO or device
    swapped in after a look at the path cannot block the open (O_NONBLOCK) or the read (fstat);
    with `follow` false a symbolic link is refused."""
    name = f"{what} {path}".strip()
    too_large = f"{name} is larger than {max_bytes / 2**20:,.0f} MiB"
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        with open(os.open(path, flags), "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InputError(f"{name} is not a regular file")
            if info.st_size > max_bytes:
                raise InputError(too_large)
            # To the end, but not far past max_bytes: a read allocates all it asks for, so one
            # of the size fstat gives, then a MiB at a time (a /proc file's size says 0).
            data = b""
            while len(data) <= max_bytes and (
                chunk := f.read(max(info.st_size + 1 - len(data), 2**20))
            ):
                data += chunk
    except OSError as e:
        raise InputError(f"cannot read {name}: {_reason(e)}") from None
    if len(data) > max_bytes:
        raise InputError(too_large)
    return data


def read_run_file(root: Path, path: Path, max_bytes: int) -> bytes:
    """The bytes of `path`, a regular file inside the run directory `root`, of at most
    `max_bytes`. A symbolic link or a file outside `root` is refused too: the command would
    land what it points to (another user's file, /dev/zero) in the run directory or a report."""
    if path.is_symlink() or not path.resolve().is_relative_to(Path(root).resolve()):
        raise InputError(f"{path} is a symbolic link or lies outside the run directory {root}")
    return read_regular(path, max_bytes, follow=False)


def file_sha256(path: Path) -> str:
    """The sha256 of a data file's bytes: what data a run was trained on."""
    return hashlib.sha256(read_regular(Path(path), MAX_DATA_BYTES)).hexdigest()


class RunDir:
    """A run directory (see the module's docstring for its files)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def plots(self) -> Path:
        return make_dir(self.path / PLOTS)

    def trial(self, name: str) -> Path:
        """The folder of the trial `name`."""
        return self.path / TRIALS / name

    def save_config(self, command: str, config: Any, machine: Any = None) -> None:
        """config.json: the command, the package version, the number of processes (of a torchrun
        job; 1 without), the `machine` (a dataclass: where it computes) if any, and every field
        of `config`."""
        fields = dataclasses.asdict(config)
        processes = distributed.world().size
        record = {"command": command, "version": __version__, "processes": processes}
        if machine is not None:
            record["machine"] = dataclasses.asdict(machine)
        write_json(self.path / CONFIG, record | fields)

    @property
    def finished(self) -> bool:
        """Whether the run wrote its results.json, the marker of a finished run."""
        return (self.path / RESULTS).is_file()

    def save_results(self, results: dict[str, Any], markdown: str) -> None:
        # The markdown goes first: results.json is the marker of a finished run.
        atomic_write_text(self.path / RESULTS_MD, markdown)
        write_json(self.path / RESULTS, results)

    def read(self, name: str) -> bytes:
        """One of the run's files (`RESULTS`, `CONFIG`, ...), by `read_run_file`'s rules."""
        return read_run_file(self.path, self.path / name, MAX_RECORD_BYTES)

    def read_json(self, name: str) -> Any:
        """One of the run's JSON files; a damaged one is an InputError naming it."""
        try:
            return parse_json(self.read(name))
        except ValueError as e:  # UnicodeDecodeError included
            raise InputError(f"{self.path / name} is damaged: {e}") from None

    def read_results(self) -> tuple[dict[str, Any], str]:
        """What a finished run holds: results.json's content and results.md's."""
        try:
            return self.read_json(RESULTS), self.read(RESULTS_MD).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{self.path / RESULTS_MD} is damaged: {e}") from None


# What config.json records beside a run's settings.
RECORDED = ("command", "version", "processes", "machine")


def read_config(path: Path, command: str) -> dict[str, Any]:
    """The settings in the config.json of a `command` run directory (for --resume)."""
    try:
        # Never through a link: a config.json put there names the data the run reads.
        saved = parse_json(read_run_file(path, Path(path) / CONFIG, MAX_RECORD_BYTES))
        if saved.get("command") != command:
            raise ValueError
    except (InputError, ValueError, AttributeError):
        raise InputError(f"{path} is not a '{command}' run directory") from None
    return {k: v for k, v in saved.items() if k not in RECORDED}


def saved_machine(path: Path) -> dict[str, Any] | None:
    """The machine the config.json of the run in `path` records, if any (read after
    `read_config` checked the file)."""
    saved = parse_json(read_run_file(path, Path(path) / CONFIG, MAX_RECORD_BYTES))
    return saved.get("machine")


def default_out(command: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path("runs") / f"{stamp}-{command.replace(' ', '-')}"


def _check_reusable(path: Path, command: str) -> None:
    """A run directory is reused only by the command that made it, so runs never mix."""
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {path} exists and is not a directory")
    # Another worker's config.json still in its temporary file leaves the directory empty here.
    if not path.is_dir() or all(_temporary(p) for p in path.iterdir()):
        return
    try:
        previous = json.loads((path / CONFIG).read_text(encoding="utf-8"))["command"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"--out {path} is a non-empty directory that is not a dlclassics run"
        ) from None
    if previous != command:
        raise InputError(f"--out {path} holds a `dlclassics {previous}` run; choose another folder")


@contextlib.contextmanager
def open_run(out: Path | None, command: str, config: Any, machine: Any = None) -> Iterator[RunDir]:
    """Create (or reuse) the run directory, write config.json from the `config` dataclass (and
    the `machine`), and clean up after bad input. In a torchrun job rank 0 does so, and tells
    the others the path."""

    def create() -> tuple[Path, bool]:
        path = Path(out) if out is not None else default_out(command)
        _check_reusable(path, command)
        created = not path.exists()
        make_dir(path)
        try:
            RunDir(path).save_config(command, config, machine)
        except InputError:  # a full disk, say: no empty run directory is left behind
            if created:
                shutil.rmtree(path, ignore_errors=True)
            raise
        return path, created

    path, created = distributed.from_main(create)
    try:
        yield RunDir(path)
    except InputError:
        # Only while it holds nothing but config.json: another worker of a shared study may
        # already be writing its trials there.
        if created and distributed.is_main() and _only_config(path):
            shutil.rmtree(path, ignore_errors=True)
        raise


def _only_config(path: Path) -> bool:
    return all(p.name == CONFIG or _temporary(p) for p in path.iterdir())
