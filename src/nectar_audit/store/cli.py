"""Commands of the history store: ``history``, ``diff``, ``report --store`` and ``store init|flush|prune``.
Registered on the main group by ``register``; heavy imports wait until a command runs."""

from __future__ import annotations

import datetime as dt
import re
import sys
from typing import Any, Callable, NoReturn

import click

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> dt.timedelta:
    match = re.fullmatch(r"\s*(\d{1,6})\s*([smhdw])\s*", text)
    if not match or int(match.group(1)) == 0:
        raise click.BadParameter(f"{text!r} is not a duration like 90d, 2d, 12h or 30m")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.timedelta | None:
    return None if value is None else parse_duration(value)


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """An ISO date or time (local time unless it says otherwise), or a duration back from now (7d)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if re.fullmatch(r"\s*\d+\s*[smhdw]\s*", text):
        return now - parse_duration(text)
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date (2026-12-01, 2026-12-01T08:00) or a duration "
                                 "back from now (7d)", param_hint="--since") from None
    return (when if when.tzinfo else when.astimezone()).astimezone(dt.timezone.utc)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: object) -> str:
    """Text from the store (written by VMs) made harmless for a terminal: no escape sequences."""
    return _CONTROL.sub("\ufffd", str(text))


def _fail(exc: Exception) -> NoReturn:
    click.echo(f"nectar-audit: {safe(exc)}", err=True)
    sys.exit(EXIT_USAGE)


def _url(store: str | None) -> str:
    from nectar_audit.store.db import default_url

    return store or default_url()


STORE_HELP = "Store URL, an SQLAlchemy URL without password (default: the user's SQLite file)."


@click.command("history")
@click.argument("host", required=False)
@click.option("--store", metavar="URL", help=STORE_HELP)
def history_cmd(host: str | None, store: str | None) -> None:
    """List stored runs (with HOST: the runs that audited it, under any of its names: target, hostname,
    machine id or instance id)."""
    from nectar_audit.store import history
    from nectar_audit.store.db import StoreError

    try:
        runs = history.list_runs(_url(store), host)
    except StoreError as exc:
        _fail(exc)
    if not runs:
        click.echo(safe("no runs stored" + (f" for {host}" if host else "")))
    for run in runs:
        click.echo(f"run {run.id}  {run.created}  {run.hosts} host(s), {run.failing_hosts} failing")


def _items(title: str, items: list[tuple[str, str, str]]) -> None:
    click.echo(f"{title}: {len(items)}")
    for host, check, summary in items:
        click.echo(safe(f"  {host}  {check}  {summary}"))


@click.command("diff")
@click.argument("run_a", type=int, required=False)
@click.argument("run_b", type=int, required=False)
@click.option("--since", metavar="DATE",
              help="The whole fleet: each host's latest run now against its latest run at DATE (2026-12-01, "
                   "2026-12-01T08:00, or 7d back from now).")
@click.option("--stale-after", callback=_duration, metavar="DURATION", default="2d", show_default=True,
              help="With --since: a host counts as gone if it reported within this before DATE and not since.")
@click.option("--store", metavar="URL", help=STORE_HELP)
def diff_cmd(run_a: int | None, run_b: int | None, since: str | None, stale_after: dt.timedelta,
             store: str | None) -> None:
    """What changed between two runs (default: the last two), or in the fleet since a date: newly failing,
    fixed, new and vanished hosts. Exit 1 when some check newly fails."""
    from nectar_audit.store.db import StoreError

    try:
        if since is not None:
            if run_a is not None:
                raise click.UsageError("give run numbers or --since, not both")
            from nectar_audit.store.fleet import diff_since

            when = parse_since(since)
            fleet = diff_since(_url(store), when, stale_after)
            click.echo(f"fleet since {when.isoformat(timespec='seconds')}: {fleet.hosts_then} host(s) then, "
                       f"{fleet.hosts_now} reported since")
            newly, fixed, new, gone = fleet.newly_failing, fleet.fixed, fleet.new_hosts, fleet.gone_hosts
        else:
            from nectar_audit.store import history

            diff = history.diff_runs(_url(store), run_a, run_b)
            click.echo(f"run {diff.run_a} -> run {diff.run_b}")
            newly, fixed, new, gone = diff.newly_failing, diff.fixed, diff.new_hosts, diff.vanished_hosts
    except StoreError as exc:
        _fail(exc)
    _items("newly failing", newly)
    _items("fixed", fixed)
    click.echo(safe(f"new hosts: {', '.join(new) or 'none'}"))
    click.echo(safe(f"{'gone' if since else 'vanished'} hosts: {', '.join(gone) or 'none'}"))
    sys.exit(EXIT_FAIL if newly else EXIT_OK)


@click.command("report")
@click.option("--store", metavar="URL", help=STORE_HELP)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html", "junit", "markdown", "prometheus"]),
              default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report here.")
@click.option("--stale-after", callback=_duration, metavar="DURATION", default="2d", show_default=True,
              help="Flag hosts with no audit stored within this (e.g. 36h, 2d, 1w).")
@click.option("--host", "hosts", multiple=True, metavar="GLOB",
              help="Only hosts whose target or hostname matches GLOB (repeatable).")
def report_cmd(store: str | None, fmt: str, output: str | None, stale_after: dt.timedelta,
               hosts: tuple[str, ...]) -> None:
    """The fleet view: the latest run of every host in the store, rendered as `scan` renders a fleet.
    Hosts with no run within --stale-after are flagged stale (as hosts that could not be audited).
    Exit status as for scan."""
    from nectar_audit.store.db import StoreError
    from nectar_audit.store.fleet import distinct_names, latest_hosts

    try:
        results = latest_hosts(_url(store), hosts, stale_after)
    except StoreError as exc:
        _fail(exc)
    if fmt == "prometheus":  # one series per host: names that clash get their identity appended
        results = distinct_names(results)
    if not results:
        click.echo("nectar-audit: no host in the store" + (f" matches {', '.join(hosts)}" if hosts else ""),
                   err=True)
    _FINISH[0](results, False, fmt, output, None)


@click.group("store")
def store_group() -> None:
    """Set up and look after a team's store (PostgreSQL): schema, roles, outbox, retention."""


