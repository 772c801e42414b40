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

from nectar_audit.checks.base import Check, for_family
from nectar_audit.evidence import EvidenceError
from nectar_audit.facts import Facts
from nectar_audit.facts import firewall as firewall_facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.firewall import Firewall, PortRange, Verdict, firewall
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
            f"firewall-cmd --permanent --remove-port={port}/{proto} (or --remove-service=NAME) && "
            "firewall-cmd --reload"
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


def run(facts: Facts) -> list[Finding]:
    fw = facts.get(firewall)
    try:
        socks = facts.get(listeners)
    except EvidenceError as exc:
        if facts.bundle.live:
            raise
        return _offline(facts, fw, str(exc))
    findings: list[Finding] = []
    src = sockets_source(facts)
    which = "loaded" if fw.loaded_known else "boot"
    if not fw.loaded_known:
        findings.append(
            Finding(
                Status.ERROR,
                f"The loaded firewall rules are unknown ({fw.loaded_error}); "
                "judged with the rules restored at boot instead",
            )
        )

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
        tail = f"; only a loopback listener: {loop[0].describe()}" if loop else ""
        ev = [
            Evidence(fw.source_of(g.verdict, which), f"{FAMILY_NAME[g.family]}: {g.verdict.rule}")
            for g in group
        ]
        if to_all:
            status = Status.FAIL if lo == hi else Status.WARN
            msg = (
                f"Port {r.label()} is open in the firewall ({fams}) but nothing listens on it{tail}"
                if lo == hi
                else f"Ports {r.label()} are open in the firewall ({fams}) but nothing listens on any{tail}"
            )
        else:
            status = Status.WARN
            srcs = ", ".join(sorted({s for g in group for s in g.verdict.sources}))
            msg = f"Port {r.label()} is open to {srcs} ({fams}) but nothing listens on it{tail}"
        port_text = str(lo) if lo == hi else f"{lo}:{hi}"
        findings.append(Finding(status, msg, ev, _close_fix(facts, proto, port_text, fw)))

    for (proto, lo, hi), group in wide.items():
        fams = " and ".join(FAMILY_NAME[g.family] for g in group)
        ev = [
            Evidence(fw.source_of(g.verdict, which), f"{FAMILY_NAME[g.family]}: {g.verdict.rule}")
            for g in group
        ]
        findings.append(
            Finding(
                Status.WARN,
                f"Ports {group[0].label()} ({hi - lo + 1} ports) are open in the firewall ({fams}): "
                "open only the ports of required services",
                ev,
                _close_fix(facts, proto, f"{lo}:{hi}", fw),
            )
        )

    # 2. Listeners beyond loopback: the table, and the ones not in ports.allowed.
    table: list[Evidence] = []
    review: list[tuple[Listener, list[str]]] = []
    for s in socks:
        if s.loopback:
            continue
        if (s.proto, s.port) in CLIENT_PORTS:
            continue
        cells: list[str] = []
        reachable = False
        for fam in _families(s):
            if not fw.loaded_known and not any(m.enabled for m in fw.boot):
                v = Verdict(True, "no firewall rules loaded or restored at boot")
            else:
                v = _verdict(fw, s, fam)
            cells.append(f"{FAMILY_NAME[fam]}: {v.describe()}")
            if v.allowed is not False or (v.sources and not _trusted(facts, v.sources)):
                reachable = True
        table.append(Evidence(src, f"{s.describe()} → " + "; ".join(cells)))
        if reachable and not _allowed(facts, s.proto, s.port):
            review.append((s, cells))
    if review:
        if facts.config.allowed_ports:
            for s, cells in review:
                findings.append(
                    Finding(
                        Status.WARN,
                        f"{s.endpoint} ({s.process or 'unknown process'}) listens beyond loopback, the "
                        f"firewall lets it in, and it is not in ports.allowed",
                        [Evidence(src, f"{s.describe()} → " + "; ".join(cells))],
                        _rebind_fix(s),
                    )
                )
        else:
            names = ", ".join(f"{s.endpoint} ({s.process or '?'})" for s, _ in review[:8])
            findings.append(
                Finding(
                    Status.MANUAL,
                    f"No ports.allowed list in the config: review the {len(review)} listener(s) the "
                    f"firewall lets in: {names}",
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
                f"Every port the firewall opens has a listener, and the {n} "
                "non-loopback listener(s) are allowed or blocked",
                [],
            )
        )
    findings.append(
        Finding(
            Status.PASS,
            f"Listeners × firewall ({len(table)} beyond loopback)",
            table or [Evidence(src, "no listener beyond loopback")],
        )
    )
    return findings


def _offline(facts: Facts, fw: Firewall, reason: str) -> list[Finding]:
    if not any(m.enabled for m in fw.boot):
        return [
            Finding(
                Status.MANUAL,
                "Offline image: no firewall is restored at boot (see Check-Security-08) "
                f"and what will listen cannot be known ({reason})",
            )
        ]
    ranges = [
        r for r in fw.open_ports(which="boot") if r.hi - r.lo + 1 <= WIDE and r.verdict.allowed is not None
    ]
    ev = [
        Evidence(
            fw.source_of(r.verdict, "boot"), f"{FAMILY_NAME[r.family]} {r.label()}: {r.verdict.describe()}"
        )
        for r in ranges
    ]
    if not ranges:
        return [
            Finding(
                Status.PASS,
                "Offline image: the firewall restored at boot opens no port "
                f"(what will listen cannot be known: {reason})",
                ev,
            )
        ]
    labels = sorted({r.label() for r in ranges})
    return [
        Finding(
            Status.MANUAL,
            f"Offline image: the firewall restored at boot opens {', '.join(labels[:10])}"
            f"; check that a required service listens on each ({reason})",
            ev,
        )
    ]


CHECK = Check(
    id="Check-Security-15",
    severity="medium",
    run=run,
    needs=firewall_facts.NEEDS | system_facts.NEEDS,
    why="An open firewall port with no service behind it invites whatever starts listening there later; a "
    "service listening on every interface that nobody needs from outside is exposed attack surface.",
    how="Crosses the listening sockets (ss -tulpnH or /proc/net) with the host firewall evaluator of "
    "Check-Security-08: every port the firewall opens to a non-local source must have a non-loopback "
    "listener (fail otherwise); every non-loopback listener the firewall lets in must be in ports.allowed "
    "(warn otherwise; without that list, a manual review). Offline images: lists the ports the boot-time "
    "rules open. `nectar-audit cloud` adds the security groups: every port a rule opens must have a "
    "listener the host firewall lets through ([cloud] findings).",
    fix={
        "debian": "ufw delete allow PORT/PROTO (or remove the rule from /etc/nftables.conf); stop or rebind "
        "unneeded listeners to 127.0.0.1",
        "rhel": "firewall-cmd --permanent --remove-port=PORT/PROTO && firewall-cmd --reload; stop or rebind "
        "unneeded listeners",
        "fedora": "firewall-cmd --permanent --remove-port=PORT/PROTO && firewall-cmd --reload",
    },
)
