"""What evidence a fact module needs, declared as data so every target can gather it in one pass.

Each fact module defines ``NEEDS = Needs(...)``; the catalog merges those of the checks a scan runs.
The live targets turn the union into one POSIX ``sh`` script (``script.py``), the offline root-filesystem
target reads the same paths in Python (``targets/rootfs.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nectar_audit.evidence.sanitize import Sanitizer


@dataclass(frozen=True)
class Search:
    """Regular files below ``roots`` whose content contains ``contains`` (fixed string).

    Bounded so a research VM with terabytes under /home is not read end to end.
    """

    name: str
    roots: tuple[str, ...]
    contains: str
    maxdepth: int = 4
    max_kib: int = 64
    # What a hit holds whatever its path (e.g. a private key): applied to the hit's content.
    sanitizer: Sanitizer | None = None


@dataclass(frozen=True)
class Follow:
    """Files named by the include directives of other files, found and read in the same pass.

    From ``roots``, every line ``DIRECTIVE PATH`` (leading blanks allowed) whose directive is one of
    ``file_directives`` names a file, one of ``dir_directives`` a directory whose regular files are read
    in name order, except names matching a ``dir_skip`` pattern (fnmatch). PATH may be double-quoted,
    a backslash escapes the next character, ``%h`` is the host's short name and a relative PATH is
    relative to the including file's directory (sudoers(5)'s rules). Included files are followed in
    turn, ``max_depth`` levels deep and ``max_files`` files at most; a file seen once is not read again.
    What was found is recorded like a search's hits, under ``name`` (files that are not there are not
    listed: the fact reading them tells an absent include from one never looked for).
    """

    name: str
    roots: tuple[str, ...]
    file_directives: tuple[str, ...]
    dir_directives: tuple[str, ...] = ()
    dir_skip: tuple[str, ...] = ()
    max_depth: int = 128
    max_files: int = 512
    # Applied to every file found, the roots included, in place of a path's own sanitizer (as for a
    # search's hits): an include may name any file, so it must withhold whatever secret one could hold.
    sanitizer: Sanitizer | None = None


@dataclass(frozen=True)
class Needs:
    # Shell glob patterns whose matching regular files are captured with their content.
    files: tuple[str, ...] = ()
    # Files only an offline root filesystem needs read whole: on live targets a command gets the same
    # facts more cheaply (e.g. apt's 50 MB Packages lists, filtered on the host by a command).
    offline_files: tuple[str, ...] = ()
    # Shell glob patterns captured as metadata only (mode, owner, size, mtime), not followed.
    stats: tuple[str, ...] = ()
    # name -> POSIX sh snippet, run on live targets only, stdin from /dev/null. Must be read-only.
    commands: Mapping[str, str] = field(default_factory=dict)
    searches: tuple[Search, ...] = ()
    # fnmatch pattern of a path -> the function that reduces the file as it is ingested (sanitize.py).
    sanitize: Mapping[str, Sanitizer] = field(default_factory=dict)
    # A pattern of ``files`` -> a grep -E expression: live hosts send only the matching lines of those
    # files (dpkg's status, apt's lists: megabytes of which the sanitizer keeps a tenth). It must match
    # every line the file's sanitizer keeps or looks at, so that the sanitizer's result is the same.
    prefilter: Mapping[str, str] = field(default_factory=dict)
    # command name -> the function that reduces its output as it is ingested (after the general redaction).
    command_sanitize: Mapping[str, Sanitizer] = field(default_factory=dict)
    follows: tuple[Follow, ...] = ()

    def __or__(self, other: Needs) -> Needs:
        return merge([self, other])


def merge(parts: Iterable[Needs]) -> Needs:
    """The union of several modules' needs; two different definitions under one name are a bug."""
    files: dict[str, None] = {}
    offline: dict[str, None] = {}
    stats: dict[str, None] = {}
    commands: dict[str, str] = {}
    searches: dict[str, Search] = {}
    sanitize: dict[str, Sanitizer] = {}
    prefilter: dict[str, str] = {}
    command_sanitize: dict[str, Sanitizer] = {}
    follows: dict[str, Follow] = {}
    for part in parts:
        for follow in part.follows:
            if follows.get(follow.name, follow) != follow:
                raise ValueError(f"two fact modules define the include-following {follow.name!r} differently")
            follows[follow.name] = follow
        files.update(dict.fromkeys(part.files))
        offline.update(dict.fromkeys(part.offline_files))
        stats.update(dict.fromkeys(part.stats))
        for name, snippet in part.commands.items():
            if commands.get(name, snippet) != snippet:
                raise ValueError(f"two fact modules define command {name!r} differently")
            commands[name] = snippet
        for search in part.searches:
            if searches.get(search.name, search) != search:
                raise ValueError(f"two fact modules define search {search.name!r} differently")
            searches[search.name] = search
        for pattern, fn in part.sanitize.items():
            if sanitize.get(pattern, fn) is not fn:
                raise ValueError(f"two fact modules sanitize {pattern!r} differently")
            sanitize[pattern] = fn
        for name, fn in part.command_sanitize.items():
            if command_sanitize.get(name, fn) is not fn:
                raise ValueError(f"two fact modules sanitize command {name!r} differently")
            command_sanitize[name] = fn
        for pattern, expr in part.prefilter.items():
            if prefilter.get(pattern, expr) != expr:
                raise ValueError(f"two fact modules prefilter {pattern!r} differently")
            prefilter[pattern] = expr
    clash = set(follows) & set(searches)
    if clash:
        raise ValueError(f"a search and an include-following share the name {sorted(clash)}")
    unknown = set(prefilter) - set(files)
    if unknown:
        raise ValueError(f"prefilter for patterns that are not gathered files: {sorted(unknown)}")
    return Needs(
        files=tuple(files),
        offline_files=tuple(p for p in offline if p not in files),
        stats=tuple(stats),
        commands=commands,
        searches=tuple(searches.values()),
        sanitize=sanitize,
        prefilter=prefilter,
        command_sanitize=command_sanitize,
        follows=tuple(follows.values()),
    )
