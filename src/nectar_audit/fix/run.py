"""``nectar-audit fix``: audit, plan, and (with --apply) apply per host, then audit the fixed checks again.

Planning reads the host exactly as ``scan`` does (one gather), and each failing check's planner turns
facts into a ``Remedy``. Applying sends one script per host over the same transport; a remedy with the
lock-out guard is confirmed over SSH by a new key login with ``sudo -n`` or the run is undone at once.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nectar_audit.catalog import Entry, needs_for
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.evidence import EvidenceError
from nectar_audit.facts import Facts
from nectar_audit.fix import cloud_facts, cloud_port
from nectar_audit.fix import script as fix_script
from nectar_audit.model import HostResult, Status, visible
from nectar_audit.remedy import GUARD_KEY_LOGIN, Remedy
from nectar_audit.targets.base import Target, TargetError

# Statuses a planner is asked about (a waived check is left alone).
TO_FIX = (Status.FAIL, Status.WARN)
_RECORD = re.compile(rb"^(NA-FIX-[0-9a-f]{16}) (\S+) (\S+) ?(.*)$")


@dataclass
class Outcome:
    """What happened to one remedy on one host."""

    check: str
    status: str  # applied | refused | error | rolled-back | skipped | not-run
    message: str = ""
    after: str | None = None  # the check's status on the audit after the fix

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "message": self.message, "after": self.after}


@dataclass
class HostFix:
    target: Target
    before: HostResult | None = None
    remedies: list[Remedy] = field(default_factory=list)
    error: str | None = None
    run_id: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    after: HostResult | None = None
    plan_text: str = ""  # the plan as shown, kept in the run directory on the host
    runs: list[str] = field(default_factory=list)  # every run applied (a phased fix has several)
    cloud: Any = None  # 18's security-group side (fix/cloud_port.py CloudPlan), with --os-cloud
    # The planning facts, kept only when a remedy has a next phase: ``--format ansible`` plans that phase
    # from them (as the host will be once the first phase is applied).
    facts: Facts | None = None

    @property
    def name(self) -> str:
        return self.target.name

    def to_apply(self, named: set[str]) -> list[Remedy]:
        return [r for r in self.remedies if r.applicable and (not r.explicit or r.check in named)]

    @property
    def ok(self) -> bool:
        """Nothing failed: every applied fix passes now (and nothing errored)."""
        return self.error is None and all(o.status == "applied" and o.after in ("pass", "not_applicable")
                                          for o in self.outcomes)

    def to_json(self, named: set[str]) -> dict[str, Any]:
        return {
            "target": self.name,
            "error": self.error,
            "run": self.run_id,
            "before": {c.id: c.status.value for c in self.before.checks} if self.before else {},
            "remedies": [dict(r.to_json(), selected=r in self.to_apply(named)) for r in self.remedies],
            "outcomes": [o.to_json() for o in self.outcomes],
            **({"cloud": self.cloud.to_json()} if self.cloud is not None else {}),
        }


def plan_host(target: Target, entries: Sequence[Entry], config: Config) -> HostFix:
    """Audit ``target`` for ``entries`` and plan a remedy for each failing check that has a planner."""
    out = HostFix(target)
    extra = [e.check.plan_needs for e in entries if e.check is not None]
    result, bundle = audit(target, entries, config, needs=needs_for(entries, *extra))
    out.before = result
    if bundle is None:
        out.error = result.error
        return out
    by_id = {e.id: e for e in entries}
    todo = []
    for check in result.checks:
        entry = by_id.get(check.id)
        if entry is None or entry.check is None or entry.check.plan is None:
            continue
        if check.status in TO_FIX and check.waiver is None:
            todo.append((check, entry))
    # With --os-cloud, a planner that reads the instance's security groups (08) gets its record first.
    lookup = cloud_facts.attach_instance(target, result, bundle, config) \
        if any(c.id in cloud_facts.USES_INSTANCE for c, _e in todo) else None
    facts = Facts(bundle, config)
    for check, entry in todo:
        assert entry.check is not None and entry.check.plan is not None
        try:
            remedy = entry.check.plan(facts)
        except EvidenceError as exc:
            remedy = Remedy(check.id, "no plan", refused=f"the evidence needed to plan is missing: {exc}")
        except Exception as exc:  # a planner bug is that host's error, never a traceback
            remedy = Remedy(check.id, "no plan", refused=f"internal error while planning: "
                                                         f"{type(exc).__name__}: {exc}")
        if remedy is not None:
            out.remedies.append(lookup.into(remedy) if lookup is not None else remedy)
    if any(r.next_phase for r in out.remedies):
        out.facts = facts
    return out


def parse_records(stdout: bytes, tag: str | None = None) -> list[tuple[str, str, str]]:
    """(check, status, message) of each record the host printed (of ``tag``'s run when given)."""
    out = []
    for raw in stdout.split(b"\n"):
        m = _RECORD.match(raw)
        if m and (tag is None or m.group(1).decode() == tag):
            out.append((m.group(2).decode("utf-8", "replace"), m.group(3).decode("utf-8", "replace"),
                        m.group(4).decode("utf-8", "replace")))
    return out


def now_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _kind(target: Target) -> str:
    return str(getattr(target, "kind", "this"))


def apply_all(fixes: Sequence[HostFix], entries: Sequence[Entry], config: Config, named: set[str],
              concurrency: int) -> None:
    """``apply_host`` on every host, ``concurrency`` at a time."""
    def one(fix: HostFix) -> None:
        try:
            apply_host(fix, entries, config, named)
        except Exception as exc:  # one host's bug is that host's error
            fix.error = f"internal error while applying: {type(exc).__name__}: {exc}"

    if len(fixes) <= 1:
        for fix in fixes:
            one(fix)
        return
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(fixes)))) as pool:
        list(pool.map(one, fixes))


