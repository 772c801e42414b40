"""What the host firewall lets in: loaded rules (nftables and both iptables backends), the rules
restored at boot (ufw, firewalld, nftables.service, netfilter-persistent, iptables-services), and an
evaluator answering "is TCP/UDP port P reachable from a non-local source, over IPv4 / IPv6?".

Live: one command record runs ``nft -j list ruleset`` and the ``iptables-save`` variants that can hold
rules (``iptables-legacy-save`` only when legacy tables exist, ``iptables-nft-save`` only when nftables
shows ip/ip6 tables or nft itself is unavailable); legacy and nf_tables rules are invisible to each
other, so both are read. An nf_tables table that ``iptables-nft-save`` printed is taken from there (nft's
JSON shows its iptables extensions without their options). Offline: the persisted rule files and the
ufw / firewalld configuration are read and evaluated; what is loaded cannot be known.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs
from nectar_audit.facts.firewall.iptables import parse_iptables_save
from nectar_audit.facts.firewall.model import (
    Action,
    Addr,
    Chain,
    CtState,
    Iface,
    L4Proto,
    NfProto,
    Port,
    PortRange,
    Pred,
    Rule,
    Ruleset,
    Table,
    TooComplex,
    Verdict,
    chain_label,
    evaluate,
    open_ranges,
    port_boundaries,
)
from nectar_audit.facts.firewall.nft import net_value, parse_nft_json, parse_nft_text
from nectar_audit.facts.firewall.services import INCLUDES, PORTS
from nectar_audit.facts.system import Services, services

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

RULES_COMMAND = "firewall.rules"
IFACES_COMMAND = "firewall.ifaces"

_RULES_SNIPPET = r"""
na_fw_run() {
  # stdout alone when the command works: the *-save tools print warnings ("ip6tables-legacy tables
  # present") on stderr, and merged they land in the middle of a rule line. stdout+stderr when it fails.
  _na_o=$(with_timeout 10 "$@" 2>/dev/null) && { printf '%s\n' "$_na_o"; return 0; }
  _na_o=$(with_timeout 10 "$@" 2>&1); _na_r=$?
  printf '%s\n' "$_na_o"; return $_na_r
}
nft_out=$(na_fw_run nft -j list ruleset); nft_rc=$?
echo '#nft'; printf '%s\n' "$nft_out"; echo "#rc $nft_rc"
want_nft=1
if [ "$nft_rc" = 0 ]; then
  case "$nft_out" in *'"family": "ip", "name": "'*|*'"family": "ip6", "name": "'*) ;; *) want_nft=0 ;; esac
fi
variants=0
command -v iptables-legacy-save >/dev/null 2>&1 && variants=1
for t in iptables ip6tables; do
  if [ "$variants" = 1 ]; then
    names=/proc/net/ip_tables_names; [ "$t" = ip6tables ] && names=/proc/net/ip6_tables_names
    n=; read -r n 2>/dev/null <"$names"
    if [ -n "$n" ]; then echo "#$t-legacy-save"; na_fw_run "$t-legacy-save"; echo "#rc $?"; fi
    if [ "$want_nft" = 1 ] && command -v "$t-nft-save" >/dev/null 2>&1; then
      echo "#$t-nft-save"; na_fw_run "$t-nft-save"; echo "#rc $?"
    fi
  elif command -v "$t-save" >/dev/null 2>&1; then
    echo "#$t-save"; na_fw_run "$t-save"; echo "#rc $?"
  fi
done
:
"""

_IFACES_SNIPPET = r"""
for f in /proc/net/route /proc/net/ipv6_route /proc/net/dev; do
  [ -r "$f" ] || continue
  echo "#file $f"
  while IFS= read -r l; do printf '%s\n' "$l"; done <"$f"
