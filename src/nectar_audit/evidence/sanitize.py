"""Reduce secret-bearing files to what the checks need, before evidence is kept anywhere.

A sanitizer takes the raw bytes of a file and returns text with the secrets replaced by their shape
(a hash's algorithm, a key's fingerprint). Saved bundles and reports therefore never hold password
hashes or key material.
"""

from __future__ import annotations

import re
from typing import Callable

Sanitizer = Callable[[bytes], str]

_REGISTRY: dict[str, Sanitizer] = {}


def sanitizer(name: str) -> Callable[[Sanitizer], Sanitizer]:
    def register(fn: Sanitizer) -> Sanitizer:
        _REGISTRY[name] = fn
        return fn

    return register


def sanitize(name: str, data: bytes) -> str:
    try:
        fn = _REGISTRY[name]
    except KeyError:
        # Failing closed: an unknown sanitizer must never let the raw bytes through.
        return f"<withheld: unknown sanitizer {name!r}>"
    try:
        return fn(data)
    except Exception as exc:  # a sanitizer bug must not leak the input
        return f"<withheld: sanitizer {name!r} failed: {type(exc).__name__}>"


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


@sanitizer("shadow")
def _shadow(data: bytes) -> str:
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 2:
            parts[1] = describe_password_field(parts[1])
        out.append(":".join(parts))
    return "\n".join(out) + ("\n" if out else "")


# -- login records (binary / SQLite) -> "key time" rows; only who and when, never where from --------
def _lastlog_record_size(size: int) -> int:
    # struct lastlog: int32 time + line[32] + host[256] = 292 bytes (x86_64, i386); 64-bit time_t
    # ABIs (aarch64 and others) pad to 296 bytes.
    return 296 if size % 292 and size % 296 == 0 else 292


@sanitizer("lastlog")
def _lastlog(data: bytes) -> str:
    """/var/log/lastlog (sparse, indexed by uid) -> ``# records N`` then ``uid time`` per login."""
    import struct

    size = _lastlog_record_size(len(data))
    fmt = "<i288x" if size == 292 else "<q288x"
    count = len(data) // size
    out = [f"# records {count}"]
    view = memoryview(data)[: count * size]
    zero = bytes(size)
    for uid, (t,) in enumerate(struct.iter_unpack(fmt, view)):
        if t > 0 and view[uid * size:(uid + 1) * size] != zero:
            out.append(f"{uid} {t}")
    return "\n".join(out) + "\n"


@sanitizer("wtmp")
def _wtmp(data: bytes) -> str:
    """/var/log/wtmp (struct utmp, 384 bytes) -> ``user time`` of each user's latest login."""
    import struct

    latest: dict[str, int] = {}
    count = len(data) // 384
    for ut_type, user, t in struct.iter_unpack("<h42x32s264xi40x", memoryview(data)[: count * 384]):
        if ut_type != 7:  # USER_PROCESS
            continue
        name = user.split(b"\0", 1)[0].decode("utf-8", "replace")
        if name and " " not in name and t > latest.get(name, 0):
            latest[name] = t
    return "".join(f"{n} {t}\n" for n, t in sorted(latest.items()))


def _sqlite_rows(data: bytes, query: str) -> list[tuple[object, ...]]:
    import sqlite3
    import tempfile

    buf = bytearray(data)
    if buf[:16] != b"SQLite format 3\0":
        raise ValueError("not an SQLite database")
    if len(buf) > 19 and buf[18] == 2:  # WAL mode: read the main file as a rollback-journal database
        buf[18] = buf[19] = 1
    conn = sqlite3.connect(":memory:")
    try:
        if hasattr(conn, "deserialize"):  # Python 3.11+
            conn.deserialize(bytes(buf))
            return list(conn.execute(query))
    finally:
        conn.close()
    with tempfile.NamedTemporaryFile(suffix=".db") as tmp:
        tmp.write(buf)
        tmp.flush()
        conn = sqlite3.connect(f"file:{tmp.name}?mode=ro", uri=True)
        try:
            return list(conn.execute(query))
        finally:
            conn.close()


def _rows_text(rows: list[tuple[object, ...]], divisor: int = 1) -> str:
    out = []
    for name, t in rows:
        if isinstance(name, str) and name and not re.search(r"\s", name) and isinstance(t, int) and t > 0:
            out.append(f"{name} {t // divisor}\n")
    return "".join(out)


@sanitizer("lastlog2")
def _lastlog2(data: bytes) -> str:
    """/var/lib/lastlog/lastlog2.db (SQLite) -> ``name time``."""
    return _rows_text(_sqlite_rows(data, "SELECT Name, Time FROM Lastlog2"))


@sanitizer("wtmpdb")
def _wtmpdb(data: bytes) -> str:
    """/var/lib/wtmpdb/wtmp.db (SQLite, microseconds) -> ``user time`` of each user's latest login."""
    return _rows_text(_sqlite_rows(data, "SELECT User, MAX(Login) FROM wtmp WHERE Type = 3 GROUP BY User"),
                      1_000_000)


# -- keys and credentials (logic in facts/keys.py and facts/cloudinit.py; imported when first used) --
@sanitizer("private_key")
def _private_key(data: bytes) -> str:
    """Private key files -> JSON per key: format, encrypted or not, public fingerprint; no key material."""
    from nectar_audit.facts.keys import sanitize_described

    return sanitize_described(data)


@sanitizer("credentials")
def _credentials(data: bytes) -> str:
    """openrc, clouds.yaml, .aws/credentials, .git-credentials, .netrc, docker config -> secret names only."""
    from nectar_audit.facts.keys import sanitize_described

    return sanitize_described(data)


@sanitizer("secret_scan")
def _secret_scan(data: bytes) -> str:
    """Kept as is unless it holds a private key or a stored secret; then described like private_key."""
    from nectar_audit.facts.keys import sanitize_secret_scan

    return sanitize_secret_scan(data)


@sanitizer("instance_data")
def _instance_data(data: bytes) -> str:
    """cloud-init instance-data.json -> instance id and the metadata's public key fingerprints only."""
    from nectar_audit.facts.cloudinit import sanitize_instance_data

    return sanitize_instance_data(data)


@sanitizer("machine_id")
def _machine_id(data: bytes) -> str:
    from nectar_audit.facts.host import sanitize_machine_id

    return sanitize_machine_id(data)


@sanitizer("passwd")
def _passwd(data: bytes) -> str:
    """/etc/passwd: a hash left in field 2 (no shadow) becomes ``{hash=ALGO}``; the 7 fields survive."""
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 2 and parts[1] not in ("x", "*x*", ""):
            parts[1] = describe_password_field(parts[1]).replace("{hash:", "{hash=")
        out.append(":".join(parts))
    return "\n".join(out) + ("\n" if out else "")
