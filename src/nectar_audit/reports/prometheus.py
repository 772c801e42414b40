"""Prometheus text exposition for node_exporter's textfile collector.

``nectar_audit_check_status{target,hostname,check,status}`` is one-hot: for every check, one sample per possible
status, 1 for the check's status and 0 for the others (so an alert on ``status="fail" == 1`` sees a
regression and its recovery). A waived failure stays ``fail``, with
``nectar_audit_check_waived`` 1. Per host: ``nectar_audit_last_run_timestamp_seconds`` (run start),
``nectar_audit_duration_seconds`` and ``nectar_audit_host_up`` (0 when the host could not be audited).

Series are keyed by ``target``, the name the operator gave (command line, inventory, cloud instance):
the audited host controls its own hostname, and keying by it would let one host overwrite (or hide
behind) another's series. The hostname it reports is a separate label, ``hostname`` ("" when unknown).
Only renders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from nectar_audit.model import HostResult, Status, visible


def escape_label(value: str) -> str:
    """Label value escaping of the text format (backslash, double quote and newline), after every other
    control, bidi or undecodable character is made a visible escape (a label value is UTF-8 text)."""
    return visible(value, lines=True).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{escape_label(value)}"' for key, value in labels.items()) + "}"


def _host(host: HostResult) -> dict[str, str]:
    return {"target": host.target, "hostname": host.hostname or ""}


def _timestamp(started: str) -> float | None:
    try:
        when = dt.datetime.fromisoformat(started)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def _number(value: float) -> str:
    return repr(float(value))


def render(hosts: Sequence[HostResult]) -> str:
    status_lines: list[str] = []
    waived_lines: list[str] = []
    up_lines: list[str] = []
    ts_lines: list[str] = []
    duration_lines: list[str] = []
    for host in hosts:
        name = _host(host)
        up_lines.append(f"nectar_audit_host_up{_labels(**name)} {0 if host.error is not None else 1}")
        when = _timestamp(host.started)
        if when is not None:
            ts_lines.append(f"nectar_audit_last_run_timestamp_seconds{_labels(**name)} {_number(when)}")
        duration_lines.append(f"nectar_audit_duration_seconds{_labels(**name)} {_number(host.duration_s)}")
        for check in host.checks:
            current = check.status
            for status in Status:
                value = 1 if status is current else 0
                status_lines.append(
                    f"nectar_audit_check_status{_labels(**name, check=check.id, status=status.value)} {value}")
            waived_lines.append(
                f"nectar_audit_check_waived{_labels(**name, check=check.id)} {1 if check.waiver else 0}")
    out: list[str] = []

    def family(name: str, help_text: str, lines: list[str]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        out.extend(lines)

    family("nectar_audit_check_status",
           "Nectar security checklist check status, one-hot per status (1 = the check's current status).",
           status_lines)
    family("nectar_audit_check_waived", "1 when the check's result is covered by a waiver.", waived_lines)
    family("nectar_audit_host_up", "1 when the host could be audited, 0 when the audit failed.", up_lines)
    family("nectar_audit_last_run_timestamp_seconds", "Unix time the last audit of the host started.", ts_lines)
    family("nectar_audit_duration_seconds", "Seconds the last audit of the host took.", duration_lines)
    return "\n".join(out) + "\n"
