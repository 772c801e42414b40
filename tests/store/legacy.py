"""The store as nectar-audit wrote it before versions (src/nectar_audit/history.py of 2026-12-06): every
writer ran ``create_all``, hosts were keyed by their target. Kept verbatim so migration tests start from
a database really written that way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from nectar_audit.model import HostResult

_META = sa.MetaData()
RUNS = sa.Table(
    "runs", _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created", sa.String(40), nullable=False),
    sa.Column("tool_version", sa.String(40), nullable=False),
)
HOSTS = sa.Table(
    "run_hosts", _META,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("host", sa.Text, primary_key=True),
    sa.Column("hostname", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)
CHECKS = sa.Table(
    "run_checks", _META,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("host", sa.Text, primary_key=True),
    sa.Column("check_id", sa.String(60), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("waived", sa.Boolean, nullable=False),
)


def save_run(url: str, results: Sequence[HostResult], version: str, now: dt.datetime | None = None) -> int:
    engine = sa.create_engine(url)
    _META.create_all(engine)
    created = (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
    with engine.begin() as conn:
        run_id = int(conn.execute(sa.insert(RUNS).values(created=created, tool_version=version))
                     .inserted_primary_key[0])  # type: ignore[index]
        for host in results:
            conn.execute(sa.insert(HOSTS).values(run_id=run_id, host=host.target, hostname=host.hostname,
                                                 error=host.error))
            for check in host.checks:
                conn.execute(sa.insert(CHECKS).values(
                    run_id=run_id, host=host.target, check_id=check.id, status=check.status.value,
                    summary=check.summary, waived=check.waiver is not None))
    engine.dispose()
    return run_id
