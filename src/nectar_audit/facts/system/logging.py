"""Where logs go, and over which channel they leave the host.

rsyslog (``/etc/rsyslog.conf`` and what it includes): legacy forwarding (``@host`` UDP, ``@@host``
TCP, ``:omrelp:host:port``) with the ``$ActionSendStreamDriver*`` / ``$DefaultNetstreamDriver``
directives in force at that point, and RainerScript ``action(type="omfwd" …)`` with
``StreamDriver``/``StreamDriverMode``/``StreamDriverAuthMode`` (``global(DefaultNetstreamDriver=…)``
as default driver) and ``action(type="omrelp" tls="on" tls.authMode=…)``. syslog-ng: ``network()``,
``syslog()``, ``tcp()``, ``udp()`` destinations used by a ``log`` path, with ``transport("tls")`` and
``tls(peer-verify(…))``. journald: ``Storage=`` (drop-ins merged in systemd's order) and
``systemd-journal-upload``'s ``URL=``. Also the modes of the usual log files, which daemons run,
and auditd.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from nectar_audit.evidence import EvidenceError, Needs, StatRecord
from nectar_audit.facts.system.processes import running
from nectar_audit.facts.system.services import services

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

RSYSLOG_CONF = "/etc/rsyslog.conf"
SYSLOG_NG_CONF = "/etc/syslog-ng/syslog-ng.conf"
# @include "x.conf" resolves against /etc/syslog-ng first: its *.conf are gathered with conf.d.
SYSLOG_NG_GLOBS = (SYSLOG_NG_CONF, "/etc/syslog-ng/conf.d/*", "/etc/syslog-ng/*.conf")
JOURNALD_MAIN = (
    "/etc/systemd/journald.conf",
    "/run/systemd/journald.conf",
    "/usr/local/lib/systemd/journald.conf",
    "/usr/lib/systemd/journald.conf",
)
JOURNALD_DROPINS = (
    "/etc/systemd/journald.conf.d",
    "/run/systemd/journald.conf.d",
    "/usr/local/lib/systemd/journald.conf.d",
    "/usr/lib/systemd/journald.conf.d",
)
UPLOAD_MAIN = ("/etc/systemd/journal-upload.conf", "/usr/lib/systemd/journal-upload.conf")
UPLOAD_DEFAULT_TRUST = "/etc/ssl/ca/trusted.pem"  # journal-upload.conf(5): TrustedCertificateFile=
UPLOAD_DROPINS = ("/etc/systemd/journal-upload.conf.d", "/usr/lib/systemd/journal-upload.conf.d")
# Log files whose permissions matter: (path, holds authentication records). wtmp is world-readable by
# design (last(1) works for every user).
LOG_FILES = (
    ("/var/log/auth.log", True),
    ("/var/log/secure", True),
    ("/var/log/audit/audit.log", True),
    ("/var/log/syslog", False),
    ("/var/log/messages", False),
    ("/var/log/kern.log", False),
    ("/var/log/btmp", True),
)

NEEDS = Needs(
    files=(
        RSYSLOG_CONF,
        "/etc/rsyslog.d/*",
        *SYSLOG_NG_GLOBS,
        *JOURNALD_MAIN,
        *(f"{d}/*.conf" for d in JOURNALD_DROPINS),
        *UPLOAD_MAIN,
        *(f"{d}/*.conf" for d in UPLOAD_DROPINS),
    ),
    stats=(
        *(p for p, _ in LOG_FILES),
        "/var/log/journal",
        "/var/log/audit",
        "/usr/sbin/rsyslogd",
        "/usr/sbin/syslog-ng",
        "/sbin/auditd",
        "/usr/sbin/auditd",
    ),
)

TLS_DRIVERS = ("gtls", "ossl", "mbedtls")
STRONG_AUTH = ("x509/name", "x509/fingerprint", "name", "fingerprint")


# -- channels --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    """One remote log destination and how it is protected."""

    daemon: str  # rsyslog | syslog-ng | journal-upload
    target: str  # host[:port] or URL
    transport: str  # udp | tcp | tls | relp | relp+tls | http | https
    authenticated: bool  # the sender verifies the receiver's identity
    source: str  # path:line
    detail: str  # the configuration text
    auth_mode: str | None = None  # as configured (anon, x509/name, required-trusted, ...)

    @property
    def encrypted(self) -> bool:
        return self.transport in ("tls", "relp+tls", "https")


# -- rsyslog ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RsyslogObject:
    name: str  # action, global, module, include, input, template, ...
    params: dict[str, str]  # lowercased names, dots kept
    source: str
    text: str


_OBJ_NAMES = (
    "action",
    "global",
    "module",
    "include",
    "input",
    "template",
    "main_queue",
    "ruleset",
    "parser",
    "timezone",
    "lookup_table",
    "dyn_stats",
    "percentile_stats",
    "license",
)


def _strip_rsyslog_comments(text: str) -> str:
    """Blank ``#`` comments (outside quotes) and ``/* */`` blocks, keeping line breaks and positions.

    A legacy ``$Directive`` line has no block comments (``$IncludeConfig /etc/rsyslog.d/*.conf``).
    """
    out = list(text)
    i = 0
    n = len(text)
    quote: str | None = None
    legacy = False
    line_start = True
    while i < n:
        c = text[i]
        if line_start and not quote:
            rest = text[i : text.find("\n", i) if text.find("\n", i) >= 0 else n]
            legacy = rest.lstrip().startswith("$")
        line_start = False
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote or (c == "\n" and quote == "'"):
                quote = None
            if c == "\n":
                line_start = True
            i += 1
            continue
        if c in "\"'" and not legacy:
            quote = c
        elif c == "#" and not (i + 1 < n and text[i + 1] == "{"):
            j = text.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
            continue
        elif c == "/" and i + 1 < n and text[i + 1] == "*" and not legacy:
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            line_start = False
            i = j
            continue
        elif c == "\n":
            line_start = True
        i += 1
    return "".join(out)


def _parse_params(body: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for m in re.finditer(
        r"([A-Za-z][\w.\-]*)\s*=\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\[[^\]]*\]|[^\s)]+)", body
    ):
        value = m.group(2)
        if value[:1] in "\"'":
            value = value[1:-1]
        params[m.group(1).lower()] = value
    return params


def _find_close(text: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start`` (quotes respected); -1 if unterminated."""
    depth = 0
    quote: str | None = None
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


@dataclass
class RsyslogConfig:
    files: list[str] = field(default_factory=list)
    objects: list[RsyslogObject] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    default_driver: str = "ptcp"
    default_driver_source: str | None = None
    notes: list[str] = field(default_factory=list)
    file_actions: list[tuple[str, str]] = field(default_factory=list)  # (path, source)


_LEGACY_FWD = re.compile(
    r"(?:^|[\s;&])(?P<proto>@@?)(?:\((?P<opts>[^)]*)\))?(?P<host>\[[^\]]+\]|[^\s:;@\[]+)(?::(?P<port>\d+))?"
)
_LEGACY_RELP = re.compile(r":omrelp:(?P<host>\[[^\]]+\]|[^\s:;]+)(?::(?P<port>\d+))?")
_SELECTOR = re.compile(r"^[\w*,;.!=\s-]+$")


@dataclass
class _LegacyState:
    driver: str | None = None
    mode: str = "0"
    auth: str | None = None


def _legacy_action_part(line: str) -> str | None:
    """The action field of a legacy selector line, an ``& action`` line or an ``if … then`` line."""
    stripped = line.strip()
    if not stripped or stripped.startswith("$"):
        return None
    m = re.match(r"^&\s*(.*)$", stripped)
    if m:
        return m.group(1)
    m = re.search(r"\bthen\s+(.*)$", stripped)
    if m:
        return m.group(1)
    if stripped.startswith(":"):
        # property-based filter  :property, [!]compare-op, "value"   action
        m = re.match(r"^:[^,]+,\s*!?[\w-]+,\s*\"(?:[^\"\\]|\\.)*\"\s*(.*)$", stripped)
        return m.group(1) if m else None
    parts = stripped.split(None, 1)
    if len(parts) == 2 and "." in parts[0] and _SELECTOR.match(parts[0]):
        return parts[1]
    return None


def parse_rsyslog(files: dict[str, str], main: str = RSYSLOG_CONF) -> RsyslogConfig:
    """Parse rsyslog's configuration starting at ``main``, following includes within ``files``."""
    conf = RsyslogConfig()
    state = _LegacyState()
    seen: set[str] = set()
    legacy_fwd: list[tuple[str, str, str, str, _LegacyState]] = []  # proto, target, source, text, state

    def include(pattern: str, source: str) -> None:
        if pattern.endswith("/"):
            pattern += "*"
        matches = sorted(p for p in files if fnmatch.fnmatchcase(p, pattern))
        if not matches and not any(ch in pattern for ch in "*?["):
            conf.notes.append(f"{source}: included {pattern} is not among the gathered files")
        for path in matches:
            read(path)

    def read(path: str) -> None:
        if path in seen:
            return
        seen.add(path)
        conf.files.append(path)
        text = _strip_rsyslog_comments(files[path])
        # Continuation lines (legacy) end with a backslash.
        text = re.sub(r"\\\n", "  ", text)
        # Pull RainerScript objects out first, replacing them with spaces of equal extent.
        chars = list(text)
        pending: list[tuple[int, RsyslogObject]] = []
        for m in re.finditer(r"\b(" + "|".join(_OBJ_NAMES) + r")\s*\(", text):
            if chars[m.start()] == " " and text[m.start()] != " ":
                continue  # inside an object already blanked
            start = m.end() - 1
            end = _find_close(text, start)
            if end < 0:
                conf.notes.append(
                    f"{path}:{text.count(chr(10), 0, m.start()) + 1}: unterminated {m.group(1)}("
                )
                continue
            lineno = text.count("\n", 0, m.start()) + 1
            body = text[start + 1 : end]
            obj = RsyslogObject(
                m.group(1),
                _parse_params(body),
                f"{path}:{lineno}",
                " ".join(text[m.start() : end + 1].split()),
            )
            for k in range(m.start(), end + 1):
                if chars[k] != "\n":
                    chars[k] = " "
            # Legacy actions and objects are interleaved: process in order of appearance.
            pending.append((m.start(), obj))
        rest = "".join(chars)
        pos = 0
        for lineno, line in enumerate(rest.split("\n"), 1):
            line_start = pos
            pos += len(line) + 1
            while pending and pending[0][0] < line_start + len(line) + 1:
                _, obj = pending.pop(0)
                handle_object(obj)
            stripped = line.strip()
            if not stripped:
                continue
            source = f"{path}:{lineno}"
            if stripped.startswith("$"):
                handle_directive(stripped, source)
                continue
            action = _legacy_action_part(stripped)
            if action is None:
                continue
            original = (
                " ".join(files[path].splitlines()[lineno - 1].split())
                if lineno <= len(files[path].splitlines())
                else stripped
            )
            for fm in _LEGACY_FWD.finditer(" " + action):
                target = fm.group("host") + (f":{fm.group('port')}" if fm.group("port") else "")
                legacy_fwd.append(
                    (
                        fm.group("proto"),
                        target,
                        source,
                        original,
                        _LegacyState(state.driver, state.mode, state.auth),
                    )
                )
            for rm in _LEGACY_RELP.finditer(action):
                target = rm.group("host") + (f":{rm.group('port')}" if rm.group("port") else "")
                conf.channels.append(Channel("rsyslog", target, "relp", False, source, original))
            fa = re.match(r"^-?(/\S+)", action.strip())
            if fa:
                conf.file_actions.append((fa.group(1), source))
        while pending:
            handle_object(pending.pop(0)[1])

    def handle_directive(line: str, source: str) -> None:
        words = line.split(None, 1)
        name = words[0].lower()
        value = words[1].strip() if len(words) > 1 else ""
        if name == "$includeconfig":
            include(value, source)
        elif name == "$defaultnetstreamdriver":
            conf.default_driver, conf.default_driver_source = value.lower(), source
        elif name == "$actionsendstreamdriver":
            state.driver = value.lower()
        elif name == "$actionsendstreamdrivermode":
            state.mode = value
        elif name == "$actionsendstreamdriverauthmode":
            state.auth = value.lower()

    def handle_object(obj: RsyslogObject) -> None:
        conf.objects.append(obj)
        p = obj.params
        if obj.name == "include":
            if "file" in p:
                include(p["file"], obj.source)
            elif "text" in p:
                conf.notes.append(f"{obj.source}: include(text=…) is not evaluated")
        elif obj.name == "global":
            drv = _param(p, "defaultnetstreamdriver")
            if drv:
                conf.default_driver, conf.default_driver_source = drv.lower(), obj.source
        elif obj.name == "action":
            kind = p.get("type", "").lower()
            if kind == "omfwd":
                rainer_omfwd.append(obj)
            elif kind == "omrelp":
                conf.channels.append(_omrelp_channel(obj))
            elif kind == "omfile" and "file" in p:
                conf.file_actions.append((p["file"], obj.source))

    rainer_omfwd: list[RsyslogObject] = []
    if main in files:
        read(main)
    # The default netstream driver is global: it applies wherever it was set.
    for obj in rainer_omfwd:
        conf.channels.append(_omfwd_channel(obj, conf.default_driver))
    for proto, target, source, text, st in legacy_fwd:
        if proto == "@":
            conf.channels.append(Channel("rsyslog", target, "udp", False, source, text))
            continue
        driver = (st.driver or conf.default_driver).lower()
        tls = driver in TLS_DRIVERS and st.mode.strip() == "1"
        auth = st.auth or ("anon" if tls else None)
        conf.channels.append(
            Channel(
                "rsyslog", target, "tls" if tls else "tcp", tls and auth in STRONG_AUTH, source, text, auth
            )
        )
    return conf


def _param(params: dict[str, str], name: str) -> str | None:
    """A RainerScript parameter by case-insensitive name, with or without dots (StreamDriver.Mode)."""
    want = name.replace(".", "").lower()
    for key, value in params.items():
        if key.replace(".", "") == want:
            return value
    return None


def _omfwd_channel(obj: RsyslogObject, default_driver: str) -> Channel:
    p = obj.params
    target = p.get("target", "?")
    port = p.get("port")
    dest = f"{target}:{port}" if port else target
    protocol = (p.get("protocol") or "udp").lower()
    if protocol != "tcp":
        return Channel("rsyslog", dest, "udp", False, obj.source, obj.text)
    driver = (_param(p, "streamdriver") or _param(p, "streamdriver.name") or default_driver).lower()
    mode = (_param(p, "streamdrivermode") or "0").strip()
    auth = (_param(p, "streamdriverauthmode") or "").lower() or None
    tls = driver in TLS_DRIVERS and mode == "1"
    if tls and auth is None:
        auth = "anon"
    return Channel(
        "rsyslog",
        dest,
        "tls" if tls else "tcp",
        tls and auth in STRONG_AUTH,
        obj.source,
        obj.text,
        auth if tls else None,
    )


def _omrelp_channel(obj: RsyslogObject) -> Channel:
    p = obj.params
    target = p.get("target", "?")
    port = p.get("port")
    dest = f"{target}:{port}" if port else target
    tls = (p.get("tls") or "off").lower() in ("on", "yes", "1")
    auth = (_param(p, "tls.authmode") or "").lower() or None
    if tls and auth is None:
        auth = "anon"
    return Channel(
        "rsyslog",
        dest,
        "relp+tls" if tls else "relp",
        tls and auth in STRONG_AUTH,
        obj.source,
        obj.text,
        auth if tls else None,
    )


# -- syslog-ng -------------------------------------------------------------------------------------

Node = Union["SngCall", "SngBlock", str]


@dataclass
class SngCall:
    name: str
    args: list[Node]
    line: int


@dataclass
class SngBlock:
    kind: str
    name: str | None
    body: list[Node]
    line: int


_SNG_TOKEN = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'|[(){};]|[^\s(){};\"']+")


def _sng_tokens(text: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.lstrip()
        if stripped.startswith("@"):
            out.append((stripped.strip(), lineno))
            out.append((";", lineno))
            continue
        # '#' starts a comment outside quotes.
        cleaned = []
        quote: str | None = None
        for c in line:
            if quote:
                cleaned.append(c)
                if c == quote:
                    quote = None
                continue
            if c in "\"'":
                quote = c
            elif c == "#":
                break
            cleaned.append(c)
        for m in _SNG_TOKEN.finditer("".join(cleaned)):
            out.append((m.group(0), lineno))
    return out


def parse_syslog_ng(text: str) -> list[Node]:
    """A forgiving parse of syslog-ng's grammar into calls ``name(args)`` and blocks ``kind [name] {…}``."""
    toks = _sng_tokens(text)
    pos = 0

    def parse_args() -> list[Node]:
        nonlocal pos
        args: list[Node] = []
        while pos < len(toks) and toks[pos][0] != ")":
            tok, line = toks[pos]
            if pos + 1 < len(toks) and toks[pos + 1][0] == "(" and tok not in "(){};":
                pos += 2
                args.append(SngCall(tok, parse_args(), line))
                pos += 1  # ')'
            elif tok in "{};(":
                pos += 1
            else:
                args.append(_unquote(tok))
                pos += 1
        return args

    def parse_stmts(stop: str) -> list[Node]:
        nonlocal pos
        out: list[Node] = []
        while pos < len(toks) and toks[pos][0] != stop:
            tok, line = toks[pos]
            if tok.startswith("@"):
                out.append(tok)
                pos += 1
                continue
            if tok == ";":
                pos += 1
                continue
            nxt = toks[pos + 1][0] if pos + 1 < len(toks) else ""
            nxt2 = toks[pos + 2][0] if pos + 2 < len(toks) else ""
            if nxt == "(":
                pos += 2
                out.append(SngCall(tok, parse_args(), line))
                pos += 1
            elif nxt == "{":
                pos += 2
                out.append(SngBlock(tok, None, parse_stmts("}"), line))
                pos += 1
            elif nxt2 == "{":
                pos += 3
                out.append(SngBlock(tok, _unquote(nxt), parse_stmts("}"), line))
                pos += 1
            else:
                pos += 1
        return out

    return parse_stmts("\x00")


def _unquote(tok: str) -> str:
    if len(tok) >= 2 and tok[0] == tok[-1] and tok[0] in "\"'":
        return tok[1:-1]
    return tok


def _calls(nodes: list[Node], name: str) -> list[SngCall]:
    return [n for n in nodes if isinstance(n, SngCall) and n.name.replace("-", "_") == name]


def _arg_value(call: SngCall, name: str) -> str | None:
    for sub in _calls(call.args, name):
        vals = [a for a in sub.args if isinstance(a, str)]
        if vals:
            return vals[0]
    return None


_SNG_NET_DRIVERS = ("network", "syslog", "tcp", "tcp6", "udp", "udp6")


def syslog_ng_channels(files: dict[str, str], main: str = SYSLOG_NG_CONF) -> tuple[list[Channel], list[str]]:
    """Network destinations of syslog-ng that some ``log`` path uses."""
    notes: list[str] = []
    named: dict[str, tuple[SngBlock, str]] = {}
    used: list[tuple[SngBlock, str]] = []
    used_names: set[str] = set()
    seen: set[str] = set()

    def load(path: str) -> None:
        if path in seen:
            return
        seen.add(path)
        for node in parse_syslog_ng(files[path]):
            if isinstance(node, str) and node.startswith("@include"):
                target = _unquote(node.split(None, 1)[1].strip()) if " " in node else ""
                if not target.startswith("/"):
                    target = "/etc/syslog-ng/" + target
                if target.endswith("/"):
                    target += "*"
                hits = sorted(p for p in files if fnmatch.fnmatchcase(p, target))
                gathered = any(fnmatch.fnmatchcase(target, g) for g in SYSLOG_NG_GLOBS)
                if not hits and not gathered and not target.startswith("/etc/syslog-ng/scl"):
                    # (gathered: an empty conf.d is no news; scl/*: the SCL library from syslog-ng's
                    # include-path, plugin definitions only)
                    notes.append(
                        f"{path}: @include {target} was not gathered: destinations defined there are not seen"
                    )
                for p in hits:
                    load(p)
            elif isinstance(node, SngBlock) and node.kind == "destination" and node.name:
                named[node.name] = (node, path)
            elif isinstance(node, SngBlock) and node.kind == "log":
                walk_log(node, path)

    def walk_log(block: SngBlock, path: str) -> None:
        for item in block.body:
            if isinstance(item, SngCall) and item.name == "destination":
                for a in item.args:
                    if isinstance(a, str):
                        used_names.add(a)
            elif isinstance(item, SngBlock) and item.kind == "destination":
                used.append((item, path))
            elif isinstance(item, SngBlock) and item.kind == "log":
                walk_log(item, path)

    if main in files:
        load(main)
    for name in sorted(used_names):
        if name in named:
            used.append(named[name])
        else:
            notes.append(f"syslog-ng log path uses undefined destination {name}")
    channels: list[Channel] = []
    for block, path in used:
        for call in block.body:
            if not isinstance(call, SngCall) or call.name not in _SNG_NET_DRIVERS:
                continue
            host_args = [a for a in call.args if isinstance(a, str)]
            target = host_args[0] if host_args else "?"
            port = _arg_value(call, "port")
            dest = f"{target}:{port}" if port else target
            transport = (
                _arg_value(call, "transport") or ("udp" if call.name.startswith("udp") else "tcp")
            ).lower()
            tls_opts = _calls(call.args, "tls")
            tls = transport in ("tls", "proxied_tls", "proxied-tls") or (
                call.name.startswith("tcp") and bool(tls_opts)
            )
            verify = None
            if tls_opts:
                verify = _arg_value(tls_opts[0], "peer_verify")
            verify_l = (verify or "required-trusted").lower().replace("_", "-")
            authenticated = tls and verify_l in ("required-trusted", "yes")
            kind = "tls" if tls else ("udp" if transport.startswith("udp") else "tcp")
            channels.append(
                Channel(
                    "syslog-ng",
                    dest,
                    kind,
                    authenticated,
                    f"{path}:{call.line}",
                    f"destination {block.name or '(inline)'} {{ {call.name}(…) }}",
                    verify_l if tls else None,
                )
            )
    for name, (block, path) in named.items():
        if name not in used_names and _calls(block.body, "network") + _calls(block.body, "syslog") + _calls(
            block.body, "tcp"
        ) + _calls(block.body, "udp"):
            notes.append(f"{path}:{block.line}: destination {name} is defined but no log path uses it")
    return channels, notes


# -- systemd INI files -----------------------------------------------------------------------------


def systemd_ini(text: str) -> list[tuple[str, str, str, int]]:
    """(section, key, value, line) of a systemd configuration file."""
    out = []
    section = ""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if "=" in line:
            key, _, value = line.partition("=")
            out.append((section, key.strip(), value.strip(), lineno))
    return out


def systemd_conf_files(paths: list[str], mains: tuple[str, ...], dropin_dirs: tuple[str, ...]) -> list[str]:
    """systemd's order: the first existing main file, then drop-ins sorted by name, /etc winning names."""
    order = []
    main = next((m for m in mains if m in paths), None)
    if main:
        order.append(main)
    by_name: dict[str, str] = {}
    for d in reversed(dropin_dirs):  # earlier directories override later ones with the same name
        for p in paths:
            if p.startswith(d + "/") and p.endswith(".conf") and "/" not in p[len(d) + 1 :]:
                by_name[p.rsplit("/", 1)[-1]] = p
    order.extend(by_name[name] for name in sorted(by_name))
    return order


@dataclass(frozen=True)
class Setting:
    value: str
    source: str  # path:line or "default"


def merged_setting(files: dict[str, str], order: list[str], section: str, key: str, default: str) -> Setting:
    result = Setting(default, "default")
    for path in order:
        for sec, k, value, lineno in systemd_ini(files[path]):
            if sec == section and k == key:
                result = Setting(value, f"{path}:{lineno}")
    return result


# -- the fact --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFileMode:
    path: str
    mode: int
    uid: int
    gid: int
    auth: bool

    @property
    def world_readable(self) -> bool:
        return bool(self.mode & 0o004)

    @property
    def world_writable(self) -> bool:
        return bool(self.mode & 0o002)


@dataclass(frozen=True)
class DaemonState:
    name: str  # rsyslog | syslog-ng | systemd-journald | auditd
    installed: bool
    running: bool | None  # None: unknown (offline)
    enabled: bool | None
    how: str  # "process list", "systemd unit", ...


@dataclass(frozen=True)
class LoggingState:
    daemons: dict[str, DaemonState]
    channels: tuple[Channel, ...]  # of daemons that run (or are enabled offline)
    inactive_channels: tuple[Channel, ...]  # configured for a daemon that does not run
    journald_storage: Setting
    journal_persistent: bool | None  # None: no systemd journal on this host
    upload_url: Setting | None
    upload_trust: Setting | None
    log_files: tuple[LogFileMode, ...]
    rsyslog_files: tuple[str, ...]
    notes: tuple[str, ...]


def _texts(facts: Facts, patterns: tuple[str, ...], notes: list[str]) -> dict[str, str]:
    b = facts.bundle
    out: dict[str, str] = {}
    for pattern in patterns:
        for path in b.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]:
            try:
                text = b.text(path)
            except EvidenceError as exc:
                notes.append(str(exc))
                continue
            if text is not None:
                out[path] = text
    return out


def _daemon(
    facts: Facts,
    name: str,
    procs: tuple[str, ...],
    units: tuple[str, ...],
    binaries: tuple[str, ...],
    notes: list[str],
) -> DaemonState:
    b = facts.bundle
    installed = any(p in b.stats for p in binaries)
    run: bool | None = None
    how = ""
    if b.live:
        try:
            run = running(facts, *procs)
            how = "process list"
        except EvidenceError as exc:
            notes.append(f"whether {name} runs is unknown: {exc}")
    enabled: bool | None = None
    try:
        svc = facts.get(services)
        enabled = any(svc.is_enabled(u) for u in units)
        if not how:
            how = "enabled systemd unit" if enabled else "no enabled unit"
    except EvidenceError as exc:
        notes.append(str(exc))
    return DaemonState(name, installed or bool(run), run, enabled, how)


def logging_state(facts: Facts) -> LoggingState:
    b = facts.bundle
    notes: list[str] = []
    daemons = {
        "rsyslog": _daemon(
            facts, "rsyslog", ("rsyslogd",), ("rsyslog.service",), ("/usr/sbin/rsyslogd",), notes
        ),
        "syslog-ng": _daemon(
            facts, "syslog-ng", ("syslog-ng",), ("syslog-ng.service",), ("/usr/sbin/syslog-ng",), notes
        ),
        "auditd": _daemon(
            facts, "auditd", ("auditd",), ("auditd.service",), ("/sbin/auditd", "/usr/sbin/auditd"), notes
        ),
    }
    svc = facts.get(services)
    journald_run: bool | None = None
    if b.live:
        try:
            journald_run = running(facts, "systemd-journald", "systemd-journal")
        except EvidenceError:
            journald_run = None
    daemons["systemd-journald"] = DaemonState(
        "systemd-journald",
        svc.systemd or bool(journald_run),
        journald_run,
        svc.systemd,
        "process list" if b.live else "systemd present",
    )
    upload_enabled = svc.is_enabled("systemd-journal-upload.service")
    daemons["systemd-journal-upload"] = DaemonState(
        "systemd-journal-upload",
        upload_enabled,
        svc.is_running("systemd-journal-upload") if svc.running_known else None,
        upload_enabled,
        svc.enabled_source,
    )

    rs_files = _texts(facts, (RSYSLOG_CONF, "/etc/rsyslog.d/*"), notes)
    rs = parse_rsyslog(rs_files) if RSYSLOG_CONF in rs_files else RsyslogConfig()
    notes.extend(rs.notes)
    sng_files = _texts(facts, SYSLOG_NG_GLOBS, notes)
    sng_channels, sng_notes = syslog_ng_channels(sng_files) if SYSLOG_NG_CONF in sng_files else ([], [])
    notes.extend(sng_notes)

    jfiles = _texts(facts, (*JOURNALD_MAIN, *(f"{d}/*.conf" for d in JOURNALD_DROPINS)), notes)
    order = systemd_conf_files(sorted(jfiles), JOURNALD_MAIN, JOURNALD_DROPINS)
    storage = merged_setting(jfiles, order, "Journal", "Storage", "auto")
    persistent: bool | None = None
    if daemons["systemd-journald"].installed:
        value = storage.value.lower()
        journal_dir = b.stats.get("/var/log/journal")
        persistent = value == "persistent" or (
            value == "auto" and journal_dir is not None and journal_dir.is_dir
        )

    ufiles = _texts(facts, (*UPLOAD_MAIN, *(f"{d}/*.conf" for d in UPLOAD_DROPINS)), notes)
    uorder = systemd_conf_files(sorted(ufiles), UPLOAD_MAIN, UPLOAD_DROPINS)
    url = merged_setting(ufiles, uorder, "Upload", "URL", "")
    trust = merged_setting(ufiles, uorder, "Upload", "TrustedCertificateFile", "")
    upload_url = url if url.value else None

    active: list[Channel] = []
    inactive: list[Channel] = []

    def active_daemon(name: str) -> bool:
        d = daemons[name]
        return bool(d.running) if d.running is not None else bool(d.enabled or d.installed)

    (active if active_daemon("rsyslog") else inactive).extend(rs.channels)
    (active if active_daemon("syslog-ng") else inactive).extend(sng_channels)
    if upload_url is not None:
        scheme = upload_url.value.split("://", 1)[0].lower() if "://" in upload_url.value else "https"
        verified = scheme == "https" and trust.value != "-"
        if trust.value == "-":
            upload_auth = "no verification (TrustedCertificateFile=-)"
        elif trust.value:
            upload_auth = f"server certificate verified with TrustedCertificateFile={trust.value}"
        else:
            upload_auth = f"server certificate verified with {UPLOAD_DEFAULT_TRUST}, the default TrustedCertificateFile"
        ch = Channel(
            "journal-upload",
            upload_url.value,
            scheme if scheme in ("http", "https") else "https",
            verified,
            upload_url.source,
            f"URL={upload_url.value}",
            upload_auth if scheme == "https" else None,
        )
        (
            active
            if daemons["systemd-journal-upload"].enabled or daemons["systemd-journal-upload"].running
            else inactive
        ).append(ch)

    modes: list[LogFileMode] = []
    for path, auth in LOG_FILES:
        st: StatRecord | None = b.stats.get(path)
        if st is not None and st.is_file:
            modes.append(LogFileMode(path, st.perms, st.uid, st.gid, auth))
    return LoggingState(
        daemons,
        tuple(active),
        tuple(inactive),
        storage,
        persistent,
        upload_url,
        trust if trust.value else None,
        tuple(modes),
        tuple(rs.files),
        tuple(notes),
    )
