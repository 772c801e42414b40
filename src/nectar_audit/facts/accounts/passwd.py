"""passwd(5), shadow(5) and group(5): the one parser of each, the login-shell rule, and their sanitizers.

Every fact that needs accounts reads them through here (accounts, sshd's contexts, the owners of
processes and sockets), so a malformed line is skipped the same way everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

# Shells that give no interactive session: any nologin, false or true, and /dev/null.
NOLOGIN_NAMES = ("nologin", "false", "true")
NOLOGIN_SHELLS = frozenset({"/dev/null", *(f"{d}/{n}" for d in ("/bin", "/sbin", "/usr/bin", "/usr/sbin")
                                           for n in NOLOGIN_NAMES)})
# Traditional special-purpose accounts whose "shell" runs one command (sync, shutdown, halt).
SPECIAL_SHELLS = {"sync": ("/bin/sync", "/usr/bin/sync"),
                  "shutdown": ("/sbin/shutdown", "/usr/sbin/shutdown"),
                  "halt": ("/sbin/halt", "/usr/sbin/halt")}


def shell_gives_session(name: str, shell: str) -> bool:
    """Whether ``shell`` gives ``name`` an interactive session: not nologin/false/true/``/dev/null``, and
    not the one-command shell of sync/shutdown/halt. sshd authenticates such accounts all the same."""
    shell = shell.strip() or "/bin/sh"  # an empty field means /bin/sh to login(1) and sshd
    if shell in NOLOGIN_SHELLS or shell.rsplit("/", 1)[-1] in NOLOGIN_NAMES:
        return False
    return shell not in SPECIAL_SHELLS.get(name, ())


def sh_no_session_case() -> str:
    """The same rule as a POSIX ``case "$user:$shell" in ...)`` pattern, for loops over passwd on the host."""
    pats = [f"*:*/{n}" for n in NOLOGIN_NAMES] + ["*:/dev/null"]
    pats += [f"{name}:{shell}" for name, shells in SPECIAL_SHELLS.items() for shell in shells]
    return "|".join(pats)


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    password: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str
    line: int
    groups: tuple[str, ...] = ()  # primary, then supplementary (filled by parse_accounts)

    @property
    def has_session_shell(self) -> bool:
        return shell_gives_session(self.name, self.shell)


def parse_passwd(text: str) -> list[PasswdEntry]:
    """passwd(5) lines; malformed lines and NIS ``+``/``-`` markers are skipped."""
    out: list[PasswdEntry] = []
    for no, raw in enumerate(text.splitlines(), 1):
        if not raw or raw.startswith(("#", "+", "-")):
            continue
        parts = raw.split(":")
        if len(parts) != 7 or not parts[0]:
            continue
        try:
            uid, gid = int(parts[2]), int(parts[3])
        except ValueError:
            continue
        if uid < 0 or gid < 0:
            continue
        out.append(PasswdEntry(parts[0], parts[1], uid, gid, parts[4], parts[5], parts[6].strip(), no))
    return out


@dataclass(frozen=True)
class ShadowEntry:
    name: str
    password: str  # sanitized: "{hash:sha512crypt}", "!{hash:…}", "!", "!!", "*", "" …
    lastchg: int | None  # days since 1970-01-01
    max_days: int | None
    inactive: int | None
    expire: int | None  # days since 1970-01-01
    line: int


def _opt_int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else None


_HASH_MARK = re.compile(r"\{hash:([\w-]*)\}")


def parse_shadow(text: str) -> dict[str, ShadowEntry]:
    out: dict[str, ShadowEntry] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        if not raw or raw.startswith(("#", "+", "-")):
            continue
        # The "shadow" sanitizer writes "{hash:ALGO}", whose colon is not a field separator.
        parts = (_HASH_MARK.sub(r"{hash=\1}", raw) if "{hash:" in raw else raw).split(":")
        if len(parts) < 2 or not parts[0] or parts[0] in out:
            continue
        parts[1] = parts[1].replace("{hash=", "{hash:")
        parts += [""] * (9 - len(parts))
        out[parts[0]] = ShadowEntry(parts[0], parts[1], _opt_int(parts[2]), _opt_int(parts[4]),
                                    _opt_int(parts[6]), _opt_int(parts[7]), no)
    return out


def password_state(field: str) -> str:
    """State of a (sanitized or raw) password field: locked | empty | hash | none."""
    if field == "":
        return "empty"
    if field.startswith("!"):
        rest = field.lstrip("!")
        return "locked" if rest and not rest.startswith("*") else "none"
    if field.startswith("*") or field in ("x", "NP", "LK"):
        return "none"
    return "hash"


def hash_algorithm(field: str) -> str | None:
    m = re.search(r"\{hash[:=]([\w-]+)\}", field)
    if m:
        return m.group(1)
    body = field.lstrip("!")
    if body.startswith("$") and body.count("$") >= 2:
        return {"1": "md5crypt", "5": "sha256crypt", "6": "sha512crypt", "y": "yescrypt",
                "2b": "bcrypt", "2a": "bcrypt", "2y": "bcrypt", "gy": "gost-yescrypt"}.get(body.split("$")[1],
                                                                                           "unknown")
    if len(body) == 13:
        return "descrypt"
    return None


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    explicit_members: tuple[str, ...]  # listed on the /etc/group line
    members: tuple[str, ...]  # explicit plus accounts whose primary group it is
    line: int
    password_state: str = "none"  # from gshadow (or the group line when not "x")


def parse_group(text: str) -> list[tuple[str, str, int, tuple[str, ...], int]]:
    """group(5) lines as (name, password, gid, members, line)."""
    out: list[tuple[str, str, int, tuple[str, ...], int]] = []
    for no, raw in enumerate(text.splitlines(), 1):
        if not raw or raw.startswith(("#", "+", "-")):
            continue
        parts = raw.split(":")
        if len(parts) != 4 or not parts[0]:
            continue
        try:
            gid = int(parts[2])
        except ValueError:
            continue
        members = tuple(m.strip() for m in parts[3].split(",") if m.strip())
        out.append((parts[0], parts[1], gid, members, no))
    return out




def uid_names(text: str) -> dict[int, str]:
    """uid -> the first account name with that uid, as getpwuid answers."""
    out: dict[int, str] = {}
    for entry in parse_passwd(text):
        out.setdefault(entry.uid, entry.name)
    return out


# -- sanitizers: hashes never leave the host -------------------------------------------------------
_CRYPT_IDS = {
    "1": "md5crypt",
    "2a": "bcrypt",
    "2b": "bcrypt",
    "2y": "bcrypt",
    "5": "sha256crypt",
    "6": "sha512crypt",
    "y": "yescrypt",
    "gy": "gost-yescrypt",
    "7": "scrypt",
}


def describe_password_field(field: str) -> str:
    """``$6$salt$hash`` -> ``{hash:sha512crypt}``; lock prefixes and markers kept as they are."""
    lock = ""
    while field.startswith("!"):
        lock += "!"
        field = field[1:]
    if field in ("", "*", "!", "x") or field.startswith("*"):
        return lock + field
    if field.startswith("$"):
        algo = _CRYPT_IDS.get(field.split("$")[1], "unknown")
    elif len(field) == 13:
        algo = "descrypt"
    else:
        algo = "unknown"
    return f"{lock}{{hash:{algo}}}"


def sanitize_shadow(data: bytes) -> str:
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 2:
            parts[1] = describe_password_field(parts[1])
        out.append(":".join(parts))
    return "\n".join(out) + ("\n" if out else "")


def sanitize_passwd(data: bytes) -> str:
    """/etc/passwd: a hash left in field 2 (no shadow) becomes ``{hash=ALGO}``; the 7 fields survive."""
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 2 and parts[1] not in ("x", "*x*", ""):
            parts[1] = describe_password_field(parts[1]).replace("{hash:", "{hash=")
        out.append(":".join(parts))
    return "\n".join(out) + ("\n" if out else "")


def parse_accounts(passwd: str, group: str = "") -> dict[str, PasswdEntry]:
    """name -> entry with its groups (first entry of a name wins, as getpwnam); primary group first."""
    gid_names: dict[int, str] = {}
    members: dict[str, list[str]] = {}
    for name, _pw, gid, listed, _line in parse_group(group):
        gid_names.setdefault(gid, name)
        for m in listed:
            members.setdefault(m, []).append(name)
    out: dict[str, PasswdEntry] = {}
    for e in parse_passwd(passwd):
        if e.name in out:
            continue
        groups = [gid_names[e.gid]] if e.gid in gid_names else []
        groups += [g for g in members.get(e.name, []) if g not in groups]
        out[e.name] = replace(e, groups=tuple(groups))
    return out
