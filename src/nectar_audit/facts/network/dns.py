from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from nectar_audit.evidence import Bundle, EvidenceError, Needs
from nectar_audit.model import Evidence

if TYPE_CHECKING:
    from nectar_audit.facts import Facts
from nectar_audit.facts.net import (
    ANY4,
    ANY6,
    LOCALNETS_PLACEHOLDER,
    LOOPBACK,
    Grant,
    ListenPlan,
    LocalNets,
    Net,
    collapse,
    intersect,
    local_networks,
    longest_prefix_grant,
    parse_net,
    subtract,
)

BIND_CONFS = ("/etc/bind/named.conf", "/etc/named.conf")
UNBOUND_CONF = "/etc/unbound/unbound.conf"
DNSMASQ_CONF = "/etc/dnsmasq.conf"
DNSMASQ_DEFAULT = "/etc/default/dnsmasq"
DNSMASQ_DEBIAN_INIT = "/usr/share/dnsmasq/init-system-common"
RECURSOR_CONFS = ("/etc/powerdns/recursor.conf", "/etc/pdns-recursor/recursor.conf")
RECURSOR_YML = ("/etc/powerdns/recursor.yml", "/etc/pdns-recursor/recursor.yml")
RESOLVED_CONF = "/etc/systemd/resolved.conf"


BINARIES = {
    "bind": ("/usr/sbin/named",),
    "unbound": ("/usr/sbin/unbound",),
    "dnsmasq": ("/usr/sbin/dnsmasq",),
    "pdns-recursor": ("/usr/sbin/pdns_recursor",),
    "systemd-resolved": ("/usr/lib/systemd/systemd-resolved", "/lib/systemd/systemd-resolved"),
}
# Command names (comm, 15 characters at most) of each server's daemon.
PROCESSES = {
    "bind": ("named",),
    "unbound": ("unbound",),
    "dnsmasq": ("dnsmasq",),
    "pdns-recursor": ("pdns_recursor", "pdns-recursor"),
    "systemd-resolved": ("systemd-resolve", "systemd-resolved"),
}
NAMES = {
    "bind": "BIND (named)",
    "unbound": "unbound",
    "dnsmasq": "dnsmasq",
    "pdns-recursor": "PowerDNS Recursor",
    "systemd-resolved": "systemd-resolved",
}

_BIND_FILES = (
    "/etc/bind/named.conf*",
    "/etc/bind/*.conf",
    "/etc/bind/*/*.conf",
    "/etc/named.conf",
    "/etc/named/*.conf",
    "/etc/named.rfc1912.zones",
    "/etc/crypto-policies/back-ends/bind.config",
)
_SECRET_FILES = ("/etc/bind/*", "/etc/named.conf", "/etc/named/*", "/etc/powerdns/*", "/etc/pdns-recursor/*")



# --------------------------------------------------------------------------------------------------
# Secrets: TSIG/rndc keys in named.conf includes, the recursor's API key and web password.
# Key material: ``secret "…"``, ``api-key=…``, the recursor's web password. Scanned by hand after each
# keyword (a regular expression with "\\s*[=:]?\\s*" took seconds on a keyword and 40,000 spaces).
_SECRET_KEY = re.compile(r"\b(?:secret|api-key|webserver-password|api_key|password)\b", re.IGNORECASE)
_VALUE_STOP = frozenset(" \t\n\r\f\v;#")


def sanitize_dns_secrets(data: bytes) -> str:
    """Blank key material (``secret "…"``, ``api-key=…``) and keep everything else, line for line."""
    text = data.decode("utf-8", "replace")
    out: list[str] = []
    pos = 0
    n = len(text)
    for m in _SECRET_KEY.finditer(text):
        if m.start() < pos:
            continue
        i = m.end()
        while i < n and text[i].isspace():
            i += 1
        sep = i
        if i < n and text[i] in "=:":
            i += 1
            while i < n and text[i].isspace():
                i += 1
        end = _dns_value_end(text, i)
        if end is None and sep < i:  # "secret =;": the "=" itself is taken as the value
            i, end = sep, _dns_value_end(text, sep)
        if end is None:
            continue
        out.append(text[pos:i])
        out.append('"<redacted>"')
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _dns_value_end(text: str, i: int) -> int | None:
    """The end of a quoted string or a bare word at ``i``; None when there is no value."""
    if i < len(text) and text[i] == '"':
        close = text.find('"', i + 1)
        if close >= 0:
            return close + 1
    j = i
    while j < len(text) and text[j] not in _VALUE_STOP:
        j += 1
    return j if j > i else None


@dataclass(frozen=True)
class Scope:
    name: str  # BIND view name; "" for the whole server
    recursion: bool
    grant: Grant
    evidence: tuple[Evidence, ...] = ()
    note: str = ""


