"""The engine's contract: statuses, error isolation, waivers, the JSON shape."""

from __future__ import annotations

import datetime as dt

from nectar_audit.catalog import Entry
from nectar_audit.checks.base import Check
from nectar_audit.config import Config, WaiverRule
from nectar_audit.engine import judge
from nectar_audit.evidence import Bundle, EvidenceError, Needs
from nectar_audit.facts import Facts
from nectar_audit.model import Evidence, Finding, HostResult, Status, report_json

OS_RELEASE = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'


def _entry(cid: str, run) -> Entry:  # type: ignore[no-untyped-def]
    return Entry(cid, "question?", "mod", Check(cid, "high", run, needs=Needs(), why="w", how="h"))


def _fail(facts: Facts) -> list[Finding]:
    return [
        Finding(Status.PASS, "fine part"),
        Finding(Status.FAIL, "bad part", [Evidence("/etc/x:3", "X yes")], "fix it"),
    ]


def _boom(facts: Facts) -> list[Finding]:
    raise ZeroDivisionError("oops")


def _needs_root(facts: Facts) -> list[Finding]:
    raise EvidenceError("needs root to read /etc/shadow")


def _bundle() -> Bundle:
    b = Bundle("local", "local", True, uid=0)
    b.add_file("/etc/os-release", OS_RELEASE.encode())
    b.add_file("/proc/sys/kernel/hostname", b"vm1\n")
    return b


def test_statuses_errors_and_json_shape() -> None:
    result = HostResult(target="local")
    judge(_bundle(), [_entry("Check-Security-01", _fail), _entry("Check-Security-02", _boom),
                      _entry("Check-Security-09", _needs_root)], Config(), result)
    assert result.hostname == "vm1"
    assert result.os.id == "ubuntu"
    c1, c2, c9 = result.checks
    assert (c1.status, c1.summary) == (Status.FAIL, "bad part")
    assert c2.status is Status.ERROR and "ZeroDivisionError: oops" in c2.summary
    assert (c9.status, c9.summary) == (Status.ERROR, "needs root to read /etc/shadow")
    assert result.failing
    doc = report_json([result], "0.1.0")
    assert doc["schema_version"] == 1
    host = doc["hosts"][0]
    assert set(host) >= {"target", "hostname", "os", "error", "started", "duration_s", "checks"}
    assert host["os"] == {"id": "ubuntu", "version_id": "24.04", "pretty_name": "Ubuntu 24.04.1 LTS"}
    check = host["checks"][0]
    assert set(check) >= {"id", "title", "status", "severity", "summary", "findings"}
    assert check["findings"][1] == {"status": "fail", "message": "bad part",
                                    "evidence": [{"source": "/etc/x:3", "detail": "X yes"}], "remediation": "fix it"}


def test_waivers_apply_per_host_and_expire() -> None:
    today = dt.date(2026, 11, 28)
    cfg = Config(waivers=(
        WaiverRule("Check-Security-01", "accepted risk", host="vm1", expires=dt.date(2027, 1, 1)),
        WaiverRule("Check-Security-02", "old", expires=dt.date(2026, 1, 1)),
        WaiverRule("Check-Security-09", "other host", host="vm2"),
    ))
    result = HostResult(target="local")
    judge(_bundle(), [_entry("Check-Security-01", _fail), _entry("Check-Security-02", _fail),
                      _entry("Check-Security-09", _fail)], cfg, result, today=today)
    c1, c2, c9 = result.checks
    assert c1.waiver is not None and c1.status is Status.FAIL and not c1.failing
    assert c2.waiver is None and c2.failing
    assert any("waiver expired on 2026-01-01" in f.message for f in c2.findings)
    assert c9.waiver is None and c9.failing
