"""What the cloud checks share: the instance, what its host showed, and the two-layer port table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nectar_audit.evidence.bundle import CLOUD_ONLY
from nectar_audit.facts import Facts, keys, ssh
from nectar_audit.facts import firewall as firewall_facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.firewall import Firewall, Verdict, firewall
from nectar_audit.facts.openstack import PORTED, Instance, Rule
from nectar_audit.facts.system import Listener, listeners
from nectar_audit.model import Evidence, Finding, Status

API = "OpenStack API"
HOST_AUDIT_FAILED = "host not audited over SSH: "
HOST_HINT = "the host itself was not audited (add --ssh-user USER to see what listens)"
SG_FIX = ("openstack security group rule delete RULE_ID   # or, in the dashboard: Network > Security Groups > "
          "Manage Rules")

# The host evidence the cloud cross-checks read when an instance is audited over SSH too.
NEEDS = firewall_facts.NEEDS | system_facts.NEEDS | keys.NEEDS | ssh.NEEDS


@dataclass
class CloudView:
    """One instance for the cloud checks: the API's view, and the host's own evidence when audited."""

    instance: Instance
    facts: Facts
    host: bool  # the host's own evidence is there (audited over SSH)
    listeners: list[Listener] | None = None
    firewall: Firewall | None = None
    host_errors: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, instance: Instance, facts: Facts) -> CloudView:
        host = facts.bundle.kind != CLOUD_ONLY and facts.bundle.live
        view = cls(instance, facts, host)
        if host:
            try:
                view.listeners = facts.get(listeners)
            except Exception as exc:
                view.host_errors.append(f"cannot list the host's listening sockets: {exc}")
            try:
                view.firewall = facts.get(firewall)
            except Exception as exc:
                view.host_errors.append(f"cannot read the host firewall: {exc}")
        return view

    @property
    def host_failures(self) -> list[str]:
        """Why logging in to the host failed (empty when it was audited, or not asked to be)."""
        return [e[len(HOST_AUDIT_FAILED):] for e in (*self.facts.bundle.errors, *self.instance.notes)
                if e.startswith(HOST_AUDIT_FAILED)]

    @property
    def hint(self) -> str:
        """Why the host's side is missing, for messages judged from the security groups alone."""
        return "the host could not be audited over SSH" if self.host_failures else HOST_HINT

    def serving(self, proto: str, port: int, family: int) -> list[Listener]:
        """Non-loopback listeners that accept ``proto``/``port`` over IPv``family``."""
        out = []
        for s in self.listeners or ():
            if s.proto != proto or s.port != port or s.loopback:
                continue
            if (family == 4 and s.covers_ipv4) or (family == 6 and s.covers_ipv6):
                out.append(s)
        return out

    def host_verdict(self, proto: str, port: int, family: int) -> Verdict | None:
        if self.firewall is None:
            return None
        try:
            return self.firewall.reachable(proto, port, family)
        except Exception as exc:  # an evaluator limit: say so rather than guess
            return Verdict(None, "", str(exc))


def rule_evidence(rules: Sequence[Rule]) -> list[Evidence]:
    """The rules a finding rests on, each once, as a reader finds them in the dashboard."""
    seen: dict[str, Evidence] = {}
    for r in rules:
        seen.setdefault(r.id, Evidence(API, r.describe()))
    return list(seen.values())


def all_rules_evidence(view: CloudView, what: str = "") -> list[Evidence]:
    """Every ingress rule of the instance (what a verdict of absence rests on)."""
    rules = view.instance.ingress_rules()
    return rule_evidence(rules) or [Evidence(API, f"no ingress rule on {len(view.instance.ports)} port(s)"
                                             + (f" ({what})" if what else ""))]


def cloud_fix(rules: Sequence[Rule]) -> str:
    """Commands removing ``rules`` (or turning port security back on for an unfiltered port)."""
    lines = []
    for r in rules:
        if r.unfiltered_port:
            line = (f"openstack port set --enable-port-security --security-group SG {r.unfiltered_port}   "
                    "# then allow only the ports the instance serves")
        else:
            line = f"openstack security group rule delete {r.id}"
        if line not in lines:
            lines.append(line)
    return "\n".join(lines) or SG_FIX