@dataclass
class DnsServer:
    kind: str
    installed: tuple[str, ...]  # what shows it is installed (binary or configuration paths)
    config: str | None
    recursion: list[Scope] = field(default_factory=list)
    listen: ListenPlan = field(default_factory=lambda: ListenPlan(None, "unknown"))
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return NAMES[self.kind]

    @property
    def processes(self) -> tuple[str, ...]:
        return PROCESSES[self.kind]


# ==================================================================================================
# BIND
@dataclass
class Stmt:
    words: list[str]
    block: list[Stmt] | None
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def text(self) -> str:
        inner = ""
        if self.block is not None:
            inner = " { " + " ".join(s.text() + ";" for s in self.block) + " }"
        return " ".join(self.words) + inner


_TOKEN = re.compile(
    r'(?P<ws>\s+)|(?P<com>//[^\n]*|#[^\n]*|/\*.*?(?:\*/|\Z))|(?P<str>"(?:[^"\\\n]|\\.)*"?)|(?P<punct>[{};])'
    r'|(?P<word>[^\s{};"]+)',
    re.S,
)
_MAX_DEPTH = 40


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    line = 1
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "ws"
        value = m.group(0)
        if kind == "str":
            out.append(("word", value[1:-1] if value.endswith('"') and len(value) > 1 else value[1:], line))
        elif kind in ("punct", "word"):
            out.append((kind if kind == "word" else value, value, line))
        line += value.count("\n")
    return out


def parse_named_conf(text: str, path: str = "named.conf") -> tuple[list[Stmt], list[str]]:
    """named.conf(5) statements (includes not followed) and the syntax problems met."""
    toks = _tokens(text)
    problems: list[str] = []
    pos = 0

    def block(depth: int) -> list[Stmt]:
        nonlocal pos
        out: list[Stmt] = []
        while pos < len(toks):
            kind, value, line = toks[pos]
            if kind == "}":
                if depth == 0:
                    problems.append(f"{path}:{line}: unexpected '}}'")
                    pos += 1
                    continue
                pos += 1
                return out
            words: list[str] = []
            blk: list[Stmt] | None = None
            start = line
            while pos < len(toks):
                kind, value, line = toks[pos]
                if kind == ";":
                    pos += 1
                    break
                if kind == "{":
                    pos += 1
                    if depth >= _MAX_DEPTH:
                        problems.append(f"{path}:{line}: nesting too deep")
                        pos = len(toks)
                        break
                    inner = block(depth + 1)
                    blk = inner if blk is None else blk + inner
                    # BIND ends "{ … };"; nginx ends "{ … }" with no ';': either way the statement is over.
                    if pos < len(toks) and toks[pos][0] == ";":
                        pos += 1
                    break
                if kind == "}":
                    break  # missing ';' before '}': tolerated as BIND would not, but harmless
                words.append(value)
                pos += 1
            if words or blk is not None:
                out.append(Stmt(words, blk, path, start))
        if depth > 0:
            problems.append(f"{path}: unterminated block at end of file")
        return out

    stmts = block(0)
    return stmts, problems


def _bind_expand(
    bundle: Bundle, stmts: list[Stmt], problems: list[str], seen: set[str], depth: int = 0
) -> list[Stmt]:
    """Inline ``include "file";`` statements (at any level) from the gathered files."""
    out: list[Stmt] = []
    for st in stmts:
        if st.words[:1] == ["include"] and len(st.words) >= 2 and st.block is None:
            target = st.words[1]
            paths = bundle.glob(target) if any(c in target for c in "*?[") else [target]
            if not paths or bundle.file(paths[0]) is None:
                if not target.endswith((".key", "bind.keys")) and "/crypto-policies/" not in target:
                    problems.append(f"{st.where}: included file {target} was not gathered (not evaluated)")
                continue
            for p in paths:
                if p in seen or depth > 10:
                    problems.append(f"{st.where}: include loop on {p}")
                    continue
                text = bundle.text(p)
                if text is None:
                    continue
                sub, probs = parse_named_conf(text, p)
                problems.extend(probs)
                out.extend(_bind_expand(bundle, sub, problems, seen | {p}, depth + 1))
            continue
        if st.block is not None:
            st = Stmt(st.words, _bind_expand(bundle, st.block, problems, seen, depth), st.path, st.line)
        out.append(st)
    return out


def bind_statements(bundle: Bundle) -> list[Stmt]:
    """named.conf's statements with its includes inlined (each keeps the file and line it came from)."""
    conf = next((p for p in BIND_CONFS if bundle.file(p) is not None), None)
    if conf is None:
        return []
    stmts, problems = parse_named_conf(bundle.text(conf) or "", conf)
    return _bind_expand(bundle, stmts, problems, {conf})


