"""The parser of the gatherer's framed stream, fed as it arrives and bounded by the host's budget.

Every record opens with ``\\n<boundary> <kind> <name>\\n`` and closes with ``\\n<boundary> E <rc>``; the
boundary is random per run, so file contents never need escaping. Names the host chooses (files, search
hits) are length-prefixed (``<kind> <bytes>:<name>\\n``), so a name holding a newline, or any byte, is
data and never a second record. Search hits are NUL-separated for the same reason. A hit's content comes
as an ``H`` record, which never replaces a file gathered for another purpose.

The host controls every byte, so the parser holds at most one record (cut at its cap) and stops at the
host's budget: what it kept is marked incomplete (``Bundle.cut``) and facts asking for what was not read
get an error instead of a wrong answer. Nothing here is quadratic in the number of records or lines.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timezone

from nectar_audit.evidence.bundle import MAX_FILE_BYTES, Bundle, StatRecord
from nectar_audit.evidence.redact import redact
from nectar_audit.evidence.script import DONE_COMMAND, HIT_READ_ERRORS, ID_COMMAND, READ_ERRORS, STAT_COMMAND

_NAMED = frozenset(b"FUH")  # kinds whose name the host chooses: length-prefixed
_KINDS = frozenset(b"FUHCSXE")
_MAX_NAME = 65536  # longer than any path a kernel accepts (PATH_MAX is 4096)


@dataclass(frozen=True)
class Budget:
    """What one host may send: past it the rest is not read (``--max-evidence`` sets ``total_bytes``)."""

    total_bytes: int = 64 * 1024 * 1024
    records: int = 50_000  # a login node with 3,000 accounts sends about 10,000
    command_bytes: int = MAX_FILE_BYTES
    errors: int = 200  # bundle.errors kept (a flood of bad records must not grow them)


DEFAULT_BUDGET = Budget()


class StreamParser:
    """Feed the gatherer's output in chunks; ``feed`` returns False once the host's budget is spent."""

    def __init__(self, boundary: str, bundle: Bundle, budget: Budget = DEFAULT_BUDGET) -> None:
        self.marker = b"\n" + boundary.encode() + b" "
        self.bundle = bundle
        self.budget = budget
        self.buf = bytearray(b"\n")  # the stream starts with a record's "\n"
        self.received = 0
        self.head = b""  # the first bytes, for messages about a host that sent no evidence
        self.records = 0
        self.started = False  # a record was seen (junk before the first is the host's noise)
        # The open record: kind, name, body, its cap, whether bytes past the cap were dropped.
        self.kind: int | None = None
        self.name = ""
        self.body = bytearray()
        self.cap = 0
        self.truncated = False
        self.stderr: dict[str, str] = {}
        self.hits: set[str] = set()  # paths whose record came from a search hit's H record
        self.stopped = False

    # -- input ---------------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> bool:
        if self.stopped:
            return False
        if len(self.head) < 200:
            self.head += chunk[: 200 - len(self.head)]
        self.received += len(chunk)
        if self.received > self.budget.total_bytes:
            keep = len(chunk) - (self.received - self.budget.total_bytes)
            self.buf += chunk[:max(keep, 0)]
            self._drain(final=False)
            self._stop(f"the host sent more than {_mib(self.budget.total_bytes)} of evidence (the budget "
                       f"per host); the rest was not read")
            return False
        self.buf += chunk
        self._drain(final=False)
        return not self.stopped

    def finish(self) -> None:
        """The end of the stream: close what is open, turn the framework records into bundle fields."""
        if not self.stopped:
            self._drain(final=True)
            if self.kind is not None:
                self._error(f"evidence stream ended early, inside {self.name!r}")
                self.kind = None
        b = self.bundle
        for name, text in self.stderr.items():
            if name in b.commands:
                b.commands[name].stderr = text
        uid = b.commands.pop(ID_COMMAND, None)
        if uid is not None and uid.stdout.strip().isdigit():
            b.uid = int(uid.stdout.strip())
        stat_out = b.commands.pop(STAT_COMMAND, None)
        if stat_out is not None:
            b.stats.update(parse_stat_lines(stat_out.stdout))
        if not b.gathered_at:
            b.gathered_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def _stop(self, reason: str) -> None:
        self.stopped = True
        self.bundle.cut = reason
        if self.kind is not None:
            self._error(f"record {self.name!r} was cut: {reason}")
            self.kind = None
        self.buf = bytearray()
        self.body = bytearray()

    # -- framing -------------------------------------------------------------------------------
    def _drain(self, final: bool) -> None:
        # An offset walks the buffer; consumed bytes are dropped once per chunk (dropping them per
        # record would cost the whole buffer each time).
        buf, m = self.buf, self.marker
        p = 0
        while not self.stopped:
            pos = buf.find(m, p)
            if pos < 0:
                # Keep a tail that may be the start of a marker split across chunks.
                end = len(buf) if final else max(p, len(buf) - (len(m) - 1))
                if self.kind is not None:
                    self._body(buf, p, end)
                else:
                    self._junk(buf, p, end)
                p = end
                break
            if self.kind is not None:
                self._body(buf, p, pos)
            else:
                self._junk(buf, p, pos)
            nxt = self._header(pos, final)
            if nxt is None:
                p = pos
                break
            p = nxt
        if not self.stopped:
            del buf[:p]

    def _header(self, at: int, final: bool) -> int | None:
        """Parse the header at ``at`` (a marker): the offset after it, or None when more bytes are needed."""
        buf, m = self.buf, len(self.marker)
        start = at + m + 2
        if len(buf) < start:
            return len(buf) if final else None
        kind, space = buf[at + m], buf[at + m + 1]
        if kind not in _KINDS or space != 0x20:
            self._error("malformed record header")
            return at + m
        if kind in _NAMED:
            colon = buf.find(b":", start, start + 12)
            if colon < 0:
                if len(buf) >= start + 12 or final:
                    self._error("malformed record header")
                    return at + m
                return None
            digits = bytes(buf[start:colon])
            if not digits.isdigit() or int(digits) > _MAX_NAME:
                self._error("malformed record header")
                return at + m
            end = colon + 1 + int(digits)
            if len(buf) < end + 1:
                if final:
                    self._error("evidence stream ended early, inside a record header")
                    return len(buf)
                return None
            if buf[end] != 0x0A:
                self._error("malformed record header")
                return at + m
            self._open(kind, _name(bytes(buf[colon + 1:end])))
            return end + 1
        nl = buf.find(b"\n", start)
        if nl < 0:
            if kind == ord("E") and final:
                self._close(_text(bytes(buf[start:])))
                return len(buf)
            if len(buf) - start > 256:
                self._error("malformed record header")
                return at + m
            return None
        name = _text(bytes(buf[start:nl]))
        if kind == ord("E"):
            self._close(name)
            return nl  # the newline after "E rc" opens the next record
        self._open(kind, name)
        return nl + 1

    def _open(self, kind: int, name: str) -> None:
        if self.kind is not None:
            self._error(f"record {self.name!r} was not terminated")
        self.started = True
        self.records += 1
        if self.records > self.budget.records:
            self._stop(f"the host sent more than {self.budget.records} records; the rest was not read")
            return
        self.kind, self.name, self.body, self.truncated = kind, name, bytearray(), False
        if kind in (ord("F"), ord("H")):
            self.cap = min(self.bundle.read_limit(name), self.budget.total_bytes) + 1
        else:
            self.cap = self.budget.command_bytes + 1

    def _body(self, buf: bytearray, a: int, b: int) -> None:
        room = self.cap - len(self.body)
        if b - a > room:
            self.truncated = True
            b = a + max(room, 0)
        self.body += buf[a:b]

    def _junk(self, buf: bytearray, a: int, b: int) -> None:
        if not self.started and b > a and bytes(buf[a:min(b, a + 4096)]).strip():
            self._error("gatherer printed unexpected output: " + _text(bytes(buf[a:min(b, a + 200)])))

    def _error(self, text: str) -> None:
        errors = self.bundle.errors
        if len(errors) < self.budget.errors:
            errors.append(text)
        elif len(errors) == self.budget.errors:
            errors.append("more errors were not kept")

    # -- records -------------------------------------------------------------------------------
    def _close(self, rc_text: str) -> None:
        kind = self.kind
        if kind is None:
            return
        self.kind = None
        rc = _int(rc_text)
        b, name, body = self.bundle, self.name, bytes(self.body)
        self.body = bytearray()
        if kind == ord("F"):
            if rc == 0:
                b.add_file(name, body, limit=self.cap - 1)
        elif kind == ord("H"):
            if rc == 0 and b.add_hit_file(name, body, limit=self.cap - 1):
                self.hits.add(name)
        elif kind == ord("U"):
            b.add_unreadable(name, _text(body).strip() or "unreadable")
        elif kind == ord("C") and name == DONE_COMMAND:
            b.complete.update(_text(body).split())
        elif kind == ord("C") and name == READ_ERRORS:
            _apply_read_errors(b, body, b.files, self._error)
        elif kind == ord("C") and name == HIT_READ_ERRORS:
            # A complaint about a hit whose path was read as a file first concerns a record not kept.
            _apply_read_errors(b, body, self.hits, self._error, others=self.bundle.files)
        elif kind == ord("C"):
            b.add_command(name, body, rc, self.truncated)
        elif kind == ord("S"):
            self.stderr[name] = redact(_text(body))
        elif kind == ord("X"):
            b.add_search_hits(name, [_name(p) for p in body.split(b"\0") if p])


def parse_stream(data: bytes, boundary: str, bundle: Bundle, budget: Budget = DEFAULT_BUDGET) -> None:
    """Fill ``bundle`` from the gatherer's whole output; a cut-off stream is recorded, not fatal."""
    parser = StreamParser(boundary, bundle, budget)
    parser.feed(data)
    parser.finish()


