"""Host results <-> the JSON documents the store keeps, and a host's identity.

A document is the JSON report's host object (``HostResult.to_json()``), so the fleet view renders exactly
what ``scan`` would have. Documents are read back defensively: a writer is a VM, and a compromised VM may
store anything; a malformed document becomes a host whose error says so, never a crash of the report.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from nectar_audit.model import CheckResult, Evidence, Finding, HostResult, OsInfo, Status, Waiver

_HOST_KEYS = frozenset({"target", "hostname", "os", "error", "started", "duration_s", "checks"})


@dataclass(frozen=True)
class Identity:
    """Who a host is across renames and clones: the OpenStack instance id (from the cloud API or
    cloud-init), else the machine-id (app-specific hash), else the target as named and the hostname."""

    key: str
    target: str
    hostname: str | None
    machine_id: str | None
    instance_id: str | None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int | None = None) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[:limit] if limit else value


def identity(doc: dict[str, Any]) -> Identity:
    ident = _dict(doc.get("identity"))
    cloud = _dict(doc.get("cloud"))
    instance_id = _text(ident.get("instance_id"), 64) or _text(cloud.get("server_id"), 64)
    machine_id = _text(ident.get("machine_id"), 64)
    target = _text(doc.get("target")) or "?"
    hostname = _text(doc.get("hostname"))
    if instance_id:
        key = f"instance:{instance_id}"
    elif machine_id:
        key = f"machine:{machine_id}"
    else:
        # Hashed: a target and hostname can be long, the key is an indexed column of bounded size.
        named = hashlib.sha256(f"{target}\0{hostname or ''}".encode()).hexdigest()[:40]
        key = f"name:{named}"
    return Identity(key, target, hostname, machine_id, instance_id)


def failing(doc: dict[str, Any]) -> dict[str, str]:
    """check id -> summary of the checks that fail and are not waived."""
    out: dict[str, str] = {}
    checks = doc.get("checks")
    for check in checks if isinstance(checks, list) else ():
        if isinstance(check, dict) and check.get("status") == Status.FAIL.value and not check.get("waiver"):
            out[str(check.get("id"))] = str(check.get("summary") or "")
    return out


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO timestamp as an aware UTC datetime (naive ones are UTC), or None."""
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, str) and value:
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc)


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _status(value: Any) -> Status:
    try:
        return Status(value)
    except ValueError:
        return Status.ERROR


def _finding(data: Any) -> Finding:
    if not isinstance(data, dict):
        return Finding(Status.ERROR, "malformed finding in the store")
    evidence = [Evidence(_str(e.get("source")), _str(e.get("detail")))
                for e in data.get("evidence") or () if isinstance(e, dict)]
    remediation = data.get("remediation")
    return Finding(_status(data.get("status")), _str(data.get("message")), evidence,
                   remediation if isinstance(remediation, str) else None)


def _check(data: dict[str, Any]) -> CheckResult:
    raw = data.get("findings")
    findings = [_finding(f) for f in raw] if isinstance(raw, list) else []
    if not findings:
        findings = [Finding(_status(data.get("status")), _str(data.get("summary")))]
    waiver = data.get("waiver")
    return CheckResult(
        id=_str(data.get("id"), "?"), title=_str(data.get("title")), severity=_str(data.get("severity"), "unknown"),
        findings=findings, summary=_str(data.get("summary")),
        waiver=Waiver(_str(waiver.get("reason")), _text(waiver.get("expires"))) if isinstance(waiver, dict) else None,
        fix=data["fix"] if isinstance(data.get("fix"), dict) else None,  # as scan wrote it
    )


def from_document(doc: Any) -> HostResult:
    if not isinstance(doc, dict):
        return HostResult(target="?", error="the stored record of this host is not a JSON object")
    os_data = _dict(doc.get("os"))
    duration = doc.get("duration_s")
    checks = doc.get("checks")
    host = HostResult(
        target=_str(doc.get("target"), "?"), hostname=_text(doc.get("hostname")),
        os=OsInfo(_str(os_data.get("id"), "unknown"), _str(os_data.get("version_id")),
                  _str(os_data.get("pretty_name"))),
        error=_text(doc.get("error")), started=_str(doc.get("started")),
        duration_s=float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) else 0.0,
        checks=[_check(c) for c in checks if isinstance(c, dict)] if isinstance(checks, list) else [],
        extra={k: v for k, v in doc.items() if k not in _HOST_KEYS},
    )
    return host