class _BindAcls:
    def __init__(self, stmts: list[Stmt], local: LocalNets | None) -> None:
        self.defs = {
            st.words[1]: st
            for st in stmts
            if st.words[:1] == ["acl"] and len(st.words) >= 2 and st.block is not None
        }
        self.local = local

    def evaluate(self, elems: list[Stmt], localnets_as: list[Net] | None, depth: int = 0) -> Grant:
        """First-match evaluation of an address match list (negations, nested lists, named ACLs)."""
        decided: list[Net] = []
        allowed: list[Net] = []
        unknown: list[str] = []
        keys: list[str] = []
        items: list[tuple[str, str, tuple[Net, ...]]] = []
        for el in elems:
            words = list(el.words)
            neg = False
            if words and words[0].startswith("!"):
                neg = True
                words[0] = words[0][1:]
                if not words[0]:
                    words = words[1:]
            text = ("!" if neg else "") + (" ".join(words) if words else "{ … }")
            match: list[Net]
            if el.block is not None and not words:
                if depth > 20:
                    unknown.append(text)
                    continue
                match = list(self.evaluate(el.block, localnets_as, depth + 1).networks)
            elif not words:
                continue
            elif words[0] == "key":
                if not neg and len(words) > 1:
                    keys.append(words[1])
                continue
            elif words[0] == "any":
                match = [ANY4, ANY6]
            elif words[0] == "none":
                match = []
            elif words[0] == "localhost":
                match = [*LOOPBACK, *(self.local.own if self.local else [])]
            elif words[0] == "localnets":
                if localnets_as is not None:
                    match = list(localnets_as)
                elif self.local is not None:
                    match = list(self.local.networks)
                else:
                    match = [LOCALNETS_PLACEHOLDER, *LOOPBACK]
            elif words[0] in self.defs:
                if depth > 20:
                    unknown.append(text)
                    continue
                sub = self.defs[words[0]]
                inner = self.evaluate(sub.block or [], localnets_as, depth + 1)
                unknown.extend(inner.unknown)
                keys.extend(inner.keys)
                match = list(inner.networks)
            else:
                net = parse_net(words[0])
                if net is None:
                    if not neg:
                        unknown.append(f"{text} ({el.where})")
                    continue
                match = [net]
            new = subtract(match, decided)
            if not neg and new:
                allowed.extend(new)
                items.append((text, el.where, tuple(new)))
            decided = collapse([*decided, *match])
        nets = tuple(collapse(allowed))
        return Grant(nets, nets, False, tuple(unknown), tuple(keys), tuple(items))

    def grant(self, aml: Stmt) -> Grant:
        elems = aml.block or []
        full = self.evaluate(elems, None)
        explicit = self.evaluate(elems, [*LOOPBACK])
        return Grant(
            full.networks,
            explicit.networks,
            set(full.networks) != set(explicit.networks),
            full.unknown,
            full.keys,
            full.items,
        )


_DEFAULT_AML = Stmt(
    ["allow-recursion"],
    [Stmt(["localnets"], None, "(default)", 0), Stmt(["localhost"], None, "(default)", 0)],
    "(default)",
    0,
)


def _opt(block: list[Stmt], name: str) -> Stmt | None:
    found = None
    for st in block:
        if st.words[:1] == [name]:
            found = st
    return found


def bind_server(bundle: Bundle, local: LocalNets | None, installed: tuple[str, ...]) -> DnsServer:
    conf = next((p for p in BIND_CONFS if bundle.file(p) is not None), None)
    server = DnsServer("bind", installed, conf)
    if conf is None:
        server.problems.append("no named.conf found (" + " or ".join(BIND_CONFS) + ")")
        return server
    text = bundle.text(conf) or ""
    stmts, probs = parse_named_conf(text, conf)
    server.problems.extend(probs)
    stmts = _bind_expand(bundle, stmts, server.problems, {conf})
    options = next((st.block for st in stmts if st.words[:1] == ["options"] and st.block is not None), [])
    acls = _BindAcls(stmts, local)

    def scope(view: Stmt | None) -> Scope:
        vblock = view.block or [] if view is not None else []
        name = view.words[1] if view is not None and len(view.words) > 1 else ""

        def setting(key: str) -> Stmt | None:
            return _opt(vblock, key) or _opt(options, key)

        rec = setting("recursion")
        ev: list[Evidence] = []
        if view is not None:
            ev.append(Evidence(view.where, f"view {name}"))
        if rec is not None and len(rec.words) > 1 and rec.words[1].lower() in ("no", "false", "0"):
            ev.append(Evidence(rec.where, rec.text()))
            return Scope(name, False, Grant.nobody(), tuple(ev))
        if rec is not None:
            ev.append(Evidence(rec.where, rec.text()))
        aml = (
            setting("allow-recursion")
            or setting("allow-query-cache")
            or setting("allow-query")
            or _DEFAULT_AML
        )
        if aml is not _DEFAULT_AML:
            ev.append(Evidence(aml.where, aml.text()))
        else:
            ev.append(
                Evidence(conf or "", "allow-recursion not set: BIND's default is { localnets; localhost; }")
            )
        g = acls.grant(aml)
        note = ""
        limits: list[Stmt] = []
        aq = setting("allow-query")
        if aq is not None and aq is not aml:
            limits.append(aq)
        mc = _opt(vblock, "match-clients") if view is not None else None
        if mc is not None:
            limits.append(mc)
        for lim in limits:
            lg = acls.grant(lim)
            g = Grant(
                tuple(intersect(g.networks, lg.networks)),
                tuple(intersect(g.explicit, lg.explicit)),
                g.localnets and lg.localnets,
                (*g.unknown, *lg.unknown),
                g.keys,
                g.items,
            )
            ev.append(Evidence(lim.where, lim.text()))
        return Scope(name, True, g, tuple(ev), note)

    views = [st for st in stmts if st.words[:1] == ["view"]]
    server.recursion = [scope(v) for v in views] if views else [scope(None)]
    server.listen = _bind_listen(options, acls, conf)
    return server


