"""NTP software on the host: whom it serves time to, whom it answers queries from, and monlist.

Public API:

- ``ntp_servers(facts) -> list[NtpServer]``: every NTP implementation installed: ``kind`` in ntpd (classic)
  | ntpsec | chrony | openntpd | timesyncd; ``client_only`` (True: serves no one); ``serve`` (``Grant``:
  who gets time), ``query`` (``Grant``: who may send mode 6/7 queries, or chrony's monitoring
  commands), ``listen`` / ``query_listen`` (``ListenPlan``), ``monitor`` (classic ntpd's monitoring,
  which backs monlist), ``version`` (+ ``version_source``), ``monlist`` (True: answers mode 7 monlist:
  classic ntpd before 4.2.7p26 with monitoring on), ``evidence``, ``problems``.
- Parsers (pure): ``parse_ntp_conf``, ``parse_chrony_conf``, ``parse_openntpd_conf``, ``ntpd_version``,
  ``version_tuple``, ``monlist_capable``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nectar_audit.evidence import Bundle, EvidenceError, Needs
from nectar_audit.facts.net import (
    ANY4,
    ANY6,
    LOOPBACK,
    Grant,
    ListenPlan,
    Net,
    collapse,
    longest_prefix_grant,
    parse_net,
    subtract,
)
from nectar_audit.facts.network.reach import Reach, limit
from nectar_audit.facts.updates import packages
from nectar_audit.model import Evidence

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

NTP_CONFS = ("/etc/ntpsec/ntp.conf", "/etc/ntp.conf", "/etc/ntp/ntp.conf")
CHRONY_CONFS = ("/etc/chrony/chrony.conf", "/etc/chrony.conf")
OPENNTPD_CONFS = ("/etc/openntpd/ntpd.conf", "/etc/ntpd.conf")
TIMESYNCD = ("/lib/systemd/systemd-timesyncd", "/usr/lib/systemd/systemd-timesyncd")
NTPD_BIN = ("/usr/sbin/ntpd",)
CHRONYD_BIN = ("/usr/sbin/chronyd",)
OPENNTPD_BIN = ("/usr/sbin/openntpd",)
VERSION_COMMAND = "ntp.version"
# monlist (mode 7 MON_GETLIST) was removed in ntp 4.2.7p26.
MONLIST_FIXED = (4, 2, 7, 26)

NEEDS = Needs(
    files=(
        *NTP_CONFS,
        "/etc/ntpsec/ntp.d/*.conf",
        *CHRONY_CONFS,
        "/etc/chrony/conf.d/*.conf",
        "/etc/chrony.d/*.conf",
        *OPENNTPD_CONFS,
    ),
    stats=(*TIMESYNCD, *NTPD_BIN, *CHRONYD_BIN, *OPENNTPD_BIN),
    commands={
        VERSION_COMMAND: "command -v ntpd >/dev/null 2>&1 || exit 127\nwith_timeout 5 ntpd --version 2>&1 | "
        "head -n 3"
    },
)


@dataclass(frozen=True)
class Line:
    words: tuple[str, ...]
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _lines(text: str, path: str, comments: str = "#") -> list[Line]:
    out: list[Line] = []
    for no, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not s or s[0] in comments:
            continue
        for c in comments:
            if c == "#":
                s = s.split("#", 1)[0]
        words = tuple(s.split())
        if words:
            out.append(Line(words, path, no))
    return out


@dataclass
class NtpServer:
    kind: str
    installed: tuple[str, ...]
    config: str | None
    client_only: bool = False
    serve: Grant = field(default_factory=Grant.nobody)
    query: Grant = field(default_factory=Grant.nobody)
    listen: ListenPlan = field(default_factory=lambda: ListenPlan(None, "unknown"))
    query_listen: ListenPlan = field(default_factory=lambda: ListenPlan(False, "none"))
    monitor: bool | None = None
    version: str | None = None
    version_source: str = ""
    monlist: bool | None = None
    evidence: list[Evidence] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return {
            "ntpd": "ntpd (classic NTP)",
            "ntpsec": "ntpd (NTPsec)",
            "chrony": "chronyd",
            "openntpd": "OpenNTPD",
            "timesyncd": "systemd-timesyncd",
        }[self.kind]

    @property
    def processes(self) -> tuple[str, ...]:
        return {
            "ntpd": ("ntpd",),
            "ntpsec": ("ntpd",),
            "chrony": ("chronyd",),
            "openntpd": ("ntpd", "openntpd"),
            "timesyncd": ("systemd-timesyn", "systemd-timesyncd"),
        }[self.kind]


# ==================================================================================================
# ntpd (classic and NTPsec)
def parse_ntp_conf(text: str, path: str = "ntp.conf") -> list[Line]:
    return _lines(text, path)


def version_tuple(text: str) -> tuple[int, int, int, int] | None:
    """``4.2.8p15`` -> (4, 2, 8, 15); ``1:4.2.6.p5+dfsg-2`` -> (4, 2, 6, 5); None if not a classic version."""
    m = re.search(r"(?:^|[\s:])(\d+)\.(\d+)\.(\d+)(?:\.?p(\d+))?", text)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4) or 0)


def ntpd_version(output: str) -> tuple[str, str | None]:
    """``ntpd --version`` output -> (kind "ntpd"|"ntpsec"|"", version)."""
    first = output.strip().splitlines()[0] if output.strip() else ""
    m = re.search(r"ntpsec-(\S+)", first)
    if m:
        return "ntpsec", m.group(1)
    m = re.match(r"\s*ntpd\s+(\d+\.\d+\.\d+(?:p\d+)?)", first)
    if m:
        return "ntpd", m.group(1)
    return "", None


def monlist_capable(version: tuple[int, int, int, int] | None, monitor: bool) -> bool | None:
    if not monitor:
        return False
    if version is None:
        return None
    return version < MONLIST_FIXED


def _restrict_net(words: tuple[str, ...]) -> tuple[list[Net], int, str | None]:
    """``restrict [-4|-6] ADDR [mask M] FLAGS`` -> (nets, index of first flag, unknown address)."""
    i = 1
    fam = ""
    if i < len(words) and words[i] in ("-4", "-6"):
        fam = words[i]
        i += 1
    if i >= len(words):
        return [], i, "restrict without address"
    addr = words[i]
    i += 1
    if addr == "default":
        nets: list[Net] = [ANY4] if fam == "-4" else [ANY6] if fam == "-6" else [ANY4, ANY6]
        return nets, i, None
    if addr == "source":
        return [], i, None
    mask = None
    if i + 1 < len(words) and words[i] == "mask":
        mask = words[i + 1]
        i += 2
    net = parse_net(f"{addr}/{mask}" if mask else addr)
    if net is None:
        return [], i, addr
    return [net], i, None


def _ntpd_grants(lines: list[Line]) -> tuple[Grant, Grant, list[Evidence], list[str]]:
    serve_rules: list[tuple[Net, bool, str, str]] = [
        (ANY4, True, "no restrict default", ""),
        (ANY6, True, "no restrict default", ""),
    ]
    query_rules = list(serve_rules)
    ev: list[Evidence] = []
    unknown: list[str] = []
    for ln in lines:
        if ln.words[0] != "restrict":
            continue
        nets, i, bad = _restrict_net(ln.words)
        if bad is not None:
            unknown.append(f"{bad} ({ln.where})")
            continue
        flags = {w.lower() for w in ln.words[i:]}
        for net in nets:
            serve_rules.append((net, not ({"ignore", "noserve"} & flags), ln.text, ln.where))
            query_rules.append((net, not ({"ignore", "noquery"} & flags), ln.text, ln.where))
        ev.append(Evidence(ln.where, ln.text))
    serve = longest_prefix_grant(serve_rules)
    query = longest_prefix_grant(query_rules)
    return (
        Grant(serve.networks, serve.explicit, False, tuple(unknown), (), serve.items),
        Grant(query.networks, query.explicit, False, tuple(unknown), (), query.items),
        ev,
        unknown,
    )


def _ntpd_listen(lines: list[Line], conf: str) -> ListenPlan:
    """``interface listen|ignore|drop all|wildcard|ipv4|ipv6|ADDR|NAME`` (default: every address)."""
    rules = [ln for ln in lines if ln.words[0] == "interface" and len(ln.words) >= 3]
    if not rules:
        return ListenPlan(
            True,
            "every interface (no interface directives)",
            (Evidence(conf, "no 'interface' directives: ntpd listens on every address"),),
        )
    v4 = v6 = True
    listens: list[str] = []
    for ln in rules:
        action, what = ln.words[1].lower(), ln.words[2].lower()
        if action in ("ignore", "drop"):
            if what in ("all", "ipv4"):
                v4 = False
            if what in ("all", "ipv6"):
                v6 = False
        elif action == "listen":
            listens.append(ln.words[2])
    beyond = v4 or v6 or any(w not in ("lo",) and not _loopbackish(w) for w in listens)
    return ListenPlan(
        beyond, "; ".join(ln.text for ln in rules), tuple(Evidence(ln.where, ln.text) for ln in rules)
    )


def _loopbackish(text: str) -> bool:
    net = parse_net(text)
    return net is not None and any(
        net.version == lb.version and net.subnet_of(lb)  # type: ignore[arg-type]
        for lb in LOOPBACK
    )


def _ntpd_lines(bundle: Bundle, conf: str, problems: list[str]) -> list[Line]:
    out: list[Line] = []
    queue = [(conf, 0)]
    seen: set[str] = set()
    while queue:
        path, depth = queue.pop(0)
        if path in seen or depth > 5:
            continue
        seen.add(path)
        text = bundle.text(path)
        if text is None:
            if path != conf:
                problems.append(f"included file {path} was not gathered (not evaluated)")
            continue
        for ln in parse_ntp_conf(text, path):
            if ln.words[0] == "includefile" and len(ln.words) > 1:
                target = ln.words[1]
                targets = bundle.glob(target) if any(c in target for c in "*?[") else [target]
                queue.extend((t, depth + 1) for t in targets)
                continue
            out.append(ln)
    return out


def ntpd_server(
    bundle: Bundle,
    installed: tuple[str, ...],
    conf: str | None,
    kind: str,
    version: str | None,
    version_source: str,
) -> NtpServer:
    srv = NtpServer(kind, installed, conf, version=version, version_source=version_source)
    if conf is None:
        srv.problems.append("no ntp.conf found (" + ", ".join(NTP_CONFS) + ")")
        srv.listen = ListenPlan(None, "no configuration found")
        return srv
    lines = _ntpd_lines(bundle, conf, srv.problems)
    srv.serve, srv.query, ev, _ = _ntpd_grants(lines)
    srv.evidence.extend(ev)
    srv.listen = _ntpd_listen(lines, conf)
    srv.query_listen = srv.listen
    monitor = True
    for ln in lines:
        if ln.words[0] in ("disable", "enable") and "monitor" in ln.words[1:]:
            monitor = ln.words[0] == "enable"
            srv.evidence.append(Evidence(ln.where, ln.text))
    # "limited" and "kod" need the MRU list, so ntpd turns monitoring back on.
    if any(ln.words[0] == "restrict" and {"limited", "kod"} & set(ln.words) for ln in lines) and not monitor:
        monitor = True
        srv.evidence.append(Evidence(conf, "'limited'/'kod' in a restrict line re-enables monitoring"))
    srv.monitor = monitor
    if kind == "ntpsec":
        srv.monlist = False  # NTPsec has no mode 7 at all
    else:
        srv.monlist = monlist_capable(version_tuple(version) if version else None, monitor)
    return srv


# ==================================================================================================
# chrony
def parse_chrony_conf(text: str, path: str = "chrony.conf") -> list[Line]:
    out = []
    for ln in _lines(text, path, comments="#%!;"):
        out.append(Line((ln.words[0].lower(), *ln.words[1:]), ln.path, ln.line))
    return out


def chrony_subnet(text: str) -> Net | None:
    """chrony's subnet forms: ``1.2.3`` (/24), ``1.2`` (/16), ``1`` (/8), ``1.2.3.4/20``, ``fd00::/8``."""
    if "/" not in text and ":" not in text and re.fullmatch(r"\d+(\.\d+){0,2}", text):
        parts = text.split(".")
        return parse_net(".".join(parts + ["0"] * (4 - len(parts))) + f"/{8 * len(parts)}")
    return parse_net(text)


