"""Fix plans and outcomes as text, JSON or a shell script (rendering only: everything is decided before)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nectar_audit.fix import script as fix_script
from nectar_audit.fix.run import HostFix, now_id
from nectar_audit.model import dumps_json, visible
from nectar_audit.remedy import GUARD_KEY_LOGIN, Remedy


def remedy_text(remedy: Remedy, selected: bool) -> list[str]:
    v = visible
    if remedy.refused:
        state = f"REFUSED: {v(remedy.refused)}"
    elif not remedy.applicable:
        state = "by hand (nothing is changed automatically)"
    elif not selected:
        state = f"not selected (name it: --checks {remedy.check[-2:]})"
    else:
        state = "will be applied with --apply"
    out = [f"{remedy.check}: {v(remedy.summary)}  [{state}]"]
    out += [f"  verified: {v(p)}" for p in remedy.preconditions]
    for change in remedy.changes:
        out.append(f"  {'create' if change.before is None else 'edit'} {v(change.path)}"
                   + (f"  ({v(change.why)})" if change.why else ""))
        out += [f"    {v(line)}" for line in change.diff().splitlines()]
    for label, steps in (("run", remedy.commands), ("validate", remedy.validate), ("activate", remedy.activate)):
        out += [f"  {label}: {v(s.sh)}" for s in steps]
    if remedy.guard == GUARD_KEY_LOGIN and remedy.applicable:
        out.append("  lock-out guard: over SSH, a new key login with `sudo -n true` must work after the change, "
                   "or the run is undone at once")
    if remedy.deadman and remedy.applicable:
        port = f" on port {remedy.confirm_port}" if remedy.confirm_port else ""
        out.append("  dead-man: before the change the host arms a timer that undoes the run unless a new "
                   f"connection{port} confirms it in time (--confirm-timeout)")
        if remedy.next_phase:
            out.append("  then: planned again and applied as a second run once confirmed")
    out += [f"  by hand: {v(m)}" for m in remedy.manual]
    out += [f"  note: {v(n)}" for n in remedy.notes]
    return out


def host_header(fix: HostFix) -> str:
    os_name = fix.before.os.pretty_name if fix.before and fix.before.os.pretty_name else ""
    return f"== {visible(fix.name)}" + (f" ({visible(os_name)})" if os_name else "")


def plan_text(fix: HostFix, named: set[str]) -> str:
    lines = [host_header(fix)]
    if fix.error:
        lines.append(f"  error: {visible(fix.error)}")
        return "\n".join(lines)
    if not fix.remedies:
        lines.append("  nothing to fix: every selected check passes (or has no automatic fix)")
    chosen = fix.to_apply(named)
    for remedy in fix.remedies:
        lines += remedy_text(remedy, remedy in chosen)
        if fix.cloud is not None and remedy.check == "Check-Security-18":
            lines += fix.cloud.text()  # 18's security-group side (fix/cloud_port.py)
    return "\n".join(lines)


def outcome_text(fix: HostFix) -> str:
    lines = [host_header(fix) + (f"  run {fix.run_id}" if fix.run_id else "")]
    if fix.error:
        lines.append(f"  error: {visible(fix.error)}")
    for o in fix.outcomes:
        after = f" -> {o.after}" if o.after else ""
        before = ""
        if fix.before:
            before = next((c.status.value for c in fix.before.checks if c.id == o.check), "")
        lines.append(f"  {o.check}: {o.status}{f' ({before}{after})' if before or after else ''}"
                     + (f": {o.message}" if o.message else ""))
    if fix.run_id:
        lines.append(f"  undo with: nectar-audit fix --undo {fix.run_id} {visible(fix.name)}")
    return "\n".join(lines)


def as_json(fixes: Sequence[HostFix], named: set[str], applied: bool) -> str:
    data: dict[str, Any] = {"applied": applied, "hosts": [f.to_json(named) for f in fixes]}
    return dumps_json(data)


def as_shell(fixes: Sequence[HostFix], named: set[str]) -> str:
    """Each host's apply script, as ``--apply`` would send it (run it with ``sudo sh FILE`` on the host)."""
    parts = []
    for fix in fixes:
        remedies = fix.to_apply(named)
        if fix.error or not remedies:
            why = visible(fix.error) if fix.error else "nothing to apply"
            parts.append(f"# {visible(fix.name)}: {why}\n")
            continue
        text = "\n".join(plan_text(fix, named).splitlines())
        parts.append(fix_script.build(remedies, fix_script.new_run_id(now_id()), text).text)
    return "\n".join(parts)
