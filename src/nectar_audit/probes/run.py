"""Run the probes against one address and turn observations into check results (01, 05, 06, 13, 15)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nectar_audit import catalog
from nectar_audit.engine import merge_checks
from nectar_audit.model import CheckResult, Evidence, Finding, HostResult, Status
from nectar_audit.probes import (
    DEFAULT_PORTS,
    DEFAULT_TIMEOUT,
    Observation,
    endpoint,
    subnet_note,
    validate_target,
    vantage_note,
)
from nectar_audit.probes.dns import probe_dns
from nectar_audit.probes.guard import ProbeInterrupted, Scope, ScopeError
from nectar_audit.probes.ntp import probe_ntp
from nectar_audit.probes.onlink import local_on_link
from nectar_audit.probes.plan import PortPlan, resolve_address
from nectar_audit.probes.reach import probe_tcp
from nectar_audit.probes.ssh import parse_banner, probe_ssh
from nectar_audit.probes.tls import probe_service

__all__ = ["DEFAULT_PORTS", "observe", "probe_host", "run_probes", "scan_job", "scan_probe", "to_checks"]

# What a trusted vantage cannot settle: who may log in how, recursion and NTP ACLs, what the firewall lets
# in. Whether a protocol is encrypted (13) is the same for every client.
VANTAGE_SENSITIVE = frozenset({"01", "05", "06", "15"})
# What servers commonly grant their own subnets: recursion and NTP queries. From the target's subnet,
# a failure there is a warning (exposure to the subnet), not proof of exposure to the world.
SUBNET_SENSITIVE = frozenset({"05", "06"})
# How many hosts are probed at once (the rate limit, not this, bounds the packets per second).
PROBE_WORKERS = 16
INTERRUPTED = ("active probe interrupted (Ctrl-C) before it finished: its partial results are not counted, "
               "the host's own evidence stands")
_STATUS = {"pass": Status.PASS, "fail": Status.FAIL, "warn": Status.WARN, "manual": Status.MANUAL}


def _observe_port(scope: Scope, address: str, port: int, timeout: float) -> list[Observation]:
    if port == 123:
        return probe_ntp(address, port, timeout, scope)
    if port == 53:
        return probe_dns(address, port, timeout, scope)
    reach = probe_tcp(address, port, timeout, scope)
    if reach.verdict != "manual":  # not open
        return [reach]
    out = [reach]
    try:
        service, kind, greeting = probe_service(address, port, timeout, scope)
        out.append(service)
        if kind == "ssh":
            out.extend(probe_ssh(address, port, timeout, scope, ident=(service.source, parse_banner(greeting))))
    except OSError as exc:
        failed = f"{endpoint(address, port, 'tcp')}: probe failed: {exc}"
        out.append(Observation("13", address, port, "tcp", reach.source, "manual", failed))
    return out


def observe(
    address: str, ports: Sequence[int] = DEFAULT_PORTS, timeout: float = DEFAULT_TIMEOUT, scope: Scope | None = None,
    stop: threading.Event | None = None, allow_special: bool = False,
) -> list[Observation]:
    """Probe `address` only (no name resolution, no other host), port by port, within the Scope's bounds.
    Once ``stop`` is set no further socket is opened: ProbeInterrupted. A multicast, broadcast,
    unspecified or reserved address is refused (ScopeError) unless ``allow_special``."""
    address = validate_target(address)
    scope = scope if scope is not None else Scope([address], allow_special=allow_special)
    scope.stop = stop
    scope.check_address(address)
    obs: list[Observation] = []
    for port in dict.fromkeys(ports):
        obs.extend(_observe_port(scope, address, port, timeout))
    return obs


def to_checks(
    observations: Iterable[Observation],
    own_addresses: frozenset[str] = frozenset(),
    why: Mapping[int, str] | None = None,
    notes: Sequence[str] = (),
    on_link: str | None = None,
) -> list[CheckResult]:
    """Observations -> one CheckResult per check. From a vantage the target trusts (itself), a
    vantage-sensitive result is `manual`, with what was seen and the vantage that would settle it. From
    the target's own subnet (``on_link``, the prober's directly attached network that holds the target),
    a recursion or NTP failure is a warning, with the vantage that would settle it."""
    by_check: dict[str, list[Finding]] = {}
    for o in observations:
        status = _STATUS[o.verdict]
        note = vantage_note(o.source, o.target, own_addresses)
        subnet = subnet_note(o.source, o.target, on_link) if note is None else None
        message = o.message if "observed from" in o.message else f"{o.message} (observed from {o.source})"
        evidence = [Evidence(f"probe {endpoint(o.target, o.port, o.proto)} from {o.source}", o.message)]
        if why and o.port in why:
            evidence.append(Evidence("probe plan", f"port {o.port} probed: {why[o.port]}"))
        if note is not None:
            evidence.append(Evidence("vantage", note))
            if o.check in VANTAGE_SENSITIVE:
                message = f"{message}; {note}"
                status = Status.MANUAL
        elif subnet is not None:
            evidence.append(Evidence("vantage", subnet))
            if o.check in SUBNET_SENSITIVE and status is Status.FAIL:
                message = f"{message}; {subnet}"
                status = Status.WARN
        by_check.setdefault(o.check, []).append(Finding(status, message, evidence))
    if notes and "15" in by_check:
        by_check["15"][0].evidence.extend(Evidence("probe plan", n) for n in notes)
    out = []
    for cid in sorted(by_check):
        full = f"Check-Security-{cid}"
        findings = by_check[cid]
        worst = max(findings, key=lambda f: f.status.rank)
        meta = catalog.entry(full)
        out.append(CheckResult(full, meta.title, catalog.severity(full), findings, worst.message))
    return out


@dataclass
class ProbeOutcome:
    """What one host's probes gave: checks to merge into its result, or an error for the whole host."""

    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


