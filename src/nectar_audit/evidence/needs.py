"""What evidence the fact modules need, declared as data so every target can gather it in one pass.

Each module under ``nectar_audit.facts`` may define ``NEEDS = Needs(...)``. Targets gather the union:
the live targets turn it into one POSIX ``sh`` script (``script.py``), the offline root-filesystem
target reads the same paths in Python (``targets/rootfs.py``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache


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
    sanitizer: str | None = None


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
    # fnmatch pattern of a path -> sanitizer name (see sanitize.py), applied when evidence is ingested.
    sanitize: Mapping[str, str] = field(default_factory=dict)
    # A pattern of ``files`` -> a grep -E expression: live hosts send only the matching lines of those
    # files (dpkg's status, apt's lists: megabytes of which the sanitizer keeps a tenth). It must match
    # every line the file's sanitizer keeps or looks at, so that the sanitizer's result is the same.
    prefilter: Mapping[str, str] = field(default_factory=dict)


def merge(parts: Iterable[Needs]) -> Needs:
    files: dict[str, None] = {}
    offline: dict[str, None] = {}
    stats: dict[str, None] = {}
    commands: dict[str, str] = {}
    searches: dict[str, Search] = {}
    sanitize: dict[str, str] = {}
    prefilter: dict[str, str] = {}
    for part in parts:
        files.update(dict.fromkeys(part.files))
        offline.update(dict.fromkeys(part.offline_files))
        stats.update(dict.fromkeys(part.stats))
        for name, snippet in part.commands.items():
            if commands.get(name, snippet) != snippet:
                raise ValueError(f"two fact modules define command {name!r} differently")
            commands[name] = snippet
        for search in part.searches:
            searches[search.name] = search
        sanitize.update(part.sanitize)
        for pattern, expr in part.prefilter.items():
            if prefilter.get(pattern, expr) != expr:
                raise ValueError(f"two fact modules prefilter {pattern!r} differently")
            prefilter[pattern] = expr
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
    )


@lru_cache(maxsize=1)
def all_needs() -> Needs:
    """The union of every fact module's NEEDS."""
    import nectar_audit.facts as facts_pkg

    parts = []
    for info in sorted(pkgutil.walk_packages(facts_pkg.__path__, facts_pkg.__name__ + "."), key=lambda i: i.name):
        module = importlib.import_module(info.name)
        needs = getattr(module, "NEEDS", None)
        if isinstance(needs, Needs):
            parts.append(needs)
    return merge(parts)
