"""Markdown for tickets and wiki pages: an overview table per host, then the failing and warning
findings with their evidence and fix. Every string from a host is escaped (``|``, markdown
punctuation, HTML), so a hostile hostname or file content renders as text. Only renders."""

from __future__ import annotations

import re
from collections.abc import Sequence

from nectar_audit.model import CheckResult, HostResult, Status, visible

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")

_LABEL = {
    Status.PASS: "PASS",
    Status.FAIL: "**FAIL**",
    Status.WARN: "WARN",
    Status.MANUAL: "MANUAL",
    Status.NOT_APPLICABLE: "N/A",
    Status.ERROR: "ERROR",
}


def escape(text: str) -> str:
    """Inline-safe text: HTML entities for ``& < >``, backslash before markdown punctuation and ``|``,
    newlines as spaces (a table cell is one line), other controls, bidi overrides and undecodable bytes as
    visible escapes (``model.visible``)."""
    text = visible(text.replace("\r\n", "\n").replace("\n", " ").replace("\t", " "))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def code_block(text: str) -> str:
    """A fenced block whose fence is longer than any backtick run inside it (content stays literal)."""
    text = visible(text.replace("\r\n", "\n"), lines=True)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _status(check: CheckResult) -> str:
    label = _LABEL[check.status]
    return f"{label} (waived)" if check.waiver is not None else label


def _host_title(host: HostResult) -> str:
    name = host.hostname or host.target
    return escape(name) if name == host.target else f"{escape(name)} \\({escape(host.target)}\\)"


def render(hosts: Sequence[HostResult]) -> str:
    out: list[str] = ["# nectar-audit report", ""]
    for host in hosts:
        out += [f"## {_host_title(host)}", ""]
        if host.os.pretty_name:
            out += [f"OS: {escape(host.os.pretty_name)}", ""]
        if host.error is not None:
            out += [f"**Host could not be audited:** {escape(host.error)}", ""]
            continue
        counts = {s: sum(1 for c in host.checks if c.status is s) for s in Status}
        out += [", ".join(f"{s.value}: {n}" for s, n in counts.items() if n) or "no checks run", ""]
        out += ["| Check | Title | Severity | Status | Summary |", "| --- | --- | --- | --- | --- |"]
        for check in host.checks:
            out.append(f"| {escape(check.id)} | {escape(check.title)} | {escape(check.severity)} "
                       f"| {_status(check)} | {escape(check.summary)} |")
        out.append("")
        attention = [c for c in host.checks if c.status in (Status.FAIL, Status.WARN, Status.ERROR)]
        if attention:
            out += ["### Findings", ""]
        for check in attention:
            out += [f"#### {escape(check.id)}: {escape(check.title)} — {_status(check)}", ""]
            if check.waiver is not None:
                until = f" until {escape(check.waiver.expires)}" if check.waiver.expires else ""
                out += [f"Waived{until}: {escape(check.waiver.reason)}", ""]
            for finding in check.findings:
                if finding.status not in (Status.FAIL, Status.WARN, Status.ERROR):
                    continue
                out += [f"- **{_LABEL[finding.status].strip('*')}**: {escape(finding.message)}"]
                for ev in finding.evidence:
                    out.append(f"  - {escape(ev.source)}: {escape(ev.detail)}")
                if finding.remediation:
                    out += ["", "  Fix:", ""]
                    out += ["  " + line for line in code_block(finding.remediation).split("\n")]
                out.append("")
            hint = check.fix_hint
            if hint:
                out += [f"Automatic fix: {escape(hint)}", ""]
                commands = (check.fix or {}).get("commands_sh")
                if commands:
                    out += [code_block(str(commands)), ""]
    return "\n".join(out).rstrip("\n") + "\n"
