"""JUnit XML for CI pipelines: a <testsuite> per host, a <testcase> per check.

fail -> <failure>, error -> <error>, not_applicable -> <skipped>; a host that could not be audited
(``HostResult.error``) becomes one testcase carrying an <error>. Pass, warn and manual are passing
testcases (warn/manual keep their summary in <system-out>). A waived failure is a passing testcase
whose <system-out> names the waiver. Only renders: statuses come from the results.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from nectar_audit.model import CheckResult, HostResult, Status, visible

_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")


def _clean(text: str) -> str:
    # XML 1.0 cannot carry most control characters, even as character references, nor an undecodable
    # byte of a file name: each is written as a visible escape (\x1b, \xff), so nothing is lost.
    return visible(text, lines=True)


def _details(check: CheckResult) -> str:
    lines: list[str] = []
    for finding in check.findings:
        lines.append(f"[{finding.status.value}] {finding.message}")
        for ev in finding.evidence:
            lines.append(f"  {ev.source}: {ev.detail}")
        if finding.remediation:
            lines.append(f"  fix: {finding.remediation}")
    if check.waiver is not None:
        until = f" (until {check.waiver.expires})" if check.waiver.expires else ""
        lines.append(f"waived: {check.waiver.reason}{until}")
    return _clean("\n".join(lines))


def _suite_name(host: HostResult) -> str:
    return _clean(host.hostname or host.target or "unknown")


def _testcase(suite: ET.Element, host: HostResult, check: CheckResult) -> str:
    case = ET.SubElement(suite, "testcase", {
        "name": _clean(f"{check.id} {check.title}"),
        "classname": _clean(f"nectar_audit.{host.target}"),
        "time": "0",
    })
    status = check.status
    summary = _clean(check.summary)
    if check.waiver is None and status is Status.FAIL:
        el = ET.SubElement(case, "failure", {"message": summary, "type": _clean(f"severity:{check.severity}")})
        el.text = _details(check)
        return "failure"
    if status is Status.ERROR:
        el = ET.SubElement(case, "error", {"message": summary, "type": "error"})
        el.text = _details(check)
        return "error"
    if status is Status.NOT_APPLICABLE:
        ET.SubElement(case, "skipped", {"message": summary})
        return "skipped"
    out = ET.SubElement(case, "system-out")
    out.text = f"{status.value}: {summary}\n{_details(check)}"
    return "passed"


def to_element(hosts: Sequence[HostResult]) -> ET.Element:
    root = ET.Element("testsuites", {"name": "nectar-audit"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for index, host in enumerate(hosts):
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite = ET.SubElement(root, "testsuite", {"name": _suite_name(host)})
        if host.error is not None:
            case = ET.SubElement(suite, "testcase", {
                "name": "host audit", "classname": _clean(f"nectar_audit.{host.target}"), "time": "0",
            })
            el = ET.SubElement(case, "error", {"message": _clean(host.error), "type": "host-error"})
            el.text = _clean(host.error)
            counts["tests"] += 1
            counts["errors"] += 1
        for check in host.checks:
            kind = _testcase(suite, host, check)
            counts["tests"] += 1
            if kind == "failure":
                counts["failures"] += 1
            elif kind == "error":
                counts["errors"] += 1
            elif kind == "skipped":
                counts["skipped"] += 1
        suite.set("tests", str(counts["tests"]))
        suite.set("failures", str(counts["failures"]))
        suite.set("errors", str(counts["errors"]))
        suite.set("skipped", str(counts["skipped"]))
        suite.set("time", f"{host.duration_s:.3f}")
        suite.set("id", str(index))
        suite.set("hostname", _suite_name(host))
        if _TIMESTAMP.match(host.started):
            suite.set("timestamp", host.started[:19])
        for key in totals:
            totals[key] += counts[key]
    for key, value in totals.items():
        if key != "skipped":
            root.set(key, str(value))
    root.set("time", f"{sum(h.duration_s for h in hosts):.3f}")
    return root


def render(hosts: Sequence[HostResult]) -> str:
    root = to_element(hosts)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