def _bind_listen(options: list[Stmt], acls: _BindAcls, conf: str) -> ListenPlan:
    beyond = False
    parts: list[str] = []
    ev: list[Evidence] = []
    for key, default in (
        ("listen-on", "any (all IPv4 addresses)"),
        ("listen-on-v6", "any (all IPv6 addresses)"),
    ):
        sts = [st for st in options if st.words[:1] == [key]]
        if not sts:
            beyond = True
            parts.append(f"{default.split(' (')[1].rstrip(')')} ({key} not set)")
            ev.append(Evidence(conf, f"{key} not set (default {{ any; }})"))
            continue
        for st in sts:
            g = acls.grant(st)
            if subtract(g.networks, LOOPBACK):
                beyond = True
            parts.append(st.text())
            ev.append(Evidence(st.where, st.text()))
    return ListenPlan(beyond, "; ".join(parts), tuple(ev))


# ==================================================================================================
# unbound
@dataclass(frozen=True)
class KV:
    section: str
    key: str
    value: str
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def parse_unbound_conf(
    text: str, path: str = "unbound.conf", section: str = "server"
) -> tuple[list[KV], str]:
    """unbound.conf(5) ``key: value`` lines with their section; returns (entries, last section)."""
    out: list[KV] = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = _strip_hash_comment(raw).strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        value = value.strip()
        if not value and key not in ("include", "include-toplevel"):
            section = key
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out.append(KV(section, key, value, path, no))
    return out, section


def _strip_hash_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def _unbound_entries(
    bundle: Bundle, path: str, problems: list[str], seen: set[str], section: str = "server"
) -> tuple[list[KV], str]:
    text = bundle.text(path)
    if text is None:
        return [], section
    entries, end = parse_unbound_conf(text, path, section)
    out: list[KV] = []
    for kv in entries:
        if kv.key in ("include", "include-toplevel"):
            targets = bundle.glob(kv.value) if any(c in kv.value for c in "*?[") else [kv.value]
            if not any(c in kv.value for c in "*?[") and bundle.file(kv.value) is None:
                problems.append(f"{kv.where}: included file {kv.value} was not gathered (not evaluated)")
            for t in targets:
                if t in seen or len(seen) > 200:
                    continue
                sub, sec = _unbound_entries(
                    bundle, t, problems, seen | {t}, "server" if kv.key == "include-toplevel" else kv.section
                )
                out.extend(sub)
                if kv.key == "include":
                    section = sec
            continue
        out.append(kv)
    return out, end


_UNBOUND_RECURSE = {"allow", "allow_setrd", "allow_snoop", "allow_cookie"}
_UNBOUND_DEFAULT_ACL = (("127.0.0.0/8", "allow"), ("::1", "allow"), ("::ffff:127.0.0.1", "allow"))



