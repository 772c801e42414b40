"""The tables of the current schema version (Alembic revision ``HEAD``); migrations/ builds them.

``runs``: one row per run, ``id`` chosen by the writer (a UUID: a run re-sent from the outbox is stored once),
``seq`` numbered by the database (the "run N" users see), ``stored`` and ``submitted_by`` set by the database
(a writer is not granted those columns, so it cannot back-date a run or pass as another role).
``run_hosts``: one row per host of a run: its identity, the compact ``failing`` map (check id -> summary)
diffs read, and the whole host ``document`` (the JSON report's host object) the fleet view renders.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

HEAD = "0002"
# A document larger than this is refused by PostgreSQL itself (a hostile writer cannot make the fleet
# view read gigabytes); real hosts' documents are tens of kB.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024

NAMING = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

METADATA = sa.MetaData(naming_convention=NAMING)
Document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
When = sa.DateTime(timezone=True)
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite numbers only INTEGER PRIMARY KEY

RUNS = sa.Table(
    "runs", METADATA,
    sa.Column("seq", Seq, sa.Identity(), primary_key=True),
    sa.Column("id", sa.Uuid, nullable=False, unique=True),
    sa.Column("created", When, nullable=False),
    sa.Column("stored", When, nullable=False, server_default=sa.func.current_timestamp()),
    sa.Column("submitted_by", sa.Text, nullable=True),
    sa.Column("tool_version", sa.String(40), nullable=False),
    sa.Column("hosts", sa.Integer, nullable=False),
    sa.Column("failing_hosts", sa.Integer, nullable=False),
)
RUN_HOSTS = sa.Table(
    "run_hosts", METADATA,
    sa.Column("run_id", sa.Uuid, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("run_seq", Seq, nullable=False),
    sa.Column("host_key", sa.String(200), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("hostname", sa.Text, nullable=True),
    sa.Column("machine_id", sa.String(64), nullable=True),
    sa.Column("instance_id", sa.String(64), nullable=True),
    sa.Column("started", When, nullable=True),
    sa.Column("stored", When, nullable=False, server_default=sa.func.current_timestamp()),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("failing", Document, nullable=False),
    sa.Column("document", Document, nullable=False),
    sa.Index(None, "host_key", "run_seq"),  # a host's runs, and the latest run of every host
    sa.Index(None, "run_seq"),  # diff RUN_A RUN_B
    sa.Index(None, "stored"),  # diff --since, prune
    sa.Index(None, "hostname"),  # history HOST
    sa.Index(None, "target"),
)
# The columns a writer may fill; the rest are the database's.
WRITER_COLUMNS = {
    "runs": ("id", "created", "tool_version", "hosts", "failing_hosts"),
    "run_hosts": ("run_id", "idx", "host_key", "target", "hostname", "machine_id", "instance_id", "started",
                  "error", "failing", "document"),
}


def writable(table: sa.Table) -> sa.TableClause:
    """``table`` with only the columns a writer fills, and no primary key SQLAlchemy would fetch (with
    RETURNING or by calling the sequence first, neither of which the writer role may do)."""
    names = WRITER_COLUMNS[table.name]
    return sa.table(table.name, *(sa.column(c.name, c.type) for c in table.columns if c.name in names))
