"""SSH attack banning: fail2ban (configuration with fail2ban's own precedence, and its live status),
DenyHosts, sshguard, CrowdSec, and the count of failed SSH logins.

fail2ban reads ``jail.conf``, ``jail.d/*.conf`` (alphabetical), ``jail.local``, ``jail.d/*.local``; each file
brings its ``[INCLUDES] before/after`` files and its own ``.local``; a later file's option wins, ``[DEFAULT]``
options apply to every jail that does not set them, values interpolate ``%(name)s``, ``%(default/name)s``,
``%(known/name)s`` and ``%(__name__)s`` (``fail2ban/client/configparserinc.py``).

Public API:

- ``parse_conf(text, path) -> tuple[ConfEntry, ...]``; ``read_config(files, top) -> F2bConfig`` (pure, ``files``
  maps paths to texts); ``F2bConfig.jails() -> dict[str, Jail]``; ``F2bConfig.get(section, key)``
- ``parse_status(text) -> list[str]`` (jail list of ``fail2ban-client status``),
  ``parse_jail_status(text) -> JailStatus``
- ``parse_ports(spec) -> PortSet``; ``parse_failed_logins(text, now) -> FailedLogins``
- ``fail2ban(facts) -> Fail2ban``; ``banning(facts) -> Banning`` (every tool, sshd facts, failed logins)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs
from nectar_audit.facts.host import host
from nectar_audit.facts.ssh.sshd import sshd_listeners
from nectar_audit.facts.system import running, services

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

F2B = "/etc/fail2ban"
JAIL_TOP = f"{F2B}/jail"
SSHD_FILTER_TOP = f"{F2B}/filter.d/sshd"
STATUS_COMMAND = "banning.fail2ban"
LIBWRAP_COMMAND = "banning.libwrap"
FAILED_COMMAND = "banning.failed_logins"

SSHD_BINARIES = ("/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd")
SSHD_SESSION_BINARIES = (
    "/usr/lib/openssh/sshd-session",
    "/usr/libexec/openssh/sshd-session",
    "/usr/lib/ssh/sshd-session",
    "/usr/libexec/sshd-session",
)
LIBWRAP_GLOBS = (
    "/lib/*/libwrap.so.0",
    "/usr/lib/*/libwrap.so.0",
    "/lib64/libwrap.so.0",
    "/usr/lib64/libwrap.so.0",
    "/usr/lib/libwrap.so.0",
)
SSH_UNITS = (
    "/lib/systemd/system/ssh.service",
    "/usr/lib/systemd/system/ssh.service",
    "/lib/systemd/system/sshd.service",
    "/usr/lib/systemd/system/sshd.service",
    "/etc/systemd/system/sshd.service",
    "/etc/systemd/system/ssh.service",
)
SYSLOG_DAEMONS = (
    "/usr/sbin/rsyslogd",
    "/sbin/rsyslogd",
    "/usr/sbin/syslog-ng",
    "/sbin/syslog-ng",
    "/usr/sbin/syslogd",
    "/sbin/syslogd",
    "/usr/sbin/metalog",
)
LOG_FILES = (
    "/var/log/auth.log",
    "/var/log/secure",
    "/var/log/messages",
    "/var/log/syslog",
    "/var/log/sshd.log",
)
TOOL_BINARIES = (
    "/usr/bin/fail2ban-server",
    "/usr/bin/fail2ban-client",
    "/usr/sbin/sshguard",
    "/usr/bin/sshguard",
    "/usr/bin/crowdsec",
    "/usr/sbin/denyhosts",
    "/usr/bin/denyhosts",
    "/usr/local/bin/denyhosts.py",
    "/usr/bin/cs-firewall-bouncer",
    "/usr/bin/crowdsec-firewall-bouncer",
)
OTHER_CONFIGS = (
    "/etc/denyhosts.conf",
    "/etc/sshguard/sshguard.conf",
    "/etc/sshguard.conf",
    "/etc/crowdsec/acquis.yaml",
    "/etc/crowdsec/acquis.d/*.yaml",
    "/etc/crowdsec/acquis.d/*.yml",
)
SSHD_CONFIGS = ("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/*.conf")
ACTION_D = f"{F2B}/action.d"
F2B_LOG = "/var/log/fail2ban.log"
F2B_LOG_COMMAND = "banning.fail2ban_log"
UFW_CONF = "/etc/ufw/ufw.conf"
# The programs fail2ban's ban actions run that decide whether a ban can happen at all, looked for where
# fail2ban's PATH finds them; "sh" tells whether they were looked for (every host has one).
BAN_TOOLS = ("iptables", "ip6tables", "ipset", "nft", "firewall-cmd", "ufw", "shorewall", "shorewall6",
             "ip", "route", "pfctl", "ipfw", "sh")
TOOL_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

_STATUS_SNIPPET = r"""run=
for c in /proc/[0-9]*/comm; do
  { read -r n <"$c"; } 2>/dev/null || continue
  [ "$n" = fail2ban-server ] && { run=1; break; }
done
[ -n "$run" ] || { echo '#not-running'; exit 0; }
command -v fail2ban-client >/dev/null 2>&1 || { echo '#no-client'; exit 0; }
out=$(with_timeout 5 fail2ban-client status 2>&1); rc=$?
printf '#status %s\n%s\n' "$rc" "$out"
[ "$rc" = 0 ] || exit 0
list=${out##*Jail list:}
[ "$list" = "$out" ] && exit 0
n=0
IFS=',	 '
for j in $list; do
  case $j in *ssh*) ;; *) continue;; esac
  n=$((n+1)); [ $n -gt 4 ] && break
  o=$(with_timeout 5 fail2ban-client status "$j" 2>&1); r=$?
  printf '#jail %s %s\n%s\n' "$j" "$r" "$o"
