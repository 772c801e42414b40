"""Fix plans that change nothing (checks 09, 10, 12, 16): which account, key, service or sudo rule is
needed is for a human to decide. The plan lists each decision with the commands that carry it out."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence

from nectar_audit.model import Finding, Status
from nectar_audit.remedy import Remedy

DECIDE = (Status.FAIL, Status.WARN, Status.MANUAL)
q = shlex.quote


def decisions(findings: Iterable[Finding], handled: Sequence[str] = ()) -> list[str]:
    """One entry per finding to act on (not those whose message is in ``handled``): what, and how."""
    out: list[str] = []
    for f in findings:
        if f.status not in DECIDE or f.message in handled:
            continue
        how = f.remediation or "decide whether it is needed"
        entry = f"decide: {f.message} -- to act: {how}"
        if entry not in out:
            out.append(entry)
    return out


def remedy(check: str, summary: str, entries: Sequence[str]) -> Remedy | None:
    """A plan of manual entries only (never applied), or None when there is nothing to decide."""
    if not entries:
        return None
    return Remedy(check, summary, manual=tuple(entries),
                  notes=("nothing is changed automatically: each entry needs a human decision",))


# -- 09: accounts ------------------------------------------------------------------------------------

_ACCOUNT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^account (\S+) has UID 0\b"), "uid0"),
    (re.compile(r"^account (\S+) has an empty password\b"), "empty"),
    (re.compile(r"^system account (\S+) \(UID \d+\) has login shell\b"), "system"),
    (re.compile(r"^account (\S+) (?:can log in .* but has never logged in|has not logged in for)"), "stale"),
    (re.compile(r"^cannot tell when (\S+) last logged in\b"), "stale"),
)


def account_entries(findings: Iterable[Finding], family: str, nologin: str) -> list[str]:
    """Per account finding: the decision and exact commands (names quoted)."""
    out: list[str] = []
    handled: list[str] = []
    remove = "deluser --remove-home" if family == "debian" else "userdel -r"
    for f in findings:
        if f.status not in DECIDE:
            continue
        for pattern, kind in _ACCOUNT_PATTERNS:
            m = pattern.match(f.message)
            if m is None:
                continue
            name = q(m.group(1))
            if kind == "uid0":
                how = (f"lock it now: usermod -L -e 1 -s {nologin} {name}; then delete its lines with "
                       "`vipw` and `vipw -s` (userdel refuses a UID 0 account)")
            elif kind == "empty":
                how = f"lock it: passwd -l {name} (or give it a real password: passwd {name})"
            elif kind == "system":
                how = f"if it needs no interactive login: usermod -s {nologin} {name}"
            else:
                how = f"if nobody needs it: lock it with usermod -L -e 1 {name}, or remove it with {remove} {name}"
            out.append(f"decide: {f.message} -- to act: {how}")
            handled.append(f.message)
            break
    return out + decisions(findings, handled)
