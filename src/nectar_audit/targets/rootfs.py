"""An offline root filesystem (a mounted image, a debootstrap tree): file evidence only.

Nothing is executed from the tree. Paths are resolved as a chroot would: an absolute symlink inside
the image points into the image, never to the auditing machine's own files.

Names are bytes on disk. They enter as text in one way only, whatever this machine's locale: UTF-8 with
``surrogateescape`` (``image_name``), so a name that is not UTF-8 keeps its exact bytes (as lone
surrogates, which every report writer escapes) and opens the same file again.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath
import re
import stat as stat_mod
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from nectar_audit.evidence import MAX_FILE_BYTES, USER_AREAS, Budget, Bundle, Follow, Needs, Search, StatRecord
from nectar_audit.targets.base import TargetError

_MAX_LINKS = 40


class _BudgetSpent(Exception):
    pass
_FS_UTF8 = sys.getfilesystemencoding().lower().replace("-", "") == "utf8"


def image_name(host_name: str) -> str:
    """A name as this process got it from the OS (``os.fsdecode``) -> the image's name: UTF-8, with
    ``surrogateescape`` for bytes that are not."""
    return host_name if _FS_UTF8 else os.fsencode(host_name).decode("utf-8", "surrogateescape")


def host_name(image: str) -> str:
    """The inverse of ``image_name``: what to hand the OS to reach the same bytes."""
    return image if _FS_UTF8 else os.fsdecode(image.encode("utf-8", "surrogateescape"))


class RootFsTarget:
    kind = "rootfs"

    def __init__(self, root: str, budget: Budget | None = None) -> None:
        self.root = Path(root)
        self.budget = budget or Budget()
        self._kept = 0
        self.name = f"root:{root}"

    # -- path resolution inside the root -------------------------------------------------------
    def resolve(self, path: str, follow_last: bool = True) -> Path:
        """Host path of the image path ``path``; raises OSError (ELOOP) on symlink loops."""
        parts = [p for p in path.split("/") if p and p != "."]
        resolved: list[str] = []
        links = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = self.root.joinpath(*map(host_name, resolved), host_name(part))
            is_last = not parts
            if (follow_last or not is_last) and candidate.is_symlink():
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                target = image_name(os.readlink(candidate))
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            resolved.append(part)
        return self.root.joinpath(*map(host_name, resolved))

    def expand(self, pattern: str) -> list[str]:
        """Image paths matching a shell glob, expanded component by component inside the root."""
        found = [""]
        for comp in [c for c in pattern.split("/") if c]:
            nxt: list[str] = []
            for base in found:
                if any(ch in comp for ch in "*?["):
                    try:
                        names = sorted(map(image_name, os.listdir(self.resolve(base or "/"))))
                    except OSError:
                        continue
                    nxt.extend(
                        f"{base}/{n}" for n in names
                        if fnmatch.fnmatchcase(n, comp) and (comp.startswith(".") or not n.startswith("."))
                    )
                else:
                    nxt.append(f"{base}/{comp}")
            found = nxt
        return found

    # -- gathering -----------------------------------------------------------------------------
    def gather(self, needs: Needs) -> Bundle:
        """Read what ``needs`` names, in the live gather's order of parts (what any user may write comes
        last), keeping at most the budget's bytes: past it, the parts not finished are unknown."""
        if not self.root.is_dir():
            raise TargetError(f"{self.root} is not a directory")
        if not (self.root / "etc").is_dir():
            raise TargetError(f"{self.root} does not look like a root filesystem (no etc/)")
        bundle = Bundle.for_needs(
            self.name, self.kind, False, needs,
            gathered_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        self._kept = 0
        later: list[str] = []
        try:
            for pattern in (*needs.files, *needs.offline_files):
                for path in self.expand(pattern):
                    if path.startswith(USER_AREAS):
                        later.append(path)
                    else:
                        self._read_into(bundle, path)
            bundle.complete.add("files")
            for pattern in needs.stats:
                for path in self.expand(pattern):
                    rec = self._lstat(path)
                    if rec is not None:
                        bundle.stats[path] = rec
            bundle.complete.update(("stats", "commands"))
            for path in dict.fromkeys(later):
                self._read_into(bundle, path)
            bundle.complete.add("user_files")
            for search in needs.searches:
                hits = list(self._search(search))
                bundle.add_search_hits(search.name, hits)
                for path in hits:
                    self._read_into(bundle, path, hit=True)
            for follow in needs.follows:
                hits = self._follow(follow)
                bundle.add_search_hits(follow.name, hits)
                for path in hits:
                    self._read_into(bundle, path, hit=True)
            bundle.complete.add("searches")
        except _BudgetSpent:
            bundle.cut = (f"the image holds more than {self.budget.total_bytes // (1024 * 1024)} MiB of "
                          f"evidence (the budget per host); the rest was not read")
        return bundle

    # -- include directives (evidence.Follow: the same rules as gather.sh's follow_includes) ------
    def _follow(self, follow: Follow) -> list[str]:
        host = self._short_hostname()
        directives = {d: 1 for d in follow.file_directives} | {d: 2 for d in follow.dir_directives}
        found: list[str] = []
        seen: set[str] = set()
        level = list(follow.roots)
        for _depth in range(follow.max_depth + 1):
            if not level:
                break
            nxt: list[str] = []
            for path in level:
                if path in seen:
                    continue
                seen.add(path)
                try:
                    host_path = self.resolve(path)
                    if not host_path.is_file():
                        continue
                except OSError:
                    continue
                if len(found) >= follow.max_files:
                    return found
                found.append(path)
                try:
                    with open(host_path, "rb") as fh:
                        text = fh.read(MAX_FILE_BYTES).decode("utf-8", "replace")
                except OSError:
                    continue
                for line in text.splitlines():
                    words = line.strip().split(None, 1)
                    kind = directives.get(words[0]) if len(words) == 2 else None
                    if kind is None:
                        continue
                    target = _include_path(words[1], posixpath.dirname(path), host)
                    if target is None:
                        continue
                    if kind == 1:
                        nxt.append(target)
                    else:
                        nxt.extend(self._dir_entries(target, follow.dir_skip))
            level = nxt
        return found

    def _dir_entries(self, directory: str, skip: tuple[str, ...]) -> list[str]:
        try:
            names = sorted(os.listdir(self.resolve(directory)))
        except OSError:
            return []
        out = []
        for name in names:
            if "\n" in name or any(fnmatch.fnmatchcase(name, p) for p in skip):
                continue
            path = f"{directory.rstrip('/')}/{name}"
            try:
                if self.resolve(path).is_file():
                    out.append(path)
            except OSError:
                continue
        return out

    def _short_hostname(self) -> str:
        try:
            with open(self.resolve("/etc/hostname"), "rb") as fh:
                words = fh.read(256).decode("utf-8", "replace").split()
        except OSError:
            return ""
        return words[0].split(".")[0] if words else ""

    def _read_into(self, bundle: Bundle, path: str, hit: bool = False) -> None:
        try:
            host = self.resolve(path)
            if not host.is_file():
                return
            limit = bundle.read_limit(path)
            with open(host, "rb") as fh:
                data = fh.read(limit + 1)
        except FileNotFoundError:
            return
        except OSError as exc:
            bundle.add_unreadable(path, exc.strerror or str(exc))
            return
        if hit:
            bundle.add_hit_file(path, data, limit)
        else:
            bundle.add_file(path, data, limit)
        rec = bundle.files.get(path)
        self._kept += len(rec.content or "") if rec is not None else 0
        if self._kept > self.budget.total_bytes:
            raise _BudgetSpent

    def _lstat(self, path: str) -> StatRecord | None:
        try:
            st = os.lstat(self.resolve(path, follow_last=False))
        except OSError:
            return None
        return StatRecord(st.st_mode, st.st_uid, st.st_gid, st.st_size, int(st.st_mtime))

    def _search(self, search: Search) -> Iterator[str]:
        needle = search.contains.encode()
        limit = search.max_kib * 1024
        for root in search.roots:
            try:
                host_root = self.resolve(root)
                dev = os.lstat(host_root).st_dev
            except OSError:
                continue
            base_depth = len(host_root.parts)
            for dirpath, dirnames, filenames in os.walk(host_root):
                depth = len(Path(dirpath).parts) - base_depth
                if depth + 1 >= search.maxdepth:
                    dirnames[:] = []
                dirnames[:] = [d for d in dirnames if _same_dev(os.path.join(dirpath, d), dev)]
                for name in sorted(filenames):
                    host = os.path.join(dirpath, name)
                    try:
                        st = os.lstat(host)
                        if not stat_mod.S_ISREG(st.st_mode) or st.st_size > limit:
                            continue
                        with open(host, "rb") as fh:
                            if needle not in fh.read(limit):
                                continue
                    except OSError:
                        continue
                    yield "/" + image_name(os.path.relpath(host, self.root))


def _include_path(arg: str, directory: str, host: str) -> str | None:
    """The path an include directive's argument names (quotes, backslash escapes, %h, relative paths)."""
    arg = arg.strip()
    if len(arg) >= 2 and arg[0] == arg[-1] == '"':
        arg = arg[1:-1]
    arg = re.sub(r"\\(.)", r"\1", arg).replace("%h", host)
    if not arg:
        return None
    return arg if arg.startswith("/") else f"{directory.rstrip('/')}/{arg}"


def _same_dev(path: str, dev: int) -> bool:
    try:
        return os.lstat(path).st_dev == dev
    except OSError:
        return False