ProbeJob = Callable[[threading.Event], ProbeOutcome]


def run_probes(jobs: Sequence[tuple[HostResult, ProbeJob]], workers: int) -> bool:
    """Run the hosts' probes on up to ``workers`` threads (the process-wide rate limit still bounds the
    packets), merging each host's outcome in this thread as it finishes, so that no probe still running
    can change a report written after Ctrl-C. Ctrl-C stops them: no probe opens another socket, the
    hosts not finished get a note instead of partial results, and True is returned."""
    if not jobs:
        return False
    stop = threading.Event()
    pool = concurrent.futures.ThreadPoolExecutor(max(1, min(workers, len(jobs))), thread_name_prefix="probe")
    futures = {pool.submit(job, stop): result for result, job in jobs}
    pending = set(futures)

    def merge(fut: concurrent.futures.Future[ProbeOutcome]) -> None:
        pending.discard(fut)
        result = futures[fut]
        try:
            outcome = fut.result()
        except ProbeInterrupted:
            outcome = ProbeOutcome(_interrupted())
        except Exception as exc:  # a bug in a probe: reported on the host, never a traceback
            outcome = ProbeOutcome(_single(Status.ERROR, f"internal error while probing: {exc!r}",
                                           [Evidence("probe", type(exc).__name__)]))
        result.duration_s += outcome.seconds
        if outcome.error is not None:
            result.error = outcome.error
        else:
            merge_checks(result, outcome.checks)

    try:
        for fut in concurrent.futures.as_completed(futures):
            merge(fut)
    except KeyboardInterrupt:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)  # running probes end at their next socket
        for fut in list(pending):
            if fut.cancelled():
                pending.discard(fut)
                merge_checks(futures[fut], _interrupted())
            else:
                merge(fut)  # finished before or after Ctrl-C: its whole outcome, or the interruption
        return True
    pool.shutdown(wait=True)
    return False


def probe_checks(address: str, ports: Sequence[int], timeout: float, stop: threading.Event, *,
                 own_addresses: frozenset[str] = frozenset(), why: Mapping[int, str] | None = None,
                 notes: Sequence[str] = (), allow_special: bool = False) -> list[CheckResult]:
    """observe, then to_checks with the vantage this machine's routes give (the target on its subnet)."""
    return to_checks(observe(address, ports, timeout, stop=stop, allow_special=allow_special), own_addresses,
                     why, notes, on_link=local_on_link(address))


def host_job(address: str, ports: Sequence[int] = DEFAULT_PORTS, timeout: float = DEFAULT_TIMEOUT,
             allow_special: bool = False) -> ProbeJob:
    """`nectar-audit probe ADDRESS`: the named address only; a failure is the host's error."""

    def job(stop: threading.Event) -> ProbeOutcome:
        start = time.monotonic()
        try:
            checks = probe_checks(address, ports, timeout, stop, allow_special=allow_special)
        except (OSError, ValueError, ScopeError) as exc:
            return ProbeOutcome(error=f"probe of {address} failed: {exc}", seconds=time.monotonic() - start)
        return ProbeOutcome(checks, seconds=time.monotonic() - start)

    return job


def probe_host(address: str, ports: Sequence[int] = DEFAULT_PORTS, timeout: float = DEFAULT_TIMEOUT) -> HostResult:
    """`nectar-audit probe ADDRESS` for one address, in this thread."""
    result = new_probe_result(address)
    run_probes([(result, host_job(address, ports, timeout))], 1)
    return result


def new_probe_result(address: str) -> HostResult:
    return HostResult(target=f"probe:{address}", started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _interrupted() -> list[CheckResult]:
    return _single(Status.MANUAL, INTERRUPTED, [Evidence("probe", "interrupted by Ctrl-C")])


def _single(status: Status, message: str, evidence: list[Evidence]) -> list[CheckResult]:
    finding = Finding(status, message, evidence)
    meta = catalog.entry("15")
    return [CheckResult(meta.id, meta.title, catalog.severity(meta.id), [finding], message)]


def scan_job(target: Any, timeout: float = DEFAULT_TIMEOUT) -> ProbeJob:
    """`scan --probe`: probe an SSH target's address on the ports its own evidence names (plus the defaults);
    for other targets, say that the vantage would be the host itself."""

    def job(stop: threading.Event) -> ProbeOutcome:
        return ProbeOutcome(_scan_checks(target, timeout, stop))

    return job


def scan_probe(result: HostResult, target: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
    """scan_job for one target, in this thread, merged into its result."""
    run_probes([(result, scan_job(target, timeout))], 1)


def _scan_checks(target: Any, timeout: float, stop: threading.Event) -> list[CheckResult]:
    kind = str(getattr(target, "kind", ""))
    if kind != "ssh" or not getattr(target, "host", None):
        return _single(
            Status.MANUAL,
            "active probes skipped: the vantage would be the host itself, which its services trust; "
            "run `nectar-audit probe ADDRESS` from another machine",
            [Evidence("probe", f"target kind {kind or 'unknown'}")],
        )
    plan = getattr(target, "probe_plan", None)
    if not isinstance(plan, PortPlan):
        plan = PortPlan(notes=("no evidence of the host's listeners or firewall: the default ports were probed",))
    try:
        address, resolved = resolve_address(target)
        return probe_checks(address, plan.ports, timeout, stop, own_addresses=plan.own_addresses, why=plan.why,
                            notes=[*resolved, *plan.notes])
    except (OSError, ValueError, ScopeError) as exc:
        host = getattr(target, "host", "?")
        return _single(Status.ERROR, f"active probe of {host} failed: {exc}", [Evidence("probe", str(exc))])
