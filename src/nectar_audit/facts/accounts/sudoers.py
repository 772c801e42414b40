"""sudo's policy: /etc/sudoers and everything it includes, resolved to who may run what as root.

Parsing follows sudoers(5): ``#include``/``@include`` (relative paths are relative to the including
file's directory, ``%h`` is the short host name), ``#includedir``/``@includedir`` (files sorted, names
containing ``.`` or ending in ``~`` skipped), backslash line continuations, comments, the four alias
kinds, ``%group`` / ``%#gid`` / ``#uid`` / ``%:group`` / ``+netgroup``, ``!`` negation (last match wins),
``ALL``, runas specs, options, tags (inherited along a Cmnd_Spec_List) and ``Defaults`` in its
global, ``@host``, ``:user``, ``>runas`` and ``!cmnd`` forms (only ``authenticate`` matters here).

Public API:
- ``parse_sudoers(files: Mapping[path, text | None], root="/etc/sudoers") -> Policy`` (pure)
- ``sudoers(facts) -> Policy`` (raises EvidenceError when /etc/sudoers cannot be read)
- ``sudo_rights(facts) -> SudoRights``: per account (via accounts facts) the effective grant of ALL
  commands as root, whether it needs a password, and grants of root-equivalent single commands.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from nectar_audit.evidence import Bundle, EvidenceError, Follow, Needs
from nectar_audit.facts.accounts.users import Accounts, accounts
from nectar_audit.facts.host import host

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

SUDOERS = "/etc/sudoers"
SUDOERS_D = "/etc/sudoers.d"
# What evidence gathered before includes were followed holds: an include elsewhere was not gathered.
FILE_GLOBS = (SUDOERS, f"{SUDOERS_D}/*", "/usr/local/etc/sudoers", "/usr/local/etc/sudoers.d/*",
              "/etc/sudoers.local", "/etc/sudo/sudoers", "/etc/sudo/sudoers.d/*")
SUDO_BINARIES = ("/usr/bin/sudo", "/bin/sudo", "/usr/local/bin/sudo", "/usr/sbin/sudo")

MAX_INCLUDE_DEPTH = 128  # sudo's own limit
MAX_POLICY_FILES = 512
FOLLOW_NAME = "sudoers.includes"

_KEY_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)
_CRYPT = re.compile(r"\$(?:1|2[aby]|5|6|7|y|gy)\$[^\s:]+")


def sanitize_sudoers(data: bytes) -> str:
    """A file an include names may be any file: key blocks and password hashes never leave the host
    (sudo would reject such a file as a syntax error; the line numbers stay)."""
    text = data.decode("utf-8", "replace")
    text = _KEY_BLOCK.sub(lambda m: "\n" * m.group(0).count("\n") + "<private key withheld>", text)
    return _CRYPT.sub("{hash}", text)


# sudo reads /etc/sudoers and what its include lines name, wherever they point: the gatherer follows
# them itself (sudoers(5)'s rules) in the same pass, offline and live.
FOLLOW = Follow(
    name=FOLLOW_NAME,
    roots=(SUDOERS,),
    file_directives=("#include", "@include"),
    dir_directives=("#includedir", "@includedir"),
    dir_skip=("*.*", "*~"),
    max_depth=MAX_INCLUDE_DEPTH,
    max_files=MAX_POLICY_FILES,
    sanitizer=sanitize_sudoers,
)

NEEDS = Needs(
    files=("/etc/nsswitch.conf",),
    stats=(SUDOERS, SUDOERS_D, f"{SUDOERS_D}/*", *SUDO_BINARIES),
    follows=(FOLLOW,),
)
TAGS = frozenset({"NOPASSWD", "PASSWD", "NOEXEC", "EXEC", "SETENV", "NOSETENV", "LOG_INPUT", "NOLOG_INPUT",
                  "LOG_OUTPUT", "NOLOG_OUTPUT", "MAIL", "NOMAIL", "FOLLOW", "NOFOLLOW", "INTERCEPT",
                  "NOINTERCEPT"})
OPTIONS = frozenset({"ROLE", "TYPE", "CHROOT", "CWD", "TIMEOUT", "NOTBEFORE", "NOTAFTER", "APPARMOR_PROFILE",
                     "PRIVS", "LIMITPRIVS"})
ALIAS_KINDS = {"User_Alias": "user", "Runas_Alias": "runas", "Host_Alias": "host", "Cmnd_Alias": "cmnd",
               "Cmd_Alias": "cmnd"}
_ALIAS_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_TAG_OR_OPTION = re.compile(r"([A-Z_]+)\s*(=|:)")
_DIGEST = re.compile(r"(sha224|sha256|sha384|sha512):\S+\s+")

# Commands that give a root shell or arbitrary root file writes when run through sudo.
SHELL_EQUIVALENT = frozenset({
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "su", "sudo", "env", "doas",
    "vi", "vim", "nvim", "rvim", "view", "nano", "emacs", "ed", "less", "more", "man", "find", "awk", "gawk",
    "mawk", "perl", "python", "python2", "python3", "ruby", "lua", "node", "php", "tee", "cp", "mv", "dd",
    "chmod", "chown", "tar", "rsync", "docker", "podman", "apt", "apt-get", "dnf", "yum", "rpm", "dpkg",
    "pip", "pip3", "visudo", "script", "nsenter", "chroot", "systemd-run", "crontab", "mount", "busybox",
})


# --------------------------------------------------------------------------------------------------
# Parsed policy
# --------------------------------------------------------------------------------------------------
_PREFIX = {"uid": "#", "group": "%", "gid": "%#", "nonunix_group": "%:", "netgroup": "+"}


@dataclass(frozen=True)
class Item:
    """One member of a user, host, runas or command list."""

    kind: str  # all | alias | user | uid | group | gid | nonunix_group | netgroup | host | cmnd
    value: str
    negated: bool = False

    def __str__(self) -> str:
        prefix = _PREFIX.get(self.kind, "")
        return ("!" if self.negated else "") + prefix + self.value


@dataclass(frozen=True)
class CmndSpec:
    runas_users: tuple[Item, ...] | None  # None: no "(…)" given, i.e. root
    runas_groups: tuple[Item, ...] | None
    tags: tuple[tuple[str, bool], ...]  # ("authenticate", False) for NOPASSWD …
    command: Item

    @property
    def nopasswd(self) -> bool:
        return dict(self.tags).get("authenticate") is False

    @property
    def authenticate_tag(self) -> bool | None:
        return dict(self.tags).get("authenticate")


@dataclass(frozen=True)
class Privilege:
    hosts: tuple[Item, ...]
    cmnds: tuple[CmndSpec, ...]


@dataclass(frozen=True)
class UserSpec:
    source: str  # path:line
    text: str
    users: tuple[Item, ...]
    privileges: tuple[Privilege, ...]


@dataclass(frozen=True)
class DefaultsEntry:
    source: str
    text: str
    scope: str  # "" | "@" host | ":" user | ">" runas | "!" cmnd
    targets: tuple[Item, ...]
    settings: tuple[tuple[str, str | None, bool], ...]  # (name, value, negated)

    def flag(self, name: str) -> bool | None:
        """The last setting of boolean ``name`` in this line: ``name`` → True, ``!name`` → False."""
        value: bool | None = None
        for key, val, neg in self.settings:
            if key != name:
                continue
            if val is None:
                value = not neg
            elif val.lower() in ("false", "off", "no", "0"):
                value = neg
            else:
                value = not neg
        return value


@dataclass(frozen=True)
class Problem:
    source: str
    message: str
    # "syntax": sudo would skip or reject the line; "missing": an include we could not read;
    # "loop": an include cycle (sudo stops at depth 128)
    kind: str


@dataclass
class Policy:
    files: list[str] = field(default_factory=list)
    specs: list[UserSpec] = field(default_factory=list)
    defaults: list[DefaultsEntry] = field(default_factory=list)
    aliases: dict[str, dict[str, tuple[tuple[Item, ...], str]]] = field(
        default_factory=lambda: {"user": {}, "runas": {}, "host": {}, "cmnd": {}})
    problems: list[Problem] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Lexing helpers
# --------------------------------------------------------------------------------------------------
class _SyntaxError(ValueError):
    pass


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations and strip comments; (first physical line number, text)."""
    out: list[tuple[int, str]] = []
    buf = ""
    start = 0
    for no, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = no
        if raw.endswith("\\") and not raw.endswith("\\\\"):
            buf += raw[:-1]
            continue
        buf += raw
        line = _strip_comment(buf).strip()
        buf = ""
        if line:
            out.append((start, line))
    if buf:
        line = _strip_comment(buf).strip()
        if line:
            out.append((start, line))
    return out


