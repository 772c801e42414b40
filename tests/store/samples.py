"""Hosts as a VM's scan reports them, with the identity the store keys them by."""

from __future__ import annotations

import datetime as dt
import hashlib

from nectar_audit.model import CheckResult, Finding, HostResult, Status

# Markup, script, quotes, table pipes and a control character: what a hostile VM may call itself.
HOSTILE = '<script>window.__pwned=1</script>"onload=alert(1) </style>|pipe| *bold* `tick` &amp; \x01'


def check(num: int, status: Status, message: str) -> CheckResult:
    return CheckResult(id=f"Check-Security-{num:02d}", title=f"Title {num}", severity="high",
                       findings=[Finding(status, message)], summary=message)


def machine_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def vm(name: str, statuses: dict[int, Status] | None = None, *, hostname: str | None = None,
       mid: str | None = None, instance: str | None = None, error: str | None = None,
       started: dt.datetime | None = None, target: str = "local") -> HostResult:
    """A VM auditing itself (target ``local``) unless told otherwise; machine id derived from ``name``."""
    statuses = {1: Status.PASS, 2: Status.PASS} if statuses is None else statuses
    host = HostResult(target=target, hostname=hostname or name, error=error,
                      started=(started or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds"),
                      duration_s=0.5,
                      checks=[] if error else [check(n, s, f"{name} check {n} {s.value}") for n, s in statuses.items()])
    identity = {"machine_id": mid or machine_id(name)}
    if instance:
        identity["instance_id"] = instance
    host.extra["identity"] = identity
    return host
