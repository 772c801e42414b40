"""Check-Security-15: are ports opened for services that are not required? (host side)

Crosses the listening sockets with the host firewall: a port the firewall opens to any non-local
source with nothing listening on it fails ("never open a port without a service bound to it"); a
listener on a non-loopback address the firewall lets in and that ``ports.allowed`` of the config file
does not list warns. The table listener × firewall is the evidence. The cloud security groups are
another issue's business.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from nectar_audit.checks.base import Check, for_family
from nectar_audit.facts import Facts
from nectar_audit.facts import firewall as firewall_facts
from nectar_audit.facts import network as network_facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.firewall import Firewall, PortRange, Verdict, firewall
from nectar_audit.facts.network import ServicePlan, service_plan
from nectar_audit.facts.system import Listener, listeners, sockets_source
from nectar_audit.model import Evidence, Finding, Status

FAMILY_NAME = {4: "IPv4", 6: "IPv6"}
# Client sockets that look like listeners: DHCP clients.
CLIENT_PORTS = {("udp", 68), ("udp", 546)}
# Ranges wider than this are "the default" rather than a port someone opened on purpose.
WIDE = 1024


def _families(item: Listener) -> tuple[int, ...]:
    if item.family == 4:
        return (4,)
    return (4, 6) if item.covers_ipv4 else (6,)


def _verdict(fw: Firewall, item: Listener, family: int) -> Verdict:
    daddr = None if item.wildcard else item.address
    if daddr is not None and family == 4 and item.family == 6:
        daddr = None
    return fw.evaluate(item.proto, item.port, family, daddr=daddr)


def _trusted(facts: Facts, sources: Sequence[str]) -> bool:
    """Every network the firewall admits lies inside the config's trusted_networks."""
    nets = facts.config.trusted_networks
    if not nets:
        return False
    for text in sources:
        src = ipaddress.ip_network(text, strict=False)
        if not any(src.version == n.version and src.subnet_of(n) for n in nets):  # type: ignore[arg-type]
            return False
    return True


def _allowed(facts: Facts, proto: str, port: int) -> bool:
    return f"{port}/{proto}" in facts.config.allowed_ports


def _close_fix(facts: Facts, proto: str, port: str, fw: Firewall) -> str | None:
    if fw.ufw is not None and fw.ufw.enabled:
        return f"ufw delete allow {port}/{proto}   (see `ufw status numbered`)"
    if fw.firewalld is not None and any(m.name == "firewalld" and m.enabled for m in fw.boot):
        return (
            f"firewall-cmd --permanent --remove-port={port}/{proto} (or --remove-service=NAME) && firewall-cmd --reload"
        )
    return for_family(
        facts,
        {
            "debian": f"Remove the rule that accepts {proto} port {port} from /etc/nftables.conf (or "
            "/etc/iptables/rules.v4/v6) and reload it",
            "rhel": f"firewall-cmd --permanent --remove-port={port}/{proto} && firewall-cmd --reload",
        },
    )


def _rebind_fix(s: Listener) -> str:
    return (
        "Stop or rebind the service to 127.0.0.1 if it is not needed from outside, block the port in the "
        f'firewall, or add "{s.port}/{s.proto}" to ports.allowed in the nectar-audit config'
    )


def _range_listeners(socks: Sequence[Listener], r: PortRange) -> list[Listener]:
    return [
        s
        for s in socks
        if s.proto == r.proto and r.lo <= s.port <= r.hi and not s.loopback and r.family in _families(s)
    ]


@dataclass(frozen=True)
class _View:
    """Where the listeners come from: the live sockets, or (offline) the services' configuration."""

    plan: ServicePlan | None = None
    sources: dict[tuple[str, int, str], Evidence] = field(default_factory=dict)
    live_source: str = ""

    @property
    def offline(self) -> bool:
        return self.plan is not None

    def row(self, s: Listener) -> Evidence:
        if self.plan is None:
            return Evidence(self.live_source, s.describe())
        return self.sources.get((s.proto, s.port, s.address), Evidence("configuration", s.describe()))


