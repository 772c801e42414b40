"""Package version ordering exactly as dpkg and rpm define it.

dpkg: ``[epoch:]upstream[-revision]``, compared by ``verrevcmp`` (lib/dpkg/version.c): non-digit runs
compare character by character with letters before everything else except ``~`` (which sorts before
even the end of the string), digit runs compare numerically.

rpm: ``[epoch:]version[-release]``; each part compared by ``rpmvercmp`` (rpmio/rpmvercmp.c, rpm >=
4.15 semantics with ``~`` sorting before anything and ``^`` sorting after the base version but before
anything else appended); a missing epoch is 0 and a missing release sorts first (``rpmverCmp``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cmp_to_key, lru_cache
from typing import Callable

# -- dpkg ----------------------------------------------------------------------------------------


class VersionError(ValueError):
    """A version string that the package manager itself would reject."""


@dataclass(frozen=True)
class DebVersion:
    epoch: int
    upstream: str
    revision: str

    def __str__(self) -> str:
        head = f"{self.epoch}:" if self.epoch else ""
        tail = f"-{self.revision}" if self.revision else ""
        return f"{head}{self.upstream}{tail}"


def parse_deb_version(text: str) -> DebVersion:
    """Split a Debian version like dpkg's ``parseversion`` (lenient about the allowed characters)."""
    s = text.strip()
    if not s:
        raise VersionError("version string is empty")
    if any(c.isspace() for c in s):
        raise VersionError(f"version {text!r} has embedded spaces")
    epoch = 0
    colon = s.find(":")
    if colon >= 0:
        head = s[:colon]
        if not head:
            raise VersionError(f"epoch in version {text!r} is empty")
        if not head.isascii() or not head.isdigit():
            raise VersionError(f"epoch in version {text!r} is not a number")
        epoch = int(head)
        if epoch > 2**31 - 1:
            raise VersionError(f"epoch in version {text!r} is too big")
        s = s[colon + 1 :]
        if not s:
            raise VersionError(f"nothing after colon in version {text!r}")
    upstream, dash, revision = s.rpartition("-")
    if not dash:
        upstream, revision = s, ""
    elif not revision:
        raise VersionError(f"revision number is empty in {text!r}")
    if not upstream:
        raise VersionError(f"version number is empty in {text!r}")
    return DebVersion(epoch, upstream, revision)


def _dpkg_order(c: str) -> int:
    if not c:
        return 0
    if "0" <= c <= "9":
        return 0
    if ("a" <= c <= "z") or ("A" <= c <= "Z"):
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def verrevcmp(a: str, b: str) -> int:
    """dpkg's verrevcmp: negative, zero or positive like strcmp."""
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        first_diff = 0
        while (i < la and not _is_digit(a[i])) or (j < lb and not _is_digit(b[j])):
            ac = _dpkg_order(a[i] if i < la else "")
            bc = _dpkg_order(b[j] if j < lb else "")
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < la and a[i] == "0":
            i += 1
        while j < lb and b[j] == "0":
            j += 1
        while i < la and j < lb and _is_digit(a[i]) and _is_digit(b[j]):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < la and _is_digit(a[i]):
            return 1
        if j < lb and _is_digit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0


