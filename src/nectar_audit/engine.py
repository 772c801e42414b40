"""Run the checks of one target: gather evidence once, derive facts, judge, apply waivers."""

from __future__ import annotations

import datetime as dt
import time
import traceback
from collections.abc import Sequence
from typing import Any, Callable

from nectar_audit import catalog
from nectar_audit.catalog import Entry, needs_for
from nectar_audit.config import Config
from nectar_audit.evidence import Bundle, EvidenceError, Needs
from nectar_audit.evidence.bundle import CLOUD_ONLY
from nectar_audit.facts import Facts
from nectar_audit.facts.host import host, instance_id
from nectar_audit.model import CheckResult, Finding, HostResult, Status, Waiver, worst
from nectar_audit.remedy import Remedy
from nectar_audit.targets.base import Target, TargetError

INTERRUPTED = "not audited: the scan was interrupted (Ctrl-C) before this host finished"


def audit(target: Target, entries: Sequence[Entry], config: Config, debug: bool = False,
          today: dt.date | None = None, needs: Needs | None = None) -> tuple[HostResult, Bundle | None]:
    """Gather ``needs`` (default: what ``entries`` need) from ``target`` in one pass, then judge."""
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    result = HostResult(target=target.name, started=started.isoformat(timespec="seconds"))
    try:
        bundle = target.gather(needs if needs is not None else needs_for(entries))
    except TargetError as exc:
        result.error = str(exc)
    except Exception as exc:  # a bug in a target is reported on the host, never as a traceback
        detail = traceback.format_exc() if debug else f"{type(exc).__name__}: {exc}"
        result.error = f"internal error while gathering evidence: {detail}"
    if result.error is not None:
        result.duration_s = time.perf_counter() - t0
        return result, None
    judge(bundle, entries, config, result, debug=debug, today=today)
    result.duration_s = time.perf_counter() - t0
    return result, bundle


def judge(bundle: Bundle, entries: Sequence[Entry], config: Config, result: HostResult,
          debug: bool = False, today: dt.date | None = None) -> None:
    facts = Facts(bundle, config)
    if bundle.cut is not None:  # what was not read, and why: the checks that needed it say error
        result.extra["evidence_incomplete"] = {"reason": bundle.cut, "complete_parts": sorted(bundle.complete)}
    if bundle.kind != CLOUD_ONLY:
        try:
            info = facts.get(host)
            result.hostname = info.hostname
            result.os = info.os
        except EvidenceError as exc:
            bundle.errors.append(str(exc))
        else:
            identity = host_identity(facts, info.machine_id)
            if identity:
                result.extra["identity"] = identity
        for entry in entries:
            assert entry.check is not None
            result.checks.append(run_check(entry, facts, debug))
    if bundle.cloud is not None:
        # Only an instance audited through the OpenStack API has a cloud record: the cloud checks are
        # not imported by every scan (a tenth of a local scan's import time).
        from nectar_audit.cloud.judge import judge_cloud

        section, cloud_results = judge_cloud(facts, [e.id for e in entries], debug)
        if section is not None:
            result.extra["cloud"] = section
            result.hostname = result.hostname or str(section["name"])
        merge_checks(result, cloud_results, entries)
    apply_waivers(result, config, today or dt.date.today())


def host_identity(facts: Facts, machine_id: str | None) -> dict[str, str]:
    """What tells this host from others of the same name (a history store keys hosts by it)."""
    out = {"machine_id": machine_id} if machine_id else {}
    try:
        iid = facts.get(instance_id)
    except EvidenceError:
        iid = None
    if iid:
        out["instance_id"] = iid
    return out


def merge_checks(result: HostResult, extra: Sequence[CheckResult], entries: Sequence[Entry] = ()) -> None:
    """Add findings from another vantage (the cloud API, a probe) under the same check ids."""
    by_id = {c.id: c for c in result.checks}
    for add in extra:
        have = by_id.get(add.id)
        if have is None:
            # Title and severity are the check's own, whichever vantage found something.
            have = CheckResult(add.id, catalog.entry(add.id).title, catalog.severity(add.id), [], "")
            result.checks.append(have)
            by_id[add.id] = have
        have.findings.extend(add.findings)
        have.summary = summarise(have.findings)
    order = {e.id: i for i, e in enumerate(entries)}
    result.checks.sort(key=lambda c: order.get(c.id, len(order)))


def run_check(entry: Entry, facts: Facts, debug: bool = False) -> CheckResult:
    check = entry.check
    assert check is not None
    try:
        # Through facts: computed once, and a check's plan may ask for its verdict without judging again.
        findings = list(facts.get(check.run))
    except EvidenceError as exc:
        findings = [Finding(Status.ERROR, str(exc))]
    except Exception as exc:
        detail = traceback.format_exc() if debug else f"{type(exc).__name__}: {exc}"
        findings = [Finding(Status.ERROR, f"internal error while checking: {detail}")]
    if not findings:
        findings = [Finding(Status.ERROR, "the check produced no finding")]
    result = CheckResult(entry.id, entry.title, check.severity, findings, summarise(findings))
    if check.plan is not None and result.status in (Status.FAIL, Status.WARN):
        result.fix = plan_json(check.plan, facts)
    return result


def plan_json(plan: Callable[[Facts], Remedy | None], facts: Facts) -> dict[str, Any] | None:
    """The check's structured fix for the report; None when there is none or the scan cannot plan it
    (``--checks`` gathered less than the plan needs: ``nectar-audit fix`` gathers it)."""
    try:
        remedy = plan(facts)
    except Exception:  # a plan is an extra: the verdict stands without it
        return None
    if remedy is None:
        return None
    return {**remedy.to_json(), "commands_sh": remedy.shell()}


def summarise(findings: list[Finding]) -> str:
    top = worst([f.status for f in findings])
    firsts = [f for f in findings if f.status is top]
    more = len(firsts) - 1
    return firsts[0].message + (f" (+{more} more)" if more > 0 else "")


def apply_waivers(result: HostResult, config: Config, today: dt.date) -> None:
    for check in result.checks:
        for rule in config.waivers:
            if rule.check != check.id or (rule.host and rule.host not in (result.hostname, result.target)):
                continue
            expires = rule.expires.isoformat() if rule.expires else None
            if rule.expires is not None and rule.expires < today:
                if check.status not in (Status.FAIL, Status.WARN, Status.ERROR):
                    continue
                check.findings.append(Finding(
                    Status.WARN, f"waiver expired on {expires} and no longer applies: {rule.reason}",
                ))
                check.summary = summarise(check.findings)
                continue
            check.waiver = Waiver(rule.reason, expires)
