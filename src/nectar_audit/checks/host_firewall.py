"""Check-Security-08: is a host-based firewall running?

An input filter that drops or rejects by default (chain policy or a final rule), for IPv4 and IPv6,
loaded in the kernel now and restored at boot. Judged by evaluating the rules themselves: a TCP and a
UDP port no rule names must be refused from a non-local source. Rules that only Docker, libvirt or
fail2ban added under an ACCEPT policy are therefore not a firewall, and IPv6 left open beside a
filtered IPv4 fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from nectar_audit.checks.base import Check, for_family
from nectar_audit.checks.host_firewall_fix import NEEDS as PLAN_NEEDS
from nectar_audit.checks.host_firewall_fix import plan
from nectar_audit.facts import Facts
from nectar_audit.facts import firewall as firewall_facts
from nectar_audit.facts.firewall import Firewall, PortRange, chain_label, firewall
from nectar_audit.model import Evidence, Finding, Status

FAMILY_NAME = {4: "IPv4", 6: "IPv6"}

FIX_ENABLE = {
    "debian": "ufw allow OpenSSH && ufw enable   (ufw filters IPv4 and IPv6; IPV6=yes in /etc/default/ufw), "
    "or put a default-drop input chain in /etc/nftables.conf (table inet) and systemctl enable --now "
    "nftables",
    "rhel": "dnf install firewalld && systemctl enable --now firewalld && firewall-cmd --permanent "
    "--add-service=ssh && firewall-cmd --reload",
}
FIX_V6 = {
    "debian": "Filter IPv6 too: set IPV6=yes in /etc/default/ufw and run ufw reload, or use a `table inet` "
    "(both families) with policy drop in /etc/nftables.conf, or add a default-drop "
    "/etc/iptables/rules.v6 for netfilter-persistent",
    "rhel": "firewalld filters both families; with iptables-services also enable ip6tables.service with a "
    "default-drop /etc/sysconfig/ip6tables",
}
FIX_BOOT = {
    "ufw": "systemctl enable ufw (and keep ENABLED=yes in /etc/ufw/ufw.conf)",
    "firewalld": "systemctl enable --now firewalld",
    "nftables": "systemctl enable nftables (it loads /etc/nftables.conf at boot)",
    "netfilter-persistent": "netfilter-persistent save && systemctl enable netfilter-persistent",
    "iptables-services": "service iptables save && systemctl enable iptables ip6tables",
}


def _ports_summary(ranges: Sequence[PortRange], limit: int = 12) -> str:
    opened = [r for r in ranges if r.verdict.allowed]
    restricted = [r for r in ranges if r.verdict.allowed is False and r.verdict.sources]
    undecided = [r for r in ranges if r.verdict.allowed is None]
    parts: list[str] = []
    if opened:
        parts.append("open to all: " + _labels(opened, limit))
    if restricted:
        parts.append(
            "only from some networks: "
            + ", ".join(f"{r.label()} ({', '.join(r.verdict.sources)})" for r in restricted[:limit])
        )
    if undecided:
        parts.append("undecided: " + _labels(undecided, limit))
    return "; ".join(parts) if parts else "no port open"


def _labels(ranges: Sequence[PortRange], limit: int) -> str:
    labels = [_label(r) for r in ranges[:limit]]
    more = len(ranges) - limit
    return ", ".join(labels) + (f" (+{more} more)" if more > 0 else "")


def _label(r: PortRange) -> str:
    if r.lo == 1 and r.hi == 65535:
        return f"every {r.proto.upper()} port"
    return r.label()


def _range_evidence(fw: Firewall, ranges: Sequence[PortRange], which: str) -> list[Evidence]:
    out = []
    for r in ranges[:40]:
        out.append(
            Evidence(
                fw.source_of(r.verdict, which), f"{FAMILY_NAME[r.family]} {_label(r)}: {r.verdict.describe()}"
            )
        )
    return out


def _default_finding(fw: Firewall, family: int, which: str, when: str) -> tuple[Finding, bool | None]:
    """(finding, default-deny?) for one family of the loaded (``when`` = "now") or boot rules."""
    name = FAMILY_NAME[family]
    verdicts = fw.default_verdicts(family, which)
    ev = [
        Evidence(
            fw.source_of(v, which),
            f"{name} new {proto.upper()} connection to a port no rule names: {v.describe()}",
        )
        for proto, v in verdicts.items()
    ]
    open_v = [(p, v) for p, v in verdicts.items() if v.allowed]
    unknown_v = [(p, v) for p, v in verdicts.items() if v.allowed is None]
    if open_v:
        protos = " and ".join(p.upper() for p, _ in open_v)
        rules = fw.rulesets(which)
        has_rules = any(
            c.rules or (c.policy or "accept") != "accept"
            for rs in rules
            for t in rs.tables
            if family in t.families
            for c in t.chains.values()
        )
        helpers = fw.only_helper_chains(which)
        loaded = "loaded" if when == "now" else "restored at boot"
        base = [chain_label(t, c) for rs in rules for t, c in rs.base_chains(family)]
        if not base:
            what = f"no {name} input filter is {loaded}"
        elif not has_rules:
            chains = ", ".join(base[:3])
            what = f"the {name} input chain(s) {loaded} ({chains}) have no rules and accept everything"
        elif helpers:
            what = (
                f"the {name} rules {'loaded' if when == 'now' else 'restored at boot'} are only Docker/"
                f"libvirt/fail2ban chains ({', '.join(helpers[:5])}"
                f"{f', +{len(helpers) - 5} more' if len(helpers) > 5 else ''}) under an ACCEPT policy: not a "
                "firewall"
            )
        else:
            what = (
                f"{name} input {'is' if when == 'now' else 'will be'} open: {protos} to any port is "
                f"accepted ({open_v[0][1].rule})"
            )
        msg = what[0].upper() + what[1:]
        if when == "boot":
            msg = f"At boot: {what}"
        return Finding(Status.FAIL, msg, ev), False
    if unknown_v:
        v = unknown_v[0][1]
        return Finding(
            Status.WARN,
            f"Cannot tell whether {name} input {'is' if when == 'now' else 'will be'} "
            f"filtered by default ({v.undecided_reason})",
            ev,
        ), None
    rule = next(iter(verdicts.values())).rule
    return Finding(
        Status.PASS,
        f"{name} input {'is' if when == 'now' else 'will be'} filtered: default {'drop/reject'} ({rule})",
        ev,
    ), True


def _boot_findings(facts: Facts, fw: Firewall) -> list[Finding]:
    out: list[Finding] = []
    enabled = [m for m in fw.boot if m.enabled]
    ev = [Evidence(src, detail) for m in fw.boot for src, detail in m.evidence]
    for m in fw.boot:
        for problem in m.problems:
            out.append(Finding(Status.FAIL, f"{m.name}: {problem}", ev, FIX_BOOT.get(m.name)))
        for rs in m.rulesets:
            for err in rs.errors[:3]:
                ev.append(Evidence(rs.source, f"not understood: {err}"))
    if not enabled:
        installed = ", ".join(m.name for m in fw.boot) or "none"
        out.append(
            Finding(
                Status.FAIL,
                f"No firewall is enabled at boot (installed but not enabled: {installed})"
                if fw.boot
                else "No firewall is enabled at boot",
                ev,
                for_family(facts, FIX_ENABLE),
            )
        )
        return out
    names = ", ".join(m.name for m in enabled)
    for family in (4, 6):
        f, _ = _default_finding(fw, family, "boot", "boot")
        f.evidence = ev + f.evidence
        if f.status is Status.PASS:
            f.message = f"{FAMILY_NAME[family]} filtered by default at boot by {names}"
        elif f.status is Status.FAIL:
            f.remediation = for_family(facts, FIX_V6 if family == 6 else FIX_ENABLE)
        out.append(f)
    return out


def run(facts: Facts) -> list[Finding]:
    fw = facts.get(firewall)
    findings: list[Finding] = []
    if fw.loaded_known:
        deny: dict[int, bool | None] = {}
        for family in (4, 6):
            f, d = _default_finding(fw, family, "loaded", "now")
            deny[family] = d
            if f.status is Status.FAIL:
                f.remediation = for_family(facts, FIX_V6 if family == 6 and deny.get(4) else FIX_ENABLE)
            findings.append(f)
        ranges = fw.open_ports(which="loaded")
        for family in (4, 6):
            fam_ranges = [r for r in ranges if r.family == family]
            findings.append(
                Finding(
                    Status.PASS,
                    f"Effective {FAMILY_NAME[family]} open ports now: {_ports_summary(fam_ranges)}",
                    _range_evidence(fw, fam_ranges, "loaded"),
                )
            )
        for note in fw.notes[:3]:
            findings.append(Finding(Status.PASS, f"Note: {note}"))
    elif fw.live:
        findings.append(
            Finding(Status.ERROR, fw.loaded_error or "the loaded firewall rules could not be read")
        )
    boot = _boot_findings(facts, fw)
    findings.extend(boot)
    if not fw.live:
        ranges = fw.open_ports(which="boot") if any(m.enabled for m in fw.boot) else []
        for family in (4, 6):
            fam_ranges = [r for r in ranges if r.family == family]
            if any(m.enabled for m in fw.boot):
                findings.append(
                    Finding(
                        Status.PASS,
                        f"{FAMILY_NAME[family]} ports open at boot: {_ports_summary(fam_ranges)} "
                        "(offline image: whether rules are loaded now cannot be known)",
                        _range_evidence(fw, fam_ranges, "boot"),
                    )
                )
    if fw.loaded_known and fw.live:
        loaded_ok = all(f.status is Status.PASS for f in findings[:2])
        if loaded_ok and not any(m.enabled for m in fw.boot):
            findings.append(
                Finding(
                    Status.FAIL,
                    "The rules loaded now are not restored at boot: a reboot leaves the host unfiltered",
                    [],
                    for_family(facts, FIX_ENABLE),
                )
            )
    if findings and all(f.status is Status.PASS for f in findings):
        findings.insert(0, _headline(fw))
    return findings


def _headline(fw: Firewall) -> Finding:
    """One line for a host that passes: who filters, and what is open."""
    names = ", ".join(m.name for m in fw.boot if m.enabled) or "?"
    which = "loaded" if fw.loaded_known else "boot"
    ranges = fw.open_ports(which=which)
    opened = sorted({_label(r) for r in ranges if r.verdict.allowed}, key=_sort_key)
    ports = ", ".join(opened[:10]) + (f" (+{len(opened) - 10} more)" if len(opened) > 10 else "") or "none"
    if fw.loaded_known:
        return Finding(
            Status.PASS,
            f"Firewall active for IPv4 and IPv6 and restored at boot by {names}; open to all: {ports}",
        )
    return Finding(
        Status.PASS,
        f"Firewall restored at boot for IPv4 and IPv6 by {names}; open to all at boot: "
        f"{ports} (offline image)",
    )


def _sort_key(label: str) -> tuple[int, str]:
    head = label.split("/")[0].split("-")[0]
    return (int(head) if head.isdigit() else 0, label)


CHECK = Check(
    id="Check-Security-08",
    severity="high",
    run=run,
    needs=firewall_facts.NEEDS,
    why="A host firewall limits what the VM exposes even when the cloud security group is too open or a "
    "service is started by mistake. It must cover IPv6 too, and survive a reboot.",
    how="Reads the rules loaded in the kernel (nft -j list ruleset, and iptables-save of both the legacy and "
    "nf_tables backends, which cannot see each other) and the rules restored at boot (ufw, firewalld, "
    "nftables.service, netfilter-persistent, iptables-services). Follows a new TCP and UDP connection "
    "from a non-local source to a port no rule names through every input-path chain (policies, "
    "accept/drop by port and source, ct state, iif lo, jumps/gotos/returns, verdict maps); it must be "
    "refused for IPv4 and IPv6, now and at boot. Rules it cannot decide are named, never guessed. Lists "
    "the effective open ports. `nectar-audit cloud --ssh-user` shows both layers side by side per port "
    "(security groups | host firewall | listening).",
    fix={
        "debian": FIX_ENABLE["debian"],
        "rhel": FIX_ENABLE["rhel"],
        "fedora": FIX_ENABLE["rhel"],
    },
    plan=plan,
    plan_needs=PLAN_NEEDS,
)
