"""History of runs in an SQL database (SQLAlchemy Core): SQLite by default, any SQLAlchemy URL
(e.g. PostgreSQL) when given. Stores what reports render (statuses, summaries, waivers), per run."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from nectar_audit.model import HostResult, Status

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


class HistoryError(Exception):
    pass


def default_url() -> str:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'nectar-audit' / 'history.sqlite'}"


def _engine(url: str) -> sa.engine.Engine:
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(url)
        _META.create_all(engine)
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        raise HistoryError(f"cannot open history store {url}: {exc}") from exc
    return engine


def save_run(url: str, results: Sequence[HostResult], version: str, now: dt.datetime | None = None) -> int:
    engine = _engine(url)
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


@dataclass
class RunInfo:
    id: int
    created: str
    hosts: int
    failing_hosts: int


def list_runs(url: str, host: str | None = None) -> list[RunInfo]:
    engine = _engine(url)
    out: list[RunInfo] = []
    with engine.connect() as conn:
        for run in conn.execute(sa.select(RUNS).order_by(RUNS.c.id)):
            query = sa.select(HOSTS.c.host).where(HOSTS.c.run_id == run.id)
            if host is not None:
                query = query.where(sa.or_(HOSTS.c.host == host, HOSTS.c.hostname == host))
            hosts = [r.host for r in conn.execute(query)]
            if host is not None and not hosts:
                continue
            failing = {r.host for r in conn.execute(
                sa.select(CHECKS.c.host).where(CHECKS.c.run_id == run.id, CHECKS.c.status == Status.FAIL.value,
                                               CHECKS.c.waived.is_(False)))}
            out.append(RunInfo(run.id, run.created, len(hosts), len(failing & set(hosts))))
    engine.dispose()
    return out


@dataclass
class RunDiff:
    run_a: int
    run_b: int
    newly_failing: list[tuple[str, str, str]] = field(default_factory=list)  # host, check, summary
    fixed: list[tuple[str, str, str]] = field(default_factory=list)
    new_hosts: list[str] = field(default_factory=list)
    vanished_hosts: list[str] = field(default_factory=list)


def _failing(conn: sa.engine.Connection, run_id: int) -> dict[tuple[str, str], str]:
    rows = conn.execute(sa.select(CHECKS).where(CHECKS.c.run_id == run_id, CHECKS.c.status == Status.FAIL.value,
                                                CHECKS.c.waived.is_(False)))
    return {(r.host, r.check_id): r.summary for r in rows}


def diff_runs(url: str, run_a: int | None = None, run_b: int | None = None) -> RunDiff:
    """What changed from run A to run B (default: the last two runs)."""
    engine = _engine(url)
    with engine.connect() as conn:
        ids = [r.id for r in conn.execute(sa.select(RUNS.c.id).order_by(RUNS.c.id))]
        if run_a is None and run_b is None:
            if len(ids) < 2:
                raise HistoryError(f"need two runs to compare, the store has {len(ids)}")
            run_a, run_b = ids[-2], ids[-1]
        elif run_b is None:
            run_b = ids[-1] if ids else None
        for rid in (run_a, run_b):
            if rid not in ids:
                raise HistoryError(f"no run {rid} in the store")
        assert run_a is not None and run_b is not None
        rows_a = list(conn.execute(sa.select(HOSTS).where(HOSTS.c.run_id == run_a)))
        rows_b = list(conn.execute(sa.select(HOSTS).where(HOSTS.c.run_id == run_b)))
        hosts_a, hosts_b = {r.host for r in rows_a}, {r.host for r in rows_b}
        # A host that could not be audited in either run has nothing "fixed" or "newly failing".
        audited = {r.host for r in rows_a if r.error is None} & {r.host for r in rows_b if r.error is None}
        fail_a, fail_b = _failing(conn, run_a), _failing(conn, run_b)
    engine.dispose()
    common = hosts_a & hosts_b & audited
    return RunDiff(
        run_a, run_b,
        newly_failing=sorted((h, c, s) for (h, c), s in fail_b.items() if (h, c) not in fail_a and h in common),
        fixed=sorted((h, c, s) for (h, c), s in fail_a.items() if (h, c) not in fail_b and h in common),
        new_hosts=sorted(hosts_b - hosts_a),
        vanished_hosts=sorted(hosts_a - hosts_b),
    )