def apply_host(fix: HostFix, entries: Sequence[Entry], config: Config, named: set[str]) -> None:
    """Apply ``fix``'s selected remedies in one script, guard SSH access, then audit those checks again.

    A remedy that can cut the controller off (``deadman``) is confirmed over a NEW connection (on its
    ``confirm_port``) before the host's dead-man timer fires; a ``next_phase`` remedy is then planned again
    from a fresh audit and that plan applied the same way (e.g. 18: listen on both ports, then drop 22)."""
    remedies = fix.to_apply(named)
    if not remedies:
        return
    if getattr(fix.target, "execute", None) is None:
        fix.error = f"{_kind(fix.target)} targets cannot be changed (fix works on local and SSH hosts)"
        return
    # -- the cloud side (18 with --os-cloud): rules for the new port before the host's first run, reverted
    # with it if it does not stay, 22's rules removed after the last confirmed phase (--close-old-port).
    cloud = cloud_port.start(fix, config)
    if fix.cloud is not None and fix.cloud.error is not None:  # planning or connecting failed
        fix.error = f"security groups: {fix.cloud.error} (nothing was changed)"
        return
    target, confirmed = _apply_phase(fix, fix.target, remedies, config,
                                     before_run=cloud.before_run if cloud is not None else None)
    if cloud is not None:  # the rules stay only with a run that stays
        cloud.kept(confirmed and any(o.check == cloud_port.CHECK and o.status == "applied" for o in fix.outcomes))
    # -- end of the cloud side's first part
    for _phase in range(3):  # a bound, not a loop a planner could keep going
        follow = {r.check for r in remedies if r.next_phase}
        follow &= {o.check for o in fix.outcomes if o.status == "applied"}
        if not confirmed or not follow:
            break
        todo = [e for e in entries if e.id in follow]
        nxt = plan_host(target, todo, config)
        if nxt.error is not None:
            fix.error = f"planning the next phase: {nxt.error}"
            break
        remedies = [r for r in nxt.remedies if r.applicable]
        for r in nxt.remedies:
            if r.refused:
                _outcome(fix, r.check).message += f"; next phase refused: {visible(r.refused)}"
        if not remedies:
            break
        sub = HostFix(target, plan_text=fix.plan_text)
        target, confirmed = _apply_phase(sub, target, remedies, config)
        fix.runs.extend(sub.runs)
        fix.run_id = sub.run_id
        fix.error = fix.error or sub.error
        for o in sub.outcomes:
            mine = _outcome(fix, o.check)
            mine.status = o.status
            mine.message = "; ".join(m for m in (mine.message, f"next phase (run {sub.run_id}): {o.status}"
                                                  + (f": {o.message}" if o.message else "")) if m)
    if cloud is not None:  # the cloud side's second part: 22's rules removed once the last phase stays
        cloud.finish(fix.run_id, confirmed)
        _outcome(fix, cloud_port.CHECK).message += "".join(f"; {m}" for m in cloud.messages)
    fix.target = target  # the host is now reached there (18: the new port)
    changed = [e for e in entries if any(o.check == e.id and o.status == "applied" for o in fix.outcomes)]
    if changed:
        after, _bundle = audit(target, changed, config)
        fix.after = after
        statuses = {c.id: c.status.value for c in after.checks}
        for o in fix.outcomes:
            if o.status == "applied":
                o.after = statuses.get(o.check, "error" if after.error else None)