def _chrony_lines(bundle: Bundle, conf: str, problems: list[str]) -> list[Line]:
    out: list[Line] = []

    def read(path: str, depth: int) -> None:
        text = bundle.text(path)
        if text is None:
            problems.append(f"included file {path} was not gathered (not evaluated)")
            return
        for ln in parse_chrony_conf(text, path):
            if ln.words[0] == "include" and len(ln.words) > 1 and depth < 5:
                for p in bundle.glob(ln.words[1]) if any(c in ln.words[1] for c in "*?[") else [ln.words[1]]:
                    read(p, depth + 1)
            elif ln.words[0] == "confdir" and depth < 5:
                names: dict[str, str] = {}
                for d in ln.words[1:]:
                    for p in bundle.glob(d.rstrip("/") + "/*.conf"):
                        names.setdefault(p.rsplit("/", 1)[-1], p)
                for _, p in sorted(names.items()):
                    read(p, depth + 1)
            else:
                out.append(ln)

    read(conf, 0)
    return out


def _chrony_access(
    lines: list[Line], allow_kw: str, deny_kw: str, default_local: bool
) -> tuple[Grant, list[Evidence], bool]:
    """allow/deny (or cmdallow/cmddeny) with chrony's semantics: most specific subnet wins, ``all`` resets."""
    rules: dict[Net, tuple[bool, str, str]] = {}
    if default_local:
        for lb in LOOPBACK[:2]:
            rules[lb] = (True, "localhost (default)", "")
    ev: list[Evidence] = []
    unknown: list[str] = []
    any_allow = False
    for ln in lines:
        if ln.words[0] not in (allow_kw, deny_kw):
            continue
        allows = ln.words[0] == allow_kw
        any_allow = any_allow or allows
        args = list(ln.words[1:])
        reset = bool(args) and args[0].lower() == "all"
        if reset:
            args = args[1:]
        nets: list[Net]
        if not args:
            nets = [ANY4, ANY6]
        else:
            n = chrony_subnet(args[0])
            if n is None:
                if allows:
                    unknown.append(f"{args[0]} ({ln.where})")
                continue
            nets = [n]
        for net in nets:
            if reset:
                for k in [k for k in rules if k.version == net.version and k.subnet_of(net)]:  # type: ignore[arg-type]
                    del rules[k]
            rules[net] = (allows, ln.text, ln.where)
        ev.append(Evidence(ln.where, ln.text))
    g = longest_prefix_grant([(n, a, t, w) for n, (a, t, w) in rules.items()])
    return Grant(g.networks, g.explicit, False, tuple(unknown), (), g.items), ev, any_allow


