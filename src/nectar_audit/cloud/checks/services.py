"""Checks 02, 05 and 06 from the cloud side: mail, DNS and NTP reachable from the world while served.

The security groups say who may reach a port; the host says whether something serves it. The host's
own checks judge the daemon's configuration (recursion ACLs, ``restrict`` lines); this adds the one fact
the host cannot see: whether the world gets through the cloud firewall at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from nectar_audit.cloud.checks.base import API, CloudView, cloud_fix, rule_evidence, world_clause
from nectar_audit.facts.network import PORTS as MAIL_PORT_NAMES
from nectar_audit.facts.openstack import Rule
from nectar_audit.facts.system import Listener
from nectar_audit.model import Evidence, Finding, Status


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    ports: tuple[tuple[str, int], ...]
    # Status when the world reaches a port the host serves: a mail server must stay on localhost
    # (fail); DNS and NTP may be public on purpose, so the daemon's own ACLs decide (warn).
    served_status: Status
    advice: str


MAIL = Service("Check-Security-02", "mail", tuple(("tcp", p) for p in sorted(set(MAIL_PORT_NAMES.values()))),
               Status.FAIL, "a mail server on an instance should listen on localhost only; relay through "
               "your institution's mail service")
DNS = Service("Check-Security-05", "DNS", (("udp", 53), ("tcp", 53)), Status.WARN,
              "the resolver must refuse recursion to clients outside your trusted networks (see the host "
              "finding, or confirm with nectar-audit probe ADDRESS from outside)")
NTP = Service("Check-Security-06", "NTP", (("udp", 123),), Status.WARN,
              "the NTP daemon must not serve time or monitoring data to the world (restrict default "
              "noquery; chrony without allow)")


def _world(view: CloudView, proto: str, port: int) -> list[Rule]:
    return [r for fam in (4, 6) for r in view.instance.allowing(proto, port, fam) if r.world]


def judge(view: CloudView, svc: Service) -> list[Finding]:
    open_ports: list[tuple[str, int, list[Evidence]]] = []
    world: list[Rule] = []
    for proto, port in svc.ports:
        rules = _world(view, proto, port)
        if rules:
            open_ports.append((proto, port, rule_evidence(rules)))
            world += rules
    labels = ", ".join(f"{p}/{n}" for p, n, _ in open_ports)
    if not open_ports:
        wanted = ", ".join(f"{p}/{n}" for p, n in svc.ports)
        narrower = [r for p, n in svc.ports for fam in (4, 6) for r in view.instance.allowing(p, n, fam)]
        return [Finding(Status.PASS, f"the security groups keep the {svc.name} ports closed to the world",
                        [Evidence(API, f"no rule opens {wanted} to 0.0.0.0/0 or ::/0"), *rule_evidence(narrower)])]
    fix = cloud_fix(world) + "\n# or replace it with a rule for your own networks only (--remote-ip NETWORK/PREFIX)"
    if not view.host:
        return [Finding(Status.WARN, f"{world_clause(world)} {svc.name} ({labels}) if a server listens; "
                        f"{view.hint}", [e for *_, ev in open_ports for e in ev], fix)]
    if view.listeners is None:
        return [Finding(Status.ERROR, "; ".join(view.host_errors) or "the host's listeners are unknown")]
    served = [(p, n, ev, s) for p, n, ev in open_ports
              for s in _serving(view, p, n)]
    if not served:
        return [Finding(Status.PASS, f"the security groups open {labels} to the world but no {svc.name} "
                        "server listens there (an open port without a service: see Check-Security-15)",
                        [e for *_, ev in open_ports for e in ev])]
    out = []
    for proto, port, ev, s in served:
        host_v = view.host_verdict(proto, port, s.family)
        host_ev = Evidence("host", f"{s.describe()}; host firewall: "
                           f"{'unknown' if host_v is None else host_v.describe()}")
        if host_v is not None and host_v.allowed is False and not host_v.sources:
            out.append(Finding(Status.PASS, f"{proto}/{port} is open to the world in the security groups but "
                               f"the host firewall drops it before {s.owner}", [*ev, host_ev]))
            continue
        reason = world_clause([r for r in world if r.covers(proto, port)])
        out.append(Finding(svc.served_status, f"{s.owner} serves {svc.name} on {proto}/{port} and {reason} it: "
                           f"{svc.advice}", [*ev, host_ev], fix))
    return out


def _serving(view: CloudView, proto: str, port: int) -> list[Listener]:
    seen: list[Listener] = []
    for fam in (4, 6):
        for s in view.serving(proto, port, fam):
            if s not in seen:
                seen.append(s)
    return seen
