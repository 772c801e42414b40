"""`nectar-audit cloud`: every instance of a project as a host, from the API and, optionally, over SSH.

Each instance becomes a target whose bundle carries its OpenStack record (``bundle.cloud``); with
``--ssh-user`` the host's own evidence is gathered over SSH into the same bundle, so one judging pass
cross-checks both and a saved bundle re-judges offline to the same result.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nectar_audit.cloud.checks.base import HOST_AUDIT_FAILED
from nectar_audit.cloud.gather import ProjectEvidence, ProjectIndex, instance_record
from nectar_audit.evidence import Bundle, Needs
from nectar_audit.evidence.bundle import CLOUD_ONLY
from nectar_audit.facts.openstack import PORTED, parse_instance
from nectar_audit.model import CheckResult, Evidence, Finding, Status
from nectar_audit.probes import DEFAULT_PORTS
from nectar_audit.probes.run import PROBE_WORKERS, ProbeOutcome, probe_checks, run_probes
from nectar_audit.targets.base import Target, TargetError
from nectar_audit.targets.ssh_options import SshOptions

if TYPE_CHECKING:  # probing is optional: its modules load when it is asked for
    from nectar_audit.model import HostResult
    from nectar_audit.probes.run import ProbeJob

ADDRESS_CHOICES = ("auto", "floating", "fixed")


class InstanceTarget:
    """An instance: its API record, plus the host's own evidence when an SSH target is given."""

    def __init__(self, name: str, record: dict[str, Any], host: Target | None = None) -> None:
        self.name = name
        self.record = record
        self.host = host
        self.kind = getattr(host, "kind", CLOUD_ONLY) if host is not None else CLOUD_ONLY

    @property
    def notices(self) -> list[str]:
        return list(getattr(self.host, "notices", ()))

    def _cloud_only(self, error: str | None = None) -> Bundle:
        bundle = Bundle(target=self.name, kind=CLOUD_ONLY, live=False, cloud=self.record)
        if error:
            bundle.errors.append(HOST_AUDIT_FAILED + error)
        return bundle

    def gather(self, needs: Needs) -> Bundle:
        if self.host is None:
            return self._cloud_only()
        try:
            bundle = self.host.gather(needs)
        except TargetError as exc:
            return self._cloud_only(str(exc))
        bundle.cloud = self.record
        return bundle

    async def gather_async(self, needs: Needs) -> Bundle:
        if self.host is None:
            return self._cloud_only()
        gather_async = getattr(self.host, "gather_async", None)
        try:
            bundle: Bundle = await gather_async(needs) if gather_async else self.host.gather(needs)
        except TargetError as exc:
            return self._cloud_only(str(exc))
        bundle.cloud = self.record
        return bundle


def ssh_address(record: dict[str, Any], prefer: str = "auto") -> str | None:
    """The address to log in at: a floating IP (``auto``/``floating``) else a fixed one, IPv4 first."""
    fixed = [ip["ip_address"] for p in record.get("ports") or () for ip in p.get("fixed_ips") or ()
             if ip.get("ip_address")]
    floating = [f["floating_ip_address"] for f in record.get("floating_ips") or () if f.get("floating_ip_address")]
    order = {"auto": floating + fixed, "floating": floating, "fixed": fixed}[prefer]
    valid = []
    for a in order:
        try:
            valid.append((ipaddress.ip_address(a).version, a))
        except ValueError:  # a saved evidence file edited by hand: not an address to log in to
            continue
    return min(valid, key=lambda v: v[0])[1] if valid else None


def _unique_names(servers: Sequence[dict[str, Any]]) -> dict[str, str]:
    counts: dict[str, int] = {}
    for s in servers:
        counts[s["name"]] = counts.get(s["name"], 0) + 1
    return {s["id"]: s["name"] if counts[s["name"]] == 1 else f"{s['name']}[{s['id'][:8]}]" for s in servers}