def _name(data: bytes) -> str:
    """A file name the host chose: bytes that are not UTF-8 kept as surrogate escapes, as ``root:`` reads
    names, so a name is one name and round-trips (reports show such bytes as ``\\xNN``)."""
    return data.decode("utf-8", "surrogateescape")


def _text(data: bytes) -> str:
    """Host bytes as text; bytes that are not UTF-8 stay visible as ``\\xNN`` (a name stays one name)."""
    return data.decode("utf-8", "backslashreplace")


def _apply_read_errors(bundle: Bundle, body: bytes, concerned: Collection[str],
                       report: Callable[[str], None], others: Collection[str] = ()) -> None:
    """head's complaints about a batch of files: each named file in ``concerned`` is unreadable, whatever
    part was read. Each line names its file, looked up directly (a host with thousands of files must not
    cost thousands of comparisons per line)."""
    for line in body.decode("utf-8", "surrogateescape").splitlines():
        line = line.strip()
        found = _read_error(line)
        if found is not None and found[0] in concerned:
            bundle.add_unreadable(found[0], found[1] or "read error")
        elif found is not None and found[0] in others:
            continue
        elif line:
            report(f"reading files: {_text(line.encode('utf-8', 'surrogateescape'))[:300]}")


def _read_error(line: str) -> tuple[str, str] | None:
    """(path, reason) of one complaint of head: GNU "head: cannot open NAME for reading: REASON" and
    "head: error reading NAME: REASON" (NAME shell-quoted), busybox "head: can't open 'NAME': REASON"."""
    left, sep, reason = line.rpartition(": ")
    if not sep:
        return None
    if left.startswith("head: cannot open ") and left.endswith(" for reading"):
        name = _unquote(left[len("head: cannot open "):-len(" for reading")])
    elif left.startswith("head: error reading "):
        name = _unquote(left[len("head: error reading "):])
    elif left.startswith("head: can't open '") and left.endswith("'"):
        name = left[len("head: can't open '"):-1]
    else:
        return None
    return (name, reason.strip()) if name is not None else None


