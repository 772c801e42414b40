"""The parsed sshd configuration and its effective settings per connection (servconf.c semantics)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nectar_audit.facts.accounts import PasswdEntry
from nectar_audit.facts.ssh.files import GENERIC_USER, MAX_CONTEXTS, PROBE_ADDR, PROBE_ADDR6
from nectar_audit.facts.ssh.keywords import (
    ACCUMULATE,
    DEFAULTS,
    DISPLAY_NAMES,
    FLAG_VALUES,
    GLOBAL_ONLY,
    MATCH_CRITERIA,
    normalize_value,
)
from nectar_audit.facts.ssh.match import (
    Context,
    Criterion,
    address_representatives,
    criterion_matches,
    host_representatives,
    match_pattern,
)
from nectar_audit.facts.ssh.units import ListenPort, listenaddress_port, port_of


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
    accounts: dict[str, PasswdEntry] = field(default_factory=dict)
    # Accounts without a session shell (nologin, false) that sshd would still authenticate with a
    # password: not locked, with a usable (or empty) password. sshd never looks at the shell before
    # authenticating, and ForceCommand internal-sftp needs none.
    password_accounts: frozenset[str] = frozenset()
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
        """Accounts sshd may let in, root first, in passwd order: those with a session shell, and those
        without one that it would authenticate with a password (``password_accounts``)."""
        names = [a.name for a in self.accounts.values()
                 if a.name != "root" and (a.has_session_shell or a.name in self.password_accounts)]
        return ["root", *names]

    def session_shell(self, user: str) -> bool:
        """Whether ``user`` gets a shell session (unknown accounts and the probe account: yes)."""
        acct = self.accounts.get(user)
        return acct is None or acct.has_session_shell

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
                port = port_of(value.split()[0]) if value.split() else None
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
            port = listenaddress_port(d.args[0]) if d.args else None
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
    if keyword == "permitrootlogin" or value.lower() in FLAG_VALUES:
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