done
:
"""

UFW_FILES = (
    "/etc/ufw/ufw.conf",
    "/etc/default/ufw",
    "/etc/ufw/user.rules",
    "/etc/ufw/user6.rules",
    "/etc/ufw/before.rules",
    "/etc/ufw/before6.rules",
    "/etc/ufw/after.rules",
    "/etc/ufw/after6.rules",
)
FIREWALLD_FILES = (
    "/etc/firewalld/firewalld.conf",
    "/etc/firewalld/zones/*.xml",
    "/etc/firewalld/services/*.xml",
    "/usr/lib/firewalld/zones/*.xml",
)
PERSISTED_FILES = (
    "/etc/nftables.conf",
    "/etc/sysconfig/nftables.conf",
    "/etc/nftables/*.nft",
    "/etc/nftables.d/*.nft",
    "/etc/nftables.d/*.conf",
    "/etc/iptables/rules.v4",
    "/etc/iptables/rules.v6",
    "/etc/sysconfig/iptables",
    "/etc/sysconfig/ip6tables",
)

NEEDS = Needs(
    files=UFW_FILES + FIREWALLD_FILES + PERSISTED_FILES,
    stats=("/usr/sbin/ufw", "/usr/sbin/firewalld", "/usr/sbin/nft", "/usr/sbin/iptables", "/sbin/iptables"),
    commands={RULES_COMMAND: _RULES_SNIPPET.strip("\n"), IFACES_COMMAND: _IFACES_SNIPPET.strip("\n")},
)

# Chains other software adds without being a host firewall.
HELPER_CHAIN_RE = re.compile(
    r"^(DOCKER.*|docker.*|LIBVIRT_.*|libvirt.*|f2b-.*|fail2ban.*|sshguard.*|CNI-.*|KUBE-.*|cali-.*|FLANNEL.*|"
    r"ts-.*|INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING)$"
)
HELPER_TABLE_RE = re.compile(r"^(f2b-table|fail2ban|libvirt_network|docker.*|sshguard|nat|mangle|raw)$")


# --------------------------------------------------------------------------------------------------
# Command output
def split_sections(stdout: str) -> dict[str, tuple[str, int]]:
    """'#name' … '#rc N' sections of the rules command -> name -> (body, rc)."""
    out: dict[str, tuple[str, int]] = {}
    name: str | None = None
    body: list[str] = []
    for line in stdout.splitlines():
        m = re.fullmatch(r"#rc (\d+)", line)
        if m and name is not None:
            out[name] = ("\n".join(body), int(m.group(1)))
            name, body = None, []
            continue
        if re.fullmatch(r"#[a-z0-9-]+", line) and name is None:
            name, body = line[1:], []
            continue
        if name is not None:
            body.append(line)
    if name is not None:
        out[name] = ("\n".join(body), -1)
    return out


def parse_ifaces(stdout: str) -> tuple[list[str], list[str]]:
    """(interfaces with a default route, all interfaces) from /proc/net/{route,ipv6_route,dev}."""
    files: dict[str, list[str]] = {}
    cur: str | None = None
    for line in stdout.splitlines():
        if line.startswith("#file "):
            cur = line[6:].strip()
            files[cur] = []
        elif cur is not None:
            files[cur].append(line)
    default: list[str] = []
    for line in files.get("/proc/net/route", [])[1:]:
        w = line.split()
        if len(w) >= 8 and w[1] == "00000000" and w[7] == "00000000" and w[0] not in default:
            default.append(w[0])
    for line in files.get("/proc/net/ipv6_route", []):
        w = line.split()
        if len(w) >= 10 and w[0] == "0" * 32 and w[1] == "00" and w[9] != "lo" and w[9] not in default:
            default.append(w[9])
    names: list[str] = []
    for line in files.get("/proc/net/dev", [])[2:]:
        if ":" in line:
            name = line.split(":", 1)[0].strip()
            if name and name not in names:
                names.append(name)
    return default, names


VIRTUAL_IFACE_RE = re.compile(
    r"^(lo|docker\d*|br-.*|veth.*|virbr.*|vnet.*|cni.*|flannel.*|cali.*|tun.*|tap.*|"
    r"wg.*|tailscale.*|lxc.*|lxdbr.*|podman.*|kube-.*|vxlan.*|dummy.*)$"
)


# --------------------------------------------------------------------------------------------------
# ufw
@dataclass(frozen=True)
class UfwConfig:
    enabled: bool  # ENABLED=yes in /etc/ufw/ufw.conf
    enabled_line: str
    default_input: str  # DROP | REJECT | ACCEPT
    default_input_line: str
    ipv6: bool
    ipv6_line: str


def _kv_file(text: str) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, _, v = line.partition("=")
        out[k.strip()] = (v.strip().strip("\"'"), lineno)
    return out


def parse_ufw(conf: str, default: str | None) -> UfwConfig:
    kv = _kv_file(conf)
    dkv = _kv_file(default or "")
    en, en_line = kv.get("ENABLED", ("no", 0))
    pol, pol_line = dkv.get("DEFAULT_INPUT_POLICY", ("DROP", 0))
    v6, v6_line = dkv.get("IPV6", ("yes", 0))
    return UfwConfig(
        enabled=en.lower() == "yes",
        enabled_line=f"/etc/ufw/ufw.conf:{en_line}" if en_line else "/etc/ufw/ufw.conf",
        default_input=pol.upper() or "DROP",
        default_input_line=f"/etc/default/ufw:{pol_line}" if pol_line else "/etc/default/ufw",
        ipv6=v6.lower() == "yes",
        ipv6_line=f"/etc/default/ufw:{v6_line}" if v6_line else "/etc/default/ufw",
    )


def ufw_rulesets(cfg: UfwConfig, files: dict[str, str | None]) -> list[Ruleset]:
    """The rules ``ufw enable`` loads (ufw-init): skeleton + before/user/after rule files + policy."""
    out: list[Ruleset] = []
    pol = "DROP" if cfg.default_input in ("DROP", "REJECT") else "ACCEPT"
    for family in (4, 6):
        t = "" if family == 4 else "6"
        rs = Ruleset(source=f"/etc/ufw/user{t}.rules (ufw)", backend="ufw")
        if family == 6 and not cfg.ipv6:
            # ufw-init with IPV6=no: IPv6 input dropped except loopback.
            parse_iptables_save(
                "*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n",
                6,
                f"{cfg.ipv6_line} (IPV6=no)",
                "ufw",
                rs,
            )
            out.append(rs)
            continue
        skeleton = ["*filter", f":INPUT {pol} [0:0]"]
        for c in (
            "before-logging-input",
            "before-input",
            "after-input",
            "after-logging-input",
            "reject-input",
            "track-input",
            "skip-to-policy-input",
            "user-input",
            "not-local",
            "logging-deny",
            "logging-allow",
            "user-limit",
            "user-limit-accept",
            "user-logging-input",
        ):
            skeleton.append(f":ufw{t}-{c} - [0:0]")
        for c in (
            "before-logging-input",
            "before-input",
            "after-input",
            "after-logging-input",
            "reject-input",
            "track-input",
        ):
            skeleton.append(f"-A INPUT -j ufw{t}-{c}")
        if cfg.default_input == "REJECT":
            skeleton.append(f"-A ufw{t}-reject-input -j REJECT")
        if cfg.default_input == "ACCEPT":
            skeleton.append(f"-A ufw{t}-track-input -p tcp -m conntrack --ctstate NEW -j ACCEPT")
            skeleton.append(f"-A ufw{t}-track-input -p udp -m conntrack --ctstate NEW -j ACCEPT")
        skeleton.append(f"-A ufw{t}-skip-to-policy-input -j {pol}")
        skeleton.append("COMMIT")
        parse_iptables_save("\n".join(skeleton) + "\n", family, rs.source, "ufw", rs)
        # ufw-init's order: before, after, user rules (each iptables-restore -n), then the hook into the
        # user chain at the end of ufw-before-input.
        for name in (f"/etc/ufw/before{t}.rules", f"/etc/ufw/after{t}.rules", f"/etc/ufw/user{t}.rules"):
            text = files.get(name)
            if text is None:
                rs.errors.append(f"{name} missing")
                continue
            parse_iptables_save(text, family, name, "ufw", rs)
        parse_iptables_save(
            f"*filter\n-A ufw{t}-before-input -j ufw{t}-user-input\nCOMMIT\n", family, "ufw-init", "ufw", rs
        )
        out.append(rs)
    return out


# --------------------------------------------------------------------------------------------------
# firewalld
@dataclass
class Zone:
    name: str
    source: str  # file
    target: str = "default"
    services: list[str] = field(default_factory=list)
    ports: list[tuple[str, str]] = field(default_factory=list)  # (port or range, proto)
    sources: list[str] = field(default_factory=list)
    interfaces: list[str] = field(default_factory=list)
    rich: list[tuple[int | None, str | None, list[tuple[str, str]], str, str]] = field(default_factory=list)
    forward_ports: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class FirewalldConfig:
    default_zone: str
    default_zone_line: str
    backend: str
    zones: dict[str, Zone]
    errors: tuple[str, ...] = ()


def service_ports(
    name: str, custom: dict[str, list[tuple[str, str]]], depth: int = 0
) -> list[tuple[str, str]] | None:
    if name in custom:
        return custom[name]
    if name not in PORTS or depth > 5:
        return None
    out: list[tuple[str, str]] = []
    for p in PORTS[name].split():
        port, _, proto = p.partition("/")
        out.append((port, proto))
    for inc in INCLUDES.get(name, "").split():
        sub = service_ports(inc, custom, depth + 1)
        if sub:
            out.extend(sub)
    return out


def parse_zone(text: str, name: str, path: str) -> Zone:
    root = ET.fromstring(text)
    z = Zone(name, path, target=root.get("target", "default"))
    for el in root:
        if el.tag == "service" and el.get("name"):
            z.services.append(el.get("name", ""))
        elif el.tag == "port" and el.get("port"):
            z.ports.append((el.get("port", ""), el.get("protocol", "tcp")))
        elif el.tag == "source":
            z.sources.append(el.get("address") or el.get("ipset") or el.get("mac") or "")
        elif el.tag == "interface" and el.get("name"):
            z.interfaces.append(el.get("name", ""))
        elif el.tag == "forward-port":
            z.forward_ports.append((el.get("port", ""), el.get("protocol", "tcp")))
        elif el.tag == "rule":
            fam_s = el.get("family")
            fam = 4 if fam_s == "ipv4" else 6 if fam_s == "ipv6" else None
            src_el = el.find("source")
            src = None
            if src_el is not None:
                src = ("not " if src_el.get("invert") in ("true", "yes") else "") + (
                    src_el.get("address") or "?"
                )
            ports: list[tuple[str, str]] = []
            for p in el.findall("port"):
                ports.append((p.get("port", ""), p.get("protocol", "tcp")))
            for s in el.findall("service"):
                ports.extend(service_ports(s.get("name", ""), {}) or [("?", s.get("name", ""))])
            action = (
                "accept"
                if el.find("accept") is not None
                else "drop"
                if el.find("drop") is not None
                else "reject"
                if el.find("reject") is not None
                else "other"
            )
            z.rich.append((fam, src, ports, action, ET.tostring(el, encoding="unicode").strip()[:200]))
    return z


def parse_firewalld(files: dict[str, str | None]) -> FirewalldConfig | None:
    conf = files.get("/etc/firewalld/firewalld.conf")
    if conf is None:
        return None
    kv = _kv_file(conf)
    dz, dz_line = kv.get("DefaultZone", ("public", 0))
    backend = kv.get("FirewallBackend", ("nftables", 0))[0]
    zones: dict[str, Zone] = {}
    errors: list[str] = []
    for prefix in ("/usr/lib/firewalld/zones/", "/etc/firewalld/zones/"):  # /etc overrides /usr/lib
        for path, text in sorted(files.items()):
            if not path.startswith(prefix) or not path.endswith(".xml") or text is None:
                continue
            name = path[len(prefix) : -4]
            try:
                zones[name] = parse_zone(text, name, path)
            except ET.ParseError as exc:
                errors.append(f"{path}: {exc}")
    return FirewalldConfig(
        dz,
        f"/etc/firewalld/firewalld.conf:{dz_line}" if dz_line else "/etc/firewalld/firewalld.conf (default)",
        backend,
        zones,
        tuple(errors),
    )


def firewalld_ruleset(cfg: FirewalldConfig, custom: dict[str, list[tuple[str, str]]]) -> Ruleset:
    """What firewalld builds from its permanent configuration, for the input path."""
    rs = Ruleset(source=f"firewalld zones ({cfg.default_zone_line})", backend="firewalld")
    t = Table("inet", "firewalld")
    rs.tables.append(t)
    inp = Chain("filter_INPUT", hook="input", type="filter", priority=10, policy="accept")
    t.chains[inp.name] = inp
    inp.rules.append(
        Rule(
            (CtState("ct state established,related", frozenset({"established", "related"})),),
            Action("accept"),
            "ct state { established, related } accept",
        )
    )
    inp.rules.append(Rule((Iface('iifname "lo"', ("lo",)),), Action("accept"), 'iifname "lo" accept'))
    zones = dict(cfg.zones)
    if cfg.default_zone not in zones:
        rs.errors.append(f"default zone {cfg.default_zone} has no definition")
        zones[cfg.default_zone] = Zone(cfg.default_zone, "(missing)", target="default")

    for z in zones.values():
        zc = Chain(f"filter_IN_{z.name}")
        t.chains[zc.name] = zc
        for fam, src, ports, action, text in z.rich:
            preds: list[Pred] = []
            if src:
                neg = src.startswith("not ")
                addr = src[4:] if neg else src
                for f in (fam,) if fam else (4, 6):
                    net = net_value(addr, f)
                    if net is not None:
                        preds.append(Addr(f"rich rule source {src}", "saddr", f, (net,), neg))
                        break
                else:
                    preds.append(Addr(f"rich rule source {src}", "saddr", fam or 4, (), neg, unknown=True))
            elif fam:
                preds.append(NfProto(f"rule family ipv{fam}", fam))
            act = Action(action if action in ("accept", "drop", "reject") else "undecided", None, action)
            if ports:
                for port, proto in ports:
                    zc.rules.append(Rule((*preds, *_port_preds(port, proto)), act, f"{z.source}: {text}"))
            else:
                zc.rules.append(Rule(tuple(preds), act, f"{z.source}: {text}"))
        for svc in z.services:
            ps = service_ports(svc, custom)
            if ps is None:
                zc.rules.append(
                    Rule(
                        (Port(f"service {svc} (ports unknown)", "dport", None, (), False, True),),
                        Action("accept"),
                        f"{z.source}: service {svc}",
                    )
                )
                continue
            for port, proto in ps:
                daddr: tuple[Pred, ...] = ()
                if svc == "dhcpv6-client":
                    daddr = (Addr("ip6 daddr fe80::/64", "daddr", 6, (net_value("fe80::/64", 6),), False),)  # type: ignore[arg-type]
                zc.rules.append(
                    Rule(
                        (*daddr, *_port_preds(port, proto)),
                        Action("accept"),
                        f"{z.source}: service {svc} ({port}/{proto})",
                    )
                )
        for port, proto in z.ports:
            zc.rules.append(
                Rule(tuple(_port_preds(port, proto)), Action("accept"), f"{z.source}: port {port}/{proto}")
            )
        target = z.target.upper()
        if target == "ACCEPT":
            zc.rules.append(Rule((), Action("accept"), f"{z.source}: target ACCEPT"))
        elif target == "DROP":
            zc.rules.append(Rule((), Action("drop"), f"{z.source}: target DROP"))
        elif target in ("%%REJECT%%", "REJECT", "DEFAULT"):
            zc.rules.append(Rule((), Action("reject"), f"{z.source}: target {z.target} (reject)"))
        if z.sources:
            nets4 = [n for s in z.sources if (n := net_value(s, 4)) is not None]
            nets6 = [n for s in z.sources if (n := net_value(s, 6)) is not None]
            if nets4:
                inp.rules.append(
                    Rule(
                        (Addr(f"zone {z.name} sources", "saddr", 4, tuple(nets4)),),
                        Action("goto", zc.name),
                        f"{z.source}: sources {' '.join(z.sources)}",
                    )
                )
            if nets6:
                inp.rules.append(
                    Rule(
                        (Addr(f"zone {z.name} sources", "saddr", 6, tuple(nets6)),),
                        Action("goto", zc.name),
                        f"{z.source}: sources {' '.join(z.sources)}",
                    )
                )
    for z in zones.values():
        if z.interfaces:
            inp.rules.append(
                Rule(
                    (Iface(f"iifname {{ {', '.join(z.interfaces)} }}", tuple(z.interfaces)),),
                    Action("goto", f"filter_IN_{z.name}"),
                    f"{z.source}: interfaces",
                )
            )
    inp.rules.append(
        Rule(
            (),
            Action("goto", f"filter_IN_{cfg.default_zone}"),
            f"{cfg.default_zone_line}: DefaultZone={cfg.default_zone}",
        )
    )
    return rs


def _port_preds(port: str, proto: str) -> list[Pred]:
    a, _, b = port.partition("-")
    if proto not in ("tcp", "udp", "sctp", "dccp") or not a.isdigit() or (b and not b.isdigit()):
        return [
            Port(f"port {port}/{proto}", "dport", proto if proto in ("tcp", "udp") else None, (), False, True)
        ]
    return [
        L4Proto(f"meta l4proto {proto}", frozenset({proto})),
        Port(f"{proto} dport {port}", "dport", proto, ((int(a), int(b or a)),)),
    ]


def parse_firewalld_services(files: dict[str, str | None]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for path, text in files.items():
        if not path.startswith("/etc/firewalld/services/") or not path.endswith(".xml") or text is None:
            continue
        try:
            root = ET.fromstring(text)
        except ET.ParseError:
            continue
        out[path.rsplit("/", 1)[-1][:-4]] = [
            (p.get("port", ""), p.get("protocol", "tcp")) for p in root.findall("port")
        ]
    return out


# --------------------------------------------------------------------------------------------------
# The fact
@dataclass
class BootMechanism:
    name: str  # ufw | firewalld | nftables | netfilter-persistent | iptables-services
    enabled: bool
    evidence: list[tuple[str, str]]  # (source, detail)
    rulesets: list[Ruleset]
    families: tuple[int, ...]  # which families its rules cover (an IPv4-only rules.v4 is (4,))
    problems: list[str] = field(default_factory=list)


@dataclass
class Firewall:
    live: bool
    loaded: list[Ruleset]  # loaded in the kernel now (live hosts whose rules could be read)
    loaded_known: bool
    loaded_error: str | None
    boot: list[BootMechanism]
    ufw: UfwConfig | None
    firewalld: FirewalldConfig | None
    iifs: tuple[str | None, ...]  # interfaces a non-local packet arrives on (None: unknown name)
    loaded_sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # -- which rules -------------------------------------------------------------------------------
    def rulesets(self, which: str = "auto") -> list[Ruleset]:
        """'loaded', 'boot', or 'auto' (loaded when known, else what loads at boot)."""
        if which == "loaded" or (which == "auto" and self.loaded_known):
            return self.loaded
        return [rs for m in self.boot if m.enabled for rs in m.rulesets]

    @property
    def enabled_at_boot(self) -> bool:
        return any(m.enabled for m in self.boot)

    # -- questions ---------------------------------------------------------------------------------
    def evaluate(
        self,
        proto: str,
        port: int,
        family: int,
        saddr: str | None = None,
        which: str = "auto",
        daddr: str | None = None,
    ) -> Verdict:
        rulesets = self.rulesets(which)
        iifs = self.iifs if (which == "loaded" or (which == "auto" and self.loaded_known)) else (None,)
        v = evaluate(rulesets, proto, port, family, saddr=saddr, iifs=iifs, daddr=daddr)
        if v.allowed is not True:
            dnat = self._dnat(rulesets, proto, port, family)
            if dnat is not None:
                return Verdict(True, f"{dnat} (forwarded to a container/VM: the INPUT chain does not see it)")
        return v

    def reachable(self, proto: str, port: int, family: int) -> Verdict:
        """Is a new ``proto`` connection to ``port`` let in from an arbitrary non-local source?"""
        return self.evaluate(proto, port, family)

    def default_verdicts(self, family: int, which: str = "auto") -> dict[str, Verdict]:
        """Verdicts for a TCP and a UDP port no rule names: the input default."""
        rulesets = self.rulesets(which)
        out: dict[str, Verdict] = {}
        for proto in ("tcp", "udp"):
            port = probe_port(rulesets, proto)
            iifs = self.iifs if (which == "loaded" or (which == "auto" and self.loaded_known)) else (None,)
            out[proto] = evaluate(rulesets, proto, port, family, iifs=iifs)
        return out

    def default_deny(self, family: int, which: str = "auto") -> bool | None:
        vs = self.default_verdicts(family, which).values()
        if any(v.allowed for v in vs):
            return False
        if any(v.allowed is None for v in vs):
            return None
        return True

    @property
    def active_v4(self) -> bool | None:
        return self.default_deny(4, "loaded") if self.loaded_known else None

    @property
    def active_v6(self) -> bool | None:
        return self.default_deny(6, "loaded") if self.loaded_known else None

    def open_ports(self, family: int | None = None, which: str = "auto") -> list[PortRange]:
        """Port ranges a non-local source reaches (allowed), or only from some networks (restricted), or
        undecided; the default (ports no rule names) is included as its own range(s)."""
        rulesets = self.rulesets(which)
        iifs = self.iifs if (which == "loaded" or (which == "auto" and self.loaded_known)) else (None,)
        out: list[PortRange] = []
        for fam in (family,) if family else (4, 6):
            try:
                ranges = open_ranges(rulesets, fam, iifs=iifs)
            except TooComplex as exc:
                ranges = [PortRange(p, fam, 1, 65535, Verdict(None, "", str(exc))) for p in ("tcp", "udp")]
            for r in ranges:
                if r.verdict.allowed is not True:
                    dnat = self._dnat(rulesets, r.proto, r.lo, fam) if r.lo == r.hi else None
                    if dnat is not None:
                        r = PortRange(r.proto, fam, r.lo, r.hi, Verdict(True, dnat))
                if r.verdict.allowed is not False or r.verdict.sources:
                    out.append(r)
            for proto, lo, hi, text in self._dnat_ranges(rulesets, fam):
                if not any(r.proto == proto and r.lo <= lo and hi <= r.hi and r.verdict.allowed for r in out):
                    out.append(PortRange(proto, fam, lo, hi, Verdict(True, f"{text} (forwarded by DNAT)")))
        return out

    # -- DNAT (Docker's published ports and the like) ----------------------------------------------
    @staticmethod
    def _dnat_ranges(rulesets: Sequence[Ruleset], family: int) -> list[tuple[str, int, int, str]]:
        out: list[tuple[str, int, int, str]] = []
        for rs in rulesets:
            for t in rs.tables:
                if family not in t.families:
                    continue
                is_nat = t.name == "nat" or any(c.type == "nat" for c in t.chains.values())
                if not is_nat:
                    continue
                for c in t.chains.values():
                    if c.hook in ("output", "postrouting") or c.name in ("OUTPUT", "POSTROUTING"):
                        continue
                    for r in c.rules:
                        if "dnat" not in r.action.text.lower() and "DNAT" not in r.text:
                            continue
                        if any(isinstance(p, Iface) and not p.neg and p.names != ("+",) for p in r.matches):
                            continue  # only from a given interface (e.g. docker0 itself)
                        if any(isinstance(p, Addr) and p.which == "saddr" and not p.neg for p in r.matches):
                            continue
                        for p in r.matches:
                            if isinstance(p, Port) and p.which == "dport" and not p.neg and not p.unknown:
                                protos = (p.proto,) if p.proto else ("tcp", "udp")
                                for proto in protos:
                                    for lo, hi in p.ranges:
                                        out.append((proto, lo, hi, f"{chain_name(t, c)}: {r.text}"))
        return out

    def _dnat(self, rulesets: Sequence[Ruleset], proto: str, port: int, family: int) -> str | None:
        for p, lo, hi, text in self._dnat_ranges(rulesets, family):
            if p == proto and lo <= port <= hi:
                return text
        return None

    # -- descriptions ------------------------------------------------------------------------------
    def source_of(self, verdict: Verdict, which: str = "auto") -> str:
        """The evidence source (command or file) holding the rule or policy a verdict names."""
        text = verdict.rule or verdict.undecided_reason or ""
        best: tuple[int, str] | None = None  # the longest chain label in the text names its ruleset
        for rs in self.rulesets(which):
            for t in rs.tables:
                for c in t.chains.values():
                    label = chain_label(t, c)
                    if label in text and (best is None or len(label) > best[0]):
                        best = (len(label), rs.source)
        if best is not None:
            return best[1]
        for rs in self.rulesets(which):
            for t in rs.tables:
                if f"{t.family} {t.name} " in text and not t.tag:
                    return rs.source
        for rs in self.rulesets(which):
            if rs.source in text:
                return rs.source
        srcs = [rs.source for rs in self.rulesets(which)]
        return ", ".join(dict.fromkeys(srcs)) or "firewall rules"

    def chain_names(self, which: str = "loaded") -> list[str]:
        return [
            chain_label(t, c)
            for rs in self.rulesets(which)
            for t in rs.tables
            for c in t.chains.values()
        ]

    def only_helper_chains(self, which: str = "loaded") -> list[str]:
        """Names of the helper chains (Docker, libvirt, fail2ban…) when those are all there is."""
        names: list[str] = []
        builtin = ("INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING")
        for rs in self.rulesets(which):
            for t in rs.tables:
                for c in t.chains.values():
                    if c.name in builtin and not HELPER_TABLE_RE.match(t.name):
                        # iptables' built-in chains: only jumps into helper chains (fail2ban, libvirt)
                        if c.name == "INPUT" and any(
                            r.action.kind not in ("jump", "goto")
                            or not HELPER_CHAIN_RE.match(r.action.target or "")
                            or (r.action.target or "") in builtin
                            for r in c.rules
                        ):
                            return []
                        continue
                    if HELPER_CHAIN_RE.match(c.name) or HELPER_TABLE_RE.match(t.name):
                        if c.name not in builtin:
                            names.append(c.name)
                        continue
                    return []
        return sorted(set(names))


def chain_name(t: Table, c: Chain) -> str:
    return chain_label(t, c)


def probe_port(rulesets: Sequence[Ruleset], proto: str) -> int:
    """A port no rule names (so its verdict is the default), preferring high unprivileged ones."""
    pts = port_boundaries(rulesets, proto)
    named: list[tuple[int, int]] = []
    for rs in rulesets:
        for _, _, r in rs.all_rules():
            for p in r.matches:
                if isinstance(p, Port) and p.which == "dport":
                    named.extend(p.ranges)
            for p, _ in r.vmap:
                if isinstance(p, Port):
                    named.extend(p.ranges)
    for cand in (47321, 40961, 33333, 55555, 29999, 12345, 65001, 1999):
        if not any(lo <= cand <= hi for lo, hi in named):
            return cand
    for cand in pts[:-1]:
        if not any(a <= cand <= b for a, b in named):
            return cand
    return 47321


def _files(facts: Facts, patterns: Sequence[str]) -> tuple[dict[str, str | None], list[str]]:
    b = facts.bundle
    out: dict[str, str | None] = {}
    errors: list[str] = []
    for pattern in patterns:
        for path in b.glob(pattern) if any(ch in pattern for ch in "*?[") else [pattern]:
            try:
                text = b.text(path)
            except EvidenceError as exc:
                errors.append(str(exc))
                continue
            if text is not None:
                out[path] = text
    return out, errors


def _loaded(facts: Facts) -> tuple[list[Ruleset], bool, str | None, list[str], list[str]]:
    """(rulesets, known, error, sources, notes) of the rules loaded now."""
    b = facts.bundle
    if not b.live:
        return [], False, "what is loaded in the kernel cannot be known from an offline image", [], []
    rec = b.command(RULES_COMMAND)
    if rec is None:
        return [], False, "the loaded firewall rules were not gathered", [], []
    sections = split_sections(rec.stdout)
    rulesets: list[Ruleset] = []
    sources: list[str] = []
    notes: list[str] = []
    errors: list[str] = []
    nft_rs: Ruleset | None = None
    nft_body, nft_rc = sections.get("nft", ("", 127))
    if nft_rc == 0:
        try:
            nft_rs = parse_nft_json(nft_body or '{"nftables": []}')
            sources.append("command: nft -j list ruleset")
        except ValueError as exc:
            errors.append(f"nft -j list ruleset printed something unreadable: {exc}")
    elif nft_rc not in (127,):
        errors.append(f"nft -j list ruleset failed (rc {nft_rc}): {_first_line(nft_body)}")
    ipt_tables: set[tuple[str, str]] = set()
    for name in (
        "iptables-legacy-save",
        "ip6tables-legacy-save",
        "iptables-nft-save",
        "ip6tables-nft-save",
        "iptables-save",
        "ip6tables-save",
    ):
        if name not in sections:
            continue
        body, rc = sections[name]
        if rc != 0:
            errors.append(f"{name} failed (rc {rc}): {_first_line(body)}")
            continue
        family = 6 if name.startswith("ip6") else 4
        default_backend = "iptables-nft" if "-nft-" in name else "iptables-legacy"
        rs = parse_iptables_save(body, family, f"command: {name}", None)
        if "-nft-" in name or "-legacy-" in name:
            rs.backend = default_backend
        elif rs.backend == "iptables-legacy" and "(nf_tables)" not in body and "(legacy)" not in body:
            rs.backend = "iptables-legacy"
        if rs.backend == "iptables-nft":
            for t in rs.tables:
                ipt_tables.add((t.family, t.name))
        if rs.tables:
            rulesets.append(rs)
            sources.append(f"command: {name}")
    if nft_rs is not None:
        # Tables iptables-nft printed are read from there (nft's JSON hides iptables extensions' options).
        nft_rs.tables = [t for t in nft_rs.tables if (t.family, t.name) not in ipt_tables]
        rulesets.insert(0, nft_rs)
    # Legacy and nf_tables tables of the same name both filter (a packet must pass both): say which is which.
    other = {(t.family, t.name) for rs in rulesets if rs.backend != "iptables-legacy" for t in rs.tables}
    for rs in rulesets:
        if rs.backend == "iptables-legacy":
            for t in rs.tables:
                if (t.family, t.name) in other:
                    t.tag = "iptables-legacy"
    if nft_rs is None and not any(rs.backend == "iptables-nft" for rs in rulesets) and errors:
        reason = "; ".join(errors)
        if not b.is_root and b.uid is not None:
            reason = f"needs root to read the loaded firewall rules ({reason})"
        return [], False, reason, sources, notes
    if errors:
        notes.extend(errors)
    if nft_rs is None and not rulesets and not errors:
        # No nft and no iptables-save: nothing on this host can have loaded rules.
        notes.append("neither nft nor iptables-save is installed: no firewall rules can be loaded")
        return [], True, None, ["command: nft, iptables-save (not installed)"], notes
    return rulesets, True, None, sources, notes


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return "no output"


def _boot(
    facts: Facts,
    svc: Services,
    ufw: UfwConfig | None,
    fwd: FirewalldConfig | None,
    files: dict[str, str | None],
) -> list[BootMechanism]:
    out: list[BootMechanism] = []
    if ufw is not None:
        # Without systemd (sysvinit images) ufw's init script runs from rcS: ENABLED decides.
        enabled = ufw.enabled and (svc.is_enabled("ufw") or not svc.systemd)
        ev = [(ufw.enabled_line, f"ENABLED={'yes' if ufw.enabled else 'no'}")]
        problems = []
        if ufw.enabled and not enabled:
            problems.append("ufw.service is not enabled, so ufw does not start at boot")
            ev.append((svc.enabled_source, "ufw.service not enabled"))
        rulesets = ufw_rulesets(ufw, files)
        out.append(BootMechanism("ufw", enabled, ev, rulesets, (4, 6), problems))
    if fwd is not None:
        enabled = svc.is_enabled("firewalld")
        ev = [
            (svc.enabled_source, f"firewalld.service {'enabled' if enabled else 'not enabled'}"),
            (fwd.default_zone_line, f"DefaultZone={fwd.default_zone}"),
        ]
        custom = parse_firewalld_services(files)
        rs = firewalld_ruleset(fwd, custom)
        rs.errors.extend(fwd.errors)
        out.append(BootMechanism("firewalld", enabled, ev, [rs], (4, 6)))
    for conf in ("/etc/nftables.conf", "/etc/sysconfig/nftables.conf"):
        if conf in files and files[conf] is not None:
            enabled = svc.is_enabled("nftables")
            nft_files = {
                p: t for p, t in files.items() if t is not None and p.startswith(("/etc/nftables", conf))
            }
            rs = parse_nft_text(nft_files, conf)
            fams = tuple(sorted({f for t in rs.tables for f in t.families})) or (4, 6)
            out.append(
                BootMechanism(
                    "nftables",
                    enabled,
                    [
                        (svc.enabled_source, f"nftables.service {'enabled' if enabled else 'not enabled'}"),
                        (conf, "ruleset file"),
                    ],
                    [rs],
                    fams,
                )
            )
            break
    for mech, units, paths in (
        (
            "netfilter-persistent",
            ("netfilter-persistent", "iptables-persistent"),
            ("/etc/iptables/rules.v4", "/etc/iptables/rules.v6"),
        ),
        (
            "iptables-services",
            ("iptables", "ip6tables"),
            ("/etc/sysconfig/iptables", "/etc/sysconfig/ip6tables"),
        ),
    ):
        texts = [files.get(p) for p in paths]
        if all(t is None for t in texts) and not any(svc.is_enabled(u) for u in units):
            continue
        evs: list[tuple[str, str]] = []
        rss: list[Ruleset] = []
        families: list[int] = []
        for family, path, text in ((4, paths[0], texts[0]), (6, paths[1], texts[1])):
            # netfilter-persistent restores both files; iptables-services has one unit per family.
            unit: str = units[0] if mech == "netfilter-persistent" else units[1 if family == 6 else 0]
            on_boot = svc.is_enabled(unit) or (mech == "netfilter-persistent" and svc.is_enabled(units[1]))
            if mech == "iptables-services" or family == 4:
                evs.append((svc.enabled_source, f"{unit}.service {'enabled' if on_boot else 'not enabled'}"))
            if text is None:
                evs.append((path, "absent"))
                continue
            if on_boot:
                rss.append(parse_iptables_save(text, family, path, "iptables-restore"))
                families.append(family)
        out.append(BootMechanism(mech, bool(rss), evs, rss, tuple(families)))
    return out


def firewall(facts: Facts) -> Firewall:
    b = facts.bundle
    files, errors = _files(facts, UFW_FILES + FIREWALLD_FILES + PERSISTED_FILES)
    svc = facts.get(services)
    ufw: UfwConfig | None = None
    if "/etc/ufw/ufw.conf" in files:
        ufw = parse_ufw(files["/etc/ufw/ufw.conf"] or "", files.get("/etc/default/ufw"))
    fwd = parse_firewalld(files)
    loaded, known, error, sources, notes = _loaded(facts)
    iifs: tuple[str | None, ...] = (None,)
    if b.live:
        rec = b.command(IFACES_COMMAND)
        if rec is not None:
            default, names = parse_ifaces(rec.stdout)
            ext = default or [n for n in names if not VIRTUAL_IFACE_RE.match(n)]
            if ext:
                iifs = tuple(ext)
    boot = _boot(facts, svc, ufw, fwd, files)
    notes.extend(errors)
    return Firewall(
        live=b.live,
        loaded=loaded,
        loaded_known=known,
        loaded_error=error,
        boot=boot,
        ufw=ufw,
        firewalld=fwd,
        iifs=iifs,
        loaded_sources=sources,
        notes=notes,
    )