def instance_targets(ev: ProjectEvidence, ssh_user: str | None = None, ssh: SshOptions | None = None,
                     prefer: str = "auto") -> list[InstanceTarget]:
    from nectar_audit.targets.ssh import SshTarget

    names = _unique_names(ev.servers)
    index = ProjectIndex(ev)
    out = []
    for server in sorted(ev.servers, key=lambda s: (s["name"], s["id"])):
        record = instance_record(ev, server["id"], index)
        name = f"openstack:{names[server['id']]}"
        host: Target | None = None
        if ssh_user:
            address = ssh_address(record, prefer)
            if address is None:
                record["notes"].append(f"{HOST_AUDIT_FAILED}the instance has no {prefer} address")
            elif server.get("status") not in ("ACTIVE", None):
                record["notes"].append(f"{HOST_AUDIT_FAILED}the instance is {server.get('status')}")
            else:
                host = SshTarget(address, user=ssh_user, options=ssh or SshOptions(),
                                 name=f"{name} ({ssh_user}@{address})")
        out.append(InstanceTarget(host.name if host else name, record, host))
    return out


def limit_servers(ev: ProjectEvidence, patterns: Sequence[str]) -> None:
    """Keep the servers whose name or id matches one of ``patterns`` (shell-style globs); the others
    stay in ``other_servers``, as members of the remote groups that the kept ones' rules name."""
    import fnmatch

    if not patterns:
        return
    regex = re.compile("|".join(fnmatch.translate(p) for p in patterns))
    kept = {s["id"] for s in ev.servers if regex.match(s["name"]) or regex.match(s["id"])}
    ev.other_servers += [s for s in ev.servers if s["id"] not in kept]
    ev.servers = [s for s in ev.servers if s["id"] in kept]


MAX_PROBED_PORTS = 64  # per address: a range rule (1000-2000) must not turn a probe into a port scan


def probed_ports(record: dict[str, Any]) -> dict[int, str]:
    """port -> why it is probed: the ports the instance's security groups open (single ports first,
    a few of each range, at most MAX_PROBED_PORTS); the usual service ports when a port is unfiltered."""
    inst = parse_instance(record)
    singles: dict[int, str] = {}
    ranged: dict[int, str] = {}
    for p in inst.ports:
        if not p.port_security_enabled:
            for port in DEFAULT_PORTS:
                singles.setdefault(port, f"port security is disabled on {p.label}: every port is reachable")
    for r in inst.ingress_rules():
        if r.protocol not in PORTED or r.all_ports or r.port_min is None:
            continue
        hi = r.port_max if r.port_max is not None else r.port_min
        why = f"security group {r.group_name!r} opens {r.ports_label} to {r.remote_label}"
        for port in range(r.port_min, min(hi, r.port_min + 8) + 1):
            (singles if hi == r.port_min else ranged).setdefault(port, why)
    ordered = {**singles, **{p: w for p, w in ranged.items() if p not in singles}}
    return dict(list(ordered.items())[:MAX_PROBED_PORTS])


def probe_instances(targets: Sequence[InstanceTarget], results: Sequence[Any], prefer: str = "auto",
                    timeout: float = 2.0, workers: int = 16) -> bool:
    """Probe each instance's address on the ports its security groups open; findings are merged.
    True when Ctrl-C stopped the probes (instances not finished say so)."""
    jobs: list[tuple[HostResult, ProbeJob]] = []
    for target, result in zip(targets, results):
        address = ssh_address(target.record, prefer)
        ports = probed_ports(target.record)
        if address is not None and ports:
            jobs.append((result, _instance_job(address, ports, timeout)))
    return run_probes(jobs, min(workers, PROBE_WORKERS))


def _instance_job(address: str, ports: dict[int, str], timeout: float) -> ProbeJob:
    import threading


    def job(stop: threading.Event) -> ProbeOutcome:
        try:
            return ProbeOutcome(probe_checks(address, list(ports), timeout, stop, why=ports))
        except (OSError, ValueError) as exc:
            note = Finding(Status.ERROR, f"active probe of {address} failed: {exc}", [Evidence("probe", str(exc))])
            return ProbeOutcome([CheckResult("Check-Security-15", "", "", [note], note.message)])

    return job
