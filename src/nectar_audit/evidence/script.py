"""The one-pass gatherer: a POSIX sh script built from the Needs (``gather.sh``'s helpers + generated calls).

The same script runs locally (``sh -s``), over one SSH exec, or inside a lab host; nothing but a POSIX
shell and the usual base utilities (head, stat, find, grep) is needed on the audited host. What it prints
is read by ``stream.py``.
"""

from __future__ import annotations

import fnmatch
import functools
import posixpath
import re
import secrets
import shlex
from collections.abc import Sequence
from importlib import resources

from nectar_audit.evidence.bundle import MAX_FILE_BYTES, MAX_USER_FILE_BYTES
from nectar_audit.evidence.needs import Follow, Needs

STAT_COMMAND = "__stat__"
READ_ERRORS = "__read_errors__"
ID_COMMAND = "__uid__"
# The parts of the gather that finished (files, stats, commands, searches), one record per part.
DONE_COMMAND = "__done__"
# What ``stat --printf`` prints for a path: mode (hex), uid, gid, size, mtime, name, then a NUL, so that
# a name holding a newline is still one record (stream.parse_stat_lines).
STAT_FORMAT = "%f %u %g %s %Y %n\\0"



def build_script(needs: Needs, boundary: str) -> str:
    return _head(boundary) + _body(needs)


def _head(boundary: str) -> str:
    return ("#!/bin/sh\n# nectar-audit evidence gatherer: reads only, writes nothing but a temp dir.\n"
            f"BOUNDARY={shlex.quote(boundary)}\n")


@functools.lru_cache(maxsize=1)
def _helpers() -> str:
    return resources.files(__package__).joinpath("gather.sh").read_text(encoding="utf-8")


# A full scan's script body, generated from every check's Needs (scripts/prebuild_gather.py writes it, a
# test keeps it current), so that a local scan can start gathering while the checks are still being
# imported; gather.sh's text stands in it as this one line. Whoever uses it first builds the script from
# the checks it imported and uses the early run only when both are the same text.
PREBUILT = "full_scan.sh"
_HELPERS_LINE = "# @gather.sh@"


def prebuilt_text(needs: Needs) -> str:
    """What ``PREBUILT`` holds for ``needs`` (every implemented check's)."""
    return _build_body(needs).replace(_helpers(), _HELPERS_LINE + "\n", 1)


def prebuilt_script(boundary: str) -> str | None:
    """The full scan's script from ``PREBUILT`` (None when the package has none)."""
    try:
        text = resources.files(__package__).joinpath(PREBUILT).read_text(encoding="utf-8")
    except OSError:
        return None
    return _head(boundary) + text.replace(_HELPERS_LINE + "\n", _helpers(), 1)


# The body of the last Needs' script: only the boundary differs from one host of a fleet to the next.
_LAST_BODY: list[tuple[Needs, str]] = []


def _body(needs: Needs) -> str:
    if _LAST_BODY and _LAST_BODY[0][0] is needs:
        return _LAST_BODY[0][1]
    body = _build_body(needs)
    _LAST_BODY[:] = [(needs, body)]
    return body


def _build_body(needs: Needs) -> str:
    lines = [f"MAX_FILE_BYTES={MAX_FILE_BYTES + 1} MAX_USER_FILE_BYTES={MAX_USER_FILE_BYTES + 1} "
             f"READ_ERRORS={READ_ERRORS} STAT_FORMAT={shlex.quote(STAT_FORMAT)}",
             "export BOUNDARY MAX_FILE_BYTES",
             _helpers()]
    lines.append(f"printf '\\n%s C %s\\n' \"$BOUNDARY\" {ID_COMMAND}; id -u; printf '\\n%s E 0\\n' \"$BOUNDARY\"")
    # Commands and searches run in the background, all at once, while the files are read: the
    # gather costs about as long as its slowest part, not the sum of its parts.
    for i, (name, snippet) in enumerate(needs.commands.items()):
        lines.append(f"command_{i}() {{\n{snippet}\n}}")
        lines.append(f"run_command {i} command_{i} {shlex.quote(name)} &")
    for i, follow in enumerate(needs.follows):
        lines.extend(_follow_calls(i, follow))
    for i, search in enumerate(needs.searches):
        roots = " ".join(shlex.quote(r) for r in search.roots)
        lines.append(
            f"find {roots} -xdev -maxdepth {search.maxdepth} -type f -size -{search.max_kib + 1}k "
            f"-exec grep -lZF -e {shlex.quote(search.contains)} {{}} + </dev/null >\"$SCRATCH/x{i}\" 2>/dev/null &"
        )
    # Globs stay unquoted so sh expands them; an unmatched glob is skipped by read_files' -f test.
    plain = [p for p in needs.files if p not in needs.prefilter]
    if plain:
        shared = set(sharing_patterns(plain))
        words = [_glob_word(p) for p in plain if p not in shared]
        if shared:
            words += ["--dedup", *(_glob_word(p) for p in plain if p in shared)]
        lines.append("read_files " + " ".join(words))
    by_expr: dict[str, list[str]] = {}
    for pattern, expr in needs.prefilter.items():
        by_expr.setdefault(expr, []).append(pattern)
    for expr, patterns in by_expr.items():
        lines.append(f"grep_files {shlex.quote(expr)} " + " ".join(_glob_word(p) for p in patterns))
    lines.append("part_done files")
    if needs.stats:
        lines.append(
            f"printf '\\n%s C %s\\n' \"$BOUNDARY\" {STAT_COMMAND}; "
            "stat --printf \"$STAT_FORMAT\" -- " + " ".join(_glob_word(p) for p in needs.stats)
            + " 2>/dev/null; printf '\\n%s E 0\\n' \"$BOUNDARY\""
        )
    lines.append("part_done stats")
    lines.append("wait")
    if needs.commands:
        lines.append("cat " + " ".join(f'"$SCRATCH/o{i}"' for i in range(len(needs.commands))))
    lines.append("part_done commands")
    lines.append("read_user_files")
    lines.append("part_done user_files")
    for i, search in enumerate(needs.searches):
        lines.append(f"read_search_hits {i} {shlex.quote(search.name)}")
    for i, follow in enumerate(needs.follows):
        lines.append(f"read_search_hits f{i} {shlex.quote(follow.name)}")
    lines.append("part_done searches")
    return "\n".join(lines) + "\n"