def _strip_comment(line: str) -> str:
    """``#`` starts a comment unless it is an include directive, a ``#uid`` or ``%#gid``, or escaped."""
    stripped = line.lstrip()
    if re.match(r"#include(dir)?\s", stripped):
        return line
    i = 0
    quoted = False
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            nxt = line[i + 1:i + 2]
            if not (nxt.isdigit() or (nxt == "-" and line[i + 2:i + 3].isdigit())):
                return line[:i]
        i += 1
    return line


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def peek(self, n: int = 1) -> str:
        return self.s[self.i:self.i + n]

    def eof(self) -> bool:
        self.ws()
        return self.i >= len(self.s)

    def expect(self, ch: str) -> None:
        self.ws()
        if self.peek() != ch:
            raise _SyntaxError(f"expected {ch!r} at column {self.i + 1}")
        self.i += 1

    def word(self, stops: str) -> str:
        """A possibly quoted/escaped word ending at whitespace or one of ``stops``."""
        self.ws()
        out = []
        if self.peek() == '"':
            self.i += 1
            while self.i < len(self.s) and self.s[self.i] != '"':
                if self.s[self.i] == "\\" and self.i + 1 < len(self.s):
                    self.i += 1
                out.append(self.s[self.i])
                self.i += 1
            if self.i >= len(self.s):
                raise _SyntaxError("unterminated quote")
            self.i += 1
            return "".join(out)
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if ch in " \t" or ch in stops:
                break
            out.append(ch)
            self.i += 1
        return "".join(out)