def world_clause(rules: Sequence[Rule]) -> str:
    """How the world gets in: through the security groups, or around them (port security off)."""
    unfiltered = ", ".join(sorted({r.unfiltered_port for r in rules if r.unfiltered_port}))
    if not unfiltered:
        return "the security groups let the whole internet reach"
    if all(r.unfiltered_port for r in rules):
        return f"port security is disabled on port {unfiltered}, so the whole internet reaches"
    return f"the security groups, and port {unfiltered} with port security disabled, let the whole internet reach"


def port_security_findings(view: CloudView, status: Status) -> list[Finding]:
    """A finding per port whose port security is off (no security group filters it at all)."""
    return [
        Finding(status, f"{p.label} has port security disabled: no cloud firewall filters it at all",
                [Evidence(API, f"port {p.id}: port_security_enabled = false")],
                f"openstack port set --enable-port-security --security-group SG {p.id}   "
                "# then allow only the ports the instance serves")
        for p in view.instance.ports if not p.port_security_enabled
    ]


@dataclass(frozen=True)
class Row:
    """One line of the two-layer table: a protocol/port (or range) and family."""

    proto: str
    lo: int
    hi: int
    family: int
    rules: tuple[Rule, ...]  # cloud rules letting it in (empty: the cloud drops it)
    serving: tuple[Listener, ...]
    host: Verdict | None  # host firewall verdict for a new connection from outside (None: unknown)

    @property
    def label(self) -> str:
        ports = str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"
        return f"{self.proto}/{ports} IPv{self.family}"

    def describe(self) -> str:
        cloud = "; ".join(f"anywhere (port security disabled on port {r.unfiltered_port})" if r.unfiltered_port
                          else f"{r.remote_label} ({r.group_name})" for r in self.rules) or "closed"
        host = "unknown" if self.host is None else self.host.describe()
        listening = ", ".join(s.describe() for s in self.serving) or "nothing"
        return f"{self.label}: cloud allows {cloud} | host firewall: {host} | listening: {listening}"


def table(view: CloudView) -> list[Row]:
    """The ports either layer cares about: every ported ingress rule and every non-loopback listener."""
    rows: list[Row] = []
    seen: set[tuple[str, int, int, int]] = set()
    rules = [r for r in view.instance.ingress_rules() if r.protocol in PORTED and not r.all_ports]
    for r in sorted(rules, key=lambda r: (r.protocol or "", r.port_min or 0, r.family)):
        assert r.protocol is not None and r.port_min is not None
        hi = r.port_max if r.port_max is not None else r.port_min
        key = (r.protocol, r.port_min, hi, r.family)
        if key in seen:
            continue
        seen.add(key)
        same = tuple(x for x in rules if (x.protocol, x.port_min, x.port_max or x.port_min, x.family) == key)
        serving = tuple(s for port in range(r.port_min, min(hi, r.port_min + 4096) + 1)
                        for s in view.serving(r.protocol, port, r.family)) if view.listeners is not None else ()
        probe = serving[0].port if serving else r.port_min
        rows.append(Row(r.protocol, r.port_min, hi, r.family, same, serving,
                        view.host_verdict(r.protocol, probe, r.family)))
    for s in view.listeners or ():
        if s.loopback or s.proto not in PORTED:
            continue
        for fam in ((4,) if s.family == 4 else (6, 4) if s.covers_ipv4 else (6,)):
            if any(row.proto == s.proto and row.family == fam and row.lo <= s.port <= row.hi for row in rows):
                continue
            allowing = tuple(view.instance.allowing(s.proto, s.port, fam))
            rows.append(Row(s.proto, s.port, s.port, fam, allowing, tuple(view.serving(s.proto, s.port, fam)),
                            view.host_verdict(s.proto, s.port, fam)))
    return rows
