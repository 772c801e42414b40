"""Last logins: lastlog, lastlog2, wtmp and wtmpdb reduced on ingestion to who logged in when (never from
where), and the parser of those rows."""

from __future__ import annotations

import re

from nectar_audit.evidence import fields_only


# -- login records (binary / SQLite) -> "key time" rows; only who and when, never where from --------
def _lastlog_record_size(size: int) -> int:
    # struct lastlog: int32 time + line[32] + host[256] = 292 bytes (x86_64, i386); 64-bit time_t
    # ABIs (aarch64 and others) pad to 296 bytes.
    return 296 if size % 292 and size % 296 == 0 else 292


@fields_only
def sanitize_lastlog(data: bytes) -> str:
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


@fields_only
def sanitize_wtmp(data: bytes) -> str:
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


# What one login database may cost: SQLite virtual-machine steps (about a second of CPU) and rows.
_SQLITE_STEPS = 50_000_000
_SQLITE_ROWS = 200_000


def _sqlite_rows(data: bytes, query: str, table: str) -> list[tuple[object, ...]]:
    """Rows of ``query`` over a host's SQLite file. The file is hostile: ``table`` must be a real table
    (a view could recurse forever; triggers never fire on SELECT), the query is stopped past a step
    budget, schema functions are not trusted, and at most ``_SQLITE_ROWS`` rows are kept."""
    import sqlite3
    import tempfile

    buf = bytearray(data)
    if buf[:16] != b"SQLite format 3\0":
        raise ValueError("not an SQLite database")
    if len(buf) > 19 and buf[18] == 2:  # WAL mode: read the main file as a rollback-journal database
        buf[18] = buf[19] = 1

    def run(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
        steps = [0]

        def budget() -> int:
            steps[0] += 1000
            return 1 if steps[0] > _SQLITE_STEPS else 0

        conn.set_progress_handler(budget, 1000)
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA trusted_schema = OFF")
        kind = conn.execute("SELECT type FROM sqlite_master WHERE name = ? COLLATE NOCASE", (table,)).fetchone()
        if kind is None or kind[0] != "table":
            raise ValueError(f"{table} is not a table")
        return conn.execute(query).fetchmany(_SQLITE_ROWS)

    conn = sqlite3.connect(":memory:")
    try:
        if hasattr(conn, "deserialize"):  # Python 3.11+
            conn.deserialize(bytes(buf))
            return run(conn)
    finally:
        conn.close()
    with tempfile.NamedTemporaryFile(suffix=".db") as tmp:
        tmp.write(buf)
        tmp.flush()
        conn = sqlite3.connect(f"file:{tmp.name}?mode=ro&immutable=1", uri=True)
        try:
            return run(conn)
        finally:
            conn.close()


def _rows_text(rows: list[tuple[object, ...]], divisor: int = 1) -> str:
    out = []
    for name, t in rows:
        if isinstance(name, str) and name and not re.search(r"\s", name) and isinstance(t, int) and t > 0:
            out.append(f"{name} {t // divisor}\n")
    return "".join(out)


@fields_only
def sanitize_lastlog2(data: bytes) -> str:
    """/var/lib/lastlog/lastlog2.db (SQLite) -> ``name time``."""
    return _rows_text(_sqlite_rows(data, "SELECT Name, Time FROM Lastlog2", "Lastlog2"))


@fields_only
def sanitize_wtmpdb(data: bytes) -> str:
    """/var/lib/wtmpdb/wtmp.db (SQLite, microseconds) -> ``user time`` of each user's latest login."""
    return _rows_text(_sqlite_rows(data, "SELECT User, MAX(Login) FROM wtmp WHERE Type = 3 GROUP BY User", "wtmp"),
                      1_000_000)


def parse_login_rows(text: str) -> dict[str, int]:
    """Rows written by the lastlog/lastlog2/wtmp/wtmpdb sanitizers: ``key time`` (key = uid or name)."""
    out: dict[str, int] = {}
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        parts = raw.split()
        if len(parts) != 2 or not parts[1].isdigit():
            continue
        t = int(parts[1])
        if t > out.get(parts[0], 0):
            out[parts[0]] = t
    return out


def records_header(text: str, key: str) -> str | None:
    for raw in text.splitlines():
        if raw.startswith(f"# {key} "):
            return raw[len(key) + 3:].strip()
        if not raw.startswith("#"):
            break
    return None

