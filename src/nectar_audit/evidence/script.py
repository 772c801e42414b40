"""The one-pass gatherer: a POSIX sh script built from the Needs, and the parser of what it prints.

The same script runs locally (``sh -s``), over one SSH exec, or inside a lab host; nothing but a POSIX
shell and the usual base utilities (head, stat, find, grep) is needed on the audited host. Output is a
framed stream: every record starts with ``\\n<boundary> <kind> <name>\\n`` and ends with
``\\n<boundary> E <rc>``, the boundary being random per run, so file contents never need escaping.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import secrets
import shlex
from collections.abc import Sequence
from datetime import datetime, timezone

from nectar_audit.evidence.bundle import MAX_FILE_BYTES, Bundle, CommandRecord, StatRecord
from nectar_audit.evidence.needs import Needs

STAT_COMMAND = "__stat__"
READ_ERRORS = "__read_errors__"
ID_COMMAND = "__uid__"

_PREAMBLE = r"""
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH; export PATH
umask 077
# The scratch files (about a hundred) go to memory where it can: creating them on ext4 costs a tenth
# of the gather's CPU.
T=
[ -z "$TMPDIR" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && T=$(mktemp -d /dev/shm/nectar-audit.XXXXXXXX 2>/dev/null)
[ -n "$T" ] || T=$(mktemp -d 2>/dev/null) || { T=/tmp/nectar-audit.$$; mkdir -m 700 "$T" || exit 70; }
trap 'rm -rf "$T"' EXIT
if command -v timeout >/dev/null 2>&1; then na_to() { timeout "$@"; }; else na_to() { shift; "$@"; }; fi
printf '\n%s E 0\n' "$B" >"$T/t"
k=0
# A regular file that is there: readable, or recorded as not (and skipped).
na_ok() {
  [ -f "$1" ] || return 1
  [ -r "$1" ] && return 0
  printf '\n%s U %s\nPermission denied\n%s E 1\n' "$B" "$1" "$B"; return 1
}
# The end of a file record one command read ($1 its status): on failure, its complaint ("$T/e").
na_end() {
  printf '\n%s E %s\n' "$B" "$1"
  [ "$1" = 0 ] || { printf '\n%s U %s\n' "$B" "$2"; cat "$T/e"; printf '\n%s E 1\n' "$B"; }
}
# Files under /var (logs, package lists, sparse lastlog) are read one by one with a size cap; every
# other file is read by one cat for the whole batch, each framed by a header file and the shared
# footer "$T/t": one process instead of one per file. cat's complaints name the files they concern.
# cat's arguments are gathered as one quoted string, not by `set -- "$@" ...`, which copies the whole
# list on every file. After "--dedup" come the patterns that may match a file another pattern matches
# too (named.conf*, *.conf): each such file is read once. Only those are checked, because dash's case
# matching against the list of files seen costs more than the loop itself at a hundred files.
na_f() {
  a=; d=; seen='
'
  for p do
    [ "$p" = --dedup ] && { d=1; continue; }
    if [ -n "$d" ]; then
      case $seen in *"
$p
"*) continue ;; esac
      seen="$seen$p
"
    fi
    na_ok "$p" || continue
    case $p in
      /var/*|*"'"*)
        printf '\n%s F %s\n' "$B" "$p"
        head -c MAXBYTES "$p" 2>"$T/e"; na_end $? "$p" ;;
      *)
        k=$((k+1)); printf '\n%s F %s\n' "$B" "$p" >"$T/h$k"; a="$a \"\$T/h$k\" '$p' \"\$T/t\"" ;;
    esac
  done
  [ -n "$a" ] || return 0
  eval "cat -- $a" 2>"$T/ce"
  if [ -s "$T/ce" ]; then printf '\n%s C %s\n' "$B" READ_ERRORS; head -c 65536 "$T/ce"; printf '\n%s E 0\n' "$B"; fi
}
# Files whose sanitizer keeps a few lines of megabytes (dpkg's status, apt's lists) go through grep -E
# with the expression the fact module declared: the sanitizer keeps the same lines from either.
na_g() {
  re=$1; shift
  for p do
    na_ok "$p" || continue
    printf '\n%s F %s\n' "$B" "$p"
    grep -E -e "$re" -- "$p" 2>"$T/e"; r=$?
    [ "$r" = 1 ] && [ ! -s "$T/e" ] && r=0  # no line matched: read, and empty
    na_end "$r" "$p"
  done
}
# A background command writes its whole record (output, status, stderr) to its own file, so that one
# cat emits every command's record at the end.
na_bg() {
  { printf '\n%s C %s\n' "$B" "$3"; ( "$2" ) </dev/null 2>"$T/e$1"; r=$?; printf '\n%s E %s\n' "$B" "$r"
    if [ -s "$T/e$1" ]; then printf '\n%s S %s\n' "$B" "$3"; head -c 65536 "$T/e$1"; printf '\n%s E 0\n' "$B"; fi
  } >"$T/o$1"
}
# A search's hits, then their contents, read by na_f in batches of 200 (set -- "$@" copies the list on
# every line: a login node's thousands of keys would cost seconds).
na_s() {
  printf '\n%s X %s\n' "$B" "$2"
  cat "$T/x$1"
  printf '\n%s E 0\n' "$B"
  x="$T/x$1"; set --
  while IFS= read -r p; do
    set -- "$@" "$p"
    [ $# -lt 200 ] || { na_f "$@"; set --; }
  done <"$x"
  [ $# -eq 0 ] || na_f "$@"
}
"""


def build_script(needs: Needs, boundary: str) -> str:
    head = ("#!/bin/sh\n# nectar-audit evidence gatherer: reads only, writes nothing but a temp dir.\n"
            f"B={shlex.quote(boundary)}\n")
    return head + _body(needs)


# The body of the last Needs' script: only the boundary differs from one host of a fleet to the next.
_LAST_BODY: list[tuple[Needs, str]] = []


def _body(needs: Needs) -> str:
    if _LAST_BODY and _LAST_BODY[0][0] is needs:
        return _LAST_BODY[0][1]
    body = _build_body(needs)
    _LAST_BODY[:] = [(needs, body)]
    return body


def _build_body(needs: Needs) -> str:
    lines = [_PREAMBLE.replace("MAXBYTES", str(MAX_FILE_BYTES + 1)).replace("READ_ERRORS", READ_ERRORS)]
    lines.append(f"printf '\\n%s C %s\\n' \"$B\" {ID_COMMAND}; id -u; printf '\\n%s E 0\\n' \"$B\"")
    # Commands and searches run in the background, all at once, while the files are read: the
    # gather costs about as long as its slowest part, not the sum of its parts.
    for i, (name, snippet) in enumerate(needs.commands.items()):
        lines.append(f"na_cmd_{i}() {{\n{snippet}\n}}")
        lines.append(f"na_bg {i} na_cmd_{i} {shlex.quote(name)} &")
    for i, search in enumerate(needs.searches):
        roots = " ".join(shlex.quote(r) for r in search.roots)
        lines.append(
            f"find {roots} -xdev -maxdepth {search.maxdepth} -type f -size -{search.max_kib + 1}k "
            f"-exec grep -lF -e {shlex.quote(search.contains)} {{}} + </dev/null >\"$T/x{i}\" 2>/dev/null &"
        )
    # Globs stay unquoted so sh expands them; an unmatched glob is skipped by na_f's -f test.
    plain = [p for p in needs.files if p not in needs.prefilter]
    if plain:
        shared = set(sharing_patterns(plain))
        words = [_glob_word(p) for p in plain if p not in shared]
        if shared:
            words += ["--dedup", *(_glob_word(p) for p in plain if p in shared)]
        lines.append("na_f " + " ".join(words))
    by_expr: dict[str, list[str]] = {}
    for pattern, expr in needs.prefilter.items():
        by_expr.setdefault(expr, []).append(pattern)
    for expr, patterns in by_expr.items():
        lines.append(f"na_g {shlex.quote(expr)} " + " ".join(_glob_word(p) for p in patterns))
    if needs.stats:
        lines.append(
            f"printf '\\n%s C %s\\n' \"$B\" {STAT_COMMAND}; "
            "stat -c '%f %u %g %s %Y %n' -- " + " ".join(_glob_word(p) for p in needs.stats)
            + " 2>/dev/null; printf '\\n%s E 0\\n' \"$B\""
        )
    lines.append("wait")
    if needs.commands:
        lines.append("cat " + " ".join(f'"$T/o{i}"' for i in range(len(needs.commands))))
    for i, search in enumerate(needs.searches):
        lines.append(f"na_s {i} {shlex.quote(search.name)}")
    return "\n".join(lines) + "\n"


def sharing_patterns(patterns: Sequence[str]) -> list[str]:
    """The patterns that may match a file another of them matches too (``named.conf*`` and ``*.conf``).

    Judged as sh matches (component by component, a glob never matching "/"); where two globs meet in a
    name, only their fixed starts and ends are compared, so a pair may be listed that shares nothing: that
    costs a string test on the host, a pair wrongly left out a file read twice. Patterns are compared
    only with those whose directory may be theirs (a local scan builds this once, for some 260 patterns).
    """
    by_dir: dict[str, list[str]] = {}
    for p in dict.fromkeys(patterns):
        by_dir.setdefault(posixpath.dirname(p), []).append(p)
    wild_dirs = [d for d in by_dir if _has_glob(d)]
    shared: set[str] = set()
    for d, group in by_dir.items():
        # The same directory, or a wild one that may stand for it; a pair found is marked on both sides
        # (a wild directory's group is not searched for the plain directories it may stand for).
        near = [*group, *(q for w in wild_dirs if w != d and _dirs_may_meet(d, w) for q in by_dir[w])]
        for a in group:
            for b in near:
                if b != a and _may_share(a, b):
                    shared.update((a, b))
    return [p for p in dict.fromkeys(patterns) if p in shared]


def _may_share(a: str, b: str) -> bool:
    """Whether some file may match both: their directories may be the same and so may their names."""
    return _dirs_may_meet(posixpath.dirname(a), posixpath.dirname(b)) and _names_may_meet(
        posixpath.basename(a), posixpath.basename(b))


def _dirs_may_meet(a: str, b: str) -> bool:
    # sh's globs never match "/": the same depth, and every component may meet.
    parts_a, parts_b = a.split("/"), b.split("/")
    return len(parts_a) == len(parts_b) and all(_names_may_meet(x, y) for x, y in zip(parts_a, parts_b))


def _names_may_meet(x: str, y: str) -> bool:
    # Exact for a literal name; for two "*" patterns, their fixed starts and ends must agree (a necessary
    # condition, so a pair may be kept that shares nothing: ``*.conf`` and ``*.local`` are told apart,
    # which keeps the per-user patterns of /home/*/ out of the host-side check that costs O(n²)).
    if not _has_glob(x):
        return fnmatch.fnmatchcase(x, y)
    if not _has_glob(y):
        return fnmatch.fnmatchcase(y, x)
    if any(c in x + y for c in "?["):
        return True
    (px, sx), (py, sy) = _ends(x), _ends(y)
    return (px.startswith(py) or py.startswith(px)) and (sx.endswith(sy) or sy.endswith(sx))


def _ends(pattern: str) -> tuple[str, str]:
    """What a "*" pattern fixes at its start and at its end."""
    head, _, rest = pattern.partition("*")
    return head, rest.rpartition("*")[2]


_GLOB = re.compile(r"[*?\[]")


def _has_glob(pattern: str) -> bool:
    return _GLOB.search(pattern) is not None


def _glob_word(pattern: str) -> str:
    """Quote everything but the glob characters, so a path with spaces still expands correctly."""
    out = []
    for part in re.split(r"([*?\[\]])", pattern):
        out.append(part if part in ("*", "?", "[", "]") else (shlex.quote(part) if part else ""))
    return "".join(out)


def new_boundary() -> str:
    return "@@NA-" + secrets.token_hex(12)


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
