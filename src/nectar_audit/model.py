"""Results: what checks produce and reports render (the JSON contract, schema_version 1)."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any

# What a terminal, a bidi-aware viewer or an XML parser would act on instead of showing: C0 and C1
# controls (ESC, CSI), DEL, bidi marks/embeddings/overrides/isolates, non-characters, and the lone
# surrogates by which Python carries a file name's undecodable bytes (surrogateescape).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
_UNSAFE_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a name (surrogateescape): the byte itself
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, lines: bool = False) -> str:
    """``text`` with every control, bidi and undecodable character written as a visible escape
    (``\\x1b``, ``\\u202e``, ``\\xff`` for a raw byte of a file name), so a string from the audited
    host can neither drive the reader's terminal nor reorder what it shows. ``lines``: keep newlines
    and tabs (multi-line messages and fixes)."""
    return (_UNSAFE_LINES if lines else _UNSAFE).sub(_visible, text)


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def dumps_json(data: Any, indent: int | None = 2) -> str:
    """JSON text that any UTF-8 writer can write: a lone surrogate (an undecodable byte of a file name)
    becomes its ``\\udcXX`` escape, which ``json.loads`` turns back into the same string, so the name's
    bytes survive (``os.fsencode``); everything else stays readable UTF-8."""
    if indent is not None:
        try:
            return _indented(data, indent)
        except (_NotPlain, RecursionError):  # json.dumps then writes it, or raises its own error
            pass
    # A str holds lone surrogates only inside JSON string literals, where \uXXXX is their escape.
    return _SURROGATE.sub(_escape_surrogate, json.dumps(data, indent=indent, ensure_ascii=False))


class _NotPlain(Exception):
    """A value the fast writer leaves to json.dumps (its own errors included)."""


def _indented(data: Any, indent: int) -> str:
    """``json.dumps(data, indent=indent, ensure_ascii=False)``, byte for byte, for dicts with str keys,
    lists, tuples, str (enums too), int, float, bool and None (anything else raises _NotPlain): the standard library
    writes indented JSON in pure Python through generators, and a fleet's report spent more time there
    than in judging some checks. Strings go through the standard library's C escaper."""
    parts: list[str] = []
    append = parts.append
    step = " " * indent
    c_str = _c_json_str

    def value(o: Any, newline: str) -> None:
        kind = type(o)
        if kind is str:
            append(c_str(o) if o.isascii() else _json_str(o))
        elif kind is dict:
            if not o:
                append("{}")
                return
            inner = newline + step
            sep = "{" + inner
            for key, item in o.items():
                if type(key) is not str:
                    raise _NotPlain
                append(sep + (c_str(key) if key.isascii() else _json_str(key)) + ": ")
                value(item, inner)
                sep = "," + inner
            append(newline + "}")
        elif kind is list or kind is tuple:
            if not o:
                append("[]")
                return
            inner = newline + step
            sep = "[" + inner
            for item in o:
                append(sep)
                value(item, inner)
                sep = "," + inner
            append(newline + "]")
        elif o is None:
            append("null")
        elif o is True:
            append("true")
        elif o is False:
            append("false")
        elif kind is int:
            append(int.__repr__(o))
        elif kind is float and o - o == 0:  # finite: json spells NaN and the infinities its own way
            append(float.__repr__(o))
        elif isinstance(o, str):  # a str enum (Status): its value, as json writes it
            append(_json_str(o))
        else:
            raise _NotPlain

    value(data, "\n")
    return "".join(parts)


def _json_str(text: str) -> str:
    quoted = _c_json_str(text)
    if not text.isascii():
        quoted = _SURROGATE.sub(_escape_surrogate, quoted)
    return quoted


_c_json_str = json.encoder.encode_basestring


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
    # The structured fix of a failing check (Remedy.to_json() plus "commands", the paste-able shell):
    # reports render it, ``nectar-audit fix`` applies it.
    fix: dict[str, Any] | None = None

    @property
    def status(self) -> Status:
        return worst([f.status for f in self.findings], default=Status.NOT_APPLICABLE)

    @property
    def failing(self) -> bool:
        return self.status is Status.FAIL and self.waiver is None

    @property
    def fix_hint(self) -> str | None:
        """One line on the structured fix, for every report: how to apply it, or why it is not automatic."""
        if self.fix is None:
            return None
        number = self.id[-2:]
        if self.fix.get("applicable"):
            named = " (installs updates: only when named)" if self.fix.get("explicit") else ""
            return (f"nectar-audit fix --checks {number} shows the exact changes (diffs, validation, backup); "
                    f"add --apply to make them{named}")
        if self.fix.get("refused"):
            return f"not fixed automatically: {self.fix['refused']}"
        manual = self.fix.get("manual") or []
        return f"for a human to decide: {'; '.join(str(m) for m in manual)}" if manual else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "severity": self.severity,
            "summary": self.summary,
            "findings": [f.to_json() for f in self.findings],
            "waiver": self.waiver.to_json() if self.waiver else None,
            **({"fix": self.fix} if self.fix is not None else {}),
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
