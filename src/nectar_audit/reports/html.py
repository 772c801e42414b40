"""One self-contained HTML page (no external assets): a fleet overview matrix (hosts x checks, coloured,
counts per status), a section per host with each check's findings, evidence and copy-ready fix, filters
by status and by check (a little inline JS acting on data attributes), a print style, responsive.

Everything shown is autoescaped by Jinja2; the script reads nothing from the results (it only toggles
elements by their ``data-status``/``data-check`` attributes), so hostile strings stay text.
Only renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jinja2

from nectar_audit import __version__
from nectar_audit.model import HostResult, Status, visible

STATUS_ORDER = (Status.FAIL, Status.ERROR, Status.WARN, Status.MANUAL, Status.PASS, Status.NOT_APPLICABLE)
_LABELS = {
    Status.FAIL: "fail", Status.ERROR: "error", Status.WARN: "warn", Status.MANUAL: "manual",
    Status.PASS: "pass", Status.NOT_APPLICABLE: "n/a",
}


def _finalize(value: Any) -> Any:
    # Control characters are HTML parse errors, bidi overrides reorder what is shown and an undecodable
    # byte of a file name cannot be encoded: all shown as visible escapes (autoescaping follows).
    return visible(value, lines=True) if isinstance(value, str) else value


_ENV = jinja2.Environment(
    finalize=_finalize,
    loader=jinja2.PackageLoader("nectar_audit", "reports"),
    autoescape=True,  # every template, whatever its file name
    undefined=jinja2.StrictUndefined,
)


def _short(check_id: str) -> str:
    return check_id.rsplit("-", 1)[-1] if check_id.startswith("Check-Security-") else check_id


def render(hosts: Sequence[HostResult]) -> str:
    check_ids: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    totals = dict.fromkeys(STATUS_ORDER, 0)
    for host in hosts:
        counts = dict.fromkeys(STATUS_ORDER, 0)
        for check in host.checks:
            check_ids.setdefault(check.id, check.title)
            counts[check.status] += 1
            totals[check.status] += 1
        rows.append({"host": host, "name": host.hostname or host.target,
                     "by_id": {c.id: c for c in host.checks}, "counts": counts})
    ordered = sorted(check_ids.items())
    return _ENV.get_template("report.html.j2").render(
        hosts=list(hosts), rows=rows, check_ids=ordered, short={cid: _short(cid) for cid, _ in ordered},
        statuses=STATUS_ORDER, labels=_LABELS, totals=totals, version=__version__,
    )