def _item(token: str, kind_default: str) -> Item:
    negated = False
    while token.startswith("!"):
        negated = not negated
        token = token[1:].lstrip()
    if not token:
        raise _SyntaxError("empty list item")
    if token == "ALL":
        return Item("all", "ALL", negated)
    if _ALIAS_NAME.match(token) and kind_default != "cmnd":
        return Item("alias", token, negated)
    if kind_default in ("user", "runas"):
        if token.startswith("%:#"):
            return Item("nonunix_group", token[2:], negated)
        if token.startswith("%:"):
            return Item("nonunix_group", token[2:], negated)
        if token.startswith("%#"):
            return Item("gid", token[2:], negated)
        if token.startswith("%"):
            return Item("group", token[1:], negated)
        if token.startswith("#"):
            return Item("uid", token[1:], negated)
        if token.startswith("+"):
            return Item("netgroup", token[1:], negated)
        return Item("user", token, negated)
    if kind_default == "host":
        if token.startswith("+"):
            return Item("netgroup", token[1:], negated)
        return Item("host", token, negated)
    return Item("cmnd", token, negated)


def _list(sc: _Scanner, kind: str, stops: str) -> tuple[Item, ...]:
    """``item [, item]…``; items end at whitespace, ``,`` or a stop character."""
    items = []
    while True:
        sc.ws()
        neg = ""
        while sc.peek() == "!":
            neg += "!"
            sc.i += 1
            sc.ws()
        token = sc.word("," + stops)
        if not token:
            raise _SyntaxError(f"expected a {kind} at column {sc.i + 1}")
        items.append(_item(neg + token, kind))
        sc.ws()
        if sc.peek() == ",":
            sc.i += 1
            continue
        return tuple(items)


# --------------------------------------------------------------------------------------------------
# Line parsers
# --------------------------------------------------------------------------------------------------
def _parse_alias(kind: str, rest: str) -> list[tuple[str, tuple[Item, ...]]]:
    """``NAME = a, b : NAME2 = c``."""
    out = []
    sc = _Scanner(rest)
    while True:
        sc.ws()
        name = sc.word("=:")
        if not _ALIAS_NAME.match(name or ""):
            raise _SyntaxError(f"bad alias name {name!r}")
        sc.expect("=")
        if kind == "cmnd":
            parts, consumed = _split_top(sc.s[sc.i:], ":")
            items = tuple(_cmnd_item(text) for text in parts)
            sc.i += consumed
        else:
            items = _list(sc, kind, ":")
        out.append((name, items))
        sc.ws()
        if sc.peek() == ":":
            sc.i += 1
            continue
        if not sc.eof():
            raise _SyntaxError(f"unexpected {sc.s[sc.i:sc.i + 10]!r}")
        return out


def _split_top(text: str, stop: str) -> tuple[list[str], int]:
    """Split a command list on unescaped commas up to an unescaped ``stop``; (parts, chars consumed)."""
    parts: list[str] = []
    buf = []
    i = 0
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i:i + 2])
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if depth == 0 and ch == ",":
            parts.append("".join(buf))
            buf = []
            i += 1
            continue
        if depth == 0 and ch == stop and not _DIGEST_TAIL.search("".join(buf)):
            break
        buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return [p.strip() for p in parts], i


_DIGEST_TAIL = re.compile(r"(?:^|[\s,])(sha224|sha256|sha384|sha512)\Z")


def _cmnd_item(text: str) -> Item:
    text = text.strip()
    negated = False
    while text.startswith("!"):
        negated = not negated
        text = text[1:].lstrip()
    text = _DIGEST.sub("", text, count=1) if _DIGEST.match(text) else text
    if text == "ALL":
        return Item("all", "ALL", negated)
    if _ALIAS_NAME.match(text):
        return Item("alias", text, negated)
    if not text:
        raise _SyntaxError("empty command")
    return Item("cmnd", _unescape(text), negated)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _parse_runas(text: str) -> tuple[tuple[Item, ...] | None, tuple[Item, ...] | None]:
    users_t, sep, groups_t = text.partition(":")
    users = tuple(_list(_Scanner(users_t), "runas", "")) if users_t.strip() else ()
    groups = tuple(_list(_Scanner(groups_t), "runas", "")) if sep and groups_t.strip() else None
    if not sep:
        # "(alice)" — users only; "()" — run as the invoking user? sudo treats empty as root.
        return (users if users_t.strip() else None), None
    return (users if users_t.strip() else ()), groups


