"""Opening a store: URLs, engines, the schema version check, and errors in one line.

SQLite (one user's file) is created and upgraded on first use. Any other database is the team's: its schema
belongs to an administrator (``nectar-audit store init``), so writers and readers only check that its
version is the one they know, and run no DDL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from nectar_audit.store.schema import HEAD


class StoreError(Exception):
    """A store problem, said in one line; ``transient`` when trying again later may work."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class NotReady(StoreError):
    """The schema is missing or of another version: no write will work until an administrator acts."""


def data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "nectar-audit"


def default_url() -> str:
    return f"sqlite:///{data_dir() / 'history.sqlite'}"


def display(url: str) -> str:
    """The URL as shown to users: never its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "<unparsable URL>"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def one_line(exc: BaseException) -> str:
    """The driver's own message (e.g. PostgreSQL's), first line, without SQLAlchemy's SQL and links."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(orig).__name__
    return text if len(text) < 500 else text[:500] + "…"


def transient(exc: BaseException) -> bool:
    """Worth retrying: the server is unreachable, starting, full, or a transaction lost a race."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        code = getattr(getattr(exc, "orig", None), "sqlstate", None)
        # 42xxx / 28xxx (syntax, privileges, authentication) are no better the second time
        return not (isinstance(code, str) and code[:2] in ("42", "28"))
    return False


def make_engine(url: str) -> sa.engine.Engine:
    args: dict[str, object] = {}
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise StoreError(f"{url!r} is not a database URL (e.g. postgresql+psycopg://audit@db.example.org/audit "
                         "or sqlite:////var/lib/nectar-audit/history.sqlite)") from exc
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db and db != ":memory:":
            _private_file(Path(db))
        args["timeout"] = 30
    elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        args["connect_timeout"] = 10  # an unreachable server: fail (and keep the run) within seconds
    try:
        # One connection per command, closed after: no pool lingers in a short-lived process.
        return sa.create_engine(url, poolclass=NullPool, connect_args=args)
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot use store {display(url)}: {one_line(exc)}") from exc


def schema_version(conn: sa.engine.Connection) -> str | None:
    """The Alembic revision of the store, "legacy" for a store written before versions, None if empty."""
    names = set(sa.inspect(conn).get_table_names())
    if "alembic_version" in names:
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return "legacy" if "runs" in names else None


def _version(conn: sa.engine.Connection) -> str | None:
    if conn.dialect.name == "sqlite":
        if not sa.inspect(conn).has_table("alembic_version"):
            return "legacy" if sa.inspect(conn).has_table("runs") else None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    # Not the inspector: a writer may not read the catalogue's other tables. One SELECT it is granted.
    try:
        with conn.begin_nested():
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.ProgrammingError as exc:
        if getattr(getattr(exc, "orig", None), "sqlstate", None) != "42P01":  # undefined_table
            raise
    if conn.dialect.name == "postgresql":  # to_regclass: no privilege on the table needed
        legacy = conn.execute(sa.text("SELECT to_regclass('runs') IS NOT NULL")).scalar()
    else:
        legacy = sa.inspect(conn).has_table("runs")
    return "legacy" if legacy else None


def check_version(conn: sa.engine.Connection, url: str) -> None:
    version = _version(conn)
    if version == HEAD:
        return
    init = f"nectar-audit store init {display(url)}"
    if version is None:
        raise NotReady(f"store {display(url)} is not initialised: an administrator runs `{init}`")
    if version.isdigit() and int(version) > int(HEAD):
        raise NotReady(f"store {display(url)} has schema version {version}, newer than this nectar-audit knows "
                       f"({HEAD}): upgrade nectar-audit")
    raise NotReady(f"store {display(url)} has schema version {version}, this nectar-audit needs {HEAD}: "
                   f"an administrator runs `{init}`")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def open_store(url: str) -> sa.engine.Engine:
    """An engine on a store of the current schema version. A SQLite file is created or upgraded here (it
    is one user's, who is its administrator); any other store must have been set up by `store init`."""
    engine = make_engine(url)
    try:
        if is_sqlite(url):
            database = engine.url.database or ""
            with engine.connect() as conn:
                current = _version(conn)
            if current != HEAD:
                lock = Path(f"{database}.lock") if database and database != ":memory:" else None
                with _file_lock(lock) if lock else contextlib.nullcontext():
                    upgrade(engine, url)
        else:
            with engine.connect() as conn:
                check_version(conn, url)
    except StoreError:
        engine.dispose()
        raise
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open store {display(url)}: {one_line(exc)}", transient(exc)) from exc
    return engine


def _private_file(path: Path) -> None:
    """A single user's history: its directories (those created here) 0700, the file 0600, created before
    SQLite opens it (SQLite would create it with the umask: 0644, readable by every user)."""
    missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


MIGRATIONS = Path(__file__).with_name("migrations")
# Serialises concurrent `store init`s on PostgreSQL (transactional DDL would make the loser fail).
LOCK_KEY = 0x6E61_6175_6469_74


def _alembic_config(conn: sa.engine.Connection) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: sa.engine.Engine, url: str) -> tuple[str | None, str]:
    """Bring the schema to HEAD in one transaction: (version before, version after)."""
    from alembic import command

    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
            before = schema_version(conn)
            if before is not None and before != "legacy" and before.isdigit() and int(before) > int(HEAD):
                raise StoreError(f"store {display(url)} has schema version {before}, newer than this "
                                 f"nectar-audit knows ({HEAD}): upgrade nectar-audit")
            if before != HEAD:
                command.upgrade(_alembic_config(conn), "head")  # type: ignore[arg-type]
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot set up store {display(url)}: {one_line(exc)}") from exc
    return before, HEAD
