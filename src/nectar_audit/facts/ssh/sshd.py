"""The OpenSSH server: its effective configuration per user and connection, its ports, PAM.

Public API (other fact modules and checks rely on it):

- ``sshd_config(facts) -> SshdConfig``: ``.installed``, ``.global_settings`` (keyword -> Setting, as
  written outside Match blocks), ``.match_blocks`` (``MatchBlock`` with ``.where`` "file:line", ``.text``,
  ``.criteria``, ``.directives``), ``.effective(user=, groups=, host=, addr=, laddr=, lport=) -> dict``
  (keyword -> value string, sshd -T style: lower-case keywords, ``yes``/``no``, multi-valued keywords
  space-joined) and ``.effective_settings(...)`` (keyword -> ``Setting`` with provenance),
  ``.login_users`` (login-capable accounts, root first), ``.contexts(user)`` (every distinct connection
  situation worth evaluating for that user), ``.runtime`` (what real ``sshd -T`` said per user),
  ``.problems`` (errors that make sshd refuse to start).
- ``sshd_listen_ports(facts) -> list[int]``: every TCP port sshd really listens on (sshd -T or the
  parser, ``ssh.socket`` when socket activation decides, and the running sshd's sockets when seen).
- ``sshd_listeners(facts) -> ListenInfo``: the same with provenance.
- ``sshd_uses_pam(facts) -> bool``.
- Pure parsers: ``parse_sshd_config(files, ...)``, ``parse_sshd_T(stdout)``, ``parse_accounts(passwd,
  group)``, ``parse_unit_listen_streams(...)``, ``match_pattern_list``, ``addr_match_list``.

Semantics follow sshd_config(5) and servconf.c: keywords are case-insensitive, the first value obtained
wins (Port, ListenAddress, HostKey, AcceptEnv and Allow/Deny Users/Groups accumulate; AuthorizedKeysFile
and AuthenticationMethods take the first line's list), Include takes globs and paths relative to
/etc/ssh and may sit inside a Match block (a Match inside an included file ends with that file), and a
keyword set in a Match block that applies overrides the global value, the first matching block winning.
Compiled-in defaults apply when nothing sets a keyword. Live and as root, real ``sshd -T -C
user=U,host=H,addr=A`` for every login-capable user is authoritative for that connection; the parser
covers other addresses and everything offline or without root.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from nectar_audit.evidence.bundle import Bundle, EvidenceError
from nectar_audit.evidence.needs import Needs

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

SSHDIR = "/etc/ssh"
MAIN_CONFIG = "/etc/ssh/sshd_config"
DROPIN_DIR = "/etc/ssh/sshd_config.d"
# The connection the live probe asks sshd -T about: an address from TEST-NET-2, i.e. "the internet".
PROBE_ADDR = "198.51.100.7"
PROBE_ADDR6 = "2001:db8::7"
# A user name that exists nowhere: stands for an account created later (cloud-init's default user on
# an image, any new user on a VM). sshd -T is asked about it too.
GENERIC_USER = "nectar-new-user"
MAX_RUNTIME_USERS = 32
MAX_INCLUDE_DEPTH = 16
MAX_CONTEXTS = 256
T_COMMAND = "sshd.T"

# Options the service passes on sshd's command line: ssh.service reads SSHD_OPTS from /etc/default/ssh
# (Debian, Ubuntu), sshd.service OPTIONS from /etc/sysconfig/sshd (RHEL family). -o beats the file.
CMDLINE_FILES = {"/etc/default/ssh": "SSHD_OPTS", "/etc/sysconfig/sshd": "OPTIONS"}
# RHEL/Fedora's 50-redhat.conf (or 40-redhat-crypto-policies.conf) includes it.
CRYPTO_POLICY = "/etc/crypto-policies/back-ends/opensshserver.config"
SSHD_BINARIES = ("/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd", "/usr/local/sbin/sshd")
SOCKET_UNITS = ("ssh.socket", "sshd.socket")
_UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/run/systemd/generator",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)
GENERATORS = (
    "/usr/lib/systemd/system-generators/sshd-socket-generator",
    "/lib/systemd/system-generators/sshd-socket-generator",
)
_ENABLE_LINKS = {
    "ssh.socket": (
        "/etc/systemd/system/sockets.target.wants/ssh.socket",
        "/etc/systemd/system/ssh.service.requires/ssh.socket",
    ),
    "sshd.socket": ("/etc/systemd/system/sockets.target.wants/sshd.socket",),
}

# One sh process loop: real sshd -T for root and every login-capable account (shell not nologin/false),
# asked about a connection from a non-local address. Root only: sshd -T needs the host keys.
# sshd -T costs ~10 ms of CPU a run (it loads every host key); -C only matters to Match blocks, so when
# neither /etc/ssh nor any file an Include there names has a Match line, root's answer is every
# account's answer ("@@same root"), and hosts with many accounts are not slowed down by them. One grep
# finds both the Match and the Include lines of /etc/ssh (which holds the 570 kB moduli file).
_T_SNIPPET = r"""s=$(command -v sshd 2>/dev/null) || exit 127
[ "$(id -u)" = 0 ] || { echo '@@skipped not root'; exit 0; }
a=198.51.100.7
m=0 inc=
while read -r w v; do
  case $w in [Mm][Aa][Tt][Cc][Hh]) m=1; break;; esac
  inc="$inc $v"
