"""The evidence bundle: raw file contents, file metadata and command outputs of one host.

It is what ``scan --save-evidence`` writes and ``evidence:FILE.json`` reads back, so it holds no
secrets: sensitive files are reduced by ``sanitize.py`` as they are added.
"""

from __future__ import annotations

import bisect
import contextlib
import fnmatch
import functools
import json
import os
import re
import stat as stat_mod
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nectar_audit.evidence.needs import Needs
from nectar_audit.evidence.redact import redact
from nectar_audit.evidence.sanitize import Sanitizer, sanitize

BUNDLE_FORMAT = 1
# Config files are small; a larger file is kept truncated so one huge file cannot exhaust memory.
MAX_FILE_BYTES = 16 * 1024 * 1024
# Input of a sanitizer of a database under /var (apt's lists, dpkg's status, lastlog), which keeps only a
# small part of it (offline targets read this far).
MAX_SANITIZED_INPUT = 256 * 1024 * 1024
# Where any user may write: a file there is read last (its own part, "user_files") and only this far.
USER_AREAS = ("/home/", "/tmp/", "/var/tmp/", "/dev/shm/")
MAX_USER_FILE_BYTES = 1024 * 1024


class EvidenceError(Exception):
    """Evidence a fact needs is missing or unusable; the message is shown to the user as the reason."""


@dataclass
class FileRecord:
    content: str | None = None
    error: str | None = None
    truncated: bool = False


@dataclass(frozen=True)
class StatRecord:
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int

    @property
    def perms(self) -> int:
        return stat_mod.S_IMODE(self.mode)

    @property
    def is_dir(self) -> bool:
        return stat_mod.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat_mod.S_ISREG(self.mode)

    @property
    def is_link(self) -> bool:
        return stat_mod.S_ISLNK(self.mode)


@functools.lru_cache(maxsize=512)
def _matcher(pattern: str) -> Callable[[str], object]:
    """fnmatchcase for one pattern, compiled once (hosts have hundreds of files to test). A pattern whose
    only glob is one "*" (nearly all: ``/etc/x.d/*.conf``) is its fixed start and end, as fnmatch's "*"
    crosses "/": no regular expression to compile (compiling them cost a scan about 15 ms)."""
    if pattern.count("*") == 1 and not any(c in pattern for c in "?["):
        head, tail = pattern.split("*")
        least = len(head) + len(tail)
        return lambda path: len(path) >= least and path.startswith(head) and path.endswith(tail)
    return re.compile(fnmatch.translate(pattern)).match


class _PathSanitizers:
    """Which sanitizer a path gets: the one of the first pattern matching it (shell-style, case-sensitive).

    A pattern is tested only when the path has its fixed start and end, so of some ninety patterns the
    few that may match are compiled (compiling all of them cost a local scan about 30 ms), and a literal
    pattern is a string comparison. Answers are remembered: every host of a fleet has much the same few
    hundred paths."""

    def __init__(self, sanitizers: Mapping[str, Sanitizer]) -> None:
        self.rules = [(pattern, *_fixed_ends(pattern), fn) for pattern, fn in sanitizers.items()]
        self.memo: dict[str, Sanitizer | None] = {}

    def lookup(self, path: str) -> Sanitizer | None:
        try:
            return self.memo[path]
        except KeyError:
            pass
        found = None
        for pattern, head, tail, fn in self.rules:
            if tail is None:  # no glob character: the path itself
                if path == pattern:
                    found = fn
                    break
            elif path.startswith(head) and path.endswith(tail) and _matcher(pattern)(path):
                found = fn
                break
        if len(self.memo) >= 8192:
            self.memo.clear()
        self.memo[path] = found
        return found


def _fixed_ends(pattern: str) -> tuple[str, str | None]:
    """The fixed start and end every match of ``pattern`` has ("" when unknown); end None: no glob."""
    cut = _GLOB_CHAR.search(pattern)
    if cut is None:
        return pattern, None
    # Only "*" globs have a plain tail; after "?" or "[" (a class, or a literal "[") claim none.
    tail = pattern.rpartition("*")[2] if not any(c in pattern for c in "?[") else ""
    return pattern[:cut.start()], tail