def _follow_calls(i: int, follow: Follow) -> list[str]:
    """The two small functions ``follow_includes`` asks (which directive a word is, which directory
    entries are skipped) and its call, in the background like the searches."""
    def alternatives(words: Sequence[str]) -> str:
        return "|".join(shlex.quote(w) for w in words)

    kinds = []
    if follow.file_directives:
        kinds.append(f"{alternatives(follow.file_directives)}) return 1;;")
    if follow.dir_directives:
        kinds.append(f"{alternatives(follow.dir_directives)}) return 2;;")
    skip = "|".join(_glob_word(p) for p in follow.dir_skip)
    words = (*follow.file_directives, *follow.dir_directives)
    ere = "^[[:space:]]*(" + "|".join(_ere_literal(w) for w in words) + ")[[:space:]]"
    roots = " ".join(shlex.quote(r) for r in follow.roots)
    return [
        f"follow_kind_{i}() {{ case $1 in {' '.join(kinds)} esac; return 0; }}",
        (f"follow_skip_{i}() {{ case $1 in {skip}) return 0;; esac; return 1; }}" if skip
         else f"follow_skip_{i}() {{ return 1; }}"),
        f"follow_includes {i} {follow.max_depth} {follow.max_files} {shlex.quote(ere)} {roots} &",
    ]


def _ere_literal(word: str) -> str:
    # Only ERE's own special characters: grep 3.8 warns about a "stray \" before any other one.
    return re.sub(r"([.\[\]()*+?{}|^$\\])", r"\\\1", word)


def sharing_patterns(patterns: Sequence[str]) -> list[str]:
    """The patterns that may match a file another of them matches too (``named.conf*`` and ``*.conf``).

    Judged as sh matches (component by component, a glob never matching "/"); where two globs meet in a
    name, only their fixed starts and ends are compared, so a pair may be listed that shares nothing: that
    costs a string test on the host, a pair wrongly left out a file read twice. Patterns are compared
    only with those whose directory may be theirs (a local scan builds this once, for some 260 patterns).
    """
    unique = list(dict.fromkeys(patterns))
    by_dir: dict[str, list[str]] = {}
    for p in unique:
        by_dir.setdefault(posixpath.dirname(p), []).append(p)
    wild_dirs = [d for d in by_dir if _has_glob(d)]
    shared: set[str] = set()
    for d, group in by_dir.items():
        # The same directory, or a wild one that may stand for it; a pair found is marked on both sides
        # (a wild directory's group is not searched for the plain directories it may stand for). Every
        # pattern of ``near`` has a directory that may be d, so their names decide.
        near = [*group, *(q for w in wild_dirs if w != d and _dirs_may_meet(d, w) for q in by_dir[w])]
        names = [(b, posixpath.basename(b)) for b in near]
        for a in group:
            name = posixpath.basename(a)
            for b, other in names:
                if b != a and _names_may_meet(name, other):
                    shared.update((a, b))
    return [p for p in unique if p in shared]


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
        return _name_matches(x, y)
    if not _has_glob(y):
        return _name_matches(y, x)
    if any(c in x + y for c in "?["):
        return True
    (px, sx), (py, sy) = _ends(x), _ends(y)
    return (px.startswith(py) or py.startswith(px)) and (sx.endswith(sy) or sy.endswith(sx))


def _name_matches(name: str, pattern: str) -> bool:
    """fnmatchcase, after the cheap tests of the pattern's fixed start (and end, for a "*" pattern):
    most pairs differ there, and each pattern compiled costs more than all the tests."""
    if not _has_glob(pattern):
        return name == pattern
    head = _GLOB.split(pattern, maxsplit=1)[0]
    if not name.startswith(head):
        return False
    if "?" not in pattern and "[" not in pattern and not name.endswith(pattern.rpartition("*")[2]):
        return False
    return fnmatch.fnmatchcase(name, pattern)


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
