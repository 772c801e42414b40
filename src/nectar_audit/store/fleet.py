"""The fleet view: the latest run of every host, hosts gone quiet flagged stale, and what changed in the
fleet since a date. Hosts are told apart by their identity (codec.identity), not by their names."""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from nectar_audit.model import HostResult
from nectar_audit.store import codec
from nectar_audit.store.db import StoreError, display, one_line, open_store
from nectar_audit.store.history import _STATE_COLUMNS, HostState, compare, state
from nectar_audit.store.schema import RUN_HOSTS


def _latest(where: Sequence[Any] = ()) -> sa.Subquery:
    """host_key -> the number of its latest run (among the rows matching ``where``)."""
    return (sa.select(RUN_HOSTS.c.host_key, sa.func.max(RUN_HOSTS.c.run_seq).label("seq"))
            .where(*where).group_by(RUN_HOSTS.c.host_key).subquery())


def _like(glob: str) -> str | None:
    """A LIKE pattern matching at least what ``glob`` matches (None: no narrowing in SQL)."""
    if "[" in glob:
        return None
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _age(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"


def describe(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _drop_superseded(rows: dict[str, Any], name: Any, seq: Any) -> dict[str, Any]:
    """A host known only by its names (a store written before hosts had an identity, or a host without a
    machine id) that later reported with an identity under the same names is that host: one entry."""
    named: dict[Any, int] = {}
    for key, row in rows.items():
        if not key.startswith("name:"):
            named[name(row)] = max(named.get(name(row), -1), seq(row))
    return {k: r for k, r in rows.items() if not (k.startswith("name:") and named.get(name(r), -1) > seq(r))}


def latest_hosts(url: str, hosts: Sequence[str] = (), stale_after: dt.timedelta | None = None,
                 now: dt.datetime | None = None) -> list[HostResult]:
    """The latest stored result of every host (matching one of the ``hosts`` globs, on its target or
    hostname), in name order. A host whose last audit is older than ``stale_after`` gets an ``error``
    saying so (every report format shows it; its last results stay below it). Each host's JSON carries
    a ``store`` section: its run, when it was audited and stored, and whether it is stale."""
    now = now or dt.datetime.now(dt.timezone.utc)
    latest = _latest()
    query = (sa.select(RUN_HOSTS.c.host_key, RUN_HOSTS.c.idx, RUN_HOSTS.c.run_seq, RUN_HOSTS.c.started,
                       RUN_HOSTS.c.stored, RUN_HOSTS.c.document)
             .join(latest, sa.and_(RUN_HOSTS.c.host_key == latest.c.host_key, RUN_HOSTS.c.run_seq == latest.c.seq)))
    patterns = [_like(g) for g in hosts]
    if hosts and None not in patterns:
        query = query.where(sa.or_(*(col.like(p, escape="\\") for p in patterns
                                     for col in (RUN_HOSTS.c.target, RUN_HOSTS.c.hostname))))
    engine = open_store(url)
    # host_key -> (run number, index in the run, started, stored, host): each document becomes a HostResult
    # as it streams in, so the raw JSON of a 10,000-host fleet is never held whole.
    latest_of: dict[str, tuple[int, int, Any, Any, HostResult]] = {}
    try:
        with engine.connect() as conn:
            for row in conn.execution_options(yield_per=200).execute(query):
                have = latest_of.get(row.host_key)
                if have is None or row.idx > have[1]:
                    latest_of[row.host_key] = (row.run_seq, row.idx, row.started, row.stored,
                                               codec.from_document(row.document))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot read store {display(url)}: {one_line(exc)}") from exc
    finally:
        engine.dispose()
    latest_of = _drop_superseded(latest_of, lambda r: (r[4].target, r[4].hostname), lambda r: int(r[0]))
    out: list[HostResult] = []
    for key, (seq, _, started_at, stored_at, host) in latest_of.items():
        if hosts and not any(fnmatch.fnmatchcase(name, g) for g in hosts
                             for name in (host.target, host.hostname or "")):
            continue
        stored = codec.parse_time(stored_at)
        started = codec.parse_time(started_at)
        # The VM says when it ran, the database when it got the run: a clock in the future cannot keep a
        # host fresh, a run held in an outbox is as old as it really is.
        audited = min(t for t in (started, stored) if t is not None) if (started or stored) else None
        stale = bool(stale_after is not None and audited is not None and now - audited > stale_after)
        host.extra["store"] = {"run": seq, "host_key": key,
                               "audited": audited.isoformat(timespec="seconds") if audited else None,
                               "stored": stored.isoformat(timespec="seconds") if stored else None,
                               "stale": stale}
        if stale and audited is not None and stale_after is not None:
            note = (f"stale: no audit stored since {audited.isoformat(timespec='seconds')} "
                    f"({_age(now - audited)} ago; --stale-after {describe(stale_after)})")
            host.error = f"{note}; its last run: {host.error}" if host.error else \
                f"{note}; the results shown are from then"
        out.append(host)
    out.sort(key=lambda h: (h.hostname or h.target, h.target))
    return out


def distinct_names(hosts: Sequence[HostResult]) -> list[HostResult]:
    """Copies keyed by unique display names (hostname, else target), as Prometheus series are keyed by
    ``target``: every VM of a team store audits itself as ``local``, and two VMs both called ``ubuntu`` are
    two hosts, not one duplicated series. Only the clashing names get their identity appended."""
    import dataclasses

    def name(h: HostResult) -> str:
        return h.hostname or h.target

    counts: dict[str, int] = {}
    for h in hosts:
        counts[name(h)] = counts.get(name(h), 0) + 1
    out = []
    for h in hosts:
        if counts[name(h)] > 1:
            key = str(h.extra.get("store", {}).get("host_key", ""))
            h = dataclasses.replace(h, hostname=f"{name(h)} [{key.split(':', 1)[-1][:12]}]")
        out.append(dataclasses.replace(h, target=name(h)))
    return out


@dataclass
class FleetDiff:
    since: dt.datetime
    hosts_then: int
    hosts_now: int
    newly_failing: list[tuple[str, str, str]] = field(default_factory=list)
    fixed: list[tuple[str, str, str]] = field(default_factory=list)
    new_hosts: list[str] = field(default_factory=list)
    gone_hosts: list[str] = field(default_factory=list)


def diff_since(url: str, since: dt.datetime, alive: dt.timedelta) -> FleetDiff:
    """Each host's latest run stored up to ``since`` against its latest run stored after: checks newly
    failing or fixed on any host, hosts first seen since, and hosts gone quiet since (those whose last
    run before ``since`` was within ``alive`` of it: a host that died long before is not news)."""
    engine = open_store(url)
    sides: list[dict[str, HostState]] = []
    try:
        with engine.connect() as conn:
            for where in (RUN_HOSTS.c.stored <= since, RUN_HOSTS.c.stored > since):
                latest = _latest([where])
                rows = conn.execute(sa.select(*_STATE_COLUMNS, RUN_HOSTS.c.idx).join(
                    latest, sa.and_(RUN_HOSTS.c.host_key == latest.c.host_key,
                                    RUN_HOSTS.c.run_seq == latest.c.seq)).order_by(RUN_HOSTS.c.idx))
                sides.append({s.key: s for s in map(state, rows)})
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot read store {display(url)}: {one_line(exc)}") from exc
    finally:
        engine.dispose()
    before, after = sides
    # A host known by name only before (see _drop_superseded) that reports with an identity since.
    by_label = {s.label: k for k, s in after.items() if k not in before and not k.startswith("name:")}
    for key in [k for k in before if k.startswith("name:") and k not in after]:
        if before[key].label in by_label:
            before[by_label[before[key].label]] = before.pop(key)
    newly, fixed, new, _ = compare(before, after)
    gone = sorted(s.label for k, s in before.items()
                  if k not in after and s.when is not None and s.when >= since - alive)
    return FleetDiff(since, len(before), len(after), newly, fixed, new, gone)