def _parse_privileges(rest: str) -> tuple[Privilege, ...]:
    privileges: list[Privilege] = []
    sc = _Scanner(rest)
    while True:
        hosts = _list(sc, "host", "=:")
        sc.expect("=")
        runas_u: tuple[Item, ...] | None = None
        runas_g: tuple[Item, ...] | None = None
        tags: dict[str, bool] = {}
        cmnds: list[CmndSpec] = []
        while True:
            sc.ws()
            if sc.peek() == "(":
                end = sc.s.find(")", sc.i)
                if end < 0:
                    raise _SyntaxError("unterminated runas specification")
                runas_u, runas_g = _parse_runas(sc.s[sc.i + 1:end])
                sc.i = end + 1
                sc.ws()
            while True:  # options and tags
                m = _TAG_OR_OPTION.match(sc.s, sc.i)
                if m and m.group(2) == "=" and m.group(1) in OPTIONS:
                    sc.i = m.end()
                    sc.word(",:")
                    sc.ws()
                    continue
                if m and m.group(2) == ":" and m.group(1) in TAGS:
                    name = m.group(1)
                    if name in ("NOPASSWD", "PASSWD"):
                        tags["authenticate"] = name == "PASSWD"
                    else:
                        tags[name.removeprefix("NO").lower()] = not name.startswith("NO")
                    sc.i = m.end()
                    sc.ws()
                    continue
                break
            end = _first_segment_end(sc.s, sc.i)
            text = sc.s[sc.i:end].strip()
            if not text:
                raise _SyntaxError(f"expected a command at column {sc.i + 1}")
            cmnds.append(CmndSpec(runas_u, runas_g, tuple(sorted(tags.items())), _cmnd_item(text)))
            sc.i = end
            if sc.peek() == ",":
                sc.i += 1
                continue
            break
        privileges.append(Privilege(hosts, tuple(cmnds)))
        sc.ws()
        if sc.peek() == ":":
            sc.i += 1
            continue
        if not sc.eof():
            raise _SyntaxError(f"unexpected {sc.s[sc.i:sc.i + 10]!r}")
        return tuple(privileges)


def _first_segment_end(text: str, start: int) -> int:
    """Index of the unescaped ``,`` or separating ``:`` (or end) after the command starting at ``start``."""
    i = start
    buf = []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i:i + 2])
            i += 2
            continue
        if ch == ",":
            return i
        if ch == ":" and not _DIGEST_TAIL.search("".join(buf)):
            return i
        buf.append(ch)
        i += 1
    return i


Setting = tuple[str, Optional[str], bool]


def _parse_defaults(head: str, rest: str) -> tuple[str, tuple[Item, ...], tuple[Setting, ...]]:
    scope = head[len("Defaults"):][:1]
    targets: tuple[Item, ...] = ()
    body = rest
    if scope:
        kind = {"@": "host", ":": "user", ">": "runas", "!": "cmnd"}.get(scope)
        if kind is None:
            raise _SyntaxError(f"unknown Defaults form {head!r}")
        # the target list directly follows the scope character (may contain ", " continuations)
        sc = _Scanner(head[len("Defaults") + 1:] + " " + rest)
        if kind == "cmnd":
            word = sc.word("")
            targets = (_cmnd_item(word),)
            while sc.peek() == ",":
                sc.i += 1
                targets += (_cmnd_item(sc.word("")),)
        else:
            targets = _list(sc, kind, "")
        body = sc.s[sc.i:]
    settings: list[Setting] = []
    for part in _split_settings(body):
        part = part.strip()
        if not part:
            continue
        neg = False
        while part.startswith("!"):
            neg = not neg
            part = part[1:].strip()
        m = re.match(r"([A-Za-z_][\w]*)\s*([+-]?=)\s*(.*)\Z", part, re.S)
        if m:
            value = m.group(3).strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            settings.append((m.group(1), value, neg))
        elif re.fullmatch(r"[A-Za-z_]\w*", part):
            settings.append((part, None, neg))
        else:
            raise _SyntaxError(f"bad Defaults setting {part!r}")
    return scope, targets, tuple(settings)


