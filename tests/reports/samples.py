"""Shared results for the report tests: every status, a waiver, a host error and hostile strings."""

from __future__ import annotations

from nectar_audit.model import CheckResult, Evidence, Finding, HostResult, OsInfo, Status, Waiver

HOSTILE = '<script>window.__pwned=1</script>"onload=alert(1) </style>|pipe| *bold* `tick` &amp; \x01'


def check(num: int, status: Status, message: str, *, evidence: list[Evidence] | None = None,
          fix: str | None = None, waiver: Waiver | None = None) -> CheckResult:
    return CheckResult(
        id=f"Check-Security-{num:02d}", title=f"Title {num}", severity="high",
        findings=[Finding(status, message, evidence or [], fix)], summary=message, waiver=waiver,
    )


def sample_hosts() -> list[HostResult]:
    web = HostResult(
        target="ssh:web1", hostname="web1", os=OsInfo("debian", "12", "Debian GNU/Linux 12"),
        started="2026-11-28T12:00:00+00:00", duration_s=0.25,
        checks=[
            check(1, Status.PASS, "root login disabled"),
            check(2, Status.FAIL, "PasswordAuthentication yes in /etc/ssh/sshd_config:12",
                  evidence=[Evidence("/etc/ssh/sshd_config:12", "PasswordAuthentication yes")],
                  fix="sed -i 's/^PasswordAuthentication yes/PasswordAuthentication no/' /etc/ssh/sshd_config"),
            check(3, Status.WARN, "NTP not synchronised"),
            check(4, Status.MANUAL, "review accounts"),
            check(5, Status.NOT_APPLICABLE, "no mail server"),
            check(6, Status.ERROR, "needs root to read /etc/shadow"),
            check(7, Status.FAIL, "waived failure", waiver=Waiver("legacy app", "2027-01-01")),
        ],
    )
    evil = HostResult(
        target="ssh:" + HOSTILE, hostname=HOSTILE, started="2026-11-28T12:00:01+00:00", duration_s=1.5,
        checks=[
            check(8, Status.FAIL, HOSTILE, evidence=[Evidence(HOSTILE, HOSTILE)], fix=HOSTILE),
            check(9, Status.WARN, HOSTILE, evidence=[Evidence("banner", HOSTILE)]),
        ],
    )
    down = HostResult(target="ssh:down", error="ssh: connect to host down port 22: Connection refused",
                      started="2026-11-28T12:00:02+00:00", duration_s=5.0)
    return [web, evil, down]
