"""The parser of the gatherer's framed stream: every record starts with ``\\n<boundary> <kind> <name>\\n``
and ends with ``\\n<boundary> E <rc>``, the boundary being random per run (see ``gather.sh``)."""

from __future__ import annotations

from datetime import datetime, timezone

from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.evidence.script import ID_COMMAND, READ_ERRORS, STAT_COMMAND


class StreamError(Exception):
    pass


def parse_stream(data: bytes, boundary: str, bundle: Bundle) -> None:
    """Fill ``bundle`` from the gatherer's output; a cut-off stream is recorded, not fatal."""
    marker = b"\n" + boundary.encode() + b" "
    pieces = (b"\n" + data).split(marker)
    if pieces[0].strip():
        bundle.errors.append("gatherer printed unexpected output: " + pieces[0][:200].decode("utf-8", "replace"))
    open_record: tuple[str, str, bytes] | None = None
    stderr: dict[str, str] = {}
    for piece in pieces[1:]:
        head, _, body = piece.partition(b"\n")
        kind, _, name_b = head.decode("utf-8", "replace").partition(" ")
        if kind == "E":
            if open_record is None:
                continue
            rc = _int(name_b)
            _store(bundle, open_record, rc, stderr)
            open_record = None
            continue
        if open_record is not None:
            bundle.errors.append(f"record {open_record[1]!r} was not terminated")
        open_record = (kind, name_b, body)
    if open_record is not None:
        bundle.errors.append(f"evidence stream ended early, inside {open_record[1]!r}")
    for name, text in stderr.items():
        if name in bundle.commands:
            bundle.commands[name].stderr = text
    uid = bundle.commands.pop(ID_COMMAND, None)
    if uid is not None and uid.stdout.strip().isdigit():
        bundle.uid = int(uid.stdout.strip())
    stat_out = bundle.commands.pop(STAT_COMMAND, None)
    if stat_out is not None:
        bundle.stats.update(parse_stat_lines(stat_out.stdout))
    if not bundle.gathered_at:
        bundle.gathered_at = datetime.now(timezone.utc).isoformat(timespec="seconds")


def _store(bundle: Bundle, record: tuple[str, str, bytes], rc: int, stderr: dict[str, str]) -> None:
    kind, name, body = record
    if kind == "F":
        if rc == 0:
            bundle.add_file(name, body)
    elif kind == "U":
        bundle.add_unreadable(name, body.decode("utf-8", "replace").strip() or "unreadable")
    elif kind == "C" and name == READ_ERRORS:
        _apply_read_errors(bundle, body.decode("utf-8", "replace"))
    elif kind == "C":
        bundle.commands[name] = CommandRecord(stdout=body.decode("utf-8", "replace"), rc=rc)
    elif kind == "S":
        stderr[name] = body.decode("utf-8", "replace")
    elif kind == "X":
        bundle.add_search_hits(name, [p for p in body.decode("utf-8", "replace").splitlines() if p])
    else:
        bundle.errors.append(f"unknown record kind {kind!r}")


def _apply_read_errors(bundle: Bundle, text: str) -> None:
    """cat's complaints about a batch of files ("cat: PATH: Input/output error", busybox "cat: can't
    open 'PATH': ..."): each named file is unreadable, whatever part of it was read."""
    for line in text.splitlines():
        hits = [p for p in bundle.files if f"{p}: " in line or f"'{p}'" in line]
        for path in hits:
            bundle.add_unreadable(path, line.rsplit(": ", 1)[-1].strip() or "read error")
        if not hits and line.strip():
            bundle.errors.append(f"reading files: {line.strip()[:300]}")


def parse_stat_lines(text: str) -> dict[str, StatRecord]:
    out: dict[str, StatRecord] = {}
    for line in text.splitlines():
        parts = line.split(" ", 5)
        if len(parts) != 6:
            continue
        try:
            out[parts[5]] = StatRecord(
                mode=int(parts[0], 16), uid=int(parts[1]), gid=int(parts[2]),
                size=int(parts[3]), mtime=int(parts[4]),
            )
        except ValueError:
            continue
    return out


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return -1