@lru_cache(maxsize=16384)
def dpkg_compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``dpkg --compare-versions a lt|eq|gt b`` would decide; VersionError if invalid."""
    va, vb = parse_deb_version(a), parse_deb_version(b)
    if va.epoch != vb.epoch:
        return -1 if va.epoch < vb.epoch else 1
    rc = verrevcmp(va.upstream, vb.upstream)
    if not rc:
        rc = verrevcmp(va.revision, vb.revision)
    return (rc > 0) - (rc < 0)


# -- rpm -----------------------------------------------------------------------------------------


def _ralpha(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _ralnum(c: str) -> bool:
    return _ralpha(c) or _is_digit(c)


def rpmvercmp(a: str, b: str) -> int:
    """rpm's segment comparison of one version or release string: -1, 0 or 1."""
    if a == b:
        return 0
    one, two = a, b
    i = j = 0
    n1, n2 = len(one), len(two)
    while i < n1 or j < n2:
        while i < n1 and not _ralnum(one[i]) and one[i] not in "~^":
            i += 1
        while j < n2 and not _ralnum(two[j]) and two[j] not in "~^":
            j += 1
        c1 = one[i] if i < n1 else ""
        c2 = two[j] if j < n2 else ""
        # Tilde sorts before everything else, even the end of the string.
        if c1 == "~" or c2 == "~":
            if c1 != "~":
                return 1
            if c2 != "~":
                return -1
            i += 1
            j += 1
            continue
        # Caret sorts after the end of the string but before any other segment.
        if c1 == "^" or c2 == "^":
            if not c1:
                return -1
            if not c2:
                return 1
            if c1 != "^":
                return 1
            if c2 != "^":
                return -1
            i += 1
            j += 1
            continue
        if not (c1 and c2):
            break
        s1, s2 = i, j
        if _is_digit(c1):
            while i < n1 and _is_digit(one[i]):
                i += 1
            while j < n2 and _is_digit(two[j]):
                j += 1
            isnum = True
        else:
            while i < n1 and _ralpha(one[i]):
                i += 1
            while j < n2 and _ralpha(two[j]):
                j += 1
            isnum = False
        seg1, seg2 = one[s1:i], two[s2:j]
        if not seg1:
            return -1  # cannot happen: the first string has a segment here
        if not seg2:
            return 1 if isnum else -1
        if isnum:
            seg1 = seg1.lstrip("0")
            seg2 = seg2.lstrip("0")
            if len(seg1) != len(seg2):
                return 1 if len(seg1) > len(seg2) else -1
        if seg1 != seg2:
            return -1 if seg1 < seg2 else 1
    rest1, rest2 = i < n1, j < n2
    if not rest1 and not rest2:
        return 0
    return -1 if not rest1 else 1


@dataclass(frozen=True)
class Evr:
    epoch: str | None  # None when the string had none (compared as "0")
    version: str
    release: str | None

    def __str__(self) -> str:
        head = f"{self.epoch}:" if self.epoch is not None else ""
        tail = f"-{self.release}" if self.release is not None else ""
        return f"{head}{self.version}{tail}"


def parse_evr(text: str) -> Evr:
    """rpm's parseEVR: leading digits then ':' are the epoch; the release follows the last '-'."""
    s = text.strip()
    k = 0
    while k < len(s) and _is_digit(s[k]):
        k += 1
    epoch: str | None = None
    rest = s
    if k < len(s) and s[k] == ":":
        epoch = s[:k] or "0"
        rest = s[k + 1 :]
    version, dash, release = rest.rpartition("-")
    if not dash:
        return Evr(epoch, rest, None)
    return Evr(epoch, version, release)


def _compare_values(a: str | None, b: str | None) -> int:
    if a is None or b is None:
        return (a is not None) - (b is not None)
    return rpmvercmp(a, b)


def rpm_compare(a: str, b: str) -> int:
    """Compare two ``[E:]V[-R]`` strings like rpm's ``rpmverCmp`` (``rpm.vercmp``): -1, 0 or 1.

    A missing epoch counts as 0; a missing release sorts before any release.
    """
    ea, eb = parse_evr(a), parse_evr(b)
    rc = _compare_values(ea.epoch or "0", eb.epoch or "0")
    if not rc:
        rc = _compare_values(ea.version, eb.version)
        if not rc:
            rc = _compare_values(ea.release, eb.release)
    return rc


# -- helpers -------------------------------------------------------------------------------------

Comparator = Callable[[str, str], int]


def comparator(manager: str) -> Comparator:
    """The comparison function of a package manager: ``dpkg`` or ``rpm``."""
    if manager == "dpkg":
        return dpkg_compare
    if manager == "rpm":
        return rpm_compare
    raise ValueError(f"unknown package manager {manager!r}")


def newest(versions: list[str], manager: str) -> str | None:
    """The highest version of ``versions`` under ``manager``'s ordering (None for an empty list)."""
    cmp = comparator(manager)
    valid = []
    for v in versions:
        try:
            cmp(v, v)
        except VersionError:
            continue
        valid.append(v)
    if not valid:
        return None
    return max(valid, key=cmp_to_key(cmp))
