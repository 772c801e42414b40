"""Run the probes against one address and turn observations into a HostResult (checks 01, 05, 06, 13, 15)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from nectar_audit.checklist import BY_ID
from nectar_audit.model import CheckResult, Evidence, Finding, HostResult, Status
from nectar_audit.probes import Observation, validate_target, vantage_note
from nectar_audit.probes.dns import probe_dns
from nectar_audit.probes.ntp import probe_ntp
from nectar_audit.probes.reach import probe_tcp
from nectar_audit.probes.ssh import probe_ssh
from nectar_audit.probes.tls import probe_plaintext

DEFAULT_PORTS = (21, 22, 23, 25, 53, 80, 110, 123, 143, 443, 5900, 6379)
SEVERITY = {"01": "high", "05": "high", "06": "medium", "13": "high", "15": "high"}
_STATUS = {"pass": Status.PASS, "fail": Status.FAIL, "warn": Status.WARN, "manual": Status.MANUAL}


def observe(address: str, ports: Sequence[int] = DEFAULT_PORTS, timeout: float = 2.0) -> list[Observation]:
    """Probe `address` only (no name resolution, no other host), port by port, in a bounded way."""
    address = validate_target(address)
    obs: list[Observation] = []
    for port in ports:
        if port == 123:
            obs.extend(probe_ntp(address, port, timeout))
            continue
        if port == 53:
            obs.extend(probe_dns(address, port, timeout))
            continue
        reach = probe_tcp(address, port, timeout)
        obs.append(reach)
        if reach.verdict != "manual":  # not open
            continue
        try:
            obs.extend(probe_ssh(address, port, timeout) if port == 22 else [probe_plaintext(address, port, timeout)])
        except OSError as exc:
            obs.append(
                Observation(
                    "13" if port != 22 else "01",
                    address,
                    port,
                    "tcp",
                    reach.source,
                    "manual",
                    f"{address}:{port}/tcp: probe failed: {exc}",
                )
            )
    return obs


def to_checks(observations: Iterable[Observation], own_addresses: frozenset[str] = frozenset()) -> list[CheckResult]:
    by_check: dict[str, list[Finding]] = {}
    for o in observations:
        status = _STATUS[o.verdict]
        note = vantage_note(o.source, o.target, own_addresses)
        message = o.message if "observed from" in o.message else f"{o.message} (observed from {o.source})"
        evidence = [Evidence(f"probe {o.target}:{o.port}/{o.proto} from {o.source}", o.message)]
        if note is not None:
            evidence.append(Evidence("vantage", note))
            if status is Status.PASS:  # a trusted vantage cannot prove something is closed to the world
                status = Status.MANUAL
                message = f"{message}; {note}"
        by_check.setdefault(o.check, []).append(Finding(status, message, evidence))
    out = []
    for cid in sorted(by_check):
        full = f"Check-Security-{cid}"
        findings = by_check[cid]
        worst = max(findings, key=lambda f: f.status.rank)
        out.append(CheckResult(full, BY_ID[full].question, SEVERITY[cid], findings, worst.message))
    return out


def probe_host(address: str, ports: Sequence[int] = DEFAULT_PORTS, timeout: float = 2.0) -> HostResult:
    start = time.monotonic()
    result = HostResult(target=f"probe:{address}", started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    try:
        result.checks = to_checks(observe(address, ports, timeout))
    except (OSError, ValueError) as exc:
        result.error = f"probe of {address} failed: {exc}"
    result.duration_s = time.monotonic() - start
    return result


def merge_into(result: HostResult, probed: list[CheckResult]) -> None:
    """Add probe findings to a scanned host's checks (same id: findings appended, summary = worst)."""
    by_id = {c.id: c for c in result.checks}
    for pc in probed:
        existing = by_id.get(pc.id)
        if existing is None:
            result.checks.append(pc)
            by_id[pc.id] = pc
            continue
        existing.findings.extend(pc.findings)
        worst = max(existing.findings, key=lambda f: f.status.rank)
        existing.summary = worst.message


def scan_probe(result: HostResult, kind: str, host: str | None, timeout: float = 2.0) -> None:
    """`scan --probe`: probe a remote target's address; for the local host, say the vantage is itself."""
    import socket

    if kind != "ssh" or not host:
        note = Finding(
            Status.MANUAL,
            "active probes skipped: the vantage would be the host itself, which its services trust; "
            "run `nectar-audit probe ADDRESS` from another machine",
            [Evidence("probe", f"target kind {kind}")],
        )
        merge_into(
            result,
            [CheckResult("Check-Security-15", BY_ID["Check-Security-15"].question, "high", [note], note.message)],
        )
        return
    try:
        address = str(socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0])
        probed = to_checks(observe(address, DEFAULT_PORTS, timeout))
    except (OSError, ValueError) as exc:
        failed = Finding(Status.ERROR, f"active probe of {host} failed: {exc}", [Evidence("probe", str(exc))])
        probed = [
            CheckResult("Check-Security-15", BY_ID["Check-Security-15"].question, "high", [failed], failed.message)
        ]
    merge_into(result, probed)
