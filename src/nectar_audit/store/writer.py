"""Storing runs: inserts only (the writer role may do nothing else), retried with backoff on transient
errors, each run in one transaction under an id chosen here, so a run sent twice is stored once."""

from __future__ import annotations

import datetime as dt
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from nectar_audit.model import HostResult
from nectar_audit.store import codec
from nectar_audit.store.db import StoreError, display, one_line, open_store, transient
from nectar_audit.store.schema import RUN_HOSTS, RUNS, writable

RETRY_SECONDS = 20.0  # how long a writer keeps trying before the run goes to the outbox
_FIRST_DELAY, _MAX_DELAY = 0.05, 2.0


class RunRejected(StoreError):
    """The store refuses this run itself (too large, malformed): retrying it will not help."""


@dataclass
class Run:
    id: uuid.UUID
    created: dt.datetime
    tool_version: str
    hosts: list[dict[str, Any]]  # the JSON report's host objects

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "created": self.created.isoformat(), "tool_version": self.tool_version,
                "hosts": self.hosts}

    @classmethod
    def from_json(cls, data: Any) -> Run:
        if not isinstance(data, dict) or not isinstance(data.get("hosts"), list):
            raise ValueError("not a stored run")
        created = codec.parse_time(data.get("created"))
        if created is None or not isinstance(data.get("tool_version"), str):
            raise ValueError("a stored run without its time or version")
        if not all(isinstance(h, dict) for h in data["hosts"]):
            raise ValueError("a stored run whose hosts are not JSON objects")
        return cls(uuid.UUID(str(data.get("id"))), created, data["tool_version"], data["hosts"])


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """``value`` with the characters PostgreSQL's JSON refuses (NUL, lone surrogates) replaced by U+FFFD:
    a hostile string on one host must not make a whole fleet's run unstorable."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def new_run(results: Sequence[HostResult], version: str, now: dt.datetime | None = None) -> Run:
    created = codec.parse_time(now or dt.datetime.now(dt.timezone.utc))
    assert created is not None
    return Run(uuid.uuid4(), created, version, [storable(r.to_json()) for r in results])


def _insert(conn: sa.engine.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    return None


def insert_run(conn: sa.engine.Connection, run: Run) -> int | None:
    """Insert ``run`` in the caller's transaction: its number, or None when it was already stored."""
    docs = [storable(doc) for doc in run.hosts]  # also runs kept in an outbox by an older version
    failing = [codec.failing(doc) for doc in docs]
    values = {"id": run.id, "created": run.created, "tool_version": run.tool_version[:40],
              "hosts": len(docs), "failing_hosts": sum(1 for f in failing if f)}
    insert = _insert(conn)
    if insert is None:  # another database: no ON CONFLICT, so look first (its writers are trusted)
        if conn.execute(sa.select(RUNS.c.seq).where(RUNS.c.id == run.id)).first() is not None:
            return None
        seq = conn.execute(sa.insert(RUNS).values(values)).inserted_primary_key[0]  # type: ignore[index]
    else:
        # No conflict target: naming one needs SELECT on it, which the writer role does not have.
        result = conn.execute(insert(writable(RUNS)).values(values).on_conflict_do_nothing()
                              .execution_options(preserve_rowcount=True))
        if result.rowcount == 0:
            return None
        if conn.dialect.name == "postgresql":
            seq = conn.execute(sa.text("SELECT currval(pg_get_serial_sequence('runs', 'seq'))")).scalar()
        else:
            seq = result.lastrowid
    rows = []
    for idx, (doc, fails) in enumerate(zip(docs, failing)):
        ident = codec.identity(doc)
        row = {"run_id": run.id, "idx": idx, "host_key": ident.key, "target": ident.target,
               "hostname": ident.hostname, "machine_id": ident.machine_id, "instance_id": ident.instance_id,
               "started": codec.parse_time(doc.get("started")) or run.created,
               "error": doc.get("error") if isinstance(doc.get("error"), str) else None,
               "failing": fails, "document": doc}
        if conn.dialect.name != "postgresql":
            row["run_seq"] = seq  # PostgreSQL fills it from the sequence itself: a writer cannot choose it
        rows.append(row)
    if rows:
        table = writable(RUN_HOSTS) if conn.dialect.name == "postgresql" else RUN_HOSTS
        conn.execute(sa.insert(table), rows)
    return int(seq)


class Sender:
    """Sends runs to one store, retrying transient errors for up to ``retry_seconds`` per run."""

    def __init__(self, url: str, retry_seconds: float | None = None) -> None:
        self.url = url
        self.retry_seconds = RETRY_SECONDS if retry_seconds is None else retry_seconds
        self._engine: sa.engine.Engine | None = None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _attempt(self, run: Run) -> int | None:
        if self._engine is None:
            self._engine = open_store(self.url)
        try:
            with self._engine.begin() as conn:
                return insert_run(conn, run)
        except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
            raise RunRejected(f"store {display(self.url)} refused run {run.id}: {one_line(exc)}") from exc
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot store run in {display(self.url)}: {one_line(exc)}", transient(exc)) from exc

    def send(self, run: Run) -> int | None:
        """Store ``run``: its number, or None if the store already had it. Raises StoreError."""
        deadline = time.monotonic() + self.retry_seconds
        delay = _FIRST_DELAY
        while True:
            try:
                return self._attempt(run)
            except StoreError as exc:
                if not exc.transient or time.monotonic() + delay > deadline:
                    raise
            # Full jitter: a fleet whose writers all failed at once does not come back at once.
            time.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, _MAX_DELAY)

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
