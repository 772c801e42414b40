"""Fix plan for Check-Security-08: a default-drop host firewall built from what the host really needs.

Let in: the port(s) sshd listens on; every listener that the current firewall (a rule naming it, not a
default that lets everything in) or the instance's security groups (when the audit knows them) let in
from outside, unless ``fix --deny PORT/PROTO`` drops it; what ``fix --allow PORT/PROTO`` adds;
established/related; loopback; the ICMP/ICMPv6 messages a network needs (echo, unreachable, too-big,
time-exceeded, parameter-problem, neighbour discovery); the DHCP client where the host uses one. The rest
is dropped, IPv4 and IPv6 alike. Written as the distribution expects: ``/etc/nftables.conf`` (Debian),
ufw (Ubuntu), firewalld (RHEL family). Docker/libvirt chains are left alone: then our rules live in a
table of our own (``inet nectar_audit``) and nothing flushes the ruleset.

The remedy runs under the dead-man timer: unless a new SSH connection confirms it in time, the host
restores every file and drops the firewall again by itself. Activation is derived from the files (so
the same steps re-activate after an undo): our table is loaded when the file names it, removed otherwise.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs, merge
from nectar_audit.facts import Facts
from nectar_audit.facts import firewall as firewall_facts
from nectar_audit.facts import ssh as ssh_facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.firewall import Firewall, firewall
from nectar_audit.facts.host import host
from nectar_audit.facts.ssh import sshd_listeners
from nectar_audit.facts.system import Listener, Services, listeners, processes, services
from nectar_audit.remedy import GUARD_KEY_LOGIN, TAG, FileChange, LineEdit, Remedy, Step, apply_line_edits

if TYPE_CHECKING:
    from nectar_audit.facts.openstack import Instance

CHECK = "Check-Security-08"
TABLE = "nectar_audit"
NFT_CONF = "/etc/nftables.conf"
NFT_OWN = "/etc/nftables.d/nectar-audit-08.nft"  # included from a user's own nftables.conf
UFW_CONF = "/etc/ufw/ufw.conf"
UFW_DEFAULT = "/etc/default/ufw"
UFW_RULES = ("/etc/ufw/user.rules", "/etc/ufw/user6.rules")
NFT_WANTS = "/etc/systemd/system/sysinit.target.wants/nftables.service"
UFW_WANTS = "/etc/systemd/system/multi-user.target.wants/ufw.service"
FIREWALLD_WANTS = ("/etc/systemd/system/multi-user.target.wants/firewalld.service",
                   "/etc/systemd/system/dbus-org.fedoraproject.FirewallD1.service")
# Which run started a firewalld that was stopped before it: an undo restores this file, and with it the
# activation's answer (firewalld stopped again). Its running state is in no firewalld file.
FIREWALLD_STARTED = "/var/lib/nectar-audit/firewalld-started-by"
DHCP_FILES = ("/etc/network/interfaces", "/etc/network/interfaces.d/*", "/etc/systemd/network/*.network",
              "/etc/netplan/*.yaml", "/etc/sysconfig/network-scripts/ifcfg-*",
              "/etc/NetworkManager/system-connections/*")
DHCP_DAEMONS = ("dhclient", "dhcpcd", "systemd-networkd", "NetworkManager", "udhcpc")
# Chains and tables other software manages in the same kernel: never flushed, never edited.
MANAGED_RE = re.compile(r"^(DOCKER.*|docker.*|LIBVIRT_.*|libvirt.*|CNI-.*|KUBE-.*|cali-.*|FLANNEL.*)$")
NEEDS: Needs = merge([firewall_facts.NEEDS, system_facts.NEEDS, ssh_facts.NEEDS,
                      Needs(files=(NFT_OWN, *DHCP_FILES), stats=(NFT_WANTS, UFW_WANTS, *FIREWALLD_WANTS))])

ICMP4 = ("echo-request", "destination-unreachable", "time-exceeded", "parameter-problem")
ICMP6 = ("echo-request", "destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem",
         "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert", "mld-listener-query")
_SPEC = re.compile(r"^(\d{1,5})/(tcp|udp)$")


@dataclass(frozen=True)
class Opening:
    """One port let in: from anywhere (``sources`` empty) or only from these networks."""

    proto: str
    port: int
    why: str
    sources: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.port}/{self.proto}"


@dataclass(frozen=True)
class Needed:
    """What the host needs let in, and what it will no longer let in (each with why)."""

    openings: tuple[Opening, ...]
    dropped: tuple[str, ...]
    dhcp: tuple[int, ...]  # families whose DHCP client replies are let in
    managed: tuple[str, ...]  # Docker/libvirt chains left alone
    foreign: bool  # other tables are loaded: our own table, no flush


def parse_spec(text: str) -> tuple[str, int]:
    """``8080/tcp`` -> ("tcp", 8080); ValueError otherwise (the CLI checks it first)."""
    m = _SPEC.match(text.strip().lower())
    if not m or not 1 <= int(m.group(1)) <= 65535:
        raise ValueError(f"{text!r} is not PORT/tcp or PORT/udp")
    return m.group(2), int(m.group(1))


def _options(facts: Facts) -> dict[str, object]:
    got = facts.config.extra.get("fix", {})
    return got if isinstance(got, dict) else {}


def _specs(facts: Facts, key: str) -> list[tuple[str, int]]:
    raw = _options(facts).get(key) or ()
    return [parse_spec(str(s)) for s in raw] if isinstance(raw, (list, tuple)) else []


def _text(facts: Facts, path: str) -> str | None:
    try:
        return facts.bundle.text(path)
    except EvidenceError:
        return None


def _exists(facts: Facts, path: str) -> bool:
    return path in facts.bundle.stats


# -- what is needed ------------------------------------------------------------------------------
def _families(item: Listener) -> tuple[int, ...]:
    if item.family == 4:
        return (4,)
    return (4, 6) if item.covers_ipv4 else (6,)


def _by_rule(fw: Firewall, proto: str, port: int, family: int) -> tuple[bool, tuple[str, ...], str]:
    """(let in on purpose, only from these sources, the rule): a rule naming the port, not a default that
    lets every port in (that is what this fix ends)."""
    v = fw.evaluate(proto, port, family)
    default = fw.default_verdicts(family).get(proto)
    if v.allowed is True:
        if default is not None and default.allowed is True and default.rule == v.rule:
            return False, (), v.rule
        return True, (), v.rule
    if v.allowed is False and v.sources:
        return True, tuple(v.sources), v.rule
    return False, (), v.rule


def _by_groups(inst: Instance | None, proto: str, port: int, family: int) -> tuple[bool | None, str]:
    if inst is None:
        return None, ""
    rules = inst.allowing(proto, port, family)
    return bool(rules), "; ".join(r.describe() for r in rules[:2])


def _dhcp(facts: Facts) -> tuple[int, ...]:
    """Families whose DHCP client is in use: a client running, configured, or its socket open."""
    fams: set[int] = set()
    try:
        procs = facts.get(processes)
    except EvidenceError:
        procs = []
    if any(p.comm in DHCP_DAEMONS or p.exe_name in DHCP_DAEMONS for p in procs):
        fams.update((4, 6))
    try:
        socks = facts.get(listeners)
    except EvidenceError:
        socks = []
    if any(s.proto == "udp" and s.port == 68 for s in socks):
        fams.add(4)
    if any(s.proto == "udp" and s.port == 546 for s in socks):
        fams.add(6)
    for pattern in DHCP_FILES:
        for path in facts.bundle.glob(pattern) if "*" in pattern else [pattern]:
            text = _text(facts, path)
            if not text:
                continue
            low = text.lower()
            if re.search(r"\binet\s+dhcp\b|dhcp4:\s*(true|yes)|\bdhcp\s*=\s*(yes|true|ipv4|both)|"
                         r"bootproto\s*=\s*\"?dhcp|method=auto", low):
                fams.add(4)
            if re.search(r"\binet6\s+(dhcp|auto)\b|dhcp6:\s*(true|yes)|\bdhcp\s*=\s*(yes|true|ipv6|both)|"
                         r"dhcpv6c\s*=\s*\"?yes", low):
                fams.add(6)
    return tuple(sorted(fams))


def _managed(fw: Firewall) -> tuple[list[str], bool]:
    """(Docker/libvirt chains loaded, whether any table but an empty one is loaded besides ours)."""
    managed: list[str] = []
    foreign = False
    for rs in fw.loaded:
        for t in rs.tables:
            if t.name == TABLE:
                continue
            if any(c.rules or (c.policy or "accept") != "accept" for c in t.chains.values()):
                foreign = True
            for c in t.chains.values():
                if MANAGED_RE.match(c.name) or MANAGED_RE.match(t.name):
                    managed.append(f"{t.family} {t.name} {c.name}")
    return sorted(set(managed)), foreign


def needed(facts: Facts) -> Needed:
    """The openings, the listeners no longer let in, DHCP and the chains left alone, from the facts."""
    fw = facts.get(firewall)
    allow = _specs(facts, "allow")
    deny = set(_specs(facts, "deny"))
    inst = None
    if facts.bundle.cloud is not None:  # an instance audited through the OpenStack API
        from nectar_audit.facts.openstack import openstack_instance

        try:
            inst = openstack_instance(facts)
        except EvidenceError:
            inst = None
    openings: dict[tuple[str, int], Opening] = {}
    dropped: list[str] = []

    def add(o: Opening) -> None:
        key = (o.proto, o.port)
        prev = openings.get(key)
        if prev is None or (prev.sources and not o.sources):
            openings[key] = o

    try:
        ssh_ports = facts.get(sshd_listeners).all_ports or [22]
    except EvidenceError:
        ssh_ports = [22]  # sshd's configuration unreadable: the standard port stays open at least
    for port in ssh_ports:
        add(Opening("tcp", port, "sshd listens on it (the way in)"))
    for proto, port in allow:
        add(Opening(proto, port, "fix --allow"))
    try:
        socks = [s for s in facts.get(listeners) if not s.loopback]
    except EvidenceError:
        socks = []
    seen: set[tuple[str, int]] = set()
    for s in socks:
        key = (s.proto, s.port)
        if key in seen or key in openings or key in {("udp", 68), ("udp", 546)}:
            continue
        seen.add(key)
        who = s.process or "?"
        if key in deny:
            dropped.append(f"{s.port}/{s.proto} ({who}): fix --deny")
            continue
        kept = False
        for family in _families(s):
            groups, group_rule = _by_groups(inst, s.proto, s.port, family)
            if groups is False:
                continue
            ruled, sources, rule = _by_rule(fw, s.proto, s.port, family)
            if groups and not ruled and fw.default_deny(family) is not True:
                add(Opening(s.proto, s.port, f"{who}; the security groups let it in ({group_rule})"))
                kept = True
            elif ruled:
                why = f"{who}; the firewall lets it in ({rule})"
                add(Opening(s.proto, s.port, why, sources))
                kept = True
        if not kept:
            why = ("the security groups do not let it in" if inst is not None
                   else "nothing but an open default lets it in")
            dropped.append(f"{s.port}/{s.proto} ({who}): {why}; keep it with --allow {s.port}/{s.proto}")
    for key in deny:  # never the way in: sshd's own ports stay whatever --deny says
        if openings.get(key) is not None and not (key[0] == "tcp" and key[1] in ssh_ports):
            del openings[key]
    managed, foreign = _managed(fw)
    ordered = sorted(openings.values(), key=lambda o: (o.proto, o.port))
    return Needed(tuple(ordered), tuple(dropped), _dhcp(facts), tuple(managed), foreign)


# -- nftables (Debian) ---------------------------------------------------------------------------
def _split_sources(sources: Sequence[str]) -> tuple[list[str], list[str]]:
    v4 = [s for s in sources if ":" not in s]
    v6 = [s for s in sources if ":" in s]
    return v4, v6


def nft_table(need: Needed) -> list[str]:
    """Our table, loadable again and again (created empty, deleted, defined: no duplicate rules)."""
    lines = [f"table inet {TABLE} {{}}", f"delete table inet {TABLE}", f"table inet {TABLE} {{",
             "\tchain input {",
             "\t\ttype filter hook input priority filter; policy drop;",
             "\t\tct state established,related accept",
             "\t\tct state invalid drop",
             '\t\tiif "lo" accept',
             f"\t\ticmp type {{ {', '.join(ICMP4)} }} accept",
             f"\t\ticmpv6 type {{ {', '.join(ICMP6)} }} accept"]
    if 4 in need.dhcp:
        lines.append("\t\tudp sport 67 udp dport 68 accept")
    if 6 in need.dhcp:
        lines.append("\t\tip6 saddr fe80::/10 udp sport 547 udp dport 546 accept")
    for proto in ("tcp", "udp"):
        anyone = [o for o in need.openings if o.proto == proto and not o.sources]
        if anyone:
            ports = ", ".join(str(o.port) for o in anyone)
            lines.append(f"\t\t{proto} dport {{ {ports} }} accept" if len(anyone) > 1
                         else f"\t\t{proto} dport {ports} accept")
        for o in need.openings:
            if o.proto != proto or not o.sources:
                continue
            v4, v6 = _split_sources(o.sources)
            if v4:
                lines.append(f"\t\tip saddr {{ {', '.join(v4)} }} {proto} dport {o.port} accept")
            if v6:
                lines.append(f"\t\tip6 saddr {{ {', '.join(v6)} }} {proto} dport {o.port} accept")
    lines += ["\t}", "}"]
    return lines


def _stock_nft(text: str | None) -> bool:
    """Absent, or Debian's shipped file: chains without a single rule (nothing of the user's to keep)."""
    if text is None:
        return True
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or s == "}" or s == "flush ruleset":
            continue
        if re.match(r"^(table|chain)\s+\S+(\s+\S+)?\s*\{$", s) or s.startswith("type "):
            continue
        return False
    return True


def _header(why: str) -> str:
    return f"# Written by {TAG} fix: {why}. Restore the backup (fix --undo) to undo.\n"


def _nftables(facts: Facts, need: Needed, enabled: bool) -> tuple[list[FileChange], list[Step], list[Step],
                                                                    list[Step], list[str]]:
    q = shlex.quote
    conf = _text(facts, NFT_CONF)
    table = nft_table(need)
    why = "08: default-drop input, IPv4 and IPv6"
    changes: list[FileChange] = []
    notes: list[str] = []
    if _stock_nft(conf):
        flush = not need.foreign and not need.managed
        body = ["", *(["flush ruleset", ""] if flush else []), *table]
        if not flush:
            notes.append(f"other tables are loaded: our rules live in table inet {TABLE}, nothing is flushed")
        # The interpreter line stays first: nftables.conf is executable on Debian.
        changes.append(FileChange(NFT_CONF, conf, "#!/usr/sbin/nft -f\n" + _header(why) + "\n".join(body) + "\n",
                                  mode=0o755, why=why))
        main = NFT_CONF
    else:
        assert conf is not None
        own = _text(facts, NFT_OWN)
        changes.append(FileChange(NFT_OWN, own, _header(why) + "\n".join(table) + "\n", why=why))
        include = f'include "{NFT_OWN}"'
        if include not in conf:
            lines = conf.split("\n")
            last = next((ln for ln in reversed(lines) if ln.strip()), None)
            if last is None:
                raise ValueError("empty nftables.conf")
            occurrence = sum(1 for ln in lines if ln == last)
            edit = LineEdit(last, (last, f"{include}  # {TAG} 08"), occurrence)
            after = apply_line_edits(conf, [edit])
            assert after is not None
            changes.append(FileChange(NFT_CONF, conf, after, (edit,), why=f"08: load {NFT_OWN}"))
        notes.append(f"{NFT_CONF} holds your own rules: ours are in {NFT_OWN}, included at its end")
        main = NFT_CONF
    commands: list[Step] = []
    if not enabled:
        # systemctl enable works on the unit files without systemd running (a chroot, an image).
        commands.append(Step("systemctl enable nftables >/dev/null 2>&1 || "
                             f"{{ mkdir -p {q(NFT_WANTS.rsplit('/', 1)[0])} && "
                             f"ln -sf /lib/systemd/system/nftables.service {q(NFT_WANTS)}; }}",
                             "nftables.service loads the file at boot", (NFT_WANTS,)))
    validate = [Step(f"nft -c -f {q(main)}", "nft's own check of the ruleset")]
    activate = [Step(f"if grep -qs 'nectar.audit' {q(main)}; then nft -f {q(main)}; "
                     f"else nft delete table inet {TABLE} 2>/dev/null || :; fi",
                     "the kernel's rules from the file (our table removed when the file no longer has it)")]
    return changes, commands, validate, activate, notes


# -- ufw (Ubuntu) --------------------------------------------------------------------------------
def _ufw(facts: Facts, need: Needed, enabled: bool) -> tuple[list[FileChange], list[Step], list[Step],
                                                                list[Step], list[str]]:
    q = shlex.quote
    changes: list[FileChange] = []
    notes: list[str] = []
    backs = (*UFW_RULES, UFW_DEFAULT)
    conf = _text(facts, UFW_CONF) or ""
    if "ENABLED=yes" not in conf.split("\n"):
        line = next((ln for ln in conf.split("\n") if ln.startswith("ENABLED=")), None)
        if line is None:
            raise ValueError(f"{UFW_CONF} has no ENABLED= line")
        edit = LineEdit(line, ("ENABLED=yes",))
        after = apply_line_edits(conf, [edit])
        assert after is not None
        changes.append(FileChange(UFW_CONF, conf, after, (edit,), why="08: ufw starts (now and at boot)"))
    default = _text(facts, UFW_DEFAULT) or ""
    v6 = next((ln for ln in default.split("\n") if ln.startswith("IPV6=")), None)
    if v6 is not None and v6.strip().strip('"').lower() != "ipv6=yes":
        edit = LineEdit(v6, ("IPV6=yes",))
        after = apply_line_edits(default, [edit])
        assert after is not None
        changes.append(FileChange(UFW_DEFAULT, default, after, (edit,), why="08: ufw filters IPv6 too"))
    commands = [Step("ufw default deny incoming >/dev/null", "drop what no rule lets in", backs)]
    for o in need.openings:
        if not o.sources:
            commands.append(Step(f"ufw allow {o.port}/{o.proto} >/dev/null", o.why, backs))
        for src in o.sources:
            commands.append(Step(f"ufw allow from {q(src)} to any port {o.port} proto {o.proto} >/dev/null",
                                 o.why, backs))
    if not enabled:
        commands.append(Step("systemctl enable ufw >/dev/null 2>&1 || :", "ufw.service at boot", (UFW_WANTS,)))
    notes.append("ufw's before.rules let in loopback, established, ICMP and the DHCP client")
    validate = [Step("ufw show added >/dev/null", "ufw reads its rules")]
    init = "$(for f in /lib/ufw/ufw-init /usr/lib/ufw/ufw-init; do [ -x $f ] && echo $f && break; done)"
    activate = [Step(f"if grep -qx ENABLED=yes {UFW_CONF}; then ufw --force enable >/dev/null; "
                     f"else {init} force-stop >/dev/null; fi",
                     "ufw loads its rules (stopped again when ufw.conf says ENABLED=no)")]
    return changes, commands, validate, activate, notes


# -- firewalld (RHEL family) ---------------------------------------------------------------------
def _zone_keeps(facts: Facts, need: Needed, fw: Firewall) -> tuple[Needed, set[tuple[str, int]]]:
    """``need`` with the listeners firewalld's permanent configuration lets in kept, not "no longer let in":
    firewalld loads it when it starts and the fix only adds to it, whatever is loaded now (firewalld may be
    stopped). Also the (proto, port) so kept: already in the zone, nothing to add."""
    zones = [replace(m, enabled=True) for m in fw.boot if m.name == "firewalld"]
    if not zones:
        return need, set()
    permanent = replace(fw, loaded=[], loaded_known=False, boot=zones)  # evaluated as at boot
    deny = set(_specs(facts, "deny"))
    have = {(o.proto, o.port) for o in need.openings}
    try:
        socks = [s for s in facts.get(listeners) if not s.loopback]
    except EvidenceError:
        socks = []
    kept: dict[tuple[str, int], Opening] = {}
    for s in socks:
        key = (s.proto, s.port)
        if key in have or key in kept or key in deny:
            continue
        for family in _families(s):
            ruled, sources, rule = _by_rule(permanent, s.proto, s.port, family)
            if ruled:
                kept[key] = Opening(s.proto, s.port, f"{s.process or '?'}; firewalld's permanent configuration "
                                    f"lets it in ({rule})", sources)
                break
    if not kept:
        return need, set()
    openings = sorted([*need.openings, *kept.values()], key=lambda o: (o.proto, o.port))
    dropped = tuple(d for d in need.dropped if not any(d.startswith(f"{port}/{proto} ") for proto, port in kept))
    return replace(need, openings=tuple(openings), dropped=dropped), set(kept)


def _firewalld(facts: Facts, need: Needed, fw: Firewall, enabled: bool, runs: bool | None,
               in_zone: set[tuple[str, int]]) -> tuple[list[FileChange], list[Step], list[Step], list[Step], list[str]]:
    """The zone's ports, firewalld enabled; activation leaves it running, an undo as it was (``runs``: it
    runs now; None: unknown, then it runs when enabled at boot). ``in_zone``: already let in, not added."""
    q = shlex.quote
    zone = fw.firewalld.default_zone if fw.firewalld is not None else "public"
    backs = (f"/etc/firewalld/zones/{zone}.xml",)
    commands: list[Step] = []
    # --permanent edits work with firewalld stopped via firewall-offline-cmd; running, with firewall-cmd.
    tool = ("if firewall-cmd --state >/dev/null 2>&1; then c='firewall-cmd --permanent'; "
            "else c=firewall-offline-cmd; fi; ")
    for o in need.openings:
        if (o.proto, o.port) in in_zone:
            continue
        if not o.sources:
            commands.append(Step(f"{tool}$c --zone={q(zone)} --add-port={o.port}/{o.proto} >/dev/null", o.why, backs))
        for src in o.sources:
            family = "ipv6" if ":" in src else "ipv4"
            rich = (f"rule family={family} source address={src} port port={o.port} protocol={o.proto} accept")
            commands.append(Step(f"{tool}$c --zone={q(zone)} --add-rich-rule={q(rich)} >/dev/null", o.why, backs))
    if 6 in need.dhcp:
        commands.append(Step(f"{tool}$c --zone={q(zone)} --add-service=dhcpv6-client >/dev/null",
                             "the DHCPv6 client", backs))
    if not enabled:
        commands.append(Step("systemctl enable firewalld >/dev/null 2>&1", "firewalld at boot", FIREWALLD_WANTS))
    start = "systemctl start firewalld && firewall-cmd --reload"
    if runs:  # running before: after the run or its undo, it runs with the permanent configuration
        activate = [Step(f"{{ {start}; }} >/dev/null 2>&1", "firewalld runs with the permanent configuration")]
    else:
        if runs is False:
            # Stopped though maybe enabled at boot: the wants-link cannot tell an undo to stop it again.
            commands.append(Step(f'printf \'%s\\n\' "$NA_RUN" > {q(FIREWALLD_STARTED)}',
                                 "this run starts firewalld (an undo stops it again)", (FIREWALLD_STARTED,)))
            on = f'[ "$(cat {q(FIREWALLD_STARTED)} 2>/dev/null)" = "$NA_RUN" ]'
        else:
            on = f"[ -e {q(FIREWALLD_WANTS[0])} ]"
        activate = [Step(f"if {on}; then {start}; else systemctl stop firewalld; fi >/dev/null 2>&1",
                         "firewalld runs with the permanent configuration (stopped again by an undo)")]
    validate = [Step("firewall-offline-cmd --check-config >/dev/null", "firewalld's own configuration check")]
    notes = [f"firewalld's zone {zone} (the default) lets in ICMP and its services besides these ports"]
    return [], commands, validate, activate, notes


def plan(facts: Facts) -> Remedy | None:
    """A default-drop input firewall for IPv4 and IPv6 letting in what the host needs."""
    summary = "turn on a default-drop host firewall (IPv4 and IPv6) that keeps SSH and the kept services"
    try:
        fw = facts.get(firewall)
        info = facts.get(host)
    except EvidenceError as exc:
        return Remedy(CHECK, summary, refused=f"the host firewall could not be read ({exc})")
    if not fw.live:
        return Remedy(CHECK, summary, refused="an offline image: what listens cannot be known")
    try:
        need = needed(facts)
    except ValueError as exc:
        return Remedy(CHECK, summary, refused=str(exc))
    try:
        svc: Services | None = facts.get(services)
    except EvidenceError:
        svc = None
    ubuntu = info.os.id == "ubuntu" or "ubuntu" in info.os.id_like
    family = info.family

    def on(unit: str) -> bool:
        return svc is not None and svc.is_enabled(unit)

    def runs(unit: str) -> bool | None:
        return svc.is_running(unit) if svc is not None and svc.running_known else None

    # The firewall already in charge is kept (one firewall, not two): ufw or firewalld when enabled.
    ufw_on = fw.ufw is not None and fw.ufw.enabled
    firewalld_on = fw.firewalld is not None and any(m.name == "firewalld" and m.enabled for m in fw.boot)
    try:
        if ufw_on or (family == "debian" and ubuntu and _exists(facts, "/usr/sbin/ufw") and not firewalld_on):
            tool = "ufw"
            changes, commands, validate, activate, notes = _ufw(facts, need, on("ufw"))
        elif firewalld_on and _exists(facts, "/usr/sbin/firewalld"):
            tool = "firewalld"
            need, in_zone = _zone_keeps(facts, need, fw)
            changes, commands, validate, activate, notes = _firewalld(facts, need, fw, on("firewalld"),
                                                                    runs("firewalld"), in_zone)
        elif family == "debian":
            if not _exists(facts, "/usr/sbin/nft"):
                return Remedy(CHECK, summary, refused="nft is not installed: apt-get install nftables, then "
                                                      "run fix again")
            tool = "nftables"
            changes, commands, validate, activate, notes = _nftables(facts, need, on("nftables"))
        elif family in ("rhel", "fedora"):
            if not _exists(facts, "/usr/sbin/firewalld"):
                return Remedy(CHECK, summary, refused="firewalld is not installed: dnf install firewalld, then "
                                                      "run fix again")
            tool = "firewalld"
            need, in_zone = _zone_keeps(facts, need, fw)
            changes, commands, validate, activate, notes = _firewalld(facts, need, fw, on("firewalld"),
                                                                    runs("firewalld"), in_zone)
        else:
            return Remedy(CHECK, summary, refused=f"no firewall layout known for this distribution ({info.os.id})")
    except ValueError as exc:
        return Remedy(CHECK, summary, refused=str(exc))
    pre = [f"let in: {o.label} ({o.why})" + (f" from {', '.join(o.sources)} only" if o.sources else "")
           for o in need.openings]
    pre.append("also let in: established/related, loopback, ICMP/ICMPv6 essentials"
               + (", the DHCP client" if need.dhcp else "") + "; everything else dropped (IPv4 and IPv6)")
    notes = [*(f"no longer let in: {d}" for d in need.dropped), *notes]
    if need.managed:
        notes = [f"Docker/libvirt chains left alone: {', '.join(need.managed[:6])}"
                 + (f" (+{len(need.managed) - 6} more)" if len(need.managed) > 6 else ""), *notes]
    return Remedy(
        CHECK, f"{summary}, with {tool}",
        preconditions=tuple(pre),
        changes=tuple(changes),
        commands=tuple(commands),
        validate=tuple(validate),
        activate=tuple(activate),
        guard=GUARD_KEY_LOGIN,
        explicit=True,  # a firewall is turned on only when 08 is named
        notes=tuple(notes),
        deadman=True,
    )