done <<NA_EOF
$(grep -rhsiE '^[[:space:]]*(match|include)[[:space:]]' /etc/ssh)
NA_EOF
if [ "$m" = 0 ]; then
  for p in $inc; do
    case "$p" in /etc/ssh/*|[!/]*) ;; *) grep -qsiE '^[[:space:]]*match[[:space:]]' $p && m=1;; esac
  done
fi
{ echo root; echo nectar-new-user
  while IFS=: read -r u _ _ _ _ _ sh || [ -n "$u" ]; do
    case "$u" in ''|root|nectar-new-user|[+-]*|*[!A-Za-z0-9._@-]*) continue;; esac
    case "$sh" in */nologin|*/false|*/true|/bin/sync|/usr/bin/sync|*/shutdown|*/halt) continue;; esac
    echo "$u"
  done </etc/passwd
} | { n=0; r=1
  while read -r u; do
    n=$((n+1)); if [ "$n" -gt 34 ]; then echo '@@truncated'; break; fi
    echo "@@user $u"
    if [ "$n" -gt 1 ] && [ "$m" = 0 ] && [ "$r" = 0 ]; then echo '@@same root'; echo '@@rc 0'; continue; fi
    na_to 5 "$s" -T -C "user=$u,host=$a,addr=$a"
    r=$?; echo "@@rc $r"
  done; }"""

NEEDS = Needs(
    files=(
        MAIN_CONFIG,
        f"{DROPIN_DIR}/*",
        f"{DROPIN_DIR}/*/*",
        f"{SSHDIR}/*.conf",
        f"{SSHDIR}/*/*.conf",
        f"{SSHDIR}/*/*/*.conf",
        CRYPTO_POLICY,
        *CMDLINE_FILES,
        "/etc/passwd",
        "/etc/group",
        "/root/.ssh/authorized_keys",
        "/root/.ssh/authorized_keys2",
        "/etc/ssh/authorized_keys/root",  # AuthorizedKeysFile /etc/ssh/authorized_keys/%u
        *(f"{d}/{u}" for d in _UNIT_DIRS for u in SOCKET_UNITS),
        *(f"{d}/{u}.d/*.conf" for d in _UNIT_DIRS for u in SOCKET_UNITS),
    ),
    stats=(
        *SSHD_BINARIES,
        f"{SSHDIR}/*",
        f"{SSHDIR}/*/*",
        f"{SSHDIR}/*/*/*",
        *GENERATORS,
        *(p for links in _ENABLE_LINKS.values() for p in links),
        *(f"/etc/systemd/system/{u}" for u in SOCKET_UNITS),
    ),
    commands={T_COMMAND: _T_SNIPPET},
)

# --------------------------------------------------------------------------------------------------
# Keywords
# --------------------------------------------------------------------------------------------------
ALIASES = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "skeyauthentication": "kbdinteractiveauthentication",
    "hostdsakey": "hostkey",
    "dsaauthentication": "pubkeyauthentication",
    "pubkeyacceptedkeytypes": "pubkeyacceptedalgorithms",
    "hostbasedacceptedkeytypes": "hostbasedacceptedalgorithms",
    "keepalive": "tcpkeepalive",
    "useblocklist": "useblacklist",
}
# Keywords sshd refuses inside a Match block (SSHCFG_GLOBAL only): "not allowed within a Match block".
GLOBAL_ONLY = frozenset(
    {
        "usepam",
        "port",
        "hostkey",
        "hostkeyagent",
        "pidfile",
        "modulifile",
        "logingracetime",
        "syslogfacility",
        "hostkeyalgorithms",
        "kerberosorlocalpasswd",
        "kerberosticketcleanup",
        "kerberosgetafstoken",
        "gssapicleanupcredentials",
        "gssapistrictacceptorcheck",
        "listenaddress",
        "addressfamily",
        "printmotd",
        "printlastlog",
        "ignoreuserknownhosts",
        "xauthlocation",
        "strictmodes",
        "permituserenvironment",
        "compression",
        "tcpkeepalive",
        "ciphers",
        "macs",
        "subsystem",
        "maxstartups",
        "persourcemaxstartups",
        "persourcenetblocksize",
        "usedns",
        "hostcertificate",
        "kexalgorithms",
        "versionaddendum",
        "fingerprinthash",
        "securitykeyprovider",
        "useblacklist",
    }
)
# Every line adds to the list (a Match block's list replaces the global one).
ACCUMULATE = frozenset(
    {
        "port",
        "listenaddress",
        "hostkey",
        "hostcertificate",
        "acceptenv",
        "allowusers",
        "denyusers",
        "allowgroups",
        "denygroups",
        "subsystem",
    }
)
# yes/no style keywords whose value sshd reads case-insensitively.
_FLAG_VALUES = frozenset({"yes", "no"})
# Values sshd accepts for the keywords the checks read; anything else stops sshd ("unsupported option").
VALID_VALUES: dict[str, frozenset[str]] = {
    **{
        kw: _FLAG_VALUES
        for kw in (
            "passwordauthentication",
            "kbdinteractiveauthentication",
            "usepam",
            "permitemptypasswords",
            "pubkeyauthentication",
        )
    },
    "permitrootlogin": frozenset(
        {"yes", "no", "prohibit-password", "without-password", "forced-commands-only"}
    ),
}

DEFAULTS: dict[str, str] = {
    "port": "22",
    "passwordauthentication": "yes",
    "kbdinteractiveauthentication": "yes",
    "usepam": "no",
    "permitrootlogin": "prohibit-password",
    "permitemptypasswords": "no",
    "pubkeyauthentication": "yes",
    "hostbasedauthentication": "no",
    "gssapiauthentication": "no",
    "kerberosauthentication": "no",
    "authenticationmethods": "any",
    "authorizedkeysfile": ".ssh/authorized_keys .ssh/authorized_keys2",
    "authorizedkeyscommand": "none",
    "usedns": "no",
    "addressfamily": "any",
    "allowusers": "",
    "denyusers": "",
    "allowgroups": "",
    "denygroups": "",
    "refuseconnection": "no",
}

DISPLAY_NAMES = {
    k.lower(): k
    for k in (
        "PasswordAuthentication",
        "KbdInteractiveAuthentication",
        "UsePAM",
        "PermitRootLogin",
        "PermitEmptyPasswords",
        "PubkeyAuthentication",
        "AuthenticationMethods",
        "AuthorizedKeysFile",
        "AuthorizedKeysCommand",
        "AllowUsers",
        "DenyUsers",
        "AllowGroups",
        "DenyGroups",
        "Port",
        "ListenAddress",
        "RefuseConnection",
        "UseDNS",
        "AddressFamily",
    )
}

MATCH_CRITERIA = (
    "all",
    "user",
    "group",
    "host",
    "address",
    "localaddress",
    "localport",
    "rdomain",
    "version",
    "invalid-user",
)


def canonical(keyword: str) -> str:
    kw = keyword.lower()
    return ALIASES.get(kw, kw)


def normalize_value(keyword: str, args: Sequence[str]) -> str:
    """The value as sshd -T prints it for the keywords the checks read; others joined as written."""
    value = " ".join(args)
    low = value.lower()
    if keyword == "permitrootlogin":
        return "prohibit-password" if low == "without-password" else low
    if low in _FLAG_VALUES:
        return low
    return value


# --------------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Directive:
    keyword: str  # canonical, lower-case
    name: str  # as written in the file
    args: tuple[str, ...]
    path: str
    line: int
    order: int  # position in sshd's reading order
    block: int | None = None  # index into SshdConfig.match_blocks; None: global section

    @property
    def value(self) -> str:
        return normalize_value(self.keyword, self.args)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def text(self) -> str:
        return f"{self.name} {' '.join(self.args)}".rstrip()


@dataclass(frozen=True)
class Criterion:
    kind: str  # one of MATCH_CRITERIA, or an unknown name as written (lower-case)
    pattern: str = ""


@dataclass
class MatchBlock:
    index: int
    path: str
    line: int
    text: str  # "Match User alice" as written
    criteria: tuple[Criterion, ...]
    parent: int | None = None  # the block an Include inside a Match block put this one in
    directives: list[Directive] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def label(self) -> str:
        return f"{self.text} ({self.where})"


@dataclass(frozen=True)
class Problem:
    where: str
    message: str
    fatal: bool = True  # sshd refuses to start with this configuration


@dataclass(frozen=True)
class Setting:
    keyword: str
    value: str
    sources: tuple[Directive, ...] = ()
    block: MatchBlock | None = None
    command: str | None = None  # the sshd -T command line when the value came from it
    default: bool = False  # nothing sets it: the compiled-in default (also when sshd -T confirmed it)

    @property
    def is_default(self) -> bool:
        return self.default or (not self.sources and self.command is None)

    @property
    def name(self) -> str:
        """The keyword as the manual spells it (PasswordAuthentication)."""
        return DISPLAY_NAMES.get(self.keyword, self.keyword)

    @property
    def directive(self) -> Directive | None:
        return self.sources[0] if self.sources else None

    @property
    def where(self) -> str:
        """Where the value comes from: "path:line", "OpenSSH default", or the sshd -T command."""
        if self.sources:
            return self.sources[0].where
        if self.is_default:
            return "OpenSSH default"
        return f"command: {self.command}"

    def describe(self) -> str:
        """A sentence part such as "PasswordAuthentication yes in /etc/ssh/sshd_config.d/50-x.conf:1"."""
        d = self.directive
        if d is not None:
            return f"{d.text} in {d.where}"
        if self.is_default:
            return f"{self.name} is not set anywhere, so OpenSSH's default {self.value!r} applies"
        return f"sshd -T reports {self.name} {self.value} (not found in the files the audit read)"


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: tuple[str, ...]

    @property
    def login_capable(self) -> bool:
        shell = self.shell.strip()
        base = shell.rsplit("/", 1)[-1]
        if base in ("nologin", "false", "true") or shell == "/dev/null":
            return False
        return not (self.name in ("sync", "shutdown", "halt") and base == self.name)


@dataclass(frozen=True)
class Context:
    """One connection situation: who logs in, from where, to which local address and port."""

    user: str
    groups: tuple[str, ...] = ()
    addr: str = PROBE_ADDR
    host: str = PROBE_ADDR
    laddr: str = ""  # "": not given (sshd -T without laddr=: Match LocalAddress does not match)
    lport: int = 0  # 0: not given (Match LocalPort does not match)
    user_exists: bool = True
    unknown: bool = False  # how criteria this tool cannot evaluate (Match Version) are taken

    @property
    def is_probe(self) -> bool:
        """The connection the live sshd -T probe describes."""
        return (
            self.addr == PROBE_ADDR
            and self.host == PROBE_ADDR
            and not self.unknown
            and not self.laddr
            and not self.lport
        )

    def describe_source(self) -> str:
        parts = []
        if self.addr in (PROBE_ADDR, PROBE_ADDR6) and self.host in (PROBE_ADDR, PROBE_ADDR6):
            parts.append("from any address")
        elif self.host != self.addr:
            parts.append(f"from {self.addr} (host name {self.host})")
        else:
            parts.append(f"from {self.addr}")
        if self.laddr:
            parts.append(f"to {self.laddr}")
        if self.lport:
            parts.append(f"on port {self.lport}")
        return " ".join(parts)


@dataclass
class SshdConfig:
    installed: bool = True
    main_present: bool = True
    directives: list[Directive] = field(default_factory=list)
    match_blocks: list[MatchBlock] = field(default_factory=list)
    includes: list[tuple[Directive, tuple[str, ...]]] = field(default_factory=list)  # Include -> files
    files_read: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # included path -> reason
    not_captured: list[str] = field(default_factory=list)  # included files that exist but were not read
    accounts: dict[str, Account] = field(default_factory=dict)
    runtime: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # user -> sshd -T keyword lines
    runtime_note: str | None = None  # why sshd -T is absent or incomplete
    runtime_error: str | None = None  # stderr of a failing sshd -T
    cmdline_ports: list[ListenPort] = field(default_factory=list)  # -p on the service's command line
    warnings: list[Problem] = field(default_factory=list)  # what makes the files an incomplete picture

    # -- the global section --------------------------------------------------------------------
    @property
    def global_directives(self) -> list[Directive]:
        return [d for d in self.directives if d.block is None]

    @property
    def global_settings(self) -> dict[str, Setting]:
        """keyword -> Setting as the global section sets it (no defaults, no Match blocks)."""
        return _collect(self.global_directives, None)

    def global_value(self, keyword: str) -> Setting:
        s = self.global_settings.get(keyword)
        return s if s is not None else Setting(keyword, DEFAULTS.get(keyword, ""), default=True)

    @property
    def fatal_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.fatal]

    # -- accounts ------------------------------------------------------------------------------
    @property
    def login_users(self) -> list[str]:
        """Login-capable accounts (shell not nologin/false), root first, in passwd order."""
        names = [a.name for a in self.accounts.values() if a.login_capable and a.name != "root"]
        return ["root", *names]

    def groups_of(self, user: str) -> tuple[str, ...]:
        acct = self.accounts.get(user)
        return acct.groups if acct is not None else ()

    def user_signature(self, user: str) -> tuple[bool, ...]:
        """What the configuration can tell apart about ``user``: the outcome of every User/Group
        criterion and Allow/Deny Users/Groups entry. Accounts with equal signatures get equal settings."""
        ctx = self.context(user)
        sig: list[bool] = []
        for block in self.match_blocks:
            for c in block.criteria:
                if c.kind in ("user", "group", "invalid-user"):
                    sig.append(criterion_matches(c, ctx))
        for d in self.directives:
            if d.keyword in ("allowusers", "denyusers"):
                sig.extend(match_pattern(user, a.split("@", 1)[0]) for a in d.args)
            elif d.keyword in ("allowgroups", "denygroups"):
                sig.extend(any(match_pattern(g, a) for g in ctx.groups) for a in d.args)
        return tuple(sig)

    def home_of(self, user: str) -> str:
        acct = self.accounts.get(user)
        if acct is not None and acct.home:
            return acct.home
        return "/root" if user == "root" else f"/home/{user}"

    # -- evaluation ----------------------------------------------------------------------------
    def block_matches(self, block: MatchBlock, ctx: Context) -> bool:
        if block.parent is not None and not self.block_matches(self.match_blocks[block.parent], ctx):
            return False
        return all(criterion_matches(c, ctx) for c in block.criteria)

    def parser_settings(self, ctx: Context) -> dict[str, Setting]:
        """The effective settings the parser derives for ``ctx`` (defaults, global, Match overrides)."""
        out = {k: Setting(k, v, default=True) for k, v in DEFAULTS.items()}
        out.update(self.global_settings)
        matched = [
            d
            for d in self.directives
            if d.block is not None and self.block_matches(self.match_blocks[d.block], ctx)
        ]
        for kw, setting in _collect(matched, self).items():
            if kw in GLOBAL_ONLY and not _all_match_all(self, setting):
                continue
            out[kw] = setting
        return out

    def runtime_command(self, user: str) -> str:
        return f"sshd -T -C user={user},host={PROBE_ADDR},addr={PROBE_ADDR}"

    def effective_settings(
        self,
        user: str | None = None,
        groups: Iterable[str] | None = None,
        host: str | None = None,
        addr: str | None = None,
        laddr: str | None = None,
        lport: int | None = None,
        ctx: Context | None = None,
    ) -> dict[str, Setting]:
        """keyword -> Setting for one connection. Real sshd -T output wins when it answered this case."""
        if ctx is None:
            ctx = self.context(user, groups, host, addr, laddr, lport)
        parsed = self.parser_settings(ctx)
        lines = self.runtime.get(ctx.user) if ctx.is_probe else None
        if lines is None:
            return parsed
        cmd = self.runtime_command(ctx.user)
        out = dict(parsed)
        for kw, value in runtime_values(lines).items():
            p = parsed.get(kw)
            if p is not None and p.block is None and p.directive is not None and p.directive.order < 0:
                continue  # set by -o on the service's command line, which sshd -T was not given
            if p is not None and p.value == value:
                out[kw] = Setting(kw, value, p.sources, p.block, cmd, p.is_default)
            else:
                out[kw] = Setting(kw, value, (), None, cmd)
        return out

    def effective(
        self,
        user: str | None = None,
        groups: Iterable[str] | None = None,
        host: str | None = None,
        addr: str | None = None,
        laddr: str | None = None,
        lport: int | None = None,
    ) -> dict[str, str]:
        """keyword -> value (sshd -T style) for one connection; defaults for what nothing sets."""
        return {
            k: s.value for k, s in self.effective_settings(user, groups, host, addr, laddr, lport).items()
        }

    def context(
        self,
        user: str | None = None,
        groups: Iterable[str] | None = None,
        host: str | None = None,
        addr: str | None = None,
        laddr: str | None = None,
        lport: int | None = None,
    ) -> Context:
        name = user if user is not None else GENERIC_USER
        grps = tuple(groups) if groups is not None else self.groups_of(name)
        address = addr if addr is not None else PROBE_ADDR
        return Context(
            user=name,
            groups=grps,
            addr=address,
            host=host if host is not None else address,
            laddr=laddr or "",
            lport=lport or 0,
            user_exists=name == GENERIC_USER or not self.accounts or name in self.accounts,
        )

    def contexts(self, user: str) -> list[Context]:
        """Every connection situation that can make a difference for ``user``: the probe (any address)
        first, then one representative per address, host name, local address or port that some Match
        block or Allow/DenyUsers entry singles out."""
        groups = self.groups_of(user)
        addrs: list[str] = [PROBE_ADDR]
        hosts: list[str] = []
        laddrs: list[str] = [""]
        lports: list[int] = [0]
        unknown = [False]
        for block in self.match_blocks:
            for c in block.criteria:
                if c.kind == "address":
                    addrs += [PROBE_ADDR6, *address_representatives(c.pattern)]
                elif c.kind == "host":
                    hosts += host_representatives(c.pattern)
                elif c.kind == "localaddress":
                    laddrs += address_representatives(c.pattern)
                elif c.kind == "localport":
                    lports += [int(c.pattern)] if c.pattern.isdigit() else []
                    lports += self.config_ports()
                elif c.kind not in MATCH_CRITERIA or c.kind == "version":
                    unknown = [False, True]
        for d in self.directives:
            if d.keyword in ("allowusers", "denyusers"):
                for arg in d.args:
                    if "@" in arg:
                        hostpart = arg.split("@", 1)[1]
                        addrs += [PROBE_ADDR6, *address_representatives(hostpart)]
                        hosts += host_representatives(hostpart)
        exists = user == GENERIC_USER or not self.accounts or user in self.accounts
        out: list[Context] = []
        seen: set[Context] = set()
        for unk in unknown:
            for addr in _dedupe(addrs):
                for host in _dedupe([addr, *hosts]):
                    for laddr in _dedupe(laddrs):
                        for lport in dict.fromkeys(lports):
                            ctx = Context(
                                user, groups, addr, host, laddr, lport, user_exists=exists, unknown=unk
                            )
                            if ctx not in seen:
                                seen.add(ctx)
                                out.append(ctx)
                            if len(out) >= MAX_CONTEXTS:
                                return out
        return out

    # -- ports -----------------------------------------------------------------------------------
    def config_ports(self) -> list[int]:
        return [p.port for p in self.config_listen_ports()]

    def config_listen_ports(self) -> list[ListenPort]:
        """Ports sshd itself binds per the configuration (sshd -T when available)."""
        for user in [] if self.cmdline_ports else self.runtime:
            lines = self.runtime[user]
            cmd = f"command: {self.runtime_command(user)}"
            found: list[ListenPort] = []
            for value in lines.get("listenaddress", []):
                port = _port_of(value.split()[0]) if value.split() else None
                if port is not None and port not in [f.port for f in found]:
                    found.append(ListenPort(port, cmd, f"listenaddress {value}"))
            if not found:
                for value in lines.get("port", []):
                    if value.isdigit() and int(value) not in [f.port for f in found]:
                        found.append(ListenPort(int(value), cmd, f"port {value}"))
            if found:
                return found
        ports = [d for d in self.global_directives if d.keyword == "port"]
        listens = [d for d in self.global_directives if d.keyword == "listenaddress"]
        out: list[ListenPort] = []
        plain: list[ListenPort] = []
        for d in ports:
            if d.args and d.args[0].isdigit() and 0 < int(d.args[0]) < 65536:
                plain.append(ListenPort(int(d.args[0]), d.where, d.text))
        if self.cmdline_ports:
            plain = list(self.cmdline_ports)  # sshd ignores Port lines when -p is given
        if not plain:
            plain = [ListenPort(22, "OpenSSH default", "Port is not set: OpenSSH listens on 22")]
        if not listens:
            out = plain
        for d in listens:
            port = _listenaddress_port(d.args[0]) if d.args else None
            if port is not None:
                out.append(ListenPort(port, d.where, d.text))
            else:
                out.extend(plain)
        uniq: list[ListenPort] = []
        for p in out:
            if p.port not in [u.port for u in uniq]:
                uniq.append(p)
        return uniq


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _all_match_all(cfg: SshdConfig, setting: Setting) -> bool:
    """A directive under a chain of ``Match All`` blocks acts as a global one (sshd applies it then)."""
    d = setting.directive
    idx = d.block if d is not None else None
    while idx is not None:
        block = cfg.match_blocks[idx]
        if [c.kind for c in block.criteria] != ["all"]:
            return False
        idx = block.parent
    return True


def _collect(directives: Iterable[Directive], cfg: SshdConfig | None) -> dict[str, Setting]:
    """First value wins; accumulating keywords gather every line, first-line-list keywords the first."""
    out: dict[str, Setting] = {}
    for d in directives:
        if d.keyword in ("include", "match"):
            continue
        block = cfg.match_blocks[d.block] if cfg is not None and d.block is not None else None
        prev = out.get(d.keyword)
        if d.keyword in ACCUMULATE:
            if prev is None:
                out[d.keyword] = Setting(d.keyword, " ".join(d.args), (d,), block)
            else:
                out[d.keyword] = Setting(
                    d.keyword, f"{prev.value} {' '.join(d.args)}".strip(), (*prev.sources, d), prev.block
                )
        elif prev is None:
            out[d.keyword] = Setting(d.keyword, d.value, (d,), block)
    return out


def _runtime_value(keyword: str, values: list[str]) -> str:
    if keyword in ACCUMULATE or len(values) > 1:
        return " ".join(values)
    value = values[0] if values else ""
    if keyword == "permitrootlogin" or value.lower() in _FLAG_VALUES:
        return normalize_value(keyword, value.split(" "))
    return value


# sshd -T prints nothing for an empty list: absent from its output means empty, not "ask the parser".
_RUNTIME_EMPTY_LISTS = ("allowusers", "denyusers", "allowgroups", "denygroups")


def runtime_values(lines: Mapping[str, list[str]]) -> dict[str, str]:
    """keyword -> value from one sshd -T answer. OpenSSH before 8.7 printed both
    kbdinteractiveauthentication and challengeresponseauthentication: either one enables it."""
    out = {
        kw: _runtime_value(kw, values)
        for kw, values in lines.items()
        if kw != "challengeresponseauthentication"
    }
    legacy = lines.get("challengeresponseauthentication")
    if legacy:
        kbd = out.get("kbdinteractiveauthentication", "no")
        out["kbdinteractiveauthentication"] = "yes" if "yes" in (kbd, _runtime_value("x", legacy)) else "no"
    for kw in _RUNTIME_EMPTY_LISTS:
        out.setdefault(kw, "")
    return out


# --------------------------------------------------------------------------------------------------
# Patterns (match.c, addrmatch.c)
# --------------------------------------------------------------------------------------------------
def match_pattern(string: str, pattern: str) -> bool:
    """OpenSSH's match_pattern: ``*`` and ``?`` wildcards, nothing else special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, string, re.DOTALL) is not None