def chrony_server(bundle: Bundle, installed: tuple[str, ...], conf: str | None) -> NtpServer:
    srv = NtpServer("chrony", installed, conf)
    if conf is None:
        srv.problems.append("no chrony.conf found (" + ", ".join(CHRONY_CONFS) + ")")
        srv.listen = ListenPlan(None, "no configuration found")
        return srv
    lines = _chrony_lines(bundle, conf, srv.problems)

    def last(key: str) -> Line | None:
        found = [ln for ln in lines if ln.words[0] == key]
        return found[-1] if found else None

    srv.serve, ev, any_allow = _chrony_access(lines, "allow", "deny", False)
    srv.evidence.extend(ev)
    port = last("port")
    if port is not None and port.words[1:2] == ("0",):
        srv.client_only = True
        srv.serve = Grant.nobody()
        srv.evidence.append(Evidence(port.where, port.text))
        srv.listen = ListenPlan(False, "port 0: NTP server port closed", (Evidence(port.where, port.text),))
    elif not any_allow or not srv.serve.networks:
        srv.client_only = not srv.serve.unknown
        srv.listen = ListenPlan(
            False,
            "no allow directive: chronyd does not serve time",
            (Evidence(conf, "no 'allow' directive: client only"),),
        )
    else:
        # One bindaddress per address family (the last one wins); a family without one listens on
        # every address: 'bindaddress 127.0.0.1' alone still serves NTP on [::]:123.
        binds = [ln for ln in lines if ln.words[0] == "bindaddress" and len(ln.words) > 1]
        fam: dict[int, Line] = {}
        for ln in binds:
            net = parse_net(ln.words[1])
            if net is not None:
                fam[net.version] = ln
        loop = {v: v in fam and _loopbackish(fam[v].words[1]) for v in (4, 6)}
        bind_ev = tuple(Evidence(ln.where, ln.text) for ln in binds)
        if loop[4] and loop[6]:
            srv.listen = ListenPlan(False, "; ".join(fam[v].text for v in (4, 6)), bind_ev)
        else:
            parts = [
                f"{fam[v].text} (IPv{v})" if v in fam else f"every IPv{v} address (no IPv{v} bindaddress)"
                for v in (4, 6)
            ]
            if not binds:
                parts = ["every address (no bindaddress)"]
            srv.listen = ListenPlan(
                True,
                "; ".join(parts),
                bind_ev or (Evidence(conf, "no bindaddress: the NTP port listens on every address"),),
            )
            if loop[4] or loop[6]:
                # Only the other family reaches it from outside.
                other = ANY6 if loop[4] else ANY4
                srv.serve = limit(srv.serve, Reach((other,), "", True))
    srv.query, qev, _ = _chrony_access(lines, "cmdallow", "cmddeny", True)
    srv.evidence.extend(qev)
    cmdport = last("cmdport")
    bindcmd = [ln for ln in lines if ln.words[0] == "bindcmdaddress" and len(ln.words) > 1]
    if cmdport is not None and cmdport.words[1:2] == ("0",):
        srv.query_listen = ListenPlan(False, "cmdport 0", (Evidence(cmdport.where, cmdport.text),))
    elif bindcmd and not all(_loopbackish(ln.words[1]) or ln.words[1].startswith("/") for ln in bindcmd):
        srv.query_listen = ListenPlan(
            True, "; ".join(ln.text for ln in bindcmd), tuple(Evidence(ln.where, ln.text) for ln in bindcmd)
        )
    else:
        srv.query_listen = ListenPlan(False, "command port on 127.0.0.1 and ::1 only (default)")
    return srv