def _outcome(fix: HostFix, check: str) -> Outcome:
    for o in fix.outcomes:
        if o.check == check:
            return o
    o = Outcome(check, "not-run")
    fix.outcomes.append(o)
    return o


def on_port(target: Target, port: int | None) -> Target:
    """``target`` reached on another SSH port (the same host, user, keys and known_hosts)."""
    if port is None or _kind(target) != "ssh" or getattr(target, "port", None) == port:
        return target
    moved = copy.copy(target)
    moved.port = port  # type: ignore[attr-defined]
    return moved


def confirm_timeout(config: Config) -> int:
    return int(config.extra.get("fix", {}).get("confirm_timeout", fix_script.DEFAULT_CONFIRM_TIMEOUT))


def _apply_phase(fix: HostFix, target: Target, remedies: Sequence[Remedy], config: Config,
                 before_run: Callable[[str], str | None] | None = None) -> tuple[Target, bool]:
    """One script run on ``target``, its lock-out guard and dead-man confirmation: (where the host is
    reached afterwards, whether the run was confirmed and stays). ``before_run(run_id)`` runs first (the
    cloud side); a problem it returns stops the run before the host is touched."""
    execute = target.execute  # type: ignore[attr-defined]
    fix.run_id = run_id = fix_script.new_run_id(now_id())
    problem = before_run(run_id) if before_run is not None else None
    if problem is not None:
        fix.run_id = None
        fix.error = problem
        fix.outcomes.extend(Outcome(r.check, "not-run", problem) for r in remedies)
        return target, False
    fix.runs.append(run_id)
    timeout = confirm_timeout(config)
    built = fix_script.build(remedies, run_id, fix.plan_text, confirm_timeout=timeout)
    needs_login = {r.check for r in remedies if r.guard == GUARD_KEY_LOGIN or r.deadman}
    problems: list[str] = []
    reached = [target]
    port_of: list[int | None] = [None]

    def guard(result: Any) -> bytes | None:
        """After the change: a NEW key login with sudo (on the new port, for 18) must work; if it does
        not, the undo goes over the connection still open, which a reloaded sshd keeps."""
        applied = {c for c, s, _m in parse_records(result.stdout, built.tag) if s == "applied"}
        port_of[0] = next((r.confirm_port for r in remedies if r.check in applied and r.confirm_port is not None),
                          None)
        reached[0] = on_port(target, port_of[0])
        confirm = getattr(reached[0], "confirm_login", None)
        if confirm is None or not applied & needs_login:
            return None
        problem = confirm()
        if problem is None:
            return None
        problems.append(problem)
        return fix_script.undo_command(run_id).encode()

    try:
        runs = execute(built.text.encode("utf-8", "surrogateescape"), then=guard)
    except TargetError as exc:
        fix.error = str(exc)
        if any(r.deadman for r in remedies):
            fix.error += (f" (if the run started, the host's dead-man timer undoes it within {timeout} s: "
                          f"nothing was confirmed)")
        return target, False
    result = runs[0]
    parsed = parse_records(result.stdout, built.tag)
    records = {check: (status, msg) for check, status, msg in parsed}
    armed = any(check == "run" and status == "armed" for check, status, _m in parsed)
    for remedy in remedies:
        status, message = records.get(remedy.check, ("not-run", ""))
        if status == "not-run":
            message = _why_not_run(result)
        fix.outcomes.append(Outcome(remedy.check, status, visible(message)))
    if "run" in records and records["run"][0] == "error":
        fix.error = visible(records["run"][1])
    outcomes = fix.outcomes[-len(remedies):]
    if problems:
        where = f" on port {port_of[0]}" if port_of[0] is not None else ""
        undone = {c for c, s, _m in parse_records(runs[-1].stdout) if s == "undone"} if len(runs) > 1 else set()
        how = "the whole run was undone" if undone else (
            "the undo did not confirm" + (f": the host's dead-man timer undoes the run within {timeout} s"
                                          if armed else ": check the host's console"))
        for o in outcomes:
            if o.status == "applied":
                o.status = "rolled-back" if undone else "error"
                o.message = f"a new key login with sudo{where} failed after the change ({visible(problems[0])}): {how}"
        return target, False
    if not armed:
        return reached[0], True
    try:  # over the new connection too: it is the one that must keep working
        [answer] = reached[0].execute(fix_script.confirm_command(run_id).encode())  # type: ignore[attr-defined]
        states = {s: m for c, s, m in parse_records(answer.stdout) if c == "run"}
    except TargetError as exc:
        states = {"error": str(exc)}
    if "confirmed" in states:
        return reached[0], True
    why = ("the dead-man timer fired before the confirmation: the host undid the run" if "expired" in states
           else f"the confirmation could not be sent ({visible(states.get('error', 'no answer'))}): the host's "
                f"dead-man timer undoes the run within {timeout} s")
    for o in outcomes:
        if o.status == "applied":
            o.status = "rolled-back"
            o.message = why
    return target, False