_GLOB_CHAR = re.compile(r"[*?\[]")
# The tables of the sanitizer mappings in use (one per merged Needs; a fleet shares one), by identity.
_TABLES: dict[int, tuple[Mapping[str, Sanitizer], _PathSanitizers]] = {}


def _sanitizers_of(sanitizers: Mapping[str, Sanitizer]) -> _PathSanitizers:
    entry = _TABLES.get(id(sanitizers))
    if entry is None or entry[0] is not sanitizers:
        if len(_TABLES) >= 16:
            _TABLES.clear()
        entry = _TABLES[id(sanitizers)] = (sanitizers, _PathSanitizers(sanitizers))
    return entry[1]


def _part_of(path: str) -> str:
    """The part of the gather that reads ``path`` (a pattern starting "/home/*" is a user area too)."""
    return "user_files" if path.startswith(USER_AREAS) else "files"


@dataclass
class CommandRecord:
    stdout: str
    stderr: str = ""
    rc: int = 0
    truncated: bool = False  # the output was longer than a command record may be

    @property
    def missing(self) -> bool:
        """The program was not installed (shell exit 127)."""
        return self.rc == 127


# Bundle kind of an instance known only from the OpenStack API (the host itself was not logged in to).
CLOUD_ONLY = "openstack"


@dataclass
class Bundle:
    target: str
    kind: str  # local | rootfs | ssh | ... : how it was gathered
    live: bool  # commands were run (False for offline root filesystems)
    gathered_at: str = ""
    uid: int | None = None  # effective uid of the gatherer on the host; None offline
    files: dict[str, FileRecord] = field(default_factory=dict)
    stats: dict[str, StatRecord] = field(default_factory=dict)
    commands: dict[str, CommandRecord] = field(default_factory=dict)
    searches: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # Why the evidence is incomplete (the host's budget was spent), and which parts of the gather had
    # finished by then (files, stats, commands, searches): what is missing from an unfinished part is
    # unknown, not absent.
    cut: str | None = None
    complete: set[str] = field(default_factory=set)
    # What the OpenStack API says about this host when it was audited as a cloud instance
    # (cloud.gather.instance_record): judged together with the host's own evidence.
    cloud: dict[str, Any] | None = None
    sanitizers: Mapping[str, Sanitizer] = field(default_factory=dict, repr=False, compare=False)
    # search name -> sanitizer: a search hit may sit at any path, so its sanitizer follows the hit.
    search_sanitizers: Mapping[str, Sanitizer] = field(default_factory=dict, repr=False, compare=False)
    _hit_sanitizers: dict[str, Sanitizer] = field(default_factory=dict, repr=False, compare=False)
    command_sanitizers: Mapping[str, Sanitizer] = field(default_factory=dict, repr=False, compare=False)
    _paths: list[str] = field(default_factory=list, repr=False, compare=False)
    _paths_of: int = field(default=-1, repr=False, compare=False)  # len(files) when _paths was sorted

    @classmethod
    def for_needs(cls, target: str, kind: str, live: bool, needs: Needs, **kw: Any) -> Bundle:
        """An empty bundle that will sanitize what it is fed as ``needs`` asks."""
        search_sanitizers = {s.name: s.sanitizer for s in needs.searches if s.sanitizer}
        search_sanitizers.update({f.name: f.sanitizer for f in needs.follows if f.sanitizer})
        return cls(target=target, kind=kind, live=live, sanitizers=needs.sanitize,
                   search_sanitizers=search_sanitizers, command_sanitizers=needs.command_sanitize, **kw)

    # -- ingestion -----------------------------------------------------------------------------
    def add_search_hits(self, search: str, paths: list[str]) -> None:
        self.searches[search] = paths
        fn = self.search_sanitizers.get(search)
        if fn is not None:
            for path in paths:
                self._hit_sanitizers.setdefault(path, fn)

    def _sanitizer(self, path: str) -> Sanitizer | None:
        # A path pattern of another module may match too; a search's own sanitizer is the one that
        # knows what the hit holds (e.g. a private key), so it wins.
        forced = self._hit_sanitizers.get(path)
        return forced if forced is not None else _sanitizers_of(self.sanitizers).lookup(path)

    def read_limit(self, path: str) -> int:
        """How many bytes of ``path`` are worth reading: a sanitizer reduces what it is given (apt's
        Packages lists: 50 MB to a few KB), so sanitized files are read further than kept ones."""
        if path.startswith(USER_AREAS):
            return MAX_USER_FILE_BYTES
        if path.startswith("/var/") and self._sanitizer(path) is not None:
            return MAX_SANITIZED_INPUT
        return MAX_FILE_BYTES

    def add_file(self, path: str, data: bytes, limit: int = MAX_FILE_BYTES) -> None:
        """Keep ``data`` (read up to ``limit`` + 1 bytes: more means the file was cut there)."""
        fn = self._sanitizer(path)
        truncated = len(data) > limit
        data = data[:limit]
        text = sanitize(fn, data) if fn is not None else data.decode("utf-8", "replace")
        if not getattr(fn, "fields_only", False):
            text = redact(text)
        self.files[path] = FileRecord(content=text, truncated=truncated)

    def add_command(self, name: str, data: bytes, rc: int, truncated: bool = False) -> None:
        """Keep a command's output, redacted (and reduced by its module's sanitizer, if it has one)."""
        fn = self.command_sanitizers.get(name)
        text = sanitize(fn, data) if fn is not None else data.decode("utf-8", "backslashreplace")
        if not getattr(fn, "fields_only", False):
            text = redact(text)
        self.commands[name] = CommandRecord(stdout=text, rc=rc, truncated=truncated)

    def add_hit_file(self, path: str, data: bytes, limit: int = MAX_FILE_BYTES) -> bool:
        """A search hit's content (True if kept): never replaces a file gathered for another purpose (a
        name that only looks like /etc/sudoers must not stand in for it)."""
        if path in self.files:
            return False
        self.add_file(path, data, limit)
        return True

    def add_unreadable(self, path: str, reason: str) -> None:
        self.files[path] = FileRecord(error=reason)

    def _unknown(self, part: str, what: str) -> None:
        """Raise when ``what`` is missing only because the host's evidence was cut before ``part`` ended."""
        if self.cut is not None and part not in self.complete:
            raise EvidenceError(f"{what} is not known: {self.cut}")

    # -- queries -------------------------------------------------------------------------------
    @property
    def is_root(self) -> bool:
        # Offline root filesystems are read by us with whatever rights we have; unreadable files
        # show up as FileRecord.error there, so "root" here means the live gatherer's uid.
        return self.uid == 0

    def file(self, path: str) -> FileRecord | None:
        rec = self.files.get(path)
        if rec is None:
            self._unknown(_part_of(path), path)
        return rec

    def text(self, path: str) -> str | None:
        """Content of ``path``; None when absent; EvidenceError when present but unreadable."""
        rec = self.files.get(path)
        if rec is None:
            self._unknown(_part_of(path), path)
            return None
        if rec.error is not None:
            raise EvidenceError(self.unreadable_reason(path, rec.error))
        return rec.content

    def unreadable_reason(self, path: str, error: str) -> str:
        if "ermission" in error and not self.is_root and self.live:
            return f"needs root to read {path}"
        return f"cannot read {path}: {error}"

    def glob(self, pattern: str) -> list[str]:
        """Gathered file paths matching a shell-style pattern, sorted like sh expands them."""
        self._unknown(_part_of(pattern), f"the files matching {pattern}")
        match = _matcher(pattern)
        # Only the paths that share the pattern's fixed start are tested (fnmatch's "*" crosses "/", so
        # a directory index would not do): a host with tens of thousands of files must not cost every
        # pattern a pass over all of them.
        prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        paths = self._sorted_paths()
        out = []
        for k in range(bisect.bisect_left(paths, prefix), len(paths)):
            if not paths[k].startswith(prefix):
                break
            if match(paths[k]):
                out.append(paths[k])
        return out

    def _sorted_paths(self) -> list[str]:
        if self._paths_of != len(self.files):
            self._paths, self._paths_of = sorted(self.files), len(self.files)
        return self._paths

    def stat_glob(self, pattern: str) -> list[str]:
        self._unknown("stats", f"the metadata of {pattern}")
        match = _matcher(pattern)
        return sorted(p for p in self.stats if match(p))

    def command(self, name: str) -> CommandRecord | None:
        rec = self.commands.get(name)
        if rec is None:
            self._unknown("commands", f"the output of {name}")
        return rec

    def hits(self, search: str) -> list[str] | None:
        """A search's hits; None when it did not run (offline targets run it too)."""
        found = self.searches.get(search)
        if found is None:
            self._unknown("searches", f"the hits of {search}")
        return found

    def iter_files(self) -> Iterator[tuple[str, FileRecord]]:
        yield from sorted(self.files.items())

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "target": self.target,
            "kind": self.kind,
            "live": self.live,
            "gathered_at": self.gathered_at,
            "uid": self.uid,
            "files": {
                p: {k: v for k, v in vars(r).items() if v not in (None, False)}
                for p, r in sorted(self.files.items())
            },
            "stats": {p: [s.mode, s.uid, s.gid, s.size, s.mtime] for p, s in sorted(self.stats.items())},
            "commands": {n: {k: v for k, v in vars(c).items() if k != "truncated" or v}
                         for n, c in sorted(self.commands.items())},
            "searches": self.searches,
            "errors": self.errors,
        }
        if self.cut is not None:
            data["cut"] = self.cut
            data["complete"] = sorted(self.complete)
        if self.cloud is not None:
            data["cloud"] = self.cloud
        return data

    @classmethod
    def from_json(cls, data: Any) -> Bundle:
        try:
            if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
                raise ValueError(f"not a nectar-audit evidence bundle (format {BUNDLE_FORMAT})")
            return cls(
                target=str(data["target"]),
                kind=str(data["kind"]),
                live=bool(data["live"]),
                gathered_at=str(data.get("gathered_at", "")),
                uid=None if data.get("uid") is None else int(data["uid"]),
                files={
                    str(p): FileRecord(
                        content=r.get("content"), error=r.get("error"), truncated=bool(r.get("truncated"))
                    )
                    for p, r in data.get("files", {}).items()
                },
                stats={str(p): StatRecord(*(int(x) for x in s)) for p, s in data.get("stats", {}).items()},
                commands={
                    str(n): CommandRecord(str(c["stdout"]), str(c.get("stderr", "")), int(c.get("rc", 0)),
                                          bool(c.get("truncated", False)))
                    for n, c in data.get("commands", {}).items()
                },
                searches={str(k): [str(p) for p in v] for k, v in data.get("searches", {}).items()},
                errors=[str(e) for e in data.get("errors", [])],
                cut=None if data.get("cut") is None else str(data["cut"]),
                complete={str(c) for c in data.get("complete", [])},
                cloud=dict(data["cloud"]) if isinstance(data.get("cloud"), dict) else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EvidenceError(f"malformed evidence bundle: {exc}") from exc


def evidence_path(base: Path, target: str, many: bool) -> Path:
    """Where --save-evidence writes a target's bundle: ``base`` itself, or ``base/<target>.json``."""
    if many or base.is_dir():
        base.mkdir(parents=True, exist_ok=True)
        return base / (re.sub(r"[^A-Za-z0-9._@-]+", "_", target).strip("_") + ".json")
    return base


_SURROGATE = re.compile("[\ud800-\udfff]")


def bundle_text(bundle: Bundle) -> str:
    """The bundle as JSON text that is valid UTF-8 whatever the names hold: an undecodable byte of a file
    name (a lone surrogate, surrogateescape) is written as its ``\\udcXX`` escape, which ``json.loads``
    reads back as the same name."""
    text = json.dumps(bundle.to_json(), indent=1, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def save_bundle(bundle: Bundle, base: Path, target: str, many: bool) -> None:
    """Write the bundle readable by its owner only (0600: it describes the host in detail), through a
    temp file created exclusively beside it (never an existing file or a symlink) renamed over it."""
    path = evidence_path(base, target, many)
    data = bundle_text(bundle).encode("utf-8")
    if str(path.absolute()).startswith(("/dev/", "/proc/")):  # a stream (/dev/stdout): nothing to replace
        with open(path, "wb") as stream:
            stream.write(data)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
