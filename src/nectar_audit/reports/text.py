"""The terminal report (rich): a row per check, then the evidence and fix for every problem.

Every string is passed through ``model.visible`` first: what the audited host sends (its hostname,
PRETTY_NAME, file names, contents quoted in messages) can hold terminal escapes, and rich writes
those as they are."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from nectar_audit.model import CheckResult, HostResult, Status, visible

STYLE = {
    Status.PASS: "green",
    Status.FAIL: "bold red",
    Status.WARN: "yellow",
    Status.MANUAL: "cyan",
    Status.NOT_APPLICABLE: "dim",
    Status.ERROR: "magenta",
}
LABEL = {
    Status.PASS: "PASS",
    Status.FAIL: "FAIL",
    Status.WARN: "WARN",
    Status.MANUAL: "MANUAL",
    Status.NOT_APPLICABLE: "N/A",
    Status.ERROR: "ERROR",
}


def status_text(status: Status) -> Text:
    return Text(LABEL[status], style=STYLE[status])


def render(hosts: Sequence[HostResult], console: Console) -> None:
    for host in hosts:
        render_host(host, console)


def render_host(host: HostResult, console: Console) -> None:
    name = visible(host.hostname or host.target)
    os_name = visible(host.os.pretty_name or host.os.id)
    title = (f"[bold]{escape(name)}[/]  [dim]{escape(visible(host.target))} · {escape(os_name)} · "
             f"{host.duration_s:.2f} s[/]")
    if host.error:
        reason = Text(visible(host.error, lines=True), overflow="fold")
        console.print(Panel(reason, title=title, title_align="left", border_style="red",
                            subtitle="could not be audited"))
        return
    table = Table(show_header=True, header_style="bold", expand=False, box=None, pad_edge=False)
    table.add_column("Check", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Question", overflow="fold")
    table.add_column("Result", overflow="fold")
    for check in host.checks:
        cell = status_text(check.status)
        if check.waiver:
            cell.append(" (waived)", style="dim")
        table.add_row(Text(visible(check.id)), cell, Text(visible(check.title)), Text(visible(check.summary)))
    console.print(Panel(table, title=title, title_align="left"))
    for check in host.checks:
        if check.status in (Status.PASS, Status.NOT_APPLICABLE):
            continue
        console.print(details(check))
    counts: dict[Status, int] = {}
    for check in host.checks:
        counts[check.status] = counts.get(check.status, 0) + 1
    line = Text("Summary: ")
    for status in Status:
        if counts.get(status):
            line.append(f"{counts[status]} ", style="bold")
            line.append_text(status_text(status))
            line.append("  ")
    console.print(line)
    console.print()


def details(check: CheckResult) -> Panel:
    parts: list[Text | Padding] = []
    if check.waiver:
        until = f" until {check.waiver.expires}" if check.waiver.expires else ""
        parts.append(Text(visible(f"Waived{until}: {check.waiver.reason}", lines=True), style="dim"))
    for finding in check.findings:
        if finding.status is Status.PASS and check.status is not Status.PASS:
            continue
        head = Text.assemble(status_text(finding.status), " ", visible(finding.message, lines=True))
        parts.append(head)
        for ev in finding.evidence:
            line = Text.assemble((visible(ev.source), "bold"), ": ", visible(ev.detail, lines=True))
            parts.append(Padding(line, (0, 0, 0, 4)))
        if finding.remediation:
            fix = Text.assemble(("Fix: ", "bold green"), visible(finding.remediation, lines=True))
            parts.append(Padding(fix, (0, 0, 0, 4)))
    hint = check.fix_hint
    if hint:
        parts.append(Text.assemble(("Automatic fix: " if check.fix and check.fix.get("applicable") else "Fix: ",
                                    "bold green"), visible(hint, lines=True)))
    return Panel(Group(*parts), title=f"{escape(visible(check.id))} · {escape(visible(check.title))}",
                 title_align="left", border_style=STYLE[check.status].split()[-1])
