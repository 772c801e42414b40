"""Results: what checks produce and reports render (the JSON contract, schema_version 1)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Status(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    MANUAL = "manual"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"

    @property
    def rank(self) -> int:
        # A definite failure outranks "could not tell" (error): one proven hole is the headline.
        return _RANK[self]


_RANK = {
    Status.NOT_APPLICABLE: 0,
    Status.PASS: 1,
    Status.MANUAL: 2,
    Status.WARN: 3,
    Status.ERROR: 4,
    Status.FAIL: 5,
}


def worst(statuses: list[Status], default: Status = Status.PASS) -> Status:
    return max(statuses, key=lambda s: s.rank, default=default)


@dataclass(frozen=True)
class Evidence:
    """Where a finding comes from: a file and line, a command, a probe."""

    source: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "detail": self.detail}


@dataclass
class Finding:
    status: Status
    message: str
    evidence: list[Evidence] = field(default_factory=list)
    remediation: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "message": self.message,
            "evidence": [e.to_json() for e in self.evidence],
            "remediation": self.remediation,
        }


@dataclass
class Waiver:
    reason: str
    expires: str | None

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "expires": self.expires}


@dataclass
class CheckResult:
    id: str
    title: str
    severity: str
    findings: list[Finding]
    summary: str
    waiver: Waiver | None = None

    @property
    def status(self) -> Status:
        return worst([f.status for f in self.findings], default=Status.NOT_APPLICABLE)

    @property
    def failing(self) -> bool:
        return self.status is Status.FAIL and self.waiver is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "severity": self.severity,
            "summary": self.summary,
            "findings": [f.to_json() for f in self.findings],
            "waiver": self.waiver.to_json() if self.waiver else None,
        }


@dataclass
class OsInfo:
    id: str = "unknown"
    version_id: str = ""
    pretty_name: str = ""
    id_like: tuple[str, ...] = ()

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "version_id": self.version_id, "pretty_name": self.pretty_name}


@dataclass
class HostResult:
    target: str
    hostname: str | None = None
    os: OsInfo = field(default_factory=OsInfo)
    error: str | None = None
    started: str = ""
    duration_s: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)
    # Extra sections later parts attach (e.g. "cloud"); rendered as-is in JSON.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failing(self) -> bool:
        return any(c.failing for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "target": self.target,
            "hostname": self.hostname,
            "os": self.os.to_json(),
            "error": self.error,
            "started": self.started,
            "duration_s": round(self.duration_s, 4),
            "checks": [c.to_json() for c in self.checks],
        }
        data.update(self.extra)
        return data


SCHEMA_VERSION = 1


def report_json(hosts: list[HostResult], version: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "nectar-audit", "version": version},
        "hosts": [h.to_json() for h in hosts],
    }