# ==================================================================================================
# OpenNTPD
def parse_openntpd_conf(text: str, path: str = "ntpd.conf") -> list[Line]:
    return _lines(text, path)


def openntpd_server(bundle: Bundle, installed: tuple[str, ...], conf: str | None) -> NtpServer:
    srv = NtpServer("openntpd", installed, conf)
    if conf is None:
        srv.problems.append("no OpenNTPD ntpd.conf found")
        srv.listen = ListenPlan(None, "no configuration found")
        return srv
    lines = parse_openntpd_conf(bundle.text(conf) or "", conf)
    listens = [ln for ln in lines if ln.words[:2] == ("listen", "on") and len(ln.words) > 2]
    if not listens:
        srv.client_only = True
        srv.listen = ListenPlan(
            False, "no 'listen on': client only", (Evidence(conf, "no 'listen on' line"),)
        )
        return srv
    nets: list[Net] = []
    beyond = False
    for ln in listens:
        target = ln.words[2]
        if target == "*":
            beyond = True
        elif target in ("localhost", "lo") or _loopbackish(target):
            nets.extend(LOOPBACK[:2])
        else:
            beyond = True
    ev = tuple(Evidence(ln.where, ln.text) for ln in listens)
    srv.evidence.extend(ev)
    srv.listen = ListenPlan(beyond, "; ".join(ln.text for ln in listens), ev)
    # OpenNTPD has no access control: whoever reaches a listening address gets time.
    srv.serve = Grant.of([ANY4, ANY6] if beyond else nets, listens[0].text, listens[0].where)
    return srv