_C_ESCAPES = {"a": 7, "b": 8, "e": 27, "E": 27, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}


def _unquote(word: str) -> str | None:
    """A name as GNU tools quote it in messages (shell-escape style: 'a b', "it's", 'a'$'\\n''b'), as
    the name the stream carries (bytes that are not UTF-8 as surrogate escapes); None if not so quoted.
    One pass over the text."""
    out = bytearray()
    i, n = 0, len(word)
    while i < n:
        if word[i] == "'":
            j = word.find("'", i + 1)
            if j < 0:
                return None
            out += word[i + 1:j].encode("utf-8", "surrogateescape")
            i = j + 1
        elif word.startswith("$'", i):
            i += 2
            while i < n and word[i] != "'":
                if word[i] != "\\" or i + 1 == n:
                    out += word[i].encode("utf-8", "surrogateescape")
                    i += 1
                    continue
                e = word[i + 1]
                k = i + 1
                while k < min(i + 4, n) and word[k] in "01234567":
                    k += 1
                if k > i + 1:
                    out.append(int(word[i + 1:k], 8) & 0xFF)
                    i = k
                else:
                    out += bytes([_C_ESCAPES[e]]) if e in _C_ESCAPES else e.encode("utf-8", "surrogateescape")
                    i += 2
            if i == n:
                return None
            i += 1
        elif word[i] == '"':
            i += 1
            while i < n and word[i] != '"':
                if word[i] == "\\" and i + 1 < n and word[i + 1] in '"\\$`':
                    i += 1
                out += word[i].encode("utf-8", "surrogateescape")
                i += 1
            if i == n:
                return None
            i += 1
        elif word[i] == "\\" and i + 1 < n:
            out += word[i + 1].encode("utf-8", "surrogateescape")
            i += 2
        else:
            out += word[i].encode("utf-8", "surrogateescape")
            i += 1
    return _name(bytes(out))


def parse_stat_lines(text: str) -> dict[str, StatRecord]:
    """``stat`` records: NUL-terminated (what the gatherer asks for, so any name is one record), or
    newline-terminated (older bundles, hand-made samples)."""
    out: dict[str, StatRecord] = {}
    for line in text.split("\0") if "\0" in text else text.splitlines():
        parts = line.lstrip("\n").split(" ", 5)
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


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.3g} MiB"