def _planned(plan: ServicePlan) -> tuple[list[Listener], dict[tuple[str, int, str], Evidence]]:
    socks: list[Listener] = []
    rows: dict[tuple[str, int, str], Evidence] = {}
    for item in plan.listeners:
        li = item.listener()
        socks.append(li)
        ev = item.evidence[0] if item.evidence else Evidence(plan.enabled_source, item.unit)
        rows[(li.proto, li.port, li.address)] = Evidence(ev.source, f"{item.describe()}: {ev.detail}")
    return socks, rows


def run(facts: Facts) -> list[Finding]:
    fw = facts.get(firewall)
    if not facts.bundle.live:
        return _offline(facts, fw)
    socks = facts.get(listeners)
    return _judge(facts, fw, socks, _View(live_source=sockets_source(facts)))


def _judge(facts: Facts, fw: Firewall, socks: Sequence[Listener], view: _View) -> list[Finding]:
    findings: list[Finding] = []
    plan = view.plan
    which = "loaded" if fw.loaded_known else "boot"
    if not fw.loaded_known and not view.offline:
        findings.append(
            Finding(
                Status.ERROR,
                f"The loaded firewall rules are unknown ({fw.loaded_error}); "
                "judged with the rules restored at boot instead",
            )
        )
    predicted = f" (predicted from configuration: {plan.describe_sources()})" if plan is not None else ""
    nothing = "no enabled service is configured to serve it" if plan is not None else "nothing listens on it"
    nothing_any = "no enabled service is configured to serve any" if plan is not None else "nothing listens on any"
    where = "the firewall restored at boot" if plan is not None else "the firewall"

    # 1. Ports the firewall opens with nothing listening (one finding per port range, both families).
    ranges = fw.open_ports(which=which)
    empty: dict[tuple[str, int, int, bool], list[PortRange]] = {}
    defaults = {fam: fw.default_verdicts(fam, which) for fam in (4, 6)}
    wide: dict[tuple[str, int, int], list[PortRange]] = {}
    for r in ranges:
        if r.verdict.allowed is None:
            continue
        if r.hi - r.lo + 1 > WIDE:
            # An open default is Check-Security-08's business; a wide range opened on purpose is noted here.
            if r.verdict.allowed and defaults[r.family][r.proto].allowed is False:
                wide.setdefault((r.proto, r.lo, r.hi), []).append(r)
            continue
        if (r.proto, r.lo) in CLIENT_PORTS and r.lo == r.hi:
            continue
        if _range_listeners(socks, r):
            continue
        empty.setdefault((r.proto, r.lo, r.hi, bool(r.verdict.allowed)), []).append(r)
    for (proto, lo, hi, to_all), group in empty.items():
        r = group[0]
        fams = " and ".join(FAMILY_NAME[g.family] for g in group)
        loop = [s for s in socks if s.proto == proto and lo <= s.port <= hi and s.loopback]
        tail = f"; only a loopback listener: {view.row(loop[0]).detail}" if loop else ""
        ev = [Evidence(fw.source_of(g.verdict, which), f"{FAMILY_NAME[g.family]}: {g.verdict.rule}") for g in group]
        maybe = (
            sorted({u.unit for p in range(lo, hi + 1) for u in plan.could_serve(proto, p)})
            if plan is not None and hi - lo < 64
            else []
        )
        if plan is not None and (maybe or (hi - lo >= 64 and plan.undecided)):
            why = "; ".join(f"{u.unit}: {u.why}" for u in plan.undecided if u.unit in maybe or not maybe)
            findings.append(
                Finding(
                    Status.MANUAL,
                    f"Offline image: {where} opens {r.label()} ({fams}); no enabled service is configured to "
                    f"serve it, but {', '.join(maybe) or 'enabled services'} may, and the configuration does "
                    f"not tell ({why}){predicted}",
                    ev,
                )
            )
            continue
        if to_all:
            status = Status.FAIL if lo == hi else Status.WARN
            msg = (
                f"Port {r.label()} is open in {where} ({fams}) but {nothing}{tail}"
                if lo == hi
                else f"Ports {r.label()} are open in {where} ({fams}) but {nothing_any}{tail}"
            )
        else:
            status = Status.WARN
            srcs = ", ".join(sorted({s for g in group for s in g.verdict.sources}))
            inside = f" in {where}" if plan is not None else ""
            msg = f"Port {r.label()} is open to {srcs}{inside} ({fams}) but {nothing}{tail}"
        if plan is not None:
            msg = "Offline image: " + msg[0].lower() + msg[1:] + predicted
            ev += [Evidence(src, "read") for src in plan.sources]
        port_text = str(lo) if lo == hi else f"{lo}:{hi}"
        findings.append(Finding(status, msg, ev, _close_fix(facts, proto, port_text, fw)))

    for (proto, lo, hi), group in wide.items():
        fams = " and ".join(FAMILY_NAME[g.family] for g in group)
        ev = [Evidence(fw.source_of(g.verdict, which), f"{FAMILY_NAME[g.family]}: {g.verdict.rule}") for g in group]
        findings.append(
            Finding(
                Status.WARN,
                f"Ports {group[0].label()} ({hi - lo + 1} ports) are open in {where} ({fams}): "
                "open only the ports of required services",
                ev,
                _close_fix(facts, proto, f"{lo}:{hi}", fw),
            )
        )

    # 2. Listeners beyond loopback: the table, and the ones not in ports.allowed.
    table: list[Evidence] = []
    review: list[tuple[Listener, list[str]]] = []
    no_firewall = not fw.loaded_known and not any(m.enabled for m in fw.boot)
    for s in socks:
        if s.loopback:
            continue
        if (s.proto, s.port) in CLIENT_PORTS:
            continue
        cells: list[str] = []
        reachable = False
        for fam in _families(s):
            v = Verdict(True, "no firewall rules loaded or restored at boot") if no_firewall else _verdict(fw, s, fam)
            cells.append(f"{FAMILY_NAME[fam]}: {v.describe()}")
            if v.allowed is not False or (v.sources and not _trusted(facts, v.sources)):
                reachable = True
        row = view.row(s)
        table.append(Evidence(row.source, f"{row.detail} → " + "; ".join(cells)))
        if reachable and not _allowed(facts, s.proto, s.port):
            review.append((s, cells))
    if plan is not None and no_firewall and plan.undecided:
        findings.append(
            Finding(
                Status.MANUAL,
                "Offline image: no firewall is restored at boot, so whatever the enabled services listen on "
                "is reachable, and for "
                + ", ".join(f"{u.unit} ({u.why})" for u in plan.undecided[:6])
                + (" …" if len(plan.undecided) > 6 else "")
                + f" the configuration does not tell which ports that is{predicted}",
                [Evidence(plan.enabled_source, u.unit) for u in plan.undecided],
                "Enable a firewall that opens only the required ports (see Check-Security-08)",
            )
        )
    if review:
        name = "predicted listener" if plan is not None else "listener"
        lead = "Offline image: " if plan is not None else ""
        if facts.config.allowed_ports:
            for s, cells in review:
                row = view.row(s)
                findings.append(
                    Finding(
                        Status.WARN,
                        f"{lead}{s.endpoint} ({s.process or 'unknown process'}) "
                        + ("is configured to listen" if plan is not None else "listens")
                        + " beyond loopback, the firewall lets it in, and it is not in ports.allowed"
                        + predicted,
                        [Evidence(row.source, f"{row.detail} → " + "; ".join(cells))],
                        _rebind_fix(s),
                    )
                )
        else:
            names = ", ".join(f"{s.endpoint} ({s.process or '?'})" for s, _ in review[:8])
            findings.append(
                Finding(
                    Status.MANUAL,
                    f"{lead}{'n' if lead else 'N'}o ports.allowed list in the config: review the "
                    f"{len(review)} {name}(s) the firewall lets in: {names}{predicted}",
                    [],
                    'List the required ports in the config file: a "ports" table with allowed = '
                    '"22/tcp", "443/tcp" as a TOML list',
                )
            )
    if not any(f.status in (Status.FAIL, Status.WARN, Status.MANUAL) for f in findings):
        n = len([s for s in socks if not s.loopback])
        findings.append(
            Finding(
                Status.PASS,
                (
                    (
                        "Offline image: no firewall is restored at boot (see Check-Security-08), and "
                        + (
                            f"the {n} predicted non-loopback listener(s) are in ports.allowed"
                            if n
                            else "no enabled service is configured to listen beyond loopback"
                        )
                        + predicted
                    )
                    if no_firewall
                    else (
                        f"Offline image: every port {where} opens has a service configured to serve it, and the "
                        f"{n} predicted non-loopback listener(s) are allowed or blocked{predicted}"
                    )
                )
                if plan is not None
                else (
                    f"Every port the firewall opens has a listener, and the {n} "
                    "non-loopback listener(s) are allowed or blocked"
                ),
                [],
            )
        )
    title = (
        f"Predicted listeners × firewall restored at boot ({len(table)} beyond loopback)"
        if plan is not None
        else f"Listeners × firewall ({len(table)} beyond loopback)"
    )
    empty_row = (
        Evidence(plan.enabled_source, "no enabled service is configured to listen beyond loopback")
        if plan is not None
        else Evidence(view.live_source, "no listener beyond loopback")
    )
    findings.append(Finding(Status.PASS, title, table or [empty_row]))
    return findings