def _split_settings(body: str) -> list[str]:
    out, buf, quoted, i = [], [], False, 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            buf.append(body[i:i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return out


def _parse_user_spec(line: str) -> tuple[tuple[Item, ...], tuple[Privilege, ...]]:
    sc = _Scanner(line)
    users = _list(sc, "user", "=")
    rest = sc.s[sc.i:]
    return users, _parse_privileges(rest)


# --------------------------------------------------------------------------------------------------
# Files and includes
# --------------------------------------------------------------------------------------------------
_INCLUDE = re.compile(r"[#@](include|includedir)\s+(.+?)\s*\Z")


def include_target(arg: str, including: str, hostname: str | None) -> str | None:
    """Absolute path an include argument names (quotes, escapes, ``%h``, relative paths)."""
    arg = arg.strip()
    if len(arg) >= 2 and arg[0] == arg[-1] == '"':
        arg = arg[1:-1]
    arg = _unescape(arg.replace("\\ ", " "))
    if "%h" in arg:
        if not hostname:
            return None
        arg = arg.replace("%h", hostname.split(".")[0])
    arg = arg.replace("%%", "%")
    if not arg.startswith("/"):
        arg = posixpath.join(posixpath.dirname(including), arg)
    return posixpath.normpath(arg)


def includedir_accepts(name: str) -> bool:
    return "." not in name and not name.endswith("~") and bool(name)


# Source of file contents: path -> text, None when the file is absent, or raises EvidenceError.
Reader = Callable[[str], Optional[str]]
Lister = Callable[[str], Optional[list[str]]]


def parse_sudoers(read: Reader, list_dir: Lister, root: str = SUDOERS,
                  hostname: str | None = None) -> Policy:
    """Parse ``root`` and its includes; unreadable includes become problems, the root's error propagates."""
    policy = Policy()
    text = read(root)
    if text is None:
        return policy
    _parse_file(policy, root, text, read, list_dir, hostname, (root,))
    return policy


def _parse_file(policy: Policy, path: str, text: str, read: Reader, list_dir: Lister,
                hostname: str | None, stack: tuple[str, ...]) -> None:
    policy.files.append(path)
    if "\0" in text:
        policy.problems.append(Problem(path, f"{path} contains binary data (NUL bytes)", "syntax"))
    for no, line in logical_lines(text):
        source = f"{path}:{no}"
        try:
            m = _INCLUDE.match(line)
            if m:
                _include(policy, m.group(1), m.group(2), path, source, read, list_dir, hostname, stack)
                continue
            head, _, rest = line.partition(" ")
            head_t = head.split("\t", 1)[0]
            if head_t != head:
                rest = head[len(head_t):] + " " + rest
                head = head_t
            if head.startswith("Defaults"):
                scope, targets, settings = _parse_defaults(head, rest)
                policy.defaults.append(DefaultsEntry(source, line, scope, targets, settings))
            elif head in ALIAS_KINDS:
                kind = ALIAS_KINDS[head]
                for name, items in _parse_alias(kind, rest):
                    policy.aliases[kind][name] = (items, source)
            else:
                users, privs = _parse_user_spec(line)
                policy.specs.append(UserSpec(source, line, users, privs))
        except (_SyntaxError, IndexError) as exc:
            policy.problems.append(Problem(source, f"syntax error in {source}: {exc}", "syntax"))


def _include(policy: Policy, directive: str, arg: str, path: str, source: str, read: Reader, list_dir: Lister,
             hostname: str | None, stack: tuple[str, ...]) -> None:
    target = include_target(arg, path, hostname)
    if target is None:
        policy.problems.append(Problem(
            source, f"{source}: cannot resolve include {arg!r} (host name unknown)", "missing"))
        return
    if directive == "includedir":
        try:
            names = list_dir(target)
        except EvidenceError as exc:
            policy.problems.append(Problem(source, str(exc), "missing"))
            return
        if names is None:
            policy.problems.append(Problem(
                source, f"{target} (included at {source}) was not gathered", "missing"))
            return
        paths = [f"{target.rstrip('/')}/{n}" for n in sorted(names) if includedir_accepts(n)]
    else:
        paths = [target]
    for inc in paths:
        if inc in stack or len(stack) >= MAX_INCLUDE_DEPTH:
            policy.problems.append(Problem(source, f"include loop: {source} includes {inc} again", "loop"))
            continue
        try:
            text = read(inc)
        except EvidenceError as exc:
            policy.problems.append(Problem(source, str(exc), "missing"))
            continue
        if text is None:
            if directive == "include":
                policy.problems.append(Problem(source, f"{inc} (included at {source}) could not be read",
                                               "missing"))
            continue
        _parse_file(policy, inc, text, read, list_dir, hostname, (*stack, inc))


def bundle_reader(bundle: Bundle) -> tuple[Reader, Lister]:
    """Read sudoers files from a bundle: those the gatherer found following the include lines, or (in
    evidence gathered before it followed them) those of the fixed globs, elsewhere an EvidenceError."""
    followed = bundle.searches.get(FOLLOW_NAME)
    if followed is not None:
        return _followed_reader(bundle, followed)

    def gathered(path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, g) for g in FILE_GLOBS)

    def read(path: str) -> str | None:
        rec = bundle.file(path)
        if rec is None:
            if gathered(path):
                st = bundle.stats.get(path)
                if st is not None and not st.is_dir and bundle.live and not bundle.is_root:
                    raise EvidenceError(f"needs root to read {path}")
                return None
            raise EvidenceError(f"{path} is included by sudoers but was not gathered; audit it by hand")
        if rec.error is not None:
            raise EvidenceError(bundle.unreadable_reason(path, rec.error))
        return rec.content

    def list_dir(path: str) -> list[str] | None:
        pattern = f"{path.rstrip('/')}/*"
        if pattern not in FILE_GLOBS:
            return None
        st = bundle.stats.get(path)
        if st is not None and bundle.live and not bundle.is_root and not st.perms & 0o004:
            raise EvidenceError(f"needs root to list {path}")
        names = [p[len(path.rstrip('/')) + 1:] for p in bundle.glob(pattern)]
        # Files gathered as unreadable are still listed (their error surfaces when read).
        return [n for n in names if "/" not in n]

    return read, list_dir


def _followed_reader(bundle: Bundle, found: list[str]) -> tuple[Reader, Lister]:
    if len(found) >= MAX_POLICY_FILES:
        raise EvidenceError(f"the sudo policy includes {MAX_POLICY_FILES} files or more: audit it by hand")
    # The gatherer names a path as the include line wrote it ("/etc/./x"): match on the normal form.
    by_norm = {posixpath.normpath(p): p for p in found}

    def read(path: str) -> str | None:
        actual = by_norm.get(posixpath.normpath(path))
        rec = bundle.file(actual) if actual is not None else None
        if rec is None:
            return None  # not there (the gatherer lists every regular file it came to)
        if rec.error is not None:
            raise EvidenceError(bundle.unreadable_reason(actual or path, rec.error))
        return rec.content

    def list_dir(path: str) -> list[str] | None:
        directory = posixpath.normpath(path)
        return sorted({posixpath.basename(n) for n in by_norm if posixpath.dirname(n) == directory})

    return read, list_dir


def sudo_installed(bundle: Bundle) -> bool | None:
    """True/False when the sudo binary's presence is known, None when nothing tells."""
    if any(p in bundle.stats for p in SUDO_BINARIES) or bundle.file(SUDOERS) is not None:
        return True
    if bundle.stats:
        return False
    return None


def sudoers(facts: Facts) -> Policy:
    bundle = facts.bundle
    try:
        hostname = facts.get(host).hostname
    except Exception:
        hostname = None
    read, list_dir = bundle_reader(bundle)
    return parse_sudoers(read, list_dir, SUDOERS, hostname)


# --------------------------------------------------------------------------------------------------
# Resolution against the accounts
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grant:
    principal: str  # account name, or "%group"/"+netgroup" with no local members known
    source: str  # path:line of the deciding rule
    rule: str  # its text
    command: str  # "ALL" or the command
    all_commands: bool
    nopasswd: bool
    nopasswd_reason: str  # "NOPASSWD tag", "Defaults:alice !authenticate at …", ""
    via: str  # what matched the user: "alice", "%sudo", "ALL", "ADMINS"
    host_restricted: bool = False
    negated_commands: tuple[str, ...] = ()  # "ALL, !/bin/su": exceptions that do not stop a root shell


@dataclass
class SudoRights:
    installed: bool | None
    policy: Policy
    all_grants: list[Grant]  # who can run every command as root (one effective grant per principal)
    shell_grants: list[Grant]  # single commands that amount to root (shells, editors, interpreters …)
    nsswitch_sources: tuple[str, ...] = ()  # non-file sudoers sources (sss, ldap) from nsswitch.conf

    def grant_for(self, name: str) -> Grant | None:
        for g in self.all_grants:
            if g.principal == name:
                return g
        return None

    @property
    def nopasswd_all(self) -> list[Grant]:
        return [g for g in self.all_grants if g.nopasswd]


@dataclass(frozen=True)
class _Principal:
    name: str
    uid: int | None
    groups: frozenset[str]
    gids: frozenset[int]
    pseudo: Item | None = None  # an unresolved %group / +netgroup rule target


class _Resolver:
    def __init__(self, policy: Policy, accts: Accounts | None, hostname: str | None) -> None:
        self.policy = policy
        self.accts = accts
        self.hostname = (hostname or "").split(".")[0]

    def match(self, items: tuple[Item, ...], pred: Callable[[Item], bool | None], kind: str,
              seen: frozenset[str] = frozenset()) -> bool | None:
        """sudo list semantics: the last item that matches decides; ``!`` inverts it."""
        result: bool | None = None
        for item in items:
            if item.kind == "alias":
                alias = self.policy.aliases[kind].get(item.value)
                if alias is None or item.value in seen:
                    continue
                sub = self.match(alias[0], pred, kind, seen | {item.value})
                if sub is None:
                    continue
                result = sub != item.negated
                continue
            hit = pred(item)
            if hit:
                result = not item.negated
        return result

    # -- users ---------------------------------------------------------------------------------
    def user_pred(self, p: _Principal) -> Callable[[Item], bool | None]:
        def pred(item: Item) -> bool | None:
            if p.pseudo is not None:
                return item == Item(p.pseudo.kind, p.pseudo.value, item.negated) or item.kind == "all"
            if item.kind == "all":
                return True
            if item.kind == "user":
                return item.value == p.name
            if item.kind == "uid":
                return p.uid is not None and item.value.lstrip("-").isdigit() and int(item.value) == p.uid
            if item.kind in ("group", "nonunix_group"):
                if item.value.startswith("#"):
                    return item.value[1:].isdigit() and int(item.value[1:]) in p.gids
                return item.value in p.groups
            if item.kind == "gid":
                return item.value.isdigit() and int(item.value) in p.gids
            return False

        return pred

    def runs_as_root(self, spec: CmndSpec) -> bool:
        if spec.runas_users is None:
            return True  # default runas_default=root
        if not spec.runas_users:
            return False  # "(:group)": the invoking user with another group
        root_groups = frozenset(self.accts.group_names_of("root")) if self.accts else frozenset({"root"})
        root_gids = frozenset(g.gid for g in self.accts.groups.values() if g.name in root_groups) \
            if self.accts else frozenset({0})
        root = _Principal("root", 0, root_groups | {"root"}, root_gids | {0})
        return bool(self.match(spec.runas_users, self.user_pred(root), "runas"))

    def host_matches(self, hosts: tuple[Item, ...]) -> tuple[bool, bool]:
        """(may match this host, restricted to named hosts)."""
        def pred(item: Item) -> bool | None:
            if item.kind == "all":
                return True
            if item.kind == "host":
                return not self.hostname or item.value.split(".")[0] == self.hostname or \
                    not re.fullmatch(r"[\w.-]+", item.value)
            return True  # netgroups, addresses: cannot tell offline, assume they match

        result = self.match(hosts, pred, "host")
        restricted = not any(i.kind == "all" and not i.negated for i in hosts)
        return bool(result) if result is not None else False, restricted

    def command_kind(self, item: Item, seen: frozenset[str] = frozenset()) -> tuple[str, str | None]:
        """("all", None) | ("shell", cmd) | ("other", cmd); aliases followed."""
        if item.kind == "all":
            return "all", None
        if item.kind == "alias":
            alias = self.policy.aliases["cmnd"].get(item.value)
            if alias is None or item.value in seen:
                return "other", item.value
            kinds = [self.command_kind(i, seen | {item.value}) for i in alias[0] if not i.negated]
            for k in ("all", "shell"):
                for kind, cmd in kinds:
                    if kind == k:
                        return kind, cmd
            return "other", item.value
        program = item.value.split()[0] if item.value.split() else ""
        base = program.rsplit("/", 1)[-1]
        if base in SHELL_EQUIVALENT or re.fullmatch(r"python[\d.]*|perl[\d.]*|ruby[\d.]*", base) \
                or "*" in program or (program == "sudoedit" and re.search(r"/etc/(sudoers|shadow|passwd)",
                                                                         item.value)):
            return "shell", item.value
        return "other", item.value

    # -- Defaults authenticate -----------------------------------------------------------------
    def authenticate(self, p: _Principal) -> tuple[bool | None, str]:
        value: bool | None = None
        reason = ""
        order = ("", "@", ":", ">", "!")
        for scope in order:
            for d in self.policy.defaults:
                if d.scope != scope:
                    continue
                flag = d.flag("authenticate")
                if flag is None:
                    continue
                if scope == ":" and not self.match(d.targets, self.user_pred(p), "user"):
                    continue
                if scope == ">":
                    root_spec = CmndSpec(d.targets, None, (), Item("all", "ALL"))
                    if not self.runs_as_root(root_spec):
                        continue
                if scope == "@" and not self.host_matches(d.targets)[0]:
                    continue
                if scope == "!" and not any(self.command_kind(t)[0] == "all" and not t.negated
                                            for t in d.targets):
                    continue
                value = flag
                reason = f"{d.text} ({d.source})"
        return value, reason

    def principals(self) -> list[_Principal]:
        out: list[_Principal] = []
        names: set[str] = set()
        if self.accts is not None:
            for a in self.accts.users:
                groups = set(self.accts.group_names_of(a.name))
                gids = {g.gid for g in self.accts.groups.values() if g.name in groups} | {a.gid}
                prim = self.accts.group_by_gid(a.gid)
                if prim is not None:
                    groups.add(prim.name)
                out.append(_Principal(a.name, a.uid, frozenset(groups), frozenset(gids)))
                names.add(a.name)
        local_groups = set(self.accts.groups) if self.accts else set()
        extra: dict[str, _Principal] = {}

        def visit(items: tuple[Item, ...], seen: frozenset[str] = frozenset()) -> None:
            for item in items:
                if item.negated:
                    continue
                if item.kind == "alias":
                    alias = self.policy.aliases["user"].get(item.value)
                    if alias is not None and item.value not in seen:
                        visit(alias[0], seen | {item.value})
                elif item.kind == "user" and item.value not in names:
                    extra.setdefault(item.value, _Principal(item.value, None, frozenset(), frozenset()))
                elif item.kind in ("group", "nonunix_group", "netgroup") and item.value not in local_groups:
                    label = str(Item(item.kind, item.value))
                    extra.setdefault(label, _Principal(label, None, frozenset(), frozenset(), pseudo=item))

        for spec in self.policy.specs:
            visit(spec.users)
        return out + list(extra.values())

    def _spec_effects(self, spec: UserSpec) -> list[tuple[str, str | None, CmndSpec, bool, list[str]]]:
        """What a rule grants as root on this host, for whoever it applies to.

        (kind, cmd, cmnd spec, host-restricted, negated commands) per ALL or shell-equivalent command.
        """
        out = []
        for priv in spec.privileges:
            ok, restricted = self.host_matches(priv.hosts)
            if not ok:
                continue
            negs = [str(c.command) for c in priv.cmnds if c.command.negated]
            for c in priv.cmnds:
                if not self.runs_as_root(c):
                    continue
                kind, cmd = self.command_kind(c.command)
                if kind in ("all", "shell"):
                    out.append((kind, cmd, c, restricted, negs))
        return out

    def resolve(self) -> tuple[list[Grant], list[Grant]]:
        all_grants: list[Grant] = []
        shell_grants: list[Grant] = []
        # Rules naming plain user names are looked up by name; the others are tried for everyone.
        effects = [self._spec_effects(spec) for spec in self.policy.specs]
        by_name: dict[str, list[int]] = {}
        generic: list[int] = []
        for idx, spec in enumerate(self.policy.specs):
            if not effects[idx]:
                continue
            if all(i.kind == "user" for i in spec.users):
                for i in spec.users:
                    by_name.setdefault(i.value, []).append(idx)
            else:
                generic.append(idx)
        for p in self.principals():
            pred = self.user_pred(p)
            deciding: tuple[UserSpec, CmndSpec, bool, list[str]] | None = None
            shells: dict[str, tuple[UserSpec, CmndSpec, bool]] = {}
            candidates = sorted(set(by_name.get(p.name, [])) | set(generic)) if p.pseudo is None else generic
            for idx in candidates:
                spec = self.policy.specs[idx]
                if not self.match(spec.users, pred, "user"):
                    continue
                for kind, cmd, c, restricted, negs in effects[idx]:
                    if kind == "all":
                        deciding = (spec, c, restricted, negs)
                    elif not c.command.negated and cmd is not None:
                        shells[cmd] = (spec, c, restricted)
            via = p.name if p.pseudo is None else str(p.pseudo)
            auth, auth_reason = self.authenticate(p)
            if deciding is not None and not deciding[1].command.negated:
                spec, c, restricted, negs = deciding
                all_grants.append(self._grant(p, spec, c, "ALL", True, restricted, auth, auth_reason,
                                              self._via(spec, pred, p), tuple(negs)))
            for cmd, (spec, c, restricted) in shells.items():
                if deciding is not None and not deciding[1].command.negated:
                    break
                shell_grants.append(self._grant(p, spec, c, cmd, False, restricted, auth, auth_reason,
                                                self._via(spec, pred, p) or via, ()))
        return all_grants, shell_grants

    def _via(self, spec: UserSpec, pred: Callable[[Item], bool | None], p: _Principal) -> str:
        for item in reversed(spec.users):
            if item.negated:
                continue
            if item.kind == "alias":
                alias = self.policy.aliases["user"].get(item.value)
                if alias is not None and self.match(alias[0], pred, "user"):
                    return f"{item.value} (User_Alias at {alias[1]})"
            elif pred(item):
                return str(item)
        return p.name

    @staticmethod
    def _grant(p: _Principal, spec: UserSpec, c: CmndSpec, command: str, all_cmds: bool, restricted: bool,
               auth: bool | None, auth_reason: str, via: str, negs: tuple[str, ...]) -> Grant:
        tag = c.authenticate_tag
        if tag is False:
            nopasswd, reason = True, "NOPASSWD tag"
        elif auth is False:
            nopasswd, reason = True, auth_reason
        else:
            nopasswd, reason = False, ""
        return Grant(p.name, spec.source, spec.text, command, all_cmds, nopasswd, reason, via, restricted,
                     negs)


def nsswitch_sudoers_sources(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("sudoers:"):
            return tuple(w for w in line.split(":", 1)[1].split() if w not in ("files",) and "[" not in w)
    return ()


def resolve(policy: Policy, accts: Accounts | None, hostname: str | None = None,
            installed: bool | None = True) -> SudoRights:
    all_grants, shell_grants = _Resolver(policy, accts, hostname).resolve()
    return SudoRights(installed, policy, all_grants, shell_grants)


def sudo_rights(facts: Facts) -> SudoRights:
    policy = facts.get(sudoers)
    try:
        accts: Accounts | None = facts.get(accounts)
    except EvidenceError:
        accts = None
    try:
        hostname = facts.get(host).hostname
    except Exception:
        hostname = None
    rights = resolve(policy, accts, hostname, sudo_installed(facts.bundle))
    try:
        ns = facts.bundle.text("/etc/nsswitch.conf")
    except EvidenceError:
        ns = None
    rights.nsswitch_sources = nsswitch_sudoers_sources(ns)
    return rights


__all__ = ["CmndSpec", "DefaultsEntry", "Grant", "Item", "Policy", "Privilege", "Problem", "SudoRights",
           "UserSpec", "bundle_reader", "include_target", "logical_lines", "parse_sudoers", "resolve",
           "sudo_rights", "sudoers"]