def match_pattern_list(string: str, patterns: str, dolower: bool = False) -> int:
    """1: a positive entry matched and no negated one; -1: a negated entry matched; 0: nothing."""
    got_positive = 0
    for sub in patterns.split(","):
        negated = sub.startswith("!")
        if negated:
            sub = sub[1:]
        if dolower:
            sub = sub.lower()
        if len(sub) >= 1023:
            return 0
        if match_pattern(string, sub):
            if negated:
                return -1
            got_positive = 1
    return got_positive


def _parse_cidr(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str | None:
    """An address or network; "bad" when it looks like CIDR but is invalid; None for a wildcard."""
    try:
        return ipaddress.ip_network(entry, strict=True)
    except ValueError:
        pass
    if "/" in entry:
        head = entry.split("/", 1)[0]
        try:
            ipaddress.ip_address(head)
        except ValueError:
            return None
        return "bad"
    return None


def addr_match_list(addr: str | None, patterns: str) -> int:
    """1 match, 0 no match, -1 negated match, -2 invalid list (sshd: "Bad Match condition")."""
    try:
        ip = ipaddress.ip_address(addr) if addr is not None else None
    except ValueError:
        ip = None
    ret = 0
    for entry in patterns.split(","):
        neg = entry.startswith("!")
        if neg:
            entry = entry[1:]
        if not entry:
            return -2
        net = _parse_cidr(entry)
        if net == "bad":
            return -2
        if isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            hit = ip is not None and ip.version == net.version and ip in net
        else:
            hit = addr is not None and match_pattern(addr, entry)
        if hit:
            if neg:
                return -1
            ret = 1
    return ret


def _user_at_host_match(user: str, ctx: Context, pattern: str) -> bool:
    """DenyUsers/AllowUsers entry ``user`` or ``user@host`` (host: patterns or CIDR) against ctx."""
    if "@" in pattern:
        upat, hpat = pattern.split("@", 1)
        if not match_pattern(user, upat):
            return False
        if addr_match_list(ctx.addr, hpat) == 1:
            return True
        return match_pattern_list(ctx.host.lower(), hpat, True) == 1
    return match_pattern(user, pattern)


def criterion_matches(c: Criterion, ctx: Context) -> bool:
    kind = c.kind
    if kind == "all":
        return True
    if kind == "user":
        return match_pattern_list(ctx.user, c.pattern) == 1
    if kind == "group":
        if not ctx.user_exists or not ctx.groups:
            return False
        found = False
        for g in ctx.groups:
            r = match_pattern_list(g, c.pattern)
            if r == -1:
                return False
            if r == 1:
                found = True
        return found
    if kind == "host":
        return match_pattern_list(ctx.host.lower(), c.pattern, True) == 1
    if kind == "address":
        return addr_match_list(ctx.addr, c.pattern) == 1
    if kind == "localaddress":
        return bool(ctx.laddr) and addr_match_list(ctx.laddr, c.pattern) == 1
    if kind == "localport":
        return ctx.lport > 0 and c.pattern.isdigit() and int(c.pattern) == ctx.lport
    if kind == "rdomain":
        return False  # Linux has no routing domains
    if kind == "invalid-user":
        return not ctx.user_exists
    return ctx.unknown  # Version and criteria this tool does not know


def address_representatives(patterns: str) -> list[str]:
    """Concrete addresses inside each positive entry of an address pattern list."""
    out: list[str] = []
    for entry in patterns.split(","):
        if not entry or entry.startswith("!"):
            continue
        net = _parse_cidr(entry)
        if isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            host = net.network_address + (1 if net.num_addresses > 2 else 0)
            out.append(str(host))
            continue
        if net == "bad":
            continue
        cand = entry.replace("*", "1").replace("?", "1")
        if re.fullmatch(r"[0-9.]+", cand):
            parts = [p for p in cand.split(".") if p]
            while len(parts) < 4:
                parts.append("1")
            cand = ".".join(parts[:4])
        try:
            ipaddress.ip_address(cand)
        except ValueError:
            continue
        if match_pattern(cand, entry):
            out.append(cand)
    return out


def host_representatives(patterns: str) -> list[str]:
    out: list[str] = []
    for entry in patterns.split(","):
        if not entry or entry.startswith("!") or _parse_cidr(entry) is not None:
            continue
        out.append(entry.lower().replace("*", "x").replace("?", "x"))
    return out


# --------------------------------------------------------------------------------------------------
# The config parser
# --------------------------------------------------------------------------------------------------
class _QuoteError(ValueError):
    pass


def argv_split(text: str) -> list[str]:
    """OpenSSH's argv_split(s, terminate_on_comment=1): quotes, backslash escapes, ``#`` comments."""
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            break
        quote = ""
        arg: list[str] = []
        while i < n:
            c = text[i]
            if c == "\\" and i + 1 < n and (text[i + 1] in "'\"\\" or (not quote and text[i + 1] == " ")):
                i += 1
                arg.append(text[i])
            elif not quote and c in " \t":
                break
            elif not quote and c in "\"'":
                quote = c
            elif quote and c == quote:
                quote = ""
            else:
                arg.append(c)
            i += 1
        if quote:
            raise _QuoteError("invalid quotes")
        args.append("".join(arg))
    return args


def split_line(line: str) -> tuple[str, str]:
    """("keyword", "rest") of one line (``Keyword value``, ``Keyword=value``, ``Keyword = value``)."""
    line = line.lstrip(" \t\r").rstrip(" \t\r\n\f")
    m = re.match(r'[^ \t"=]*', line)
    keyword = m.group(0) if m else ""
    rest = line[len(keyword) :]
    rest = re.sub(r"^[ \t]*=?[ \t]*", "", rest, count=1)
    return keyword, rest


def _glob_segment_match(name: str, pattern: str) -> bool:
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


def glob_paths(pattern: str, candidates: Iterable[str]) -> list[str]:
    """glob(3) over known paths: wildcards never cross ``/`` nor match a leading dot; sorted."""
    if not any(ch in pattern for ch in "*?["):
        return [pattern] if pattern in set(candidates) else []
    pparts = pattern.split("/")
    out = []
    for path in set(candidates):
        parts = path.split("/")
        if len(parts) == len(pparts) and all(_glob_segment_match(a, b) for a, b in zip(parts, pparts)):
            out.append(path)
    return sorted(out)


def _parse_match(rest: str) -> tuple[list[Criterion], str | None]:
    try:
        raw = argv_split(rest)
    except _QuoteError:
        return [], "invalid quotes"
    # OpenSSH up to 9.3 splits Match arguments at "=" too (strdelim): "Match User=alice".
    words: list[str] = []
    for w in raw:
        head, eq, tail = w.partition("=")
        if eq and head.lower() in MATCH_CRITERIA:
            words += [head, tail] if tail else [head]
        else:
            words.append(w)
    crit: list[Criterion] = []
    i = 0
    while i < len(words):
        attr = words[i].lower()
        if attr in ("all", "invalid-user"):
            if attr == "all" and (crit or len(words) > i + 1):
                return crit, "'all' cannot be combined with other Match attributes"
            crit.append(Criterion(attr))
            i += 1
            continue
        if i + 1 >= len(words) or not words[i + 1]:
            return crit, f"Missing Match criteria for {words[i]}"
        value = words[i + 1]
        if attr in ("address", "localaddress") and addr_match_list(None, value) == -2:
            return crit, f"Invalid Match {words[i]} argument {value!r}"
        if attr == "localport" and not (value.isdigit() and 0 < int(value) < 65536):
            return crit, f"Invalid LocalPort {value!r} on Match line"
        crit.append(Criterion(attr, value))
        i += 2
    if not crit:
        return crit, "One or more attributes required for Match"
    return crit, None


class _Parser:
    def __init__(self, files: Mapping[str, str], unreadable: Mapping[str, str], known: Iterable[str]) -> None:
        self.files = files
        self.unreadable_all = unreadable
        self.candidates = set(files) | set(unreadable) | set(known)
        self.cfg = SshdConfig()
        self.order = 0

    def problem(self, where: str, message: str, fatal: bool = True) -> None:
        self.cfg.problems.append(Problem(where, message, fatal))

    def parse_file(self, path: str, outer: int | None, depth: int) -> None:
        text = self.files.get(path)
        if text is None:
            return
        self.cfg.files_read.append(path)
        current = outer
        for lineno, raw in enumerate(text.split("\n"), 1):
            keyword, rest = split_line(raw.split("\0", 1)[0])
            if not keyword or keyword.startswith("#"):
                continue
            where = f"{path}:{lineno}"
            kw = canonical(keyword)
            if not rest:
                self.problem(where, f'no argument after keyword "{keyword}"')
                continue
            if kw == "match":
                crit, err = _parse_match(rest)
                if err:
                    self.problem(where, f"Bad Match condition: {err}")
                block = MatchBlock(
                    len(self.cfg.match_blocks),
                    path,
                    lineno,
                    f"{keyword} {rest}".strip(),
                    tuple(crit) if not err else (Criterion("never"),),
                    parent=outer,
                )
                self.cfg.match_blocks.append(block)
                current = block.index
                continue
            try:
                args = tuple(argv_split(rest))
            except _QuoteError:
                self.problem(where, "invalid quotes")
                continue
            if not args:
                self.problem(where, f'no argument after keyword "{keyword}"')
                continue
            allowed = VALID_VALUES.get(kw)
            if allowed is not None and args[0].lower() not in allowed:
                self.problem(where, f'unsupported option "{args[0]}" for {keyword}')
                continue
            d = Directive(kw, keyword, args, path, lineno, self.order, current)
            self.order += 1
            if current is not None and kw in GLOBAL_ONLY and not self._all_chain(current):
                self.problem(where, f"Directive '{keyword}' is not allowed within a Match block")
            self.cfg.directives.append(d)
            if current is not None:
                self.cfg.match_blocks[current].directives.append(d)
            if kw == "include":
                self.include(d, current, depth)

    def _all_chain(self, idx: int | None) -> bool:
        while idx is not None:
            block = self.cfg.match_blocks[idx]
            if [c.kind for c in block.criteria] != ["all"]:
                return False
            idx = block.parent
        return True

    def include(self, d: Directive, current: int | None, depth: int) -> None:
        found: list[str] = []
        for arg in d.args:
            if arg.startswith("~"):
                continue  # sshd does not expand ~ (glob without GLOB_TILDE): matches nothing
            pattern = arg if arg.startswith("/") else f"{SSHDIR}/{arg}"
            for path in glob_paths(pattern, self.candidates):
                found.append(path)
                if depth + 1 > MAX_INCLUDE_DEPTH:
                    self.problem(d.where, "Too many recursive configuration includes")
                    continue
                if path in self.unreadable_all:
                    self.cfg.unreadable[path] = self.unreadable_all[path]
                    continue
                if path not in self.files:
                    if path not in self.cfg.not_captured:
                        self.cfg.not_captured.append(path)
                    continue
                self.parse_file(path, current, depth + 1)
        self.cfg.includes.append((d, tuple(found)))


def parse_sshd_config(
    files: Mapping[str, str],
    *,
    main: str = MAIN_CONFIG,
    unreadable: Mapping[str, str] | None = None,
    known_paths: Iterable[str] = (),
) -> SshdConfig:
    """Parse ``main`` and what it includes. ``files``: path -> text of every captured file;
    ``unreadable``: path -> reason; ``known_paths``: files known to exist but not captured (Include
    globs expand over all three, like glob(3) over the real directory). Never raises."""
    parser = _Parser(files, unreadable or {}, known_paths)
    if main not in files:
        parser.cfg.main_present = False
        if main in (unreadable or {}):
            parser.cfg.unreadable[main] = (unreadable or {})[main]
    parser.parse_file(main, None, 0)
    return parser.cfg


# --------------------------------------------------------------------------------------------------
# sshd -T output
# --------------------------------------------------------------------------------------------------
@dataclass
class RuntimeOutput:
    users: dict[str, dict[str, list[str]]]
    failed: dict[str, int]  # user -> rc
    truncated: bool = False
    skipped: str | None = None


def parse_sshd_T(stdout: str) -> RuntimeOutput:
    """The ``sshd.T`` command output: ``@@user NAME``, sshd -T lines, ``@@rc N`` per user."""
    users: dict[str, dict[str, list[str]]] = {}
    failed: dict[str, int] = {}
    out = RuntimeOutput(users, failed)
    current: str | None = None
    lines: dict[str, list[str]] = {}
    for raw in stdout.splitlines():
        line = raw.rstrip("\r")
        if line.startswith("@@skipped"):
            out.skipped = line[len("@@skipped") :].strip() or "skipped"
            continue
        if line == "@@truncated":
            out.truncated = True
            continue
        if line.startswith("@@user "):
            current = line[len("@@user ") :].strip()
            lines = {}
            continue
        if line.startswith("@@same ") and current is not None:
            # No Match block anywhere: this account's answer is that of the one named.
            lines = {k: list(v) for k, v in users.get(line[len("@@same ") :].strip(), {}).items()}
            continue
        if line.startswith("@@rc ") and current is not None:
            rc_text = line[len("@@rc ") :].strip()
            rc = int(rc_text) if rc_text.lstrip("-").isdigit() else -1
            if rc == 0 and "passwordauthentication" in lines:
                users[current] = lines
            else:
                failed[current] = rc
            current = None
            continue
        if current is None or not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        if not re.fullmatch(r"[a-z0-9]+", key):
            continue
        if key != "challengeresponseauthentication":
            key = ALIASES.get(key, key)
        lines.setdefault(key, []).append(value.strip())
    return out


# --------------------------------------------------------------------------------------------------
# passwd / group
# --------------------------------------------------------------------------------------------------
def parse_accounts(passwd: str, group: str = "") -> dict[str, Account]:
    """name -> Account (first entry of a name wins, as getpwnam); groups: primary + supplementary."""
    gid_names: dict[int, str] = {}
    members: dict[str, list[str]] = {}
    for line in group.splitlines():
        parts = line.split(":")
        if len(parts) < 3 or not parts[0] or parts[0].startswith(("+", "-")):
            continue
        try:
            gid = int(parts[2])
        except ValueError:
            continue
        gid_names.setdefault(gid, parts[0])
        for m in parts[3].split(",") if len(parts) > 3 else []:
            m = m.strip()
            if m:
                members.setdefault(m, []).append(parts[0])
    out: dict[str, Account] = {}
    for line in passwd.splitlines():
        parts = line.split(":")
        if len(parts) < 7 or not parts[0] or parts[0].startswith(("+", "-")) or parts[0] in out:
            continue
        try:
            uid, gid = int(parts[2]), int(parts[3])
        except ValueError:
            continue
        groups = [gid_names[gid]] if gid in gid_names else []
        groups += [g for g in members.get(parts[0], []) if g not in groups]
        out[parts[0]] = Account(parts[0], uid, gid, parts[5], parts[6], tuple(groups))
    return out


# --------------------------------------------------------------------------------------------------
# systemd socket units
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListenPort:
    port: int
    where: str  # "path:line", "command: …", "OpenSSH default"
    detail: str


def parse_unit_listen_streams(units: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """ListenStream= values of a unit and its drop-ins, in order; an empty assignment resets the list.
    Returns (value, where, line text)."""
    values: list[tuple[str, str, str]] = []
    for path, text in units:
        section = ""
        pending = ""
        start = 0
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if pending:
                line = pending + line
                pending = ""
            else:
                start = lineno
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if section != "Socket" or "=" not in line:
                continue
            key, _, value = line.partition("=")
            if key.strip() != "ListenStream":
                continue
            value = value.strip()
            if not value:
                values = []
                continue
            values.append((value, f"{path}:{start}", line))
    return values


def listen_stream_port(value: str) -> int | None:
    """'22' / '0.0.0.0:22' / '[::]:2222' -> port; unix, vsock and abstract sockets -> None."""
    if value.startswith(("/", "@", "vsock:")):
        return None
    if value.isdigit():
        port = int(value)
    else:
        m = re.fullmatch(r"(?:\[[^\]]*\]|[^:\[\]]+):(\d+)", value)
        if not m:
            return None
        port = int(m.group(1))
    return port if 0 < port < 65536 else None


def _listenaddress_port(value: str) -> int | None:
    """ListenAddress host[:port]; a bare IPv6 address (2+ colons, no brackets) has no port."""
    if "[" not in value and value.count(":") >= 2:
        return None
    m = re.fullmatch(r"(?:\[([^\]]*)\]|([^:]*))(?::(\d+))?", value)
    if not m or m.group(3) is None:
        return None
    port = int(m.group(3))
    return port if 0 < port < 65536 else None


def _port_of(endpoint: str) -> int | None:
    m = re.search(r":(\d+)$", endpoint)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class SocketUnit:
    name: str  # ssh.socket
    enabled: bool
    masked: bool
    enabled_source: str
    ports: tuple[ListenPort, ...]
    generator: bool  # Ubuntu's sshd-socket-generator derives ListenStream from sshd_config at boot
    synthesized: bool  # ports computed as the generator would (offline image)


@dataclass(frozen=True)
class ListenInfo:
    ports: tuple[ListenPort, ...]  # where sshd accepts connections per configuration
    socket: SocketUnit | None  # the socket unit that decides, when socket activation is on
    config_ports: tuple[ListenPort, ...]  # what sshd's own configuration says
    running: tuple[int, ...] | None  # ports the running sshd (or its socket) holds; None unknown
    running_source: str = ""
    notes: tuple[str, ...] = ()

    @property
    def all_ports(self) -> list[int]:
        return sorted({p.port for p in self.ports} | set(self.running or ()))


# --------------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------------
def _read_map(bundle: Bundle, patterns: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    texts: dict[str, str] = {}
    errors: dict[str, str] = {}
    for pattern in patterns:
        for path in bundle.glob(pattern):
            rec = bundle.file(path)
            if rec is None:
                continue
            if rec.error is not None:
                errors[path] = bundle.unreadable_reason(path, rec.error)
            elif rec.content is not None:
                texts[path] = rec.content
    return texts, errors


def sshd_installed(bundle: Bundle) -> bool:
    if any(p in bundle.stats for p in SSHD_BINARIES):
        return True
    rec = bundle.command(T_COMMAND)
    if rec is not None and not rec.missing and "@@user" in rec.stdout:
        return True
    if rec is not None and rec.missing:
        return False
    # A bundle without file metadata at all (old or hand-made): a config file is the best sign left.
    return not bundle.stats and bundle.file(MAIN_CONFIG) is not None


def sshd_config(facts: Facts) -> SshdConfig:
    """The parsed configuration, the accounts it is evaluated for, and (live, root) sshd -T answers.

    Raises EvidenceError when the configuration cannot be read and sshd -T did not answer either.
    """
    b = facts.bundle
    installed = sshd_installed(b)
    # Every captured file: an Include may name any path (sshd reads whatever it names).
    texts, errors = _read_map(b, ["*"])
    known = [p for p, st in b.stats.items() if not st.is_dir]
    cfg = parse_sshd_config(texts, unreadable=errors, known_paths=known)
    cfg.installed = installed
    for path, variable in CMDLINE_FILES.items():
        options = texts.get(path)
        if options:
            apply_command_line(cfg, path, options, variable)
    passwd = _text_or_empty(b, "/etc/passwd")
    group = _text_or_empty(b, "/etc/group")
    cfg.accounts = parse_accounts(passwd, group)

    rec = b.command(T_COMMAND) if b.live else None
    if rec is not None and not rec.missing:
        rt = parse_sshd_T(rec.stdout)
        cfg.runtime = rt.users
        if rt.skipped:
            cfg.runtime_note = f"sshd -T not run ({rt.skipped}); judged from the configuration files"
        elif rt.failed and not rt.users:
            err = rec.stderr.strip().splitlines()
            cfg.runtime_error = err[0][:300] if err else f"exit status {next(iter(rt.failed.values()))}"
            cfg.runtime_note = f"sshd -T failed ({cfg.runtime_error}); judged from the configuration files"
        elif rt.truncated:
            cfg.runtime_note = (
                f"sshd -T was run for the first {MAX_RUNTIME_USERS + 2} accounts only; "
                "the others are judged from the configuration files"
            )
    elif not b.live:
        cfg.runtime_note = "offline image: judged from the configuration files (no sshd -T)"

    if installed and not cfg.runtime:
        if MAIN_CONFIG in errors:
            raise EvidenceError(errors[MAIN_CONFIG])
        if cfg.unreadable:
            _path, reason = next(iter(cfg.unreadable.items()))
            raise EvidenceError(reason)
    return cfg


def parse_service_options(text: str, variable: str) -> list[tuple[int, list[str]]]:
    """``VAR="..."`` assignments of a systemd EnvironmentFile: (line, the words ``$VAR`` expands to)."""
    out: list[tuple[int, list[str]]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        name, eq, value = line.partition("=")
        if not eq or name.strip() != variable:
            continue
        try:
            words = shlex.split(value, comments=True)
        except ValueError:
            continue
        out.append((lineno, " ".join(words).split()))
    return out


def apply_command_line(cfg: SshdConfig, path: str, text: str, variable: str) -> None:
    """-o Keyword=value (ahead of every file: the first value wins), -p port, -f other-config."""
    order = -1000
    for lineno, args in parse_service_options(text, variable):
        i = 0
        while i < len(args):
            arg = args[i]
            flag, value = arg[:2], arg[2:]
            if flag in ("-o", "-p", "-f") and not value and i + 1 < len(args):
                i += 1
                value = args[i]
            i += 1
            if flag == "-o" and value:
                keyword, rest = split_line(value)
                try:
                    words = tuple(argv_split(rest))
                except _QuoteError:
                    continue
                if keyword and words:
                    d = Directive(canonical(keyword), keyword, words, path, lineno, order)
                    order += 1
                    cfg.directives.insert(len([x for x in cfg.directives if x.order < 0]), d)
            elif flag == "-p" and value.isdigit() and 0 < int(value) < 65536:
                cfg.cmdline_ports.append(
                    ListenPort(int(value), f"{path}:{lineno}", f"{variable}: -p {value}")
                )
            elif flag == "-f" and value:
                cfg.warnings.append(
                    Problem(
                        f"{path}:{lineno}",
                        f"sshd is started with -f {value}: its "
                        "configuration is that file, not /etc/ssh/sshd_config",
                        False,
                    )
                )


def _text_or_empty(b: Bundle, path: str) -> str:
    try:
        return b.text(path) or ""
    except EvidenceError:
        return ""


def _stat_exists(b: Bundle, path: str) -> bool:
    return path in b.stats or b.file(path) is not None


def _socket_unit(facts: Facts, cfg: SshdConfig, name: str) -> SocketUnit | None:
    b = facts.bundle
    links = [p for p in _ENABLE_LINKS[name] if _stat_exists(b, p)]
    enabled = bool(links)
    source = links[0] if links else ""
    masked = False
    st = b.stats.get(f"/etc/systemd/system/{name}")
    if st is not None and st.is_link and b.file(f"/etc/systemd/system/{name}") is None:
        masked = True
    try:
        from nectar_audit.facts.system.services import services

        svc = facts.get(services)
        if svc.enabled_source.startswith("command:"):
            enabled = name in svc.enabled
            source = svc.enabled_source
        masked = masked or name in svc.masked
    except Exception:  # the services fact is optional here: the links above decide
        pass
    unit_path = next(
        (
            f"{d}/{name}"
            for d in (
                "/etc/systemd/system",
                "/run/systemd/system",
                "/usr/lib/systemd/system",
                "/lib/systemd/system",
            )
            if b.file(f"{d}/{name}") is not None
        ),
        None,
    )
    if unit_path is None:
        return None
    dropins: dict[str, str] = {}
    for d in _UNIT_DIRS:
        for path in b.glob(f"{d}/{name}.d/*.conf"):
            dropins.setdefault(path.rsplit("/", 1)[1], path)
    generator = any(p in b.stats for p in GENERATORS) and name == "ssh.socket"
    units: list[tuple[str, str]] = [(unit_path, _text_or_empty(b, unit_path))]
    texts = {path: _text_or_empty(b, path) for path in dropins.values()}
    synthesized = False
    generated = any(p.startswith("/run/systemd/generator/") for p in dropins.values())
    if generator and not b.live and not generated:
        # An image never has /run: at boot the generator turns sshd's Port/ListenAddress into a drop-in.
        streams = _generator_streams(cfg)
        if streams is not None and "addresses.conf" not in dropins:
            synthesized = True
            dropins["addresses.conf"] = GENERATED_DROPIN
            texts[GENERATED_DROPIN] = streams
    for base in sorted(dropins):
        units.append((dropins[base], texts[dropins[base]]))
    ports: list[ListenPort] = []
    for value, where, text in parse_unit_listen_streams(units):
        port = listen_stream_port(value)
        if port is not None and port not in [p.port for p in ports]:
            ports.append(ListenPort(port, where, text))
    return SocketUnit(name, enabled and not masked, masked, source, tuple(ports), generator, synthesized)


GENERATED_DROPIN = (
    "/run/systemd/generator/ssh.socket.d/addresses.conf (written by sshd-socket-generator at boot)"
)


def _generator_streams(cfg: SshdConfig) -> str | None:
    """What Ubuntu's sshd-socket-generator writes for this config: nothing when it is the default."""
    ports = cfg.config_listen_ports()
    listens = [d for d in cfg.global_directives if d.keyword == "listenaddress"]
    if [p.port for p in ports] == [22] and not listens:
        return None
    lines = ["[Socket]", "ListenStream="] + [f"ListenStream={p.port}" for p in ports]
    return "\n".join(lines) + "\n"


def sshd_listeners(facts: Facts) -> ListenInfo:
    cfg = facts.get(sshd_config)
    config_ports = tuple(cfg.config_listen_ports())
    notes: list[str] = []
    socket: SocketUnit | None = None
    for name in SOCKET_UNITS:
        unit = _socket_unit(facts, cfg, name)
        if unit is not None and unit.enabled and unit.ports:
            socket = unit
            break
    ports = socket.ports if socket is not None else config_ports
    if socket is not None:
        ignored = sorted({p.port for p in config_ports} - {p.port for p in socket.ports})
        if ignored and not socket.synthesized:
            notes.append(
                f"{socket.name} is enabled (socket activation): systemd listens on "
                f"{', '.join(str(p.port) for p in socket.ports)} and sshd's own Port/ListenAddress "
                f"({', '.join(str(p) for p in ignored)}) is not used"
            )
    running: tuple[int, ...] | None = None
    running_source = ""
    if facts.bundle.live:
        try:
            from nectar_audit.facts.system.sockets import listeners, sockets_source

            items = facts.get(listeners)
            socket_ports = {p.port for p in ports} if socket is not None else set()
            held = sorted(
                {
                    i.port
                    for i in items
                    if i.proto == "tcp"
                    and (
                        i.process in ("sshd", "sshd-session")
                        or (i.process == "systemd" and i.port in socket_ports)
                    )
                }
            )
            if any(i.process is not None for i in items):
                running = tuple(held)
                running_source = sockets_source(facts)
        except Exception:  # listeners are optional: unknown without ss or root
            running = None
    return ListenInfo(tuple(ports), socket, config_ports, running, running_source, tuple(notes))


def sshd_listen_ports(facts: Facts) -> list[int]:
    """Every TCP port sshd really listens on (configuration, socket activation, running sockets)."""
    return facts.get(sshd_listeners).all_ports


def sshd_uses_pam(facts: Facts) -> bool:
    cfg = facts.get(sshd_config)
    for lines in cfg.runtime.values():
        if "usepam" in lines:
            return runtime_values(lines)["usepam"] == "yes"
    return cfg.global_value("usepam").value == "yes"


# --------------------------------------------------------------------------------------------------
# Helpers the SSH checks share
# --------------------------------------------------------------------------------------------------
def access_denied(settings: Mapping[str, Setting], ctx: Context) -> Setting | None:
    """The setting that keeps ``ctx.user`` out entirely (DenyUsers, AllowUsers, DenyGroups,
    AllowGroups, RefuseConnection), as sshd's allowed_user() decides; None when the user may log in."""
    refuse = settings.get("refuseconnection")
    if refuse is not None and refuse.value == "yes":
        return refuse
    deny = settings.get("denyusers")
    if deny is not None and any(_user_at_host_match(ctx.user, ctx, p) for p in deny.value.split()):
        return deny
    allow = settings.get("allowusers")
    if (
        allow is not None
        and allow.value
        and not any(_user_at_host_match(ctx.user, ctx, p) for p in allow.value.split())
    ):
        return allow
    dgroups = settings.get("denygroups")
    if dgroups is not None and any(match_pattern(g, p) for g in ctx.groups for p in dgroups.value.split()):
        return dgroups
    agroups = settings.get("allowgroups")
    if (
        agroups is not None
        and agroups.value
        and not any(match_pattern(g, p) for g in ctx.groups for p in agroups.value.split())
    ):
        return agroups
    return None


def auth_chains(settings: Mapping[str, Setting]) -> list[list[str]]:
    """AuthenticationMethods as lists of methods; [] for "any"."""
    am = settings.get("authenticationmethods")
    if am is None or am.value.strip() in ("", "any"):
        return []
    return [chain.split(",") for chain in am.value.split()]


def in_trusted(addr: str, networks: Iterable[IPNetwork]) -> bool:
    """Loopback, or inside one of the configured trusted networks."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    return any(ip.version == n.version and ip in n for n in networks)


def dropin_read_before(cfg: SshdConfig, keyword: str, name: str = "00-nectar-audit.conf") -> bool:
    """Would a new /etc/ssh/sshd_config.d/<name> be read before the first global ``keyword`` line?"""
    path = f"{DROPIN_DIR}/{name}"
    first = next((d for d in cfg.global_directives if d.keyword == keyword), None)
    for inc, _ in cfg.includes:
        if inc.block is not None:
            continue
        for arg in inc.args:
            pattern = arg if arg.startswith("/") else f"{SSHDIR}/{arg}"
            if glob_paths(pattern, [path]):
                return first is None or inc.order < first.order
    return False


def includes_dropins(cfg: SshdConfig) -> bool:
    """The main file includes /etc/ssh/sshd_config.d/*.conf from its global section."""
    for inc, _ in cfg.includes:
        if inc.block is None and any(
            glob_paths(a if a.startswith("/") else f"{SSHDIR}/{a}", [f"{DROPIN_DIR}/00-x.conf"])
            for a in inc.args
        ):
            return True
    return False


_REFUSAL_RE = re.compile(
    r"""echo\s+'Please login as the user \\?"[^"'\\]*\\?" rather than the user \\?"[^"'\\]*\\?"\.?'\s*;"""
    r"""\s*echo\s*;\s*sleep\s+\d+\s*(?:;\s*exit\s+\d+\s*)?;?"""
)


def is_cloud_init_refusal(command: str | None) -> bool:
    """cloud-init's ``disable_root`` forced command: prints "Please login as the user …", sleeps and
    exits. Anything else after it (a shell, another command) does not count."""
    return command is not None and _REFUSAL_RE.fullmatch(command.strip()) is not None


def authorized_keys_paths(settings: Mapping[str, Setting], user: str, home: str, uid: int = 0) -> list[str]:
    """AuthorizedKeysFile expanded for one user (%h %u %U %%; relative paths under the home)."""
    value = settings.get("authorizedkeysfile")
    raw = value.value if value is not None else DEFAULTS["authorizedkeysfile"]
    out: list[str] = []
    tokens = {"%": "%", "h": home, "u": user, "U": str(uid)}
    for item in raw.split():
        if item.lower() == "none":
            continue
        path = re.sub(r"%([%hUu])", lambda m: tokens[m.group(1)], item)
        if not path.startswith("/"):
            path = f"{home.rstrip('/')}/{path}"
        out.append(path)
    return out


__all__ = [
    "DEFAULTS",
    "GENERIC_USER",
    "NEEDS",
    "PROBE_ADDR",
    "Account",
    "Context",
    "Criterion",
    "Directive",
    "IPNetwork",
    "ListenInfo",
    "ListenPort",
    "MatchBlock",
    "Problem",
    "Setting",
    "SocketUnit",
    "SshdConfig",
    "access_denied",
    "addr_match_list",
    "argv_split",
    "auth_chains",
    "authorized_keys_paths",
    "dropin_read_before",
    "in_trusted",
    "includes_dropins",
    "is_cloud_init_refusal",
    "listen_stream_port",
    "match_pattern_list",
    "parse_accounts",
    "parse_service_options",
    "parse_sshd_T",
    "parse_sshd_config",
    "parse_unit_listen_streams",
    "sshd_config",
    "sshd_installed",
    "sshd_listen_ports",
    "sshd_listeners",
    "sshd_uses_pam",
]