def _offline(facts: Facts, fw: Firewall) -> list[Finding]:
    """An image does not run: its boot firewall against what its enabled services are configured to serve."""
    plan = facts.get(service_plan)
    socks, rows = _planned(plan)
    return _judge(facts, fw, socks, _View(plan, rows))


CHECK = Check(
    id="Check-Security-15",
    severity="medium",
    run=run,
    needs=firewall_facts.NEEDS | system_facts.NEEDS | network_facts.NEEDS,
    why="An open firewall port with no service behind it invites whatever starts listening there later; a "
    "service listening on every interface that nobody needs from outside is exposed attack surface.",
    how="Crosses the listening sockets (ss -tulpnH or /proc/net) with the host firewall evaluator of "
    "Check-Security-08: every port the firewall opens to a non-local source must have a non-loopback "
    "listener (fail otherwise); every non-loopback listener the firewall lets in must be in ports.allowed "
    "(warn otherwise; without that list, a manual review). Offline images: the same with the rules restored "
    "at boot and the listeners the enabled services are configured to open (sshd Port/ListenAddress or its "
    "socket unit, Postfix/Exim/Dovecot, nginx/Apache, DNS and NTP servers, FTP, Redis, rsyslog inputs, socket "
    "units, inetd), stated as a prediction; a port only an enabled service of unknown listeners could serve "
    "stays manual. `nectar-audit cloud` adds the security groups: every port a rule opens must have a "
    "listener the host firewall lets through ([cloud] findings).",
    fix={
        "debian": "ufw delete allow PORT/PROTO (or remove the rule from /etc/nftables.conf); stop or rebind "
        "unneeded listeners to 127.0.0.1",
        "rhel": "firewall-cmd --permanent --remove-port=PORT/PROTO && firewall-cmd --reload; stop or rebind "
        "unneeded listeners",
        "fedora": "firewall-cmd --permanent --remove-port=PORT/PROTO && firewall-cmd --reload",
    },
)
