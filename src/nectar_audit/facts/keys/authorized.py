"""SSH authorized_keys files: who can log in with which public key, under which restrictions.

Public API (other fact modules and checks rely on it):

- ``parse_authorized_keys(text) -> list[AuthorizedKey]``: pure, never raises; only the lines sshd would
  accept (known key type, decodable blob whose inner type matches) are returned.
- ``AuthorizedKey``: ``line key_type blob comment fingerprint options options_text path``,
  ``forced_command`` (None when no ``command=``), ``option(name)``, ``has_option(name)``,
  ``is_cloud_init_refusal`` (cloud-init's "Please login as the user … exit 142" forced command).
- ``fingerprint(blob_b64) -> Optional[str]``: ``SHA256:…`` exactly as ``ssh-keygen -lf`` prints it.
- ``authorized_keys(facts) -> dict[str, list[AuthorizedKey]]``: per user name, the keys of
  ``~/.ssh/authorized_keys`` and ``~/.ssh/authorized_keys2`` of root, of /home/* and (live) of the
  passwd homes elsewhere; a home with no user in passwd is keyed by its directory name.
- ``authorized_key_files(facts) -> dict[str, str]``: path -> user for every file that was read.
- ``collect_authorized_keys(facts) -> (keys per user, {unreadable path: reason})``: never raises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs
from nectar_audit.facts.accounts import accounts
from nectar_audit.facts.ssh import authorized_keys_paths, sshd_config

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

KEY_FILE_NAMES = (".ssh/authorized_keys", ".ssh/authorized_keys2")
# Central key directories hardened setups point AuthorizedKeysFile at (``/etc/ssh/authorized_keys/%u``):
# gathered always, used only when sshd's configuration really reads them.
CENTRAL_GLOBS = (
    "/etc/ssh/authorized_keys/*",
    "/etc/ssh/authorized_keys.d/*",
    "/etc/ssh/keys/*",
)
FILE_GLOBS = (
    "/root/.ssh/authorized_keys",
    "/root/.ssh/authorized_keys2",
    "/home/*/.ssh/authorized_keys",
    "/home/*/.ssh/authorized_keys2",
    *CENTRAL_GLOBS,
)

# Keys of the passwd homes outside /root and /home (service accounts: /var/lib/x, /opt/app, /srv/y).
# Builtins only (no process per file); bounded in accounts and in lines per file.
_EXTRA_SNIPPET = r"""n=0
while IFS=: read -r _u _p _i _g _c h _s; do
  n=$((n+1)); [ $n -gt 5000 ] && break
  case $h in /|/home/*|/root|/dev/*|/proc/*|/sys/*|"") continue;; esac
  for f in "$h/.ssh/authorized_keys" "$h/.ssh/authorized_keys2"; do
    [ -f "$f" ] && [ -r "$f" ] || continue
    printf '==> %s <==\n' "$f"
    c=0
    while IFS= read -r l || [ -n "$l" ]; do
      c=$((c+1)); [ $c -gt 2000 ] && break
      printf '%s\n' "$l"
    done <"$f"
  done
done </etc/passwd
:"""

NEEDS = Needs(
    files=FILE_GLOBS,
    commands={"keys.extra_authorized_keys": _EXTRA_SNIPPET},
)

# Key types OpenSSH reads from authorized_keys (sshkey.c keyimpls, certificates included).
PLAIN_KEY_TYPES = frozenset(
    {
        "ssh-rsa",
        "ssh-dss",
        "ssh-ed25519",
        "ssh-ed448",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "sk-ssh-ed25519@openssh.com",
        "ssh-xmss@openssh.com",
    }
)
KEY_TYPES = PLAIN_KEY_TYPES | frozenset(t.split("@")[0] + "-cert-v01@openssh.com" for t in PLAIN_KEY_TYPES)

_MAX_LINE = 16 * 1024  # sshd refuses longer authorized_keys lines (SSH_MAX_PUBKEY_BYTES)


@dataclass(frozen=True)
class AuthorizedKey:
    line: int
    key_type: str
    blob: str  # the base64 public key blob (public data)
    comment: str
    fingerprint: str | None
    options: tuple[tuple[str, str | None], ...] = ()  # (lower-case name, unquoted value or None)
    options_text: str = ""
    path: str = ""

    def option(self, name: str) -> str | None:
        """Value of the first option ``name`` (case-insensitive); None when absent or a flag."""
        name = name.lower()
        for key, value in self.options:
            if key == name:
                return value
        return None

    def has_option(self, name: str) -> bool:
        name = name.lower()
        return any(key == name for key, _ in self.options)

    @property
    def forced_command(self) -> str | None:
        return self.option("command")

    @property
    def is_cloud_init_refusal(self) -> bool:
        """cloud-init's disable_root prefix: the key only prints "Please login as the user …" and exits."""
        cmd = self.forced_command
        if cmd is None:
            return False
        return "Please login as the user" in cmd and bool(re.search(r"\bexit\s+\d+\s*;?\s*$", cmd))

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}" if self.path else f"line {self.line}"


def fingerprint(blob_b64: str) -> str | None:
    """``SHA256:<unpadded base64 of sha256(blob)>`` like ``ssh-keygen -lf``; None if not base64."""
    try:
        raw = base64.b64decode(blob_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw:
        return None
    return fingerprint_raw(raw)


def fingerprint_raw(raw: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def blob_type(raw: bytes) -> str | None:
    """The key type string at the start of an SSH wire-format public key blob."""
    if len(raw) < 4:
        return None
    (n,) = struct.unpack(">I", raw[:4])
    if n == 0 or n > 64 or len(raw) < 4 + n:
        return None
    try:
        return raw[4 : 4 + n].decode("ascii")
    except UnicodeDecodeError:
        return None


def _skip_options(text: str) -> int | None:
    """Index just past an options prefix (sshkey_advance_past_options); None for an unterminated quote."""
    i, quoted, n = 0, False, len(text)
    while i < n and (quoted or text[i] not in " \t"):
        if text[i] == "\\" and i + 1 < n and text[i + 1] == '"':
            i += 2
            continue
        if text[i] == '"':
            quoted = not quoted
        i += 1
    if quoted:
        return None
    return i


def parse_options(text: str) -> tuple[tuple[str, str | None], ...] | None:
    """``no-pty,command="a,b \\"c\\""`` -> (("no-pty", None), ("command", 'a,b "c"')); None if malformed."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while i < n:
        m = re.match(r"[A-Za-z0-9_-]+", text[i:])
        if not m:
            return None
        name = m.group(0).lower()
        i += len(m.group(0))
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            if i >= n or text[i] != '"':
                return None
            i += 1
            buf: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] == '"':
                    buf.append('"')
                    i += 2
                    continue
                buf.append(text[i])
                i += 1
            if i >= n:
                return None
            i += 1  # closing quote
            value = "".join(buf)
        out.append((name, value))
        if i < n:
            if text[i] != ",":
                return None
            i += 1
    return tuple(out)


def _parse_key_part(text: str) -> tuple[str, str, str] | None:
    """``type blob [comment]`` -> (type, blob, comment) when the type is known."""
    words = text.split(None, 2)
    if len(words) < 2 or words[0] not in KEY_TYPES:
        return None
    comment = words[2].strip() if len(words) > 2 else ""
    return words[0], words[1], comment


def _valid_blob(key_type: str, blob: str) -> str | None:
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return None
    inner = blob_type(raw)
    if inner is None or inner != key_type:
        return None
    return fingerprint_raw(raw)


def parse_authorized_keys(text: str) -> list[AuthorizedKey]:
    """authorized_keys(5) per sshd(8): ``[options] keytype base64 [comment]``; invalid lines are dropped."""
    out: list[AuthorizedKey] = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n").lstrip(" \t")
        if not line or line.startswith("#") or len(line) > _MAX_LINE:
            continue
        options: tuple[tuple[str, str | None], ...] = ()
        options_text = ""
        part = _parse_key_part(line)
        if part is None:
            end = _skip_options(line)
            if end is None:
                continue
            options_text = line[:end]
            part = _parse_key_part(line[end:].lstrip(" \t"))
            if part is None:
                continue
            parsed = parse_options(options_text)
            if parsed is None:
                continue  # sshd rejects a key line whose options it cannot parse
            options = parsed
        key_type, blob, comment = part
        fp = _valid_blob(key_type, blob)
        if fp is None:
            continue
        out.append(
            AuthorizedKey(
                line=no,
                key_type=key_type,
                blob=blob,
                comment=comment,
                fingerprint=fp,
                options=options,
                options_text=options_text,
            )
        )
    return out


def parse_extra_output(text: str) -> dict[str, str]:
    """The ``keys.extra_authorized_keys`` command output: ``==> path <==`` headers, then content."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = re.fullmatch(r"==> (/.*) <==", line)
        if m:
            current = out.setdefault(m.group(1), [])
            continue
        if current is not None:
            current.append(line)
    return {p: "\n".join(lines) + "\n" for p, lines in out.items()}


# --------------------------------------------------------------------------------------------------
# The fact
# --------------------------------------------------------------------------------------------------
def _owner_map(facts: Facts) -> dict[str, str]:
    """home directory -> user name, from passwd when the accounts fact is available."""
    homes: dict[str, str] = {}
    try:
        accts = facts.get(accounts)
    except Exception:
        return homes
    for user in accts.users:
        home = user.home.rstrip("/") or "/"
        homes.setdefault(home, user.name)
    return homes


def _central_owners(facts: Facts) -> dict[str, str]:
    """Central key file -> user, for the files sshd's AuthorizedKeysFile names with %u (or %U). A fact
    (through facts.get): every reader of authorized_keys asks it."""
    b = facts.bundle
    paths = [p for pattern in CENTRAL_GLOBS for p in b.glob(pattern)]
    if not paths:
        return {}

    try:
        settings = facts.get(sshd_config).global_settings
        users = facts.get(accounts).users
    except Exception:  # without sshd's configuration nobody can say these files are read
        return {}
    wanted = set(paths)
    owners: dict[str, str] = {}
    for user in users:
        for path in authorized_keys_paths(settings, user.name, user.home, user.uid):
            if path in wanted:
                owners.setdefault(path, user.name)
    return owners


def _user_for(path: str, homes: dict[str, str]) -> str:
    home = path
    for rel in KEY_FILE_NAMES:
        if path.endswith("/" + rel):
            home = path[: -len(rel) - 1]
            break
    if home in homes:
        return homes[home]
    if home == "/root":
        return "root"
    return home.rsplit("/", 1)[-1] or home


def _texts(facts: Facts, errors: dict[str, str] | None = None) -> dict[str, str]:
    """path -> content of every authorized_keys file gathered.

    An unreadable file raises EvidenceError, or is recorded in ``errors`` (path -> reason) when given.
    """
    b = facts.bundle
    texts: dict[str, str] = {}
    central = facts.get(_central_owners)
    for pattern in FILE_GLOBS:
        for path in b.glob(pattern):
            if pattern in CENTRAL_GLOBS and path not in central:
                continue
            try:
                text = b.text(path)
            except EvidenceError as exc:
                if errors is None:
                    raise
                errors[path] = str(exc)
                continue
            if text is not None:
                texts[path] = text
    cmd = b.command("keys.extra_authorized_keys")
    if cmd is not None and not cmd.missing:
        for path, text in parse_extra_output(cmd.stdout).items():
            texts.setdefault(path, text)
    return texts


def authorized_key_files(facts: Facts) -> dict[str, str]:
    """path -> user of every authorized_keys file that was read."""
    homes = _owner_map(facts)
    central = facts.get(_central_owners)
    return {path: central.get(path) or _user_for(path, homes) for path in sorted(_texts(facts))}


def _by_user(facts: Facts, texts: dict[str, str]) -> dict[str, list[AuthorizedKey]]:
    homes = _owner_map(facts)
    central = facts.get(_central_owners)
    out: dict[str, list[AuthorizedKey]] = {}
    for path, text in sorted(texts.items()):
        user = central.get(path) or _user_for(path, homes)
        keys = [replace(k, path=path) for k in parse_authorized_keys(text)]
        out.setdefault(user, []).extend(keys)
    return out


def authorized_keys(facts: Facts) -> dict[str, list[AuthorizedKey]]:
    """User -> the keys sshd would accept from that user's authorized_keys files.

    An unreadable file raises EvidenceError (a check must not pass on keys it could not see).
    """
    return _by_user(facts, _texts(facts))


def collect_authorized_keys(facts: Facts) -> tuple[dict[str, list[AuthorizedKey]], dict[str, str]]:
    """Like ``authorized_keys`` but never raises: (keys per user, unreadable path -> reason)."""
    errors: dict[str, str] = {}
    texts = _texts(facts, errors)
    return _by_user(facts, texts), errors


__all__ = [
    "AuthorizedKey",
    "EvidenceError",
    "authorized_key_files",
    "authorized_keys",
    "collect_authorized_keys",
    "fingerprint",
    "parse_authorized_keys",
    "parse_options",
]
