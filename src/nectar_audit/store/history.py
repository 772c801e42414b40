"""Reading the history: runs, one host's runs, and what changed between two runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from nectar_audit.model import HostResult
from nectar_audit.store.db import StoreError, default_url, display, one_line, open_store
from nectar_audit.store.schema import RUN_HOSTS, RUNS

__all__ = ["HistoryError", "RunDiff", "RunInfo", "default_url", "diff_runs", "list_runs", "save_run"]

HistoryError = StoreError


def save_run(url: str, results: Sequence[HostResult], version: str, now: dt.datetime | None = None) -> int:
    """Store one run directly (no outbox): its number."""
    from nectar_audit.store.writer import Sender, new_run

    with Sender(url) as sender:
        seq = sender.send(new_run(results, version, now))
    assert seq is not None  # a new run id is never already stored
    return seq


def _read(url: str) -> sa.engine.Engine:
    return open_store(url)


def _fail(url: str, exc: sa.exc.SQLAlchemyError) -> StoreError:
    text = one_line(exc)
    if "permission denied" in text:
        text += " (a writer role can only add runs: read with the reader role)"
    return StoreError(f"cannot read store {display(url)}: {text}")


@dataclass
class RunInfo:
    id: int
    created: str
    hosts: int
    failing_hosts: int


def _iso(value: Any) -> str:
    from nectar_audit.store.codec import parse_time

    when = parse_time(value)
    return when.isoformat(timespec="seconds") if when else str(value)


def list_runs(url: str, host: str | None = None) -> list[RunInfo]:
    """Every run, oldest first; with ``host``, the runs that audited it (by target, hostname, machine or
    instance id), counting that host only."""
    engine = _read(url)
    try:
        with engine.connect() as conn:
            if host is None:
                rows = conn.execute(sa.select(RUNS.c.seq, RUNS.c.created, RUNS.c.hosts, RUNS.c.failing_hosts)
                                    .order_by(RUNS.c.seq))
                return [RunInfo(r.seq, _iso(r.created), r.hosts, r.failing_hosts) for r in rows]
            # Machine and instance ids through the key that holds them: every branch has an index.
            match = sa.or_(RUN_HOSTS.c.target == host, RUN_HOSTS.c.hostname == host,
                           RUN_HOSTS.c.host_key.in_([host, f"machine:{host}", f"instance:{host}"]))
            keys = sa.select(RUN_HOSTS.c.host_key).where(match).distinct().scalar_subquery()
            # All runs of the hosts so named, even those made under another name (renamed since).
            rows = conn.execute(sa.select(RUN_HOSTS.c.run_seq, RUN_HOSTS.c.started, RUN_HOSTS.c.failing)
                                .where(RUN_HOSTS.c.host_key.in_(keys)).order_by(RUN_HOSTS.c.run_seq))
            out: dict[int, RunInfo] = {}
            for r in rows:
                info = out.setdefault(r.run_seq, RunInfo(r.run_seq, _iso(r.started), 0, 0))
                info.hosts += 1
                info.failing_hosts += bool(r.failing)
            return list(out.values())
    except sa.exc.SQLAlchemyError as exc:
        raise _fail(url, exc) from exc
    finally:
        engine.dispose()


@dataclass
class RunDiff:
    run_a: int
    run_b: int
    newly_failing: list[tuple[str, str, str]] = field(default_factory=list)  # host, check, summary
    fixed: list[tuple[str, str, str]] = field(default_factory=list)
    new_hosts: list[str] = field(default_factory=list)
    vanished_hosts: list[str] = field(default_factory=list)


@dataclass
class HostState:
    """A host as one run saw it: enough to compare, not the whole document."""

    key: str
    label: str
    error: str | None
    failing: dict[str, str]
    when: dt.datetime | None = None


def label(target: str, hostname: str | None) -> str:
    return f"{target} ({hostname})" if hostname and hostname != target else target


def state(row: Any) -> HostState:
    from nectar_audit.store.codec import parse_time

    failing = row.failing if isinstance(row.failing, dict) else {}
    return HostState(row.host_key, label(row.target, row.hostname), row.error,
                     {str(k): str(v) for k, v in failing.items()}, parse_time(row.stored))


def compare(before: dict[str, HostState], after: dict[str, HostState]) -> tuple[
        list[tuple[str, str, str]], list[tuple[str, str, str]], list[str], list[str]]:
    """(newly failing, fixed, new hosts, vanished hosts). A host that could not be audited on either side
    has nothing "fixed" or "newly failing"."""
    newly: list[tuple[str, str, str]] = []
    fixed: list[tuple[str, str, str]] = []
    for key in before.keys() & after.keys():
        a, b = before[key], after[key]
        if a.error is not None or b.error is not None:
            continue
        newly += [(b.label, c, s) for c, s in b.failing.items() if c not in a.failing]
        fixed += [(b.label, c, s) for c, s in a.failing.items() if c not in b.failing]
    return (sorted(newly), sorted(fixed), sorted(after[k].label for k in after.keys() - before.keys()),
            sorted(before[k].label for k in before.keys() - after.keys()))


_STATE_COLUMNS = (RUN_HOSTS.c.host_key, RUN_HOSTS.c.target, RUN_HOSTS.c.hostname, RUN_HOSTS.c.error,
                  RUN_HOSTS.c.failing, RUN_HOSTS.c.stored)


def diff_runs(url: str, run_a: int | None = None, run_b: int | None = None) -> RunDiff:
    """What changed from run A to run B (default: the last two runs)."""
    engine = _read(url)
    try:
        with engine.connect() as conn:
            if run_a is None and run_b is None:
                last = [r.seq for r in conn.execute(sa.select(RUNS.c.seq).order_by(RUNS.c.seq.desc()).limit(2))]
                if len(last) < 2:
                    raise StoreError(f"need two runs to compare, the store has {len(last)}")
                run_b, run_a = last
            elif run_b is None:
                run_b = conn.execute(sa.select(sa.func.max(RUNS.c.seq))).scalar()
            found = {r.seq for r in conn.execute(sa.select(RUNS.c.seq).where(RUNS.c.seq.in_([run_a, run_b])))}
            for rid in (run_a, run_b):
                if rid not in found:
                    raise StoreError(f"no run {rid} in the store")
            assert run_a is not None and run_b is not None
            sides = []
            for rid in (run_a, run_b):
                rows = conn.execute(sa.select(*_STATE_COLUMNS).where(RUN_HOSTS.c.run_seq == rid))
                sides.append({s.key: s for s in map(state, rows)})
    except sa.exc.SQLAlchemyError as exc:
        raise _fail(url, exc) from exc
    finally:
        engine.dispose()
    newly, fixed, new, gone = compare(*sides)
    return RunDiff(run_a, run_b, newly, fixed, new, gone)
