"""The fleet view (rich): a host x check matrix, then the failures grouped by check.

    Check-Security-01 fails on 7 hosts: web1, web2, ...

Rendered after the per-host reports when a scan covers more than one host.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from nectar_audit.model import HostResult, Status, visible
from nectar_audit.reports.text import STYLE

MAX_NAMES = 25  # hosts named per line before "(+N more)"

CELL = {
    Status.PASS: "ok",
    Status.FAIL: "FAIL",
    Status.WARN: "warn",
    Status.MANUAL: "man",
    Status.NOT_APPLICABLE: "-",
    Status.ERROR: "err",
}


def host_label(host: HostResult) -> str:
    """The operator's name of the host, with the name it reports; made visible (terminal-safe)."""
    if host.hostname and host.hostname != host.target:
        return visible(f"{host.target} ({host.hostname})")
    return visible(host.target)


def check_ids(hosts: Sequence[HostResult]) -> list[str]:
    seen: dict[str, None] = {}
    for host in hosts:
        for check in host.checks:
            seen.setdefault(check.id, None)
    return sorted(seen)


def grouped(hosts: Sequence[HostResult], status: Status) -> list[tuple[str, list[str]]]:
    """(check id, host labels) for every check in ``status`` on some host (waived ones left out),
    most widespread first."""
    groups: dict[str, list[str]] = {}
    for host in hosts:
        for check in host.checks:
            if check.status is status and check.waiver is None:
                groups.setdefault(check.id, []).append(host_label(host))
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f" (+{len(names) - MAX_NAMES} more)" if len(names) > MAX_NAMES else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render(hosts: Sequence[HostResult], console: Console) -> None:
    audited = [h for h in hosts if not h.error]
    broken = [h for h in hosts if h.error]
    failing = [h for h in audited if h.failing]
    head = Text.assemble(
        ("Fleet summary: ", "bold"), _plural(len(hosts), "host"), " · ",
        (f"{len(audited)} audited", "green"), " · ",
        (f"{len(failing)} with failures", "bold red" if failing else "green"), " · ",
        (f"{len(broken)} could not be audited", "magenta" if broken else "dim"),
    )
    console.print(head)
    ids = check_ids(hosts)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, expand=False)
    table.add_column("Host", overflow="fold")
    for cid in ids:
        table.add_column(visible(cid.rsplit("-", 1)[-1]), justify="center", no_wrap=True)
    table.add_column("Result", overflow="fold")
    for host in hosts:
        by_id = {c.id: c for c in host.checks}
        cells: list[Text] = []
        for cid in ids:
            check = by_id.get(cid)
            if check is None:
                cells.append(Text(""))
                continue
            if check.waiver is not None:
                cells.append(Text("waived", style="dim"))
            else:
                cells.append(Text(CELL[check.status], style=STYLE[check.status]))
        if host.error:
            outcome = Text(visible(f"not audited: {host.error}"), style="magenta")
        else:
            counts: dict[Status, int] = {}
            for check in host.checks:
                if check.waiver is None:
                    counts[check.status] = counts.get(check.status, 0) + 1
            parts = [f"{counts[s]} {CELL[s] if s is not Status.FAIL else 'fail'}"
                     for s in (Status.FAIL, Status.ERROR, Status.WARN) if counts.get(s)]
            outcome = Text(", ".join(parts) or "all clear",
                           style="bold red" if counts.get(Status.FAIL) else ("yellow" if parts else "green"))
        table.add_row(escape(host_label(host)), *cells, outcome)
    console.print(table)
    console.print()
    fails = grouped(hosts, Status.FAIL)
    if fails:
        console.print(Text("Failures by check", style="bold"))
        for cid, names in fails:
            console.print(Text.assemble((visible(cid), "bold red"), f" fails on {_plural(len(names), 'host')}: ",
                                        _names(names)))
    errors = grouped(hosts, Status.ERROR)
    if errors:
        console.print(Text("Checks that could not be decided", style="bold"))
        for cid, names in errors:
            console.print(Text.assemble((visible(cid), "magenta"), f" could not be checked on "
                                        f"{_plural(len(names), 'host')}: ", _names(names)))
    if broken:
        console.print(Text(f"Hosts that could not be audited ({len(broken)})", style="bold"))
        for host in broken:
            console.print(Text.assemble(("  " + visible(host.target), "magenta"), ": ", visible(host.error or "")))
    if not fails and not errors and not broken:
        console.print(Text("No failures on any host.", style="green"))