def _why_not_run(result: Any) -> str:
    if result.timed_out:
        return "the fix script did not finish in time"
    if result.status != 0:
        return f"the fix script stopped (exit status {result.status}): {visible(result.stderr[-300:])}"
    return "the host did not report on this fix"


def undo_host(target: Target, run_id: str | None) -> tuple[list[tuple[str, str, str]], str | None]:
    """Run a fix run's undo.sh on ``target``: (records, error)."""
    execute = getattr(target, "execute", None)
    if execute is None:
        return [], f"{_kind(target)} targets cannot be changed"
    try:
        [result] = execute(fix_script.undo_command(run_id).encode())
    except TargetError as exc:
        return [], str(exc)
    records = parse_records(result.stdout)
    if result.status != 0 and not records:
        return [], visible(result.stderr[-300:] or f"exit status {result.status}")
    return records, None


def list_runs(target: Target) -> tuple[list[tuple[str, str, str]], str | None]:
    """The fix runs kept on ``target``: (run id, applied|undone, remedies applied)."""
    execute = getattr(target, "execute", None)
    if execute is None:
        return [], f"{_kind(target)} targets keep no fix runs"
    try:
        [result] = execute(fix_script.LIST_RUNS.encode())
    except TargetError as exc:
        return [], str(exc)
    runs = []
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]+", parts[0]):
            runs.append((parts[0], parts[1], parts[2]))
    return runs, None


def for_each(targets: Sequence[Target], work: Callable[[Target], HostFix], concurrency: int) -> list[HostFix]:
    """``work`` on every target, ``concurrency`` at a time; one host's failure is that host's error."""
    def guarded(target: Target) -> HostFix:
        try:
            return work(target)
        except Exception as exc:  # never lose the other hosts to one host's bug
            return HostFix(target, error=f"internal error: {type(exc).__name__}: {exc}")

    if len(targets) == 1:
        return [guarded(targets[0])]
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(targets)))) as pool:
        return list(pool.map(guarded, targets))