def unbound_server(bundle: Bundle, installed: tuple[str, ...]) -> DnsServer:
    server = DnsServer("unbound", installed, UNBOUND_CONF if bundle.file(UNBOUND_CONF) is not None else None)
    if server.config is None:
        server.problems.append(f"{UNBOUND_CONF} not found")
        return server
    entries, _ = _unbound_entries(bundle, UNBOUND_CONF, server.problems, {UNBOUND_CONF})
    srv = [kv for kv in entries if kv.section == "server"]
    rules: list[tuple[Net, bool, str, str]] = []
    for net_s, action in _UNBOUND_DEFAULT_ACL:
        n = parse_net(net_s)
        assert n is not None
        rules.append((n, action in _UNBOUND_RECURSE, f"{net_s} {action}", ""))
    ev: list[Evidence] = []
    unknown: list[str] = []
    for kv in srv:
        if kv.key == "access-control":
            parts = kv.value.split()
            net = parse_net(parts[0]) if parts else None
            if net is None or len(parts) < 2:
                unknown.append(f"{kv.value} ({kv.where})")
                continue
            action = parts[1].lower()
            rules.append((net, action in _UNBOUND_RECURSE, f"{parts[0]} {action}", kv.where))
            ev.append(Evidence(kv.where, f"access-control: {kv.value}"))
    g = longest_prefix_grant(rules)
    g = Grant(g.networks, g.explicit, False, tuple(unknown), (), g.items)
    if not ev:
        ev.append(Evidence(UNBOUND_CONF, "no access-control: unbound's default allows only localhost"))
    server.recursion = [Scope("", True, g, tuple(ev))]
    ifaces = [kv for kv in srv if kv.key in ("interface", "ip-address")]
    if not ifaces:
        server.listen = ListenPlan(
            False,
            "no interface: unbound's default is 127.0.0.1 and ::1 only",
            (Evidence(UNBOUND_CONF, "interface not set (default localhost)"),),
        )
    else:
        beyond: bool | None = False
        for kv in ifaces:
            addr = kv.value.split("@", 1)[0]
            net = parse_net(addr)
            if net is None:
                if addr != "lo":
                    beyond = True if beyond is not None else None  # an interface name other than lo
            elif not any(net.subnet_of(lb) for lb in LOOPBACK if lb.version == net.version):  # type: ignore[arg-type]
                beyond = True
        server.listen = ListenPlan(
            beyond,
            ", ".join(kv.value for kv in ifaces),
            tuple(Evidence(kv.where, f"{kv.key}: {kv.value}") for kv in ifaces),
        )
    return server


# ==================================================================================================
# dnsmasq
@dataclass(frozen=True)
class Opt:
    key: str
    value: str | None
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def text(self) -> str:
        return self.key if self.value is None else f"{self.key}={self.value}"


def parse_dnsmasq_conf(text: str, path: str = "dnsmasq.conf") -> list[Opt]:
    """dnsmasq.conf lines ``option[=value]`` (the long options without ``--``)."""
    out: list[Opt] = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lstrip("-")
        if not re.fullmatch(r"[a-z0-9-]+", key):
            continue
        out.append(Opt(key, value.strip() if sep else None, path, no))
    return out


def parse_shell_vars(text: str) -> dict[str, tuple[str, int]]:
    """``NAME=value`` assignments of a /etc/default file (quotes removed; no expansion)."""
    out: dict[str, tuple[str, int]] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", raw)
        if not m:
            continue
        value = m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = value.split("#", 1)[0].strip()
        out[m.group(1)] = (value, no)
    return out


_DNSMASQ_SHORT = {
    "-i": "interface",
    "-I": "except-interface",
    "-a": "listen-address",
    "-p": "port",
    "-z": "bind-interfaces",
    "-R": "no-resolv",
    "-S": "server",
    "-C": "conf-file",
    "-7": "conf-dir",
}


def _cli_opts(args: str, where: str) -> list[Opt]:
    out: list[Opt] = []
    words = args.split()
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("--"):
            key, sep, value = w[2:].partition("=")
            out.append(Opt(key, value if sep else None, where, 0))
        elif w in _DNSMASQ_SHORT:
            value = words[i + 1] if i + 1 < len(words) else ""
            key = _DNSMASQ_SHORT[w]
            out.append(Opt(key, None if key in ("bind-interfaces", "no-resolv") else value, where, 0))
            if key not in ("bind-interfaces", "no-resolv"):
                i += 1
        i += 1
    return out