# ==================================================================================================
# The fact
def _version(facts: Facts) -> tuple[str, str | None, str]:
    """(kind, version, source) of the ntpd binary: live ``ntpd --version``, else the package database."""
    b = facts.bundle
    rec = b.command(VERSION_COMMAND)
    if rec is not None and not rec.missing and rec.stdout.strip():
        kind, ver = ntpd_version(rec.stdout)
        if kind:
            return kind, ver, f"command: ntpd --version ({rec.stdout.strip().splitlines()[0][:80]})"
    try:
        db = facts.get(packages)
    except (EvidenceError, ImportError):
        return "", None, ""
    if db.is_installed("ntpsec"):
        return "ntpsec", db.get("ntpsec")[0].version, f"{db.source}: ntpsec {db.get('ntpsec')[0].version}"
    for name in ("ntp", "ntpd"):
        pkgs = db.get(name)
        if pkgs:
            return "ntpd", pkgs[0].version, f"{db.source}: {name} {pkgs[0].version}"
    return "", None, ""


def ntp_servers(facts: Facts) -> list[NtpServer]:
    b = facts.bundle
    out: list[NtpServer] = []
    ntp_conf = next((p for p in NTP_CONFS if b.file(p) is not None), None)
    ntpd_bin = tuple(p for p in NTPD_BIN if p in b.stats)
    if ntp_conf or ntpd_bin:
        kind, version, source = _version(facts)
        if not kind:
            kind = "ntpsec" if ntp_conf == "/etc/ntpsec/ntp.conf" else "ntpd"
        if kind == "ntpd" and version is None and ntp_conf == "/etc/ntpsec/ntp.conf":
            kind = "ntpsec"
        out.append(
            ntpd_server(b, tuple(x for x in (*ntpd_bin, ntp_conf) if x), ntp_conf, kind, version, source)
        )
    chrony_conf = next((p for p in CHRONY_CONFS if b.file(p) is not None), None)
    chrony_bin = tuple(p for p in CHRONYD_BIN if p in b.stats)
    if chrony_conf or chrony_bin:
        out.append(chrony_server(b, tuple(x for x in (*chrony_bin, chrony_conf) if x), chrony_conf))
    onconf = next((p for p in OPENNTPD_CONFS if b.file(p) is not None), None)
    on_bin = tuple(p for p in OPENNTPD_BIN if p in b.stats)
    if onconf or on_bin:
        out.append(openntpd_server(b, tuple(x for x in (*on_bin, onconf) if x), onconf))
    tsd = tuple(p for p in TIMESYNCD if p in b.stats)
    if tsd:
        srv = NtpServer(
            "timesyncd",
            tsd,
            None,
            client_only=True,
            listen=ListenPlan(False, "client only (systemd-timesyncd never serves time)"),
        )
        out.append(srv)
    return out


def serves_beyond(grant: Grant) -> list[Net]:
    """Networks other than loopback that a grant serves."""
    return subtract(collapse(grant.networks), LOOPBACK)