@store_group.command("init")
@click.argument("url")
@click.option("--writer", metavar="ROLE", help="Create/grant a role that can only add runs (for the VMs).")
@click.option("--reader", metavar="ROLE", help="Create/grant a read-only role (for reports).")
def init_cmd(url: str, writer: str | None, reader: str | None) -> None:
    """Create or upgrade the store's schema (versioned migrations), as its administrator; with --writer
    and --reader, the least-privilege roles (PostgreSQL)."""
    from nectar_audit.store.admin import init
    from nectar_audit.store.db import StoreError, display

    try:
        report = init(url, writer, reader)
    except StoreError as exc:
        _fail(exc)
    if report.before == report.after:
        click.echo(f"store {display(url)}: schema version {report.after}, up to date")
    else:
        was = {None: "empty", "legacy": "the unversioned schema"}.get(report.before, f"version {report.before}")
        click.echo(f"store {display(url)}: schema version {report.after} (was {was})")
    for role, what in ((writer, "writer (INSERT only)"), (reader, "reader (SELECT only)")):
        if role:
            made = " created (LOGIN, no password: set one with psql's \\password)" \
                if role in report.created_roles else ""
            click.echo(f"role {role}: {what}{made}")


@store_group.command("flush")
@click.argument("url", required=False)
def flush_cmd(url: str | None) -> None:
    """Send the runs waiting in this user's outbox (for URL, or for every store), oldest first."""
    from nectar_audit.store.db import StoreError, display
    from nectar_audit.store.outbox import Outbox

    box = Outbox()
    try:
        with box.locked():
            report = box.flush(url)
    except StoreError as exc:
        _fail(exc)
    click.echo(f"sent {report.sent} run(s)" + (f", {report.already} already stored" if report.already else ""))
    for line in report.rejected:
        click.echo(safe(f"nectar-audit: rejected {line}"), err=True)
    for store, why in report.waiting.items():
        click.echo(safe(f"nectar-audit: {box.count(store)} run(s) still waiting for {display(store)}: {why}"),
                   err=True)
    sys.exit(EXIT_USAGE if report.waiting or report.rejected else EXIT_OK)


@store_group.command("prune")
@click.argument("url")
@click.option("--older-than", callback=_duration, metavar="DURATION", required=True,
              help="Delete runs stored longer ago (e.g. 90d).")
def prune_cmd(url: str, older_than: dt.timedelta) -> None:
    """Delete old runs (the administrator's role: writers cannot delete)."""
    from nectar_audit.store.admin import prune
    from nectar_audit.store.db import StoreError

    try:
        runs, hosts = prune(url, older_than)
    except StoreError as exc:
        _fail(exc)
    from nectar_audit.store.fleet import describe

    click.echo(f"deleted {runs} run(s) ({hosts} host record(s)) stored more than {describe(older_than)} ago")


def save(results: list[Any], store: str, version: str, quiet: bool) -> bool:
    """``scan --store``: keep the run (after what waits in the outbox); False when it could not be stored
    now (it waits in the outbox, or, if even that failed, is lost: said on stderr)."""
    from nectar_audit.store.db import StoreError, default_url, display
    from nectar_audit.store.outbox import store_run
    from nectar_audit.store.writer import new_run

    url = default_url() if store == "default" else store
    try:
        outcome = store_run(url, new_run(results, version))
    except StoreError as exc:
        click.echo(safe(f"nectar-audit: {exc}; this run is not stored"), err=True)
        return False
    if outcome.flushed and outcome.flushed.sent and not quiet:
        click.echo(f"nectar-audit: sent {outcome.flushed.sent} earlier run(s) from the outbox", err=True)
    for line in outcome.flushed.rejected if outcome.flushed else ():
        click.echo(safe(f"nectar-audit: rejected {line}"), err=True)
    if outcome.error is None:
        if not quiet:
            click.echo(f"nectar-audit: stored as run {outcome.seq} in {display(url)}", err=True)
        return True
    click.echo(safe(f"nectar-audit: {outcome.error}"), err=True)
    click.echo(f"nectar-audit: the run waits in the outbox {outcome.queued} ({outcome.waiting} waiting); it is "
               "sent with the next run, or by `nectar-audit store flush`", err=True)
    return False


# The CLI's report writer (render, write, exit status), handed over by ``register``: the fleet view renders
# exactly as `scan` does, and this module never imports the CLI that imports it.
_FINISH: list[Callable[..., None]] = []


def register(main: click.Group, finish: Callable[..., None]) -> None:
    """Add history, diff, report and store to ``main``; ``report`` writes through ``finish``."""
    _FINISH[:] = [finish]
    for command in (history_cmd, diff_cmd, report_cmd, store_group):
        main.add_command(command)
