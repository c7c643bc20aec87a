"""Where a study's trials run (`--storage`, `--study-name`, `--workers`), and the database URLs.

SQLAlchemy, which parses the URLs, comes with the `scale` extra: it is imported only when a URL
is given, so a one-process run never needs it.
"""

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from dlclassics.core.errors import InputError

if TYPE_CHECKING:
    import sqlalchemy

EMBEDDED = "study.db"  # the store of --workers (and of tune), in the run directory
URL_FORMS = "sqlite:///FILE or postgresql://USER@HOST/DATABASE"


@dataclass(frozen=True)
class Scale:
    """Where a study's trials run: `--storage`, `--study-name`, `--workers`; all unset, in this
    process one after another. `wait=False` (`--no-wait`): a worker leaves once no trial is
    waiting, instead of staying until the running ones finish."""

    storage: str | None = None
    study_name: str | None = None
    workers: int | None = None
    wait: bool = True

    @property
    def shared(self) -> bool:
        return self.storage is not None or self.workers is not None

    def url(self, root: Path) -> str:
        """The database: --storage, else an SQLite file in the run directory `root`."""
        return self.storage or f"sqlite:///{(Path(root) / EMBEDDED).resolve()}"

    def name(self, default: str) -> str:
        """The study's name in the database: --study-name, else `default` ("mnist cnn" is
        "mnist-cnn")."""
        return self.study_name or default.replace(" ", "-")


ONE_PROCESS = Scale()


def _sqlalchemy() -> ModuleType:
    try:
        import sqlalchemy
    except ImportError:
        raise InputError("--storage needs SQLAlchemy: pip install 'dlclassics[scale]'") from None
    return sqlalchemy


def shown_url(url: str) -> str:
    """The database URL to print, with its password hidden, even where SQLAlchemy cannot parse
    it (then everything between the scheme and the last '@', where a password would be)."""
    sqlalchemy = _sqlalchemy()
    try:
        parsed = sqlalchemy.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        at = url.rfind("@")
        if at < 0:
            return url
        start = url.find("//", 0, at)
        start = start + 2 if start >= 0 else url.find(":", 0, at) + 1
        return url[:start] + "***" + url[at:]
    if "password" in parsed.query:  # libpq takes one there too
        parsed = parsed.update_query_dict({"password": "***"})
    elif parsed.password is None:
        return url  # as given: SQLAlchemy's rendering would escape a path's ':' and such
    return parsed.render_as_string(hide_password=True)


def check_url(url: str) -> "sqlalchemy.URL":
    """`url` parsed, or an InputError saying why no shared study can live there; nothing is
    opened or created, so that bad input is refused before a run starts."""
    if not url:
        raise InputError(f"--storage is empty; give {URL_FORMS}")
    shown = shown_url(url)
    sqlalchemy = _sqlalchemy()
    try:
        parsed = sqlalchemy.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # ValueError: a port that is no number
        raise InputError(f"--storage {shown!r} is not a database URL ({URL_FORMS})") from None
    cannot = f"cannot open storage {shown}"
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):  # the ones installed with `scale`, and tested
        raise InputError(f"{cannot}: {backend} is not a database dlclassics opens ({URL_FORMS})")
    if parsed.port is not None and not 0 < parsed.port < 2**16:
        raise InputError(f"{cannot}: port {parsed.port} is not between 1 and 65535")
    if backend == "sqlite":
        database = parsed.database or ""
        if not database or ":memory:" in database or parsed.query.get("mode") == "memory":
            raise InputError(
                f"{cannot}: an SQLite database in memory is seen by its own process only; "
                "a shared study needs a file (sqlite:///FILE) or a server"
            )
        path = Path(database)
        if path.is_dir():
            raise InputError(f"{cannot}: {path} is a folder, not a database file")
        if not path.parent.is_dir():
            raise InputError(f"{cannot}: folder {path.parent} does not exist")
    return parsed
