"""The administrator's side: create or upgrade the schema (Alembic), the PostgreSQL roles, retention."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import sqlalchemy as sa

from nectar_audit.store.db import LOCK_KEY, StoreError, display, make_engine, one_line, open_store, upgrade
from nectar_audit.store.schema import RUN_HOSTS, RUNS, WRITER_COLUMNS

_ROLE = re.compile(r"[a-z_][a-z0-9_$]{0,62}")


def _quote(conn: sa.engine.Connection, name: str) -> str:
    if not _ROLE.fullmatch(name):
        raise StoreError(f"{name!r}: a role name here is lower-case letters, digits and _ (at most 63)")
    return conn.dialect.identifier_preparer.quote_identifier(name)


@dataclass
class InitReport:
    before: str | None
    after: str
    created_roles: list[str] = field(default_factory=list)


def init(url: str, writer: str | None = None, reader: str | None = None) -> InitReport:
    """Create or upgrade the schema, then (PostgreSQL) give ``writer`` INSERT on the writer's columns only
    and ``reader`` SELECT only. Roles are created (LOGIN, no password) when missing; rerunning resets their
    privileges on the store's tables to exactly these."""
    engine = make_engine(url)
    try:
        before, after = upgrade(engine, url)
        report = InitReport(before, after)
        if writer is None and reader is None:
            return report
        if engine.dialect.name != "postgresql":
            raise StoreError("--writer/--reader: roles are PostgreSQL's; a SQLite file is protected by its "
                             "file permissions")
        if writer is not None and writer == reader:
            raise StoreError("the writer and the reader must be two roles")
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
                prep = conn.dialect.identifier_preparer
                database = prep.quote(conn.execute(sa.text("SELECT current_database()")).scalar() or "")
                schema = prep.quote(conn.execute(sa.text("SELECT current_schema()")).scalar() or "public")
                for name in (writer, reader):
                    if name is None:
                        continue
                    quoted = _quote(conn, name)
                    exists = conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = :n"),
                                          {"n": name}).first()
                    if exists is None:
                        conn.execute(sa.text(f"CREATE ROLE {quoted} LOGIN"))
                        report.created_roles.append(name)
                    elif exists.rolsuper:
                        raise StoreError(f"role {name} is a superuser: PostgreSQL would ignore every limit; "
                                         "give a role of its own")
                    elif conn.execute(sa.text("SELECT pg_has_role(:n, tableowner, 'MEMBER') FROM pg_tables "
                                              "WHERE tablename = 'runs' AND schemaname = current_schema()"),
                                      {"n": name}).scalar():
                        raise StoreError(f"role {name} owns the store's tables (or is a member of their owner): "
                                         "it could do anything to them; give a role of its own")
                    conn.execute(sa.text(f"REVOKE ALL ON runs, run_hosts, alembic_version FROM {quoted}"))
                    conn.execute(sa.text(f"REVOKE ALL ON SEQUENCE runs_seq_seq FROM {quoted}"))
                    conn.execute(sa.text(f"GRANT CONNECT ON DATABASE {database} TO {quoted}"))
                    conn.execute(sa.text(f"GRANT USAGE ON SCHEMA {schema} TO {quoted}"))
                    conn.execute(sa.text(f"GRANT SELECT ON alembic_version TO {quoted}"))
                if writer is not None:
                    quoted = _quote(conn, writer)
                    for table, columns in WRITER_COLUMNS.items():
                        conn.execute(sa.text(f"GRANT INSERT ({', '.join(columns)}) ON {table} TO {quoted}"))
                    # nextval for a run's number, currval for its hosts' (the column defaults)
                    conn.execute(sa.text(f"GRANT USAGE ON SEQUENCE runs_seq_seq TO {quoted}"))
                if reader is not None:
                    conn.execute(sa.text(f"GRANT SELECT ON runs, run_hosts TO {_quote(conn, reader)}"))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot set up the roles of {display(url)}: {one_line(exc)}") from exc
        return report
    finally:
        engine.dispose()


def prune(url: str, older_than: dt.timedelta, now: dt.datetime | None = None) -> tuple[int, int]:
    """Delete runs stored more than ``older_than`` ago: (runs, host records) deleted."""
    cutoff = (now or dt.datetime.now(dt.timezone.utc)) - older_than
    engine = open_store(url)
    try:
        with engine.begin() as conn:
            old = sa.select(RUNS.c.id).where(RUNS.c.stored < cutoff)
            hosts = conn.execute(sa.delete(RUN_HOSTS).where(RUN_HOSTS.c.run_id.in_(old))).rowcount
            runs = conn.execute(sa.delete(RUNS).where(RUNS.c.stored < cutoff)).rowcount
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot prune store {display(url)}: {one_line(exc)}") from exc
    finally:
        engine.dispose()
    return runs, hosts