done
:"""

_LIBWRAP_SNIPPET = r"""[ -d /etc/fail2ban ] || [ -f /etc/denyhosts.conf ] || exit 0
set --
for s in /usr/sbin/sshd /usr/bin/sshd /usr/lib/openssh/sshd-session /usr/libexec/openssh/sshd-session; do
  [ -f "$s" ] && set -- "$@" "$s"
done
[ $# -gt 0 ] || exit 0
grep -c -- libwrap "$@" /dev/null 2>/dev/null
:"""

_AWK = (
    r"/sshd(-session)?\[[0-9]+\]: (Failed password|Failed keyboard-interactive|Invalid user)/ "
    r'{ if ($1 ~ /^[0-9][0-9][0-9][0-9]-/) k = substr($1, 1, 10); else k = $1 " " $2; c[k]++ } '
    r"END { for (k in c) print c[k], k }"
)
_FAILED_SNIPPET = rf"""set --
for f in /var/log/auth.log.1 /var/log/auth.log /var/log/secure-*[0-9] /var/log/secure.1 /var/log/secure; do
  [ -f "$f" ] && [ -r "$f" ] && set -- "$@" "$f"
done
if [ $# -gt 0 ]; then
  echo "#files $*"
  with_timeout 5 awk '{_AWK}' "$@"
elif command -v journalctl >/dev/null 2>&1; then
  echo '#journal'
  with_timeout 5 journalctl -q --no-pager -o short-iso --since=-7d -t sshd -t sshd-session 2>/dev/null | awk '{_AWK}'
else
  echo '#none'
fi
:"""

# fail2ban's own record of actions that failed since the server last started (the last 20 lines).
_F2B_LOG_SNIPPET = r"""[ -f /var/log/fail2ban.log ] || { echo '#none'; exit 0; }
with_timeout 5 awk '/Starting Fail2ban/ { n = 0 }
  / ERROR / && (/Failed to execute/ || /returned [0-9]+/ || /stderr:/) { a[n++] = substr($0, 1, 400) }
  END { for (i = (n > 20 ? n - 20 : 0); i < n; i++) print a[i] }' /var/log/fail2ban.log"""

NEEDS = Needs(
    files=(
        f"{ACTION_D}/*.conf",
        f"{ACTION_D}/*.local",
        UFW_CONF,
        f"{F2B}/*.conf",
        f"{F2B}/*.local",
        f"{F2B}/jail.d/*.conf",
        f"{F2B}/jail.d/*.local",
        f"{F2B}/filter.d/sshd.conf",
        f"{F2B}/filter.d/sshd.local",
        f"{F2B}/filter.d/common.conf",
        f"{F2B}/filter.d/common.local",
        *OTHER_CONFIGS,
        *SSHD_CONFIGS,
    ),
    stats=(
        *SSHD_BINARIES,
        *SSHD_SESSION_BINARIES,
        *LIBWRAP_GLOBS,
        *SSH_UNITS,
        *SYSLOG_DAEMONS,
        *LOG_FILES,
        *TOOL_BINARIES,
        *(f"{d}/{t}" for d in TOOL_DIRS for t in BAN_TOOLS),
        "/etc/crowdsec/collections/*",
        "/etc/crowdsec/scenarios/*",
        "/etc/crowdsec/bouncers/*",
        "/usr/lib/python3/dist-packages/systemd/journal.py",
        "/usr/lib64/python3*/site-packages/systemd/journal.py",
        "/usr/lib/python3*/site-packages/systemd/journal.py",
    ),
    commands={
        STATUS_COMMAND: _STATUS_SNIPPET,
        LIBWRAP_COMMAND: _LIBWRAP_SNIPPET,
        FAILED_COMMAND: _FAILED_SNIPPET,
        F2B_LOG_COMMAND: _F2B_LOG_SNIPPET,
    },
)


# --------------------------------------------------------------------------------------------------
# fail2ban configuration (pure)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfEntry:
    section: str
    key: str
    value: str
    path: str
    line: int

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}"


@functools.lru_cache(maxsize=64)
def parse_conf(text: str, path: str) -> tuple[ConfEntry, ...]:
    """Python configparser syntax as fail2ban uses it: ``#``/``;`` comment lines, `` ;`` inline comments,
    ``key = value`` or ``key: value``, indented continuation lines, option names lower-cased.

    Remembered: the hosts of a fleet mostly carry the same stock jail.conf and filters."""
    out: list[ConfEntry] = []
    section: str | None = None
    cur: list[str] | None = None  # [key, value, line]
    for no, raw in enumerate(text.splitlines(), 1):
        if raw.strip() == "" or raw.lstrip().startswith(("#", ";")):
            if raw.strip() == "" and cur is not None:
                out.append(ConfEntry(section or "", cur[0], cur[1], path, int(cur[2])))
                cur = None
            continue
        line = re.split(r"\s;", raw, maxsplit=1)[0].rstrip()
        if raw[:1] in " \t" and cur is not None:
            cur[1] = (cur[1] + "\n" + line.strip()).strip("\n")
            continue
        if cur is not None:
            out.append(ConfEntry(section or "", cur[0], cur[1], path, int(cur[2])))
            cur = None
        m = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if m:
            section = m.group(1).strip()
            continue
        m = re.match(r"^\s*([^=:\s][^=:]*?)\s*[=:]\s?(.*)$", line)
        if m and section is not None:
            cur = [m.group(1).strip().lower(), m.group(2).strip(), str(no)]
    if cur is not None:
        out.append(ConfEntry(section or "", cur[0], cur[1], path, int(cur[2])))
    return tuple(out)


_INTERP_RE = re.compile(r"%\(([^)]+)\)s")
_TRUE = frozenset({"1", "yes", "true", "on"})
_FALSE = frozenset({"0", "no", "false", "off"})


@dataclass
class F2bConfig:
    files: list[str] = field(default_factory=list)  # in the order fail2ban reads them
    defaults: dict[str, ConfEntry] = field(default_factory=dict)
    sections: dict[str, dict[str, ConfEntry]] = field(default_factory=dict)
    known: dict[str, dict[str, ConfEntry]] = field(default_factory=dict)  # previous values (KNOWN/section)
    unreadable: dict[str, str] = field(default_factory=dict)

    def raw(self, section: str, key: str) -> ConfEntry | None:
        sec = self.sections.get(section, {})
        if key in sec:
            return sec[key]
        return self.defaults.get(key)

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        entry = self.raw(section, key)
        if entry is None:
            return default
        return self.interpolate(entry.value, section)

    def source(self, section: str, key: str) -> str | None:
        entry = self.raw(section, key)
        return entry.source if entry else None

    def interpolate(self, value: str, section: str) -> str:
        """configparser's BasicInterpolation with fail2ban's section/option names, bounded like configparser
        (depth 10) and in total work, so a self-referencing value cannot hang the audit."""
        budget = [200]
        return self._interp(value, section, 0, budget)

    def _interp(self, value: str, section: str, depth: int, budget: list[int]) -> str:
        if depth > 10 or "%(" not in value or budget[0] <= 0:
            return value.replace("%%", "%")

        def sub(m: re.Match[str]) -> str:
            budget[0] -= 1
            if budget[0] <= 0:
                return m.group(0)
            name = m.group(1)
            if name == "__name__":
                return section
            lookup: ConfEntry | None
            if "/" in name:
                sec, _, opt = name.partition("/")
                opt = opt.lower()
                if sec.lower() == "known":
                    lookup = self.known.get(section, {}).get(opt) or self.defaults.get(opt)
                elif sec.lower() == "default":
                    lookup = self.defaults.get(opt)
                else:
                    lookup = self.sections.get(sec, {}).get(opt) or self.defaults.get(opt)
            else:
                lookup = self.raw(section, name.lower())
            if lookup is None:
                return m.group(0)
            return self._interp(lookup.value, section, depth + 1, budget)

        out = _INTERP_RE.sub(sub, value)
        return out[:65536]

    def jail_names(self) -> list[str]:
        return [
            s
            for s in self.sections
            if s not in ("INCLUDES", "DEFAULT", "Definition", "Init") and not s.startswith("KNOWN/")
        ]

    def jails(self) -> dict[str, Jail]:
        out: dict[str, Jail] = {}
        for name in self.jail_names():
            out[name] = self.jail(name)
        return out

    def jail(self, name: str) -> Jail:
        def g(key: str, default: str = "") -> str:
            v = self.get(name, key)
            return default if v is None else v

        enabled_raw = g("enabled", "false").strip().lower()
        filter_raw = g("filter", name).strip()
        srcs = {
            k: s
            for k in (
                "enabled",
                "filter",
                "port",
                "logpath",
                "backend",
                "banaction",
                "action",
                "journalmatch",
            )
            if (s := self.source(name, k)) is not None
        }
        return Jail(
            name=name,
            enabled=enabled_raw in _TRUE,
            filter_raw=filter_raw,
            port=g("port", "0:65535").strip(),
            logpath=tuple(p.strip() for p in g("logpath").splitlines() if p.strip()),
            backend=g("backend", "auto").strip(),
            banaction=g("banaction", "iptables-multiport").strip(),
            action=g("action", "").strip(),
            journalmatch=self.get(name, "journalmatch"),
            sources=srcs,
        )


def _merge(cfg: F2bConfig, entries: Sequence[ConfEntry]) -> None:
    for e in entries:
        if e.section == "INCLUDES":
            continue
        if e.section == "DEFAULT":
            cfg.defaults[e.key] = e
            continue
        sec = cfg.sections.setdefault(e.section, {})
        if e.key in sec:
            cfg.known.setdefault(e.section, {})[e.key] = sec[e.key]
        sec[e.key] = e


def _with_local(path: str, files: Mapping[str, str]) -> list[str]:
    out = [path]
    if path.endswith(".conf"):
        local = path[:-5] + ".local"
        if local in files:
            out.append(local)
    return out


def _includes(
    path: str, files: Mapping[str, str], parsed: dict[str, tuple[ConfEntry, ...]], seen: tuple[str, ...]
) -> list[str]:
    if path not in files or path in seen or len(seen) > 20:
        return []
    entries = parsed.setdefault(path, parse_conf(files[path], path))
    before: list[str] = []
    after: list[str] = []
    base = path.rsplit("/", 1)[0]
    for e in entries:
        if e.section != "INCLUDES" or e.key not in ("before", "after"):
            continue
        for name in e.value.splitlines():
            name = name.strip()
            if not name:
                continue
            target = name if name.startswith("/") else f"{base}/{name}"
            if target in seen or target == path:
                continue
            expanded: list[str] = []
            for f in _with_local(target, files):
                expanded.extend(_includes(f, files, parsed, (*seen, path)))
            (before if e.key == "before" else after).extend(expanded)
    return [*before, path, *after]


def read_config(files: Mapping[str, str], top: str) -> F2bConfig:
    """Read ``top``.conf, ``top``.d/*.conf, ``top``.local, ``top``.d/*.local (those present in ``files``)."""
    d = top + ".d/"
    confs = sorted(p for p in files if p.startswith(d) and p.endswith(".conf") and "/" not in p[len(d) :])
    locals_ = sorted(p for p in files if p.startswith(d) and p.endswith(".local") and "/" not in p[len(d) :])
    order = [top + ".conf", *confs, top + ".local", *locals_]
    order = [p for p in order if p in files]
    parsed: dict[str, tuple[ConfEntry, ...]] = {}
    full: list[str] = []
    for name in order:
        for f in _with_local(name, {k: v for k, v in files.items() if k not in order or k == name}):
            for inc in _includes(f, files, parsed, ()):
                if inc not in full:
                    full.append(inc)
    cfg = F2bConfig(files=full)
    for path in full:
        _merge(cfg, parsed.setdefault(path, parse_conf(files[path], path)))
    return cfg


# -- ports ----------------------------------------------------------------------------------------
_SERVICES = {
    "ssh": 22,
    "http": 80,
    "https": 443,
    "smtp": 25,
    "ftp": 21,
    "imap": 143,
    "imaps": 993,
    "pop3": 110,
    "pop3s": 995,
    "submission": 587,
    "smtps": 465,
    "domain": 53,
}


@dataclass(frozen=True)
class PortSet:
    ranges: tuple[tuple[int, int], ...]
    unknown: tuple[str, ...] = ()  # names we could not resolve

    def covers(self, port: int) -> bool:
        return any(lo <= port <= hi for lo, hi in self.ranges)

    @property
    def all_ports(self) -> bool:
        return (
            self.covers(1) and self.covers(65535) and any(lo <= 1 and hi >= 65535 for lo, hi in self.ranges)
        )


def _port_value(word: str) -> int | None:
    word = word.strip().lower()
    if word.isdigit():
        return int(word)
    return _SERVICES.get(word)


def parse_ports(spec: str) -> PortSet:
    """fail2ban ``port``: ``ssh``, ``22,2222``, ``1000:2000`` (iptables range), ``0:65535``."""
    ranges: list[tuple[int, int]] = []
    unknown: list[str] = []
    for word in re.split(r"[,\s]+", spec.strip()):
        if not word:
            continue
        if ":" in word or ("-" in word and all(p.strip().isdigit() for p in word.split("-", 1))):
            lo_s, _, hi_s = word.replace("-", ":", 1).partition(":")
            lo, hi = _port_value(lo_s or "0"), _port_value(hi_s or "65535")
            if lo is None or hi is None:
                unknown.append(word)
            else:
                ranges.append((lo, hi))
            continue
        v = _port_value(word)
        if v is None:
            unknown.append(word)
        else:
            ranges.append((v, v))
    return PortSet(tuple(ranges), tuple(unknown))


# -- jails ----------------------------------------------------------------------------------------
# Ban actions that block every port of the offender (so the jail's ``port`` does not matter).
ALLPORTS_ACTIONS = frozenset(
    {
        "iptables-allports",
        "iptables-ipset-proto4",
        "iptables-ipset-proto6-allports",
        "nftables-allports",
        "firewallcmd-allports",
        "firewallcmd-ipset-allports",
        "shorewall",
        "shorewall-ipset-proto6",
        "route",
        "blackhole",
        "hostsdeny",
        "ufw",
        "pf-allports",
        "apf",
        "csf",
        "iptables-xt_recent-echo",
        "bsd-ipfw",
        "ipfilter",
        "npf",
        "netscaler",
        "mikrotik",
        "nginx-block-map",
        "osx-afctl",
    }
)
# Actions that only notify or report; they stop nobody.
NOTIFY_ACTIONS_RE = re.compile(
    r"^(?:mail|sendmail|complain|xarf|blocklist_de|abuseipdb|dshield|mynetwatchman|"
    r"badips|smtp|ipthreat|apprise|dummy|helpers|cloudflare|ntfy|discord)"
)


@dataclass(frozen=True)
class ActionRef:
    name: str
    params: str

    @property
    def all_ports(self) -> bool:
        if self.name in ALLPORTS_ACTIONS:
            return True
        p = self.params.replace(" ", "").lower()
        return "type=allports" in p or "actiontype=<allports>" in p or "actiontype=allports" in p

    @property
    def bans(self) -> bool:
        return not NOTIFY_ACTIONS_RE.match(self.name)


def parse_actions(action: str) -> list[ActionRef]:
    """``iptables-multiport[port="ssh", protocol="tcp"]`` lines -> action references."""
    out: list[ActionRef] = []
    for line in action.splitlines():
        line = line.strip()
        if not line:
            continue
        m = re.match(r"^([\w.-]+)(?:\[(.*)\])?\s*$", line, re.S)
        if m:
            out.append(ActionRef(m.group(1), m.group(2) or ""))
        else:
            name = re.split(r"[\[\s]", line, maxsplit=1)[0]
            out.append(ActionRef(name, line[len(name) :]))
    return out


def parse_params(params: str) -> dict[str, str]:
    """``port="ssh", protocol=tcp, name=sshd`` -> {key: value} (quoted values may hold commas).
    Scanned once from left to right (one expression with optional spaces on both sides was quadratic)."""
    out: dict[str, str] = {}
    n, i = len(params), 0
    while i < n:
        while i < n and (params[i].isspace() or params[i] == ","):
            i += 1
        start = i
        while i < n and (params[i].isalnum() or params[i] in "_.-"):
            i += 1
        key = params[start:i]
        while i < n and params[i].isspace():
            i += 1
        if not key or i >= n or params[i] != "=":
            nxt = params.find(",", i)  # not KEY=VALUE: skip to the next item
            i = n if nxt < 0 else nxt + 1
            continue
        i += 1
        while i < n and params[i].isspace():
            i += 1
        if i < n and params[i] in "\"'":
            quote, j = params[i], i + 1
            while j < n and params[j] != quote:
                j += 2 if params[j] == "\\" and quote == '"' else 1
            value, i = params[i + 1:min(j, n)], min(j + 1, n)
            nxt = params.find(",", i)
            i = n if nxt < 0 else nxt + 1
        else:
            nxt = params.find(",", i)
            end = n if nxt < 0 else nxt
            value, i = params[i:end].strip(), end + 1
        out[key.lower()] = value
    return out


_TAG = re.compile(r"<([^<>\s]+)>")
# Words of a command line that are the shell's own or plumbing, not the program that bans.
_SHELL_WORDS = frozenset({"for", "done", "if", "fi", "while", "until", "case", "esac", "in", "[", "[[",
                          "test", "true", "false", "echo", "printf", "read", "local", "set", "export", "exit",
                          "return", "eval"})
_LEADING_WORDS = frozenset({"do", "then", "else", "elif", "!", "exec", "time", "command"})


@dataclass(frozen=True)
class ActionCommands:
    """What one ban action runs: the ban programs of its actionstart and actionban (``BAN_TOOLS``)."""

    name: str
    found: bool  # its action.d file was read
    programs: tuple[str, ...]
    lines: tuple[str, ...] = ()  # actionstart/actionban with every tag resolved, for evidence
    source: str = ""  # where actionban is set


def action_commands(files: Mapping[str, str], ref: ActionRef, jail_name: str) -> ActionCommands:
    """Resolve a jail's action as fail2ban does: ``action.d/NAME.conf`` then ``.local`` with their
    [INCLUDES], ``%(x)s`` interpolation, and ``<tag>`` replaced from the jail's parameters, [Init] and
    [Definition] (``<section/key>`` too, nested tags innermost first)."""
    cfg = read_config(files, f"{ACTION_D}/{ref.name}")
    if not cfg.files:
        return ActionCommands(ref.name, False, ())
    values: dict[str, str] = {}
    for section, entries in cfg.sections.items():
        for key, entry in entries.items():
            values[f"{section}/{key}"] = cfg.interpolate(entry.value, section)
    # A plain <tag>: the jail's parameters, then [Init] (IPv4's: not [Init?family=inet6]), then [Definition].
    for section in ("Definition", "Init"):
        for key in cfg.sections.get(section, {}):
            values[key] = values[f"{section}/{key}"]
    values["name"] = jail_name  # fail2ban names an action's chains and sets after its jail
    values.update(parse_params(ref.params))
    lines: list[str] = []
    for key in ("actionstart", "actionban"):
        text = values.get(f"Definition/{key}", "")
        for _ in range(10):
            new = _TAG.sub(lambda m: values.get(m.group(1), m.group(0)), text)
            if new == text:
                break
            text = new[:65536]
        lines.extend(line.strip() for line in text.splitlines() if line.strip())
    programs: list[str] = []
    # Escaped characters (nft's "\{") are arguments, never the shell's separators.
    script = re.sub(r"\\.", "_", "\n".join(lines))
    for command in re.split(r"[;\n|&(){}`]+", script):
        words = command.split()
        while words and (words[0] in _LEADING_WORDS or ("=" in words[0] and not words[0].startswith("="))):
            words = words[1:]  # "do iptables …", "then nft …", VAR=value before the program
        if not words or words[0] in _SHELL_WORDS:
            continue
        program = words[0].rsplit("/", 1)[-1]
        if program in BAN_TOOLS and program != "sh" and program not in programs:
            programs.append(program)
    ban = cfg.raw("Definition", "actionban")
    return ActionCommands(ref.name, True, tuple(programs), tuple(lines), ban.source if ban else "")


@dataclass(frozen=True)
class Jail:
    name: str
    enabled: bool
    filter_raw: str
    port: str
    logpath: tuple[str, ...]
    backend: str
    banaction: str
    action: str
    journalmatch: str | None
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def filter(self) -> str:
        return re.split(r"[\[\s]", self.filter_raw, maxsplit=1)[0]

    @property
    def watches_sshd(self) -> bool:
        return self.filter in ("sshd", "sshd-ddos", "sshd-aggressive")

    @property
    def uses_journal(self) -> bool:
        return self.backend.split("[", 1)[0].strip().lower() == "systemd"

    @property
    def actions(self) -> list[ActionRef]:
        return parse_actions(self.action or self.banaction)

    def source(self, key: str) -> str:
        return self.sources.get(key, "fail2ban default")


# --------------------------------------------------------------------------------------------------
# Live status (pure)
# --------------------------------------------------------------------------------------------------
def parse_status(text: str) -> list[str]:
    """``fail2ban-client status`` -> jail names."""
    m = re.search(r"Jail list:\s*(.*)$", text, re.M)
    if not m:
        return []
    return [j for j in re.split(r"[,\s]+", m.group(1).strip()) if j]


@dataclass(frozen=True)
class JailStatus:
    name: str
    files: tuple[str, ...] = ()
    journal_matches: str | None = None
    currently_failed: int | None = None
    total_failed: int | None = None
    currently_banned: int | None = None
    total_banned: int | None = None


def _count(text: str, label: str) -> int | None:
    m = re.search(rf"{label}:\s*(\d+)", text)
    return int(m.group(1)) if m else None


def parse_jail_status(name: str, text: str) -> JailStatus:
    files: tuple[str, ...] = ()
    m = re.search(r"File list:\s*(.*)$", text, re.M)
    if m:
        files = tuple(m.group(1).split())
    jm = re.search(r"Journal matches:\s*(.*)$", text, re.M)
    return JailStatus(
        name=name,
        files=files,
        journal_matches=jm.group(1).strip() if jm else None,
        currently_failed=_count(text, "Currently failed"),
        total_failed=_count(text, "Total failed"),
        currently_banned=_count(text, "Currently banned"),
        total_banned=_count(text, "Total banned"),
    )


@dataclass
class LiveStatus:
    state: str  # not-running | no-client | unreachable | ok | unknown
    detail: str = ""
    jails: list[str] = field(default_factory=list)
    jail_status: dict[str, JailStatus] = field(default_factory=dict)


def parse_status_command(stdout: str) -> LiveStatus:
    text = stdout.strip("\n")
    if text.startswith("#not-running"):
        return LiveStatus("not-running")
    if text.startswith("#no-client"):
        return LiveStatus("no-client")
    m = re.match(r"#status (-?\d+)\n?", text)
    if not m:
        return LiveStatus("unknown", text[:200])
    rest = text[m.end() :]
    main, _, jails_text = rest.partition("\n#jail ")
    if m.group(1) != "0":
        return LiveStatus("unreachable", main.strip()[:300])
    out = LiveStatus("ok", main.strip()[:300], parse_status(main))
    if jails_text:
        for chunk in ("#jail " + jails_text).split("\n#jail ")[0:]:
            chunk = chunk[len("#jail ") :] if chunk.startswith("#jail ") else chunk
            head, _, body = chunk.partition("\n")
            parts = head.split()
            if len(parts) >= 2 and parts[1] == "0":
                out.jail_status[parts[0]] = parse_jail_status(parts[0], body)
    return out


# --------------------------------------------------------------------------------------------------
# Failed logins (pure)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FailedLogins:
    count: int
    source: str  # "journal" or the files read
    days: int = 7


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


def parse_failed_logins(text: str, now: datetime, days: int = 7) -> FailedLogins | None:
    lines = text.strip("\n").splitlines()
    if not lines or lines[0].startswith("#none"):
        return None
    head = lines[0]
    if head.startswith("#files "):
        source = head[len("#files ") :]
    elif head.startswith("#journal"):
        source = "journal"
    else:
        return None
    since = (now - timedelta(days=days)).date()
    total = 0
    for line in lines[1:]:
        parts = line.split()
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        n = int(parts[0])
        day = None
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", parts[1]):
            try:
                day = datetime.strptime(parts[1], "%Y-%m-%d").date()
            except ValueError:
                continue
        elif len(parts) >= 3 and parts[1][:3].lower() in _MONTHS and parts[2].isdigit():
            try:
                day = now.replace(month=_MONTHS[parts[1][:3].lower()], day=int(parts[2])).date()
            except ValueError:
                continue
            if day > now.date():
                day = day.replace(year=day.year - 1)
        if day is None:
            continue
        if day >= since:
            total += n
    return FailedLogins(total, source, days)


# --------------------------------------------------------------------------------------------------
# Minimal sshd port reading (used when the SSH facts module offers no listener list)
# --------------------------------------------------------------------------------------------------
def sshd_ports_from_config(texts: Mapping[str, str]) -> tuple[list[int], str]:
    """``Port`` lines (and ``ListenAddress host:port``) outside Match blocks; 22 when none."""
    ports: list[int] = []
    srcs: list[str] = []
    for path, text in texts.items():
        in_match = False
        for no, raw in enumerate(text.splitlines(), 1):
            words = raw.split("#", 1)[0].split()
            if not words:
                continue
            kw = words[0].lower()
            if kw == "match":
                in_match = True
                continue
            if in_match or len(words) < 2:
                continue
            if kw == "port" and words[1].isdigit():
                ports.append(int(words[1]))
                srcs.append(f"{path}:{no}")
            elif kw == "listenaddress":
                m = re.match(r"^(?:\[[^\]]+\]|[^:\s]+):(\d+)$", words[1])
                if m:
                    ports.append(int(m.group(1)))
                    srcs.append(f"{path}:{no}")
    if not ports:
        return [22], "OpenSSH default (no Port line)"
    return sorted(set(ports)), ", ".join(srcs)


# --------------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------------
@dataclass
class SshdFilter:
    daemon_re: str | None
    journalmatch: str | None
    sources: list[str]

    def matches_daemon(self, name: str) -> bool | None:
        if self.daemon_re is None:
            return None
        try:
            return re.fullmatch(self.daemon_re, name) is not None
        except re.error:
            return None


@dataclass
class Fail2ban:
    installed: bool
    config: F2bConfig
    jails: dict[str, Jail]
    live: LiveStatus | None  # None offline or when not gathered
    running: bool | None  # None: unknown (offline)
    enabled_at_boot: bool | None
    sshd_filter: SshdFilter
    errors: list[str] = field(default_factory=list)
    files: Mapping[str, str] = field(default_factory=dict, repr=False)  # everything under /etc/fail2ban
    tools: dict[str, str] | None = None  # ban program -> where it is (BAN_TOOLS); None: not looked for
    log_errors: list[str] | None = None  # fail2ban.log's failed actions since the last start; None: unread
    ufw_enabled: bool | None = None  # /etc/ufw/ufw.conf ENABLED=yes
    firewalld_up: bool | None = None  # live: firewalld runs; offline: it starts at boot

    @property
    def sshd_jails(self) -> list[Jail]:
        return [j for j in self.jails.values() if j.watches_sshd]

    def commands(self, jail: Jail, ref: ActionRef) -> ActionCommands:
        return action_commands(self.files, ref, jail.name)

    def failed_actions(self, jail: str, action: str) -> list[str]:
        """fail2ban.log lines saying an action of ``jail`` failed (live, since fail2ban last started)."""
        tag = f"jail '{jail}' action '{action}'"
        return [line for line in self.log_errors or [] if tag in line]


def _files_under(facts: Facts, prefix: str, errors: list[str]) -> dict[str, str]:
    b = facts.bundle
    out: dict[str, str] = {}
    for path in b.glob(prefix + "*"):
        try:
            text = b.text(path)
        except EvidenceError as exc:
            errors.append(str(exc))
            continue
        if text is not None:
            out[path] = text
    return out


def _enabled(facts: Facts, unit: str) -> bool | None:
    try:
        return facts.get(services).is_enabled(unit)
    except Exception:
        return None


def _running(facts: Facts, *names: str) -> bool | None:
    if not facts.bundle.live:
        return None
    try:
        return running(facts, *names)
    except Exception:
        return None


def fail2ban(facts: Facts) -> Fail2ban:
    b = facts.bundle
    errors: list[str] = []
    files = _files_under(facts, F2B + "/", errors)
    installed = f"{JAIL_TOP}.conf" in files or any(p in b.stats for p in TOOL_BINARIES[:2])
    cfg = read_config(files, JAIL_TOP)
    filt = read_config(files, SSHD_FILTER_TOP)
    daemon = filt.get("DEFAULT", "_daemon") if "_daemon" in filt.defaults else None
    if daemon is None:
        for sec in ("Definition", "Init"):
            if filt.raw(sec, "_daemon") is not None:
                daemon = filt.get(sec, "_daemon")
    jm = filt.get("Definition", "journalmatch")
    sources = [e.source for e in (filt.defaults.get("_daemon"), filt.raw("Definition", "journalmatch")) if e]
    live: LiveStatus | None = None
    running: bool | None = None
    if b.live:
        rec = b.command(STATUS_COMMAND)
        if rec is not None and not rec.missing:
            live = parse_status_command(rec.stdout)
            running = live.state not in ("not-running",)
        proc = _running(facts, "fail2ban-server")
        if proc is not None:
            running = proc
    tools: dict[str, str] | None = None
    if any(f"{d}/sh" in b.stats for d in TOOL_DIRS):
        tools = {}
        for tool in BAN_TOOLS:
            where = next((f"{d}/{tool}" for d in TOOL_DIRS if f"{d}/{tool}" in b.stats), None)
            if where is not None:
                tools[tool] = where
    log_errors: list[str] | None = None
    rec = b.command(F2B_LOG_COMMAND) if b.live else None
    if rec is not None and rec.rc == 0 and (b.is_root or b.uid is None) and not rec.stdout.startswith("#none"):
        log_errors = [line for line in rec.stdout.splitlines() if line.strip()]
    try:
        ufw_text = b.text(UFW_CONF)
    except EvidenceError:
        ufw_text = None
    ufw_enabled = None if ufw_text is None else bool(re.search(r"^\s*ENABLED\s*=\s*yes\b", ufw_text, re.M | re.I))
    firewalld_up = _running(facts, "firewalld") if b.live else _enabled(facts, "firewalld.service")
    return Fail2ban(
        installed=installed,
        config=cfg,
        jails=cfg.jails() if installed or cfg.files else {},
        live=live,
        running=running,
        enabled_at_boot=_enabled(facts, "fail2ban.service") if installed else None,
        sshd_filter=SshdFilter(daemon, jm, sources),
        errors=errors,
        files=files,
        tools=tools,
        log_errors=log_errors,
        ufw_enabled=ufw_enabled,
        firewalld_up=firewalld_up,
    )


@dataclass
class OtherTool:
    name: str
    installed: bool
    running: bool | None
    enabled_at_boot: bool | None
    detail: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class Banning:
    sshd_installed: bool
    sshd_ports: list[int]
    sshd_ports_source: str
    sshd_unit: str  # ssh.service or sshd.service
    sshd_session: bool  # OpenSSH 9.8+ per-session binary present
    libwrap: bool | None  # sshd honours /etc/hosts.deny; None unknown
    libwrap_source: str
    syslog_daemon: bool | None  # something writes the classic log files
    log_files: dict[str, int]  # existing classic log file -> mtime
    fail2ban: Fail2ban
    others: list[OtherTool]
    failed_logins: FailedLogins | None
    python_systemd: bool | None


def _sshd_ports(facts: Facts) -> tuple[list[int], str]:
    try:
        info = facts.get(sshd_listeners)
        ports = info.all_ports
        if ports:
            where = sorted({p.where for p in info.ports})
            if info.running:
                where.append(info.running_source or "running sshd")
            return ports, "; ".join(where) or "sshd listeners"
    except Exception:  # the SSH facts could not be derived: fall back to the Port lines
        pass
    b = facts.bundle
    texts: dict[str, str] = {}
    for pattern in SSHD_CONFIGS:
        for path in b.glob(pattern):
            try:
                text = b.text(path)
            except EvidenceError:
                continue
            if text is not None:
                texts[path] = text
    return sshd_ports_from_config(texts)


def _libwrap(facts: Facts, family: str, major: int | None) -> tuple[bool | None, str]:
    b = facts.bundle
    rec = b.command(LIBWRAP_COMMAND) if b.live else None
    if rec is not None and rec.stdout.strip():
        counts = [int(x) for x in re.findall(r":(\d+)$", rec.stdout, re.M)]
        if counts:
            return any(c > 0 for c in counts), "command: grep -c libwrap " + " ".join(
                re.findall(r"^(\S+):\d+$", rec.stdout, re.M)
            )
    if family in ("rhel", "fedora") and (family == "fedora" or (major or 0) >= 8):
        return False, "RHEL 8 and later and Fedora ship no TCP wrappers (libwrap)"
    if not any(b.stat_glob(g) for g in LIBWRAP_GLOBS):
        return False, "libwrap.so.0 is not installed"
    return None, "cannot tell offline whether sshd is linked with libwrap"


def _other_tools(facts: Facts) -> list[OtherTool]:
    b = facts.bundle
    out: list[OtherTool] = []

    def text(path: str) -> str | None:
        try:
            return b.text(path)
        except EvidenceError:
            return None

    # DenyHosts: writes /etc/hosts.deny (needs libwrap in sshd) unless IPTABLES is set.
    dh_conf = text("/etc/denyhosts.conf")
    if dh_conf is not None or any(p in b.stats for p in ("/usr/sbin/denyhosts", "/usr/bin/denyhosts")):
        t = OtherTool(
            "DenyHosts", True, _running(facts, "denyhosts", "denyhosts.py"), _enabled(facts, "denyhosts")
        )
        if dh_conf and re.search(r"^\s*IPTABLES\s*=\s*\S", dh_conf, re.M):
            t.detail = "iptables"
        else:
            t.detail = "hosts.deny"
        out.append(t)
    # sshguard
    sg_conf = text("/etc/sshguard/sshguard.conf") or text("/etc/sshguard.conf")
    if sg_conf is not None or any(p in b.stats for p in ("/usr/sbin/sshguard", "/usr/bin/sshguard")):
        out.append(
            OtherTool(
                "sshguard", True, _running(facts, "sshguard", "sshg-blocker"), _enabled(facts, "sshguard")
            )
        )
    # CrowdSec: the engine, a bouncer that enforces its decisions, and the sshd scenarios.
    if "/usr/bin/crowdsec" in b.stats or b.stat_glob("/etc/crowdsec/collections/*"):
        t = OtherTool("CrowdSec", True, _running(facts, "crowdsec"), _enabled(facts, "crowdsec"))
        has_ssh = any(
            "ssh" in p.rsplit("/", 1)[-1]
            for p in b.stat_glob("/etc/crowdsec/collections/*") + b.stat_glob("/etc/crowdsec/scenarios/*")
        )
        if not has_ssh:
            t.problems.append(
                "the crowdsecurity/sshd collection is not installed (cscli collections install "
                "crowdsecurity/sshd)"
            )
        bouncer_files = b.stat_glob("/etc/crowdsec/bouncers/*")
        bouncer_run = _running(facts, "crowdsec-firewall-bouncer", "cs-firewall-bouncer")
        if not bouncer_files and not bouncer_run:
            t.problems.append(
                "no bouncer is installed: CrowdSec detects attacks but blocks nobody "
                "(install crowdsec-firewall-bouncer-nftables or -iptables)"
            )
        elif bouncer_run is False:
            t.problems.append("the firewall bouncer is not running: CrowdSec's decisions are not enforced")
        out.append(t)
    return out


def banning(facts: Facts) -> Banning:
    b = facts.bundle
    try:
        h = facts.get(host)
        family, major = h.family, h.major_version
    except Exception:
        family, major = "unknown", None
    ports, ports_src = _sshd_ports(facts)
    unit = (
        "ssh.service"
        if any(p in b.stats for p in SSH_UNITS if p.endswith("/ssh.service"))
        else "sshd.service"
    )
    if not any(p in b.stats for p in SSH_UNITS) and family == "debian":
        unit = "ssh.service"
    libwrap, libwrap_src = _libwrap(facts, family, major)
    syslog: bool | None
    if b.live:
        syslog = _running(facts, "rsyslogd", "syslog-ng", "syslogd", "metalog")
    else:
        syslog = any(p in b.stats for p in SYSLOG_DAEMONS)
    now = _now(b.gathered_at)
    failed = None
    rec = b.command(FAILED_COMMAND) if b.live else None
    if rec is not None and not rec.missing and (b.is_root or b.uid is None):
        failed = parse_failed_logins(rec.stdout, now)
    py_systemd = any(
        b.stat_glob(p)
        for p in (
            "/usr/lib/python3/dist-packages/systemd/journal.py",
            "/usr/lib64/python3*/site-packages/systemd/journal.py",
            "/usr/lib/python3*/site-packages/systemd/journal.py",
        )
    )
    return Banning(
        sshd_installed=any(p in b.stats for p in SSHD_BINARIES),
        sshd_ports=ports,
        sshd_ports_source=ports_src,
        sshd_unit=unit,
        sshd_session=any(p in b.stats for p in SSHD_SESSION_BINARIES),
        libwrap=libwrap,
        libwrap_source=libwrap_src,
        syslog_daemon=syslog,
        log_files={p: b.stats[p].mtime for p in LOG_FILES if p in b.stats},
        fail2ban=facts.get(fail2ban),
        others=_other_tools(facts),
        failed_logins=failed,
        python_systemd=py_systemd,
    )


def _now(gathered_at: str) -> datetime:
    try:
        t = datetime.fromisoformat(gathered_at)
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.now(timezone.utc)
