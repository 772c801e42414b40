"""Local accounts: passwd/shadow/group, login.defs ranges, last logins, authorized_keys, cloud users.

Public API (other fact modules and checks rely on it):

- ``accounts(facts) -> Accounts``
- ``Accounts.users: list[Account]`` in /etc/passwd order (first entry of a duplicated name wins, as
  getpwnam does); ``Accounts.user(name)``, ``Accounts.by_uid(uid)``
- ``Account``: ``name uid gid gecos home shell line``, ``has_login_shell``, ``password_state`` in
  ``locked | empty | hash | none | unknown``, ``password_usable``, ``authorized_keys`` (paths),
  ``keys_known``, ``login_capable`` (None when undecidable), ``is_system`` / ``is_human`` need
  ``Accounts`` ranges: use ``Accounts.is_system(acct)``
- ``Accounts.groups: dict[str, Group]``; ``Group.members`` includes primary-group members
- ``Accounts.uid_min`` / ``Accounts.sys_uid_max`` (login.defs; defaults 1000 / 999)
- ``Accounts.shadow_error``: the reason shadow could not be read (e.g. "needs root to read /etc/shadow")
- ``Accounts.last_login(name) -> datetime | None`` (UTC) and ``Accounts.login_sources`` (empty: unknown)
- ``Accounts.cloud_default_user`` (cloud-init's ``system_info.default_user.name``),
  ``Accounts.default_users`` (image default names present plus cloud-init's), ``Accounts.expected(name)``
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from nectar_audit.evidence import Bundle, EvidenceError, Needs, StatRecord, parse_stat_lines
from nectar_audit.facts.accounts.logins import (
    parse_login_rows,
    records_header,
    sanitize_lastlog,
    sanitize_lastlog2,
    sanitize_wtmp,
    sanitize_wtmpdb,
)
from nectar_audit.facts.accounts.passwd import (
    SPECIAL_SHELLS,
    Group,
    ShadowEntry,
    hash_algorithm,
    parse_group,
    parse_passwd,
    parse_shadow,
    password_state,
    sanitize_passwd,
    sanitize_shadow,
    shell_gives_session,
)

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

PASSWD = "/etc/passwd"
SHADOW = "/etc/shadow"
GROUP = "/etc/group"
GSHADOW = "/etc/gshadow"
LOGIN_DEFS = ("/etc/login.defs", "/usr/etc/login.defs")
LASTLOG = "/var/log/lastlog"
LASTLOG2 = "/var/lib/lastlog/lastlog2.db"
WTMP = "/var/log/wtmp"
WTMPDB = "/var/lib/wtmpdb/wtmp.db"
CLOUD_CFG = "/etc/cloud/cloud.cfg"
CLOUD_CFG_D = "/etc/cloud/cloud.cfg.d/*.cfg"
KEY_NAMES = (".ssh/authorized_keys", ".ssh/authorized_keys2")

# Default users of the cloud images of the supported distributions.
IMAGE_DEFAULT_USERS = ("ubuntu", "debian", "rocky", "almalinux", "fedora", "centos", "ec2-user", "cloud-user",
                       "cloud")

# Homes of accounts outside /home: stat them and their authorized_keys (live only; offline, the globs
# below cover /root and /home). Bounded to the first 5000 passwd lines so a huge passwd cannot stall sh,
# and stat'ed 100 homes at a time (set -- "$@" copies the whole list on every line).
_HOMES_SNIPPET = r"""set --
n=0
while IFS=: read -r _u _p _i _g _c h _s; do
  n=$((n+1)); [ $n -gt 5000 ] && break
  case $h in /|/home/*|/root|/dev/*|/proc/*|/sys/*|"") continue;; esac
  set -- "$@" "$h" "$h/.ssh/authorized_keys" "$h/.ssh/authorized_keys2"
  [ $# -lt 300 ] || { with_timeout 5 stat --printf "$STAT_FORMAT" -- "$@" 2>/dev/null; set --; }
done </etc/passwd
[ $# -gt 0 ] && with_timeout 5 stat --printf "$STAT_FORMAT" -- "$@" 2>/dev/null
:"""

# Homes whose authorized_keys are looked at by globs (offline too); other homes only live, by command.
HOME_GLOBS = ("/root", "/home/*", "/var/*", "/var/lib/*", "/var/spool/*", "/srv/*", "/opt/*")
_HOME_GLOB_RE = re.compile("|".join(re.escape(g).replace(r"\*", "[^/]+") for g in HOME_GLOBS))

NEEDS = Needs(
    files=(PASSWD, SHADOW, GROUP, GSHADOW, *LOGIN_DEFS, LASTLOG, LASTLOG2, WTMP, WTMPDB, CLOUD_CFG,
           CLOUD_CFG_D),
    stats=("/root", "/home/*", *(f"{g}/{k}" for g in HOME_GLOBS for k in KEY_NAMES),
           PASSWD, SHADOW, GROUP, GSHADOW),
    commands={"accounts.homes": _HOMES_SNIPPET},
    sanitize={PASSWD: sanitize_passwd, SHADOW: sanitize_shadow, GSHADOW: sanitize_shadow,
              LASTLOG: sanitize_lastlog, LASTLOG2: sanitize_lastlog2, WTMP: sanitize_wtmp, WTMPDB: sanitize_wtmpdb},
)


# --------------------------------------------------------------------------------------------------
# Parsers (pure)
# --------------------------------------------------------------------------------------------------
def parse_login_defs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split(None, 1)
        if len(words) == 2:
            out[words[0]] = words[1].strip().strip("\"'")
    return out



# -- cloud-init (YAML subset) ---------------------------------------------------------------------
def _yaml_scalar(text: str) -> str:
    text = text.split(" #", 1)[0].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _yaml_lines(text: str) -> list[tuple[int, str]]:
    out = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
            continue
        out.append((len(raw) - len(raw.lstrip(" ")), raw.rstrip()))
    return out


def _block(lines: list[tuple[int, str]], start: int, indent: int) -> list[tuple[int, str]]:
    """The lines nested below the key at ``start``: deeper, or ``- `` items at the key's own indent."""
    out = []
    for ind, raw in lines[start + 1:]:
        if ind < indent or (ind == indent and not raw.strip().startswith("-")):
            break
        out.append((ind, raw))
    return out


def _find_key(lines: list[tuple[int, str]], key: str, indent: int | None = None) -> int | None:
    want = min((i for i, _ in lines), default=0) if indent is None else indent
    for idx, (ind, raw) in enumerate(lines):
        if ind == want and re.match(rf"{re.escape(key)}\s*:(\s|$)", raw.strip()):
            return idx
    return None


def parse_cloud_default_user(text: str) -> tuple[str | None, bool]:
    """cloud-init's ``system_info: default_user: name:`` → (name, defined here).

    Only the shapes cloud.cfg files use: block mappings, or a flow mapping ``{name: x, …}``.
    """
    lines = _yaml_lines(text)
    top = _find_key(lines, "system_info")
    if top is None:
        return None, False
    sys_block = _block(lines, top, lines[top][0])
    if not sys_block:
        return None, False
    du = _find_key(sys_block, "default_user", min(i for i, _ in sys_block))
    if du is None:
        return None, False
    rest = sys_block[du][1].strip().split(":", 1)[1].strip()
    if rest.startswith("{"):
        m = re.search(r"[{,]\s*name\s*:\s*([^,}]+)", rest)
        return (_yaml_scalar(m.group(1)) or None if m else None), True
    if rest in ("", "null", "~") and not _block(sys_block, du, sys_block[du][0]):
        return None, True
    block = _block(sys_block, du, sys_block[du][0])
    if not block:
        return None, True
    name_idx = _find_key(block, "name", min(i for i, _ in block))
    if name_idx is None:
        return None, True
    value = _yaml_scalar(block[name_idx][1].strip().split(":", 1)[1])
    return (value or None), True


def parse_cloud_users(text: str) -> list[str]:
    """Names in a top-level ``users:`` list (``- default`` excluded)."""
    lines = _yaml_lines(text)
    top = _find_key(lines, "users")
    if top is None:
        return []
    names: list[str] = []
    inline = lines[top][1].split(":", 1)[1].strip()
    if inline.startswith("["):
        for item in inline.strip("[]").split(","):
            item = _yaml_scalar(item)
            if item and item != "default" and not item.startswith("{"):
                names.append(item)
        return names
    for _ind, raw in _block(lines, top, lines[top][0]):
        s = raw.strip()
        m = re.match(r"-\s+name\s*:\s*(.+)$", s) or re.match(r"name\s*:\s*(.+)$", s)
        if m:
            names.append(_yaml_scalar(m.group(1)))
        elif s.startswith("- ") and ":" not in s:
            item = _yaml_scalar(s[2:])
            if item and item != "default":
                names.append(item)
    return [n for n in names if n]


# --------------------------------------------------------------------------------------------------
# The fact
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str
    line: int  # line in /etc/passwd
    password_state: str  # locked | empty | hash | none | unknown
    password_source: str  # "/etc/shadow:12" or "/etc/passwd:3"
    algorithm: str | None = None
    expire_day: int | None = None  # shadow field 8, days since epoch
    lastchg_day: int | None = None
    authorized_keys: tuple[str, ...] = ()  # non-empty authorized_keys files (or links)
    keys_known: bool = True  # False when the home could not be looked at (offline, home outside /home)

    @property
    def has_login_shell(self) -> bool:
        """Not a nologin/false shell (sync/shutdown/halt's one-command shells included)."""
        return shell_gives_session(self.name, self.shell) or self.special_shell

    @property
    def special_shell(self) -> bool:
        """sync/shutdown/halt with their traditional one-command shell."""
        return self.shell in SPECIAL_SHELLS.get(self.name, ())

    @property
    def password_usable(self) -> bool | None:
        """True: a password (or none at all, ``empty``) lets one log in; None when shadow is unreadable."""
        if self.password_state == "unknown":
            return None
        return self.password_state in ("hash", "empty")

    def expired(self, today: datetime | None = None) -> bool:
        if self.expire_day is None or self.expire_day < 0:
            return False
        now = today or datetime.now(timezone.utc)
        return self.expire_day <= int(now.timestamp() // 86400)

    @property
    def login_capable(self) -> bool | None:
        """Shell allows a session and a password or key allows authentication; None when undecidable."""
        if not shell_gives_session(self.name, self.shell):
            return False
        if self.expired():
            return False
        if self.authorized_keys:
            return True
        usable = self.password_usable
        if usable:
            return True
        if usable is None or not self.keys_known:
            return None
        return False


@dataclass
class Accounts:
    users: list[Account]
    groups: dict[str, Group]
    uid_min: int = 1000
    sys_uid_max: int = 999
    uid_max: int = 60000
    shadow_error: str | None = None
    login_sources: tuple[str, ...] = ()
    login_errors: tuple[str, ...] = ()
    cloud_default_user: str | None = None
    cloud_default_user_source: str | None = None
    cloud_users: tuple[str, ...] = ()
    expected_accounts: tuple[str, ...] = ()
    _logins: dict[str, int] = field(default_factory=dict, repr=False)
    _unknown_logins: frozenset[str] = field(default_factory=frozenset, repr=False)

    # Indexes built on first use: checks ask about every account, and a login node has thousands
    # (linear lookups made a 3,000-user scan spend 12 s in check 09). The fact is not changed once built.
    @functools.cached_property
    def _by_name(self) -> dict[str, Account]:
        out: dict[str, Account] = {}
        for acct in self.users:
            out.setdefault(acct.name, acct)  # the first entry wins, as getpwnam's
        return out

    @functools.cached_property
    def _groups_of(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for g in self.groups.values():
            for member in dict.fromkeys(g.members):
                out.setdefault(member, []).append(g.name)
        return {member: sorted(names) for member, names in out.items()}

    def user(self, name: str) -> Account | None:
        return self._by_name.get(name)

    def by_uid(self, uid: int) -> list[Account]:
        return [a for a in self.users if a.uid == uid]

    def is_system(self, acct: Account) -> bool:
        """Below UID_MIN (root included), or the overflow ``nobody`` account."""
        return acct.uid < self.uid_min or acct.uid >= 65534 or acct.name == "nobody"

    def is_human(self, acct: Account) -> bool:
        return not self.is_system(acct)

    def group_names_of(self, name: str) -> list[str]:
        return list(self._groups_of.get(name, ()))

    @functools.cached_property
    def _group_by_gid(self) -> dict[int, Group]:
        out: dict[int, Group] = {}
        for g in self.groups.values():
            out.setdefault(g.gid, g)
        return out

    def group_by_gid(self, gid: int) -> Group | None:
        return self._group_by_gid.get(gid)

    @functools.cached_property
    def default_users(self) -> tuple[str, ...]:
        names = [n for n in IMAGE_DEFAULT_USERS if self.user(n) is not None]
        if self.cloud_default_user and self.cloud_default_user not in names:
            names.append(self.cloud_default_user)
        return tuple(names)

    def expected(self, name: str) -> bool:
        return name in self.default_users or name in self.expected_accounts or name in self.cloud_users

    def last_login(self, name: str) -> datetime | None:
        """Most recent login over all sources; None when never logged in (or no source: see login_known)."""
        t = self._logins.get(name)
        return datetime.fromtimestamp(t, timezone.utc) if t else None

    def login_known(self, name: str) -> bool:
        return bool(self.login_sources) and name not in self._unknown_logins

    @property
    def login_capable(self) -> list[Account]:
        return [a for a in self.users if a.login_capable]


def _keys_for(home: str, stats: Mapping[str, StatRecord]) -> tuple[str, ...]:
    found = []
    home = home.rstrip("/") or ""
    for rel in KEY_NAMES:
        path = f"{home}/{rel}"
        st = stats.get(path)
        if st is None:
            continue
        if st.is_link or (st.is_file and st.size > 0):
            found.append(path)
    return tuple(found)


def home_stats(bundle: Bundle) -> dict[str, StatRecord]:
    """The bundle's stats plus those of homes outside /home (live command ``accounts.homes``)."""
    stats = dict(bundle.stats)
    cmd = bundle.command("accounts.homes")
    if cmd is not None and cmd.stdout:
        for path, rec in parse_stat_lines(cmd.stdout).items():
            stats.setdefault(path, rec)
    return stats


def _home_covered(home: str, bundle: Bundle) -> bool:
    """Whether the gatherer looked for this home's authorized_keys."""
    if _HOME_GLOB_RE.fullmatch(home.rstrip("/")):
        return True
    cmd = bundle.command("accounts.homes")
    return bool(bundle.live and cmd is not None and cmd.rc == 0)


def _read_optional(bundle: Bundle, path: str, errors: list[str]) -> str | None:
    try:
        return bundle.text(path)
    except EvidenceError as exc:
        errors.append(str(exc))
        return None


def build_accounts(bundle: Bundle, expected_accounts: Iterable[str] = ()) -> Accounts:
    passwd_text = bundle.text(PASSWD)
    if passwd_text is None:
        raise EvidenceError(f"{PASSWD} is missing")
    rec = bundle.file(PASSWD)
    if rec is not None and rec.truncated:
        raise EvidenceError(f"{PASSWD} is larger than {16} MiB; refusing to judge a truncated account list")
    entries = parse_passwd(passwd_text)
    if not entries:
        raise EvidenceError(f"{PASSWD} has no valid entries")

    shadow: dict[str, ShadowEntry] | None = None
    shadow_error: str | None = None
    try:
        shadow_text = bundle.text(SHADOW)
        shadow = parse_shadow(shadow_text) if shadow_text is not None else {}
        if shadow_text is None:
            shadow_error = None  # no shadow file: passwords live in passwd (or nowhere)
    except EvidenceError as exc:
        shadow_error = str(exc)
        if bundle.live and not bundle.is_root and "needs root" not in shadow_error:
            shadow_error = f"needs root to read {SHADOW}"

    defs: dict[str, str] = {}
    for path in LOGIN_DEFS:
        try:
            text = bundle.text(path)
        except EvidenceError:
            text = None
        if text is not None:
            defs = parse_login_defs(text)
            break

    def _def(key: str, default: int) -> int:
        value = defs.get(key, "")
        return int(value) if value.isdigit() else default

    uid_min = _def("UID_MIN", 1000)
    sys_uid_max = _def("SYS_UID_MAX", uid_min - 1)

    stats = home_stats(bundle)
    seen: set[str] = set()
    users: list[Account] = []
    for e in entries:
        if e.name in seen:
            continue
        seen.add(e.name)
        algo: str | None = None
        expire = lastchg = None
        if e.password not in ("x", "*x*"):
            state = password_state(e.password)
            source = f"{PASSWD}:{e.line}"
            algo = hash_algorithm(e.password) if state in ("hash", "locked") else None
        elif shadow is None:
            state, source = "unknown", SHADOW
        else:
            sh = shadow.get(e.name)
            if sh is None:
                state, source = "none", SHADOW
            else:
                state, source = password_state(sh.password), f"{SHADOW}:{sh.line}"
                algo = hash_algorithm(sh.password) if state in ("hash", "locked") else None
                expire, lastchg = sh.expire, sh.lastchg
        users.append(Account(
            name=e.name, uid=e.uid, gid=e.gid, gecos=e.gecos, home=e.home, shell=e.shell, line=e.line,
            password_state=state, password_source=source, algorithm=algo, expire_day=expire,
            lastchg_day=lastchg, authorized_keys=_keys_for(e.home, stats),
            keys_known=_home_covered(e.home, bundle),
        ))

    groups = _build_groups(bundle, users)
    logins, sources, unknown, login_errors = _logins(bundle, users)

    cloud_user: str | None = None
    cloud_source: str | None = None
    cloud_users: list[str] = []
    for path in [CLOUD_CFG, *bundle.glob(CLOUD_CFG_D)]:
        try:
            text = bundle.text(path)
        except EvidenceError:
            continue
        if text is None:
            continue
        name, defined = parse_cloud_default_user(text)
        if defined:
            cloud_user, cloud_source = name, path
        cloud_users.extend(parse_cloud_users(text))
    image_user = _image_default_user(bundle)
    if image_user is not None and cloud_user is None:
        cloud_user, cloud_source = image_user

    return Accounts(
        users=users, groups=groups, uid_min=uid_min, sys_uid_max=sys_uid_max, uid_max=_def("UID_MAX", 60000),
        shadow_error=shadow_error, login_sources=sources, login_errors=tuple(login_errors),
        cloud_default_user=cloud_user, cloud_default_user_source=cloud_source,
        cloud_users=tuple(dict.fromkeys(cloud_users)), expected_accounts=tuple(expected_accounts),
        _logins=logins, _unknown_logins=frozenset(unknown),
    )


def _image_default_user(bundle: Bundle) -> tuple[str, str] | None:
    """An official Nectar image's ``default_user`` property, when the host was audited as an instance."""
    if bundle.cloud is None:
        return None
    # Imported here: only an instance audited through the OpenStack API has a record to parse.
    from nectar_audit.facts.openstack import parse_instance

    try:
        image = parse_instance(bundle.cloud).image
    except EvidenceError:
        return None
    if image is None or not image.official or not image.default_user:
        return None
    return image.default_user, f"OpenStack image {image.name or image.id} (Nectar official): default_user"


def _build_groups(bundle: Bundle, users: list[Account]) -> dict[str, Group]:
    try:
        text = bundle.text(GROUP)
    except EvidenceError:
        text = None
    if text is None:
        return {}
    gshadow: dict[str, ShadowEntry] = {}
    try:
        gs = bundle.text(GSHADOW)
        if gs is not None:
            gshadow = parse_shadow(gs)
    except EvidenceError:
        gshadow = {}
    groups: dict[str, Group] = {}
    by_gid: dict[int, list[str]] = {}
    for u in users:
        by_gid.setdefault(u.gid, []).append(u.name)
    for name, pw, gid, members, line in parse_group(text):
        if name in groups:
            continue
        primary = tuple(n for n in by_gid.get(gid, ()) if n not in members)
        if pw not in ("x", ""):
            pstate = password_state(pw)
        elif name in gshadow:
            pstate = password_state(gshadow[name].password)
            if pstate == "empty":
                pstate = "none"  # an empty gshadow password means no password: newgrp asks members only
        else:
            pstate = "none"
        groups[name] = Group(name, gid, members, tuple(members) + primary, line, pstate)
    return groups


def _logins(bundle: Bundle,
            users: list[Account]) -> tuple[dict[str, int], tuple[str, ...], set[str], list[str]]:
    logins: dict[str, int] = {}
    sources: list[str] = []
    unknown: set[str] = set()
    errors: list[str] = []
    by_uid: dict[int, list[str]] = {}
    for u in users:
        by_uid.setdefault(u.uid, []).append(u.name)

    def merge(name: str, t: int) -> None:
        if t > logins.get(name, 0):
            logins[name] = t

    for path in (LASTLOG2, WTMPDB, WTMP):
        text = _read_optional(bundle, path, errors)
        if text is None:
            continue
        if text.startswith("<withheld"):
            errors.append(f"cannot decode {path}: {text}")
            continue
        sources.append(path)
        for name, t in parse_login_rows(text).items():
            merge(name, t)
    text = _read_optional(bundle, LASTLOG, errors)
    if text is not None and not text.startswith("<withheld"):
        sources.append(LASTLOG)
        records = records_header(text, "records")
        rec = bundle.file(LASTLOG)
        if rec is not None and rec.truncated and records is not None and records.isdigit():
            unknown.update(u.name for u in users if u.uid >= int(records))
        for key, t in parse_login_rows(text).items():
            if key.isdigit():
                for name in by_uid.get(int(key), []):
                    merge(name, t)
    elif text is not None:
        errors.append(f"cannot decode {LASTLOG}: {text}")
    return logins, tuple(sources), unknown, errors


def accounts(facts: Facts) -> Accounts:
    return build_accounts(facts.bundle, facts.config.expected_accounts)