def _conf_dir(bundle: Bundle, spec: str) -> list[str]:
    """``conf-dir=DIR[,.ext-to-skip…][,*.ext-to-include]`` -> the files dnsmasq reads, in order."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        return []
    directory = parts[0].rstrip("/")
    skip = [p for p in parts[1:] if not p.startswith("*")]
    include = [p[1:] for p in parts[1:] if p.startswith("*")]
    out = []
    for path in bundle.glob(directory + "/*"):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(".") or name.endswith("~") or (name.startswith("#") and name.endswith("#")):
            continue
        if include and not any(name.endswith(ext) for ext in include):
            continue
        if any(name.endswith(ext) for ext in skip):
            continue
        out.append(path)
    return out


def dnsmasq_server(bundle: Bundle, local: LocalNets | None, installed: tuple[str, ...]) -> DnsServer:
    server = DnsServer("dnsmasq", installed, DNSMASQ_CONF if bundle.file(DNSMASQ_CONF) is not None else None)
    opts: list[Opt] = []
    files = [DNSMASQ_CONF] if server.config else []
    default = bundle.text(DNSMASQ_DEFAULT)
    debian_init = bundle.text(DNSMASQ_DEBIAN_INIT) or ""
    if default is not None:
        var = parse_shell_vars(default)
        if "CONFIG_DIR" in var:
            files.extend(_conf_dir(bundle, var["CONFIG_DIR"][0]))
        for name, flag in (("DNSMASQ_INTERFACE", "interface"), ("DNSMASQ_EXCEPT", "except-interface")):
            if name in var and var[name][0]:
                for iface in var[name][0].split():
                    opts.append(Opt(flag, iface, DNSMASQ_DEFAULT, var[name][1]))
        if "DNSMASQ_OPTS" in var:
            opts.extend(_cli_opts(var["DNSMASQ_OPTS"][0], f"{DNSMASQ_DEFAULT}:{var['DNSMASQ_OPTS'][1]}"))
    if "--local-service" in debian_init:
        opts.append(Opt("local-service", None, DNSMASQ_DEBIAN_INIT, 0))
    seen: set[str] = set()
    queue = list(files)
    while queue and len(seen) < 200:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        text = bundle.text(path)
        if text is None:
            continue
        for o in parse_dnsmasq_conf(text, path):
            if o.key == "conf-dir" and o.value:
                queue.extend(_conf_dir(bundle, o.value))
            elif o.key == "conf-file" and o.value:
                queue.append(o.value)
            else:
                opts.append(o)

    def last(key: str) -> Opt | None:
        found = [o for o in opts if o.key == key]
        return found[-1] if found else None

    port = last("port")
    if port is not None and (port.value or "").strip() == "0":
        server.recursion = [
            Scope("", False, Grant.nobody(), (Evidence(port.where, port.text()),), "port=0: DNS is disabled")
        ]
        server.listen = ListenPlan(False, "port=0: no DNS service", (Evidence(port.where, port.text()),))
        return server
    no_resolv = last("no-resolv")
    if no_resolv is not None and not [
        o for o in opts if o.key == "server" and o.value and not o.value.startswith("/")
    ]:
        server.recursion = [
            Scope(
                "",
                False,
                Grant.nobody(),
                (Evidence(no_resolv.where, "no-resolv, no server="),),
                "no upstream servers: answers only local names",
            )
        ]
    iface_opts = [o for o in opts if o.key in ("interface", "listen-address")]
    except_opts = [o for o in opts if o.key == "except-interface"]
    local_service = last("local-service")
    ev = [Evidence(o.where, o.text()) for o in [*iface_opts, *except_opts]]
    loop_only = bool(iface_opts) and all(
        (o.value or "") in ("lo",) or _is_loopback_text(o.value or "") for o in iface_opts
    )
    if iface_opts:
        g = Grant.of(
            [ANY4, ANY6] if not loop_only else LOOPBACK,
            ", ".join(o.text() for o in iface_opts),
            iface_opts[0].where,
        )
        listen = ListenPlan(not loop_only, ", ".join(o.text() for o in iface_opts), tuple(ev))
    elif local_service is not None:
        ls_where = (
            local_service.where
            if local_service.line
            else f"{local_service.path} (Debian's init adds --local-service)"
        )
        ev.append(Evidence(ls_where, local_service.text()))
        if (local_service.value or "") == "host":
            g = Grant.of(LOOPBACK, "local-service=host", ls_where)
            listen = ListenPlan(False, "local-service=host: loopback only", tuple(ev))
        else:
            nets = list(local.networks) if local is not None else [LOCALNETS_PLACEHOLDER, *LOOPBACK]
            g = Grant(
                tuple(collapse(nets)), tuple(LOOPBACK), True, items=(("localnets", ls_where, tuple(nets)),)
            )
            listen = ListenPlan(
                True, "all interfaces; answers only hosts on local subnets (local-service)", tuple(ev)
            )
    else:
        where = server.config or DNSMASQ_CONF
        ev.append(Evidence(where, "no interface=, listen-address= or local-service: answers every host"))
        g = Grant.of([ANY4, ANY6], "no interface=, listen-address= or local-service", where)
        listen = ListenPlan(True, "all interfaces, any client", tuple(ev))
    if except_opts and not iface_opts:
        listen = ListenPlan(
            listen.beyond_loopback,
            listen.text + " (except " + ", ".join(o.value or "" for o in except_opts) + ")",
            listen.evidence,
        )
    if not server.recursion:
        server.recursion = [Scope("", True, g, tuple(ev))]
    server.listen = listen
    return server


def _is_loopback_text(text: str) -> bool:
    net = parse_net(text)
    return net is not None and any(
        net.version == lb.version and net.subnet_of(lb)  # type: ignore[arg-type]
        for lb in LOOPBACK
    )


# ==================================================================================================
# PowerDNS Recursor
_RECURSOR_DEFAULT_ALLOW = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "192.168.0.0/16",
    "172.16.0.0/12",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
)


def parse_recursor_conf(text: str, path: str = "recursor.conf") -> list[Opt]:
    out: list[Opt] = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out.append(Opt(key.strip(), value.strip(), path, no))
    return out


def _yaml_list(text: str, section: str, key: str) -> tuple[list[str], int] | None:
    """A flow or block list ``section: {key: [...]}`` in simple recursor.yml files."""
    lines = text.splitlines()
    in_section = False
    for i, raw in enumerate(lines):
        if re.match(rf"^{section}:\s*$", raw):
            in_section = True
            continue
        if in_section and raw and not raw[0].isspace() and not raw.startswith("#"):
            in_section = False
        if not in_section:
            continue
        m = re.match(rf"^\s+{key}:\s*(.*)$", raw)
        if not m:
            continue
        rest = m.group(1).split("#", 1)[0].strip()
        if rest.startswith("["):
            return [v.strip().strip("'\"") for v in rest.strip("[]").split(",") if v.strip()], i + 1
        items = []
        for nxt in lines[i + 1 :]:
            mm = re.match(r"^\s+-\s*(.+)$", nxt)
            if not mm:
                if nxt.strip() and not nxt.strip().startswith("#"):
                    break
                continue
            items.append(mm.group(1).split("#", 1)[0].strip().strip("'\""))
        return items, i + 1
    return None


def recursor_server(bundle: Bundle, installed: tuple[str, ...]) -> DnsServer:
    yml = next((p for p in RECURSOR_YML if bundle.file(p) is not None), None)
    conf = next((p for p in RECURSOR_CONFS if bundle.file(p) is not None), None)
    server = DnsServer("pdns-recursor", installed, yml or conf)
    allow: tuple[list[str], str] | None = None
    listen: tuple[list[str], str] | None = None
    if yml is not None:
        text = bundle.text(yml) or ""
        a = _yaml_list(text, "incoming", "allow_from")
        if a is not None:
            allow = (a[0], f"{yml}:{a[1]}")
        li = _yaml_list(text, "incoming", "listen")
        if li is not None:
            listen = (li[0], f"{yml}:{li[1]}")
        if "allow_from_file" in text:
            server.problems.append(f"{yml}: allow_from_file is not evaluated")
    elif conf is not None:
        opts = parse_recursor_conf(bundle.text(conf) or "", conf)
        inc = [o for o in opts if o.key == "include-dir" and o.value]
        for o in inc:
            for p in bundle.glob((o.value or "").rstrip("/") + "/*.conf"):
                opts.extend(parse_recursor_conf(bundle.text(p) or "", p))
        for o in opts:
            if o.key == "allow-from":
                allow = ([v.strip() for v in (o.value or "").split(",") if v.strip()], o.where)
            elif o.key == "allow-from-file":
                server.problems.append(f"{o.where}: allow-from-file {o.value} is not evaluated")
            elif o.key == "local-address":
                listen = ([v.strip() for v in (o.value or "").split(",") if v.strip()], o.where)
    where_default = server.config or RECURSOR_CONFS[0]
    if allow is None:
        allow = (list(_RECURSOR_DEFAULT_ALLOW), "")
    rules: list[tuple[Net, bool, str, str]] = []
    unknown = []
    for item in allow[0]:
        neg = item.startswith("!")
        net = parse_net(item.lstrip("!"))
        if net is None:
            unknown.append(item)
            continue
        rules.append((net, not neg, item, allow[1]))
    g = longest_prefix_grant(rules)
    g = Grant(g.networks, g.explicit, False, tuple(unknown), (), g.items)
    ev = (
        Evidence(
            allow[1] or where_default,
            "allow-from = " + ", ".join(allow[0]) + ("" if allow[1] else " (default)"),
        ),
    )
    server.recursion = [Scope("", True, g, ev)]
    if listen is None:
        server.listen = ListenPlan(
            False,
            "local-address not set: default 127.0.0.1 (and ::1)",
            (Evidence(where_default, "local-address not set (default 127.0.0.1)"),),
        )
    else:
        addrs = [a.rsplit(":", 1)[0] if a.count(":") == 1 else a for a in listen[0]]
        beyond = not all(_is_loopback_text(a) for a in addrs)
        server.listen = ListenPlan(
            beyond, ", ".join(listen[0]), (Evidence(listen[1], "local-address = " + ", ".join(listen[0])),)
        )
    return server


# ==================================================================================================
# systemd-resolved
def parse_resolved_conf(text: str, path: str = "resolved.conf") -> list[Opt]:
    out: list[Opt] = []
    section = ""
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Resolve" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out.append(Opt(key.strip(), value.strip(), path, no))
    return out


def resolved_server(bundle: Bundle, installed: tuple[str, ...]) -> DnsServer:
    files = [RESOLVED_CONF]
    drop = sorted(
        {
            p.rsplit("/", 1)[-1]: p
            for pat in (
                "/usr/lib/systemd/resolved.conf.d/*.conf",
                "/run/systemd/resolved.conf.d/*.conf",
                "/etc/systemd/resolved.conf.d/*.conf",
            )
            for p in bundle.glob(pat)
        }.items()
    )
    files.extend(p for _, p in drop)
    opts: list[Opt] = []
    for f in files:
        text = bundle.text(f)
        if text is not None:
            opts.extend(parse_resolved_conf(text, f))
    server = DnsServer("systemd-resolved", installed, RESOLVED_CONF if bundle.file(RESOLVED_CONF) else None)
    extras: list[Opt] = []
    stub = "yes"
    ev: list[Evidence] = []
    for o in opts:
        if o.key == "DNSStubListener":
            stub = (o.value or "yes").lower()
            ev.append(Evidence(o.where, o.text()))
        elif o.key == "DNSStubListenerExtra":
            if not o.value:
                extras = []
            else:
                extras.append(o)
            ev.append(Evidence(o.where, o.text()))
    beyond = [o for o in extras if not _is_loopback_text(_strip_port(o.value or ""))]
    if beyond:
        g = Grant.of(
            [ANY4, ANY6], "DNSStubListenerExtra=" + ", ".join(o.value or "" for o in beyond), beyond[0].where
        )
        server.listen = ListenPlan(
            True, "DNSStubListenerExtra=" + ", ".join(o.value or "" for o in beyond), tuple(ev)
        )
    else:
        g = Grant.of(LOOPBACK, "stub listener 127.0.0.53", "")
        txt = (
            "no stub listener"
            if stub in ("no", "false", "0")
            else "stub listener on 127.0.0.53/127.0.0.54 only"
        )
        server.listen = ListenPlan(False, txt, tuple(ev))
    server.recursion = [Scope("", True, g, tuple(ev))]
    return server


def _strip_port(text: str) -> str:
    text = text.split("://", 1)[-1]
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text.split("%", 1)[0]


# ==================================================================================================
# The fact
def _installed(bundle: Bundle, kind: str, configs: Sequence[str]) -> tuple[str, ...]:
    found = [p for p in BINARIES[kind] if p in bundle.stats]
    found += [p for p in configs if bundle.file(p) is not None]
    return tuple(found)


def dns_servers(facts: Facts) -> list[DnsServer]:
    b = facts.bundle
    local = facts.get(local_networks)
    out: list[DnsServer] = []
    builders: list[tuple[str, Sequence[str], Callable[[tuple[str, ...]], DnsServer]]] = [
        ("bind", BIND_CONFS, lambda inst: bind_server(b, local, inst)),
        ("unbound", (UNBOUND_CONF,), lambda inst: unbound_server(b, inst)),
        ("dnsmasq", (DNSMASQ_CONF,), lambda inst: dnsmasq_server(b, local, inst)),
        ("pdns-recursor", (*RECURSOR_CONFS, *RECURSOR_YML), lambda inst: recursor_server(b, inst)),
        ("systemd-resolved", (), lambda inst: resolved_server(b, inst)),
    ]
    for kind, confs, build in builders:
        inst = _installed(b, kind, confs)
        if not inst:
            continue
        try:
            out.append(build(inst))
        except EvidenceError:
            raise
        except (ValueError, RecursionError) as exc:  # pragma: no cover - parsers are total; belt and braces
            srv = DnsServer(kind, inst, None)
            srv.problems.append(f"cannot parse the configuration: {exc}")
            out.append(srv)
    return out


def match_process(kind: str, comm: str | None) -> bool:
    return comm is not None and any(comm == p or comm == p[:15] for p in PROCESSES[kind])


# The evidence this module reads (after the sanitizers it names).
NEEDS = Needs(
    files=(
        *_BIND_FILES,
        UNBOUND_CONF,
        "/etc/unbound/unbound.conf.d/*.conf",
        "/etc/unbound/conf.d/*.conf",
        "/etc/unbound/local.d/*.conf",
        DNSMASQ_CONF,
        "/etc/dnsmasq.d/*",
        DNSMASQ_DEFAULT,
        DNSMASQ_DEBIAN_INIT,
        *RECURSOR_CONFS,
        *RECURSOR_YML,
        "/etc/powerdns/recursor.d/*.conf",
        "/etc/pdns-recursor/recursor.d/*.conf",
        RESOLVED_CONF,
        "/etc/systemd/resolved.conf.d/*.conf",
        "/usr/lib/systemd/resolved.conf.d/*.conf",
        "/run/systemd/resolved.conf.d/*.conf",
    ),
    stats=tuple(p for paths in BINARIES.values() for p in paths),
    sanitize=dict.fromkeys(_SECRET_FILES, sanitize_dns_secrets),
)
