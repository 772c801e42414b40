"""Pending updates, from the package metadata already on the host (never refreshed by the audit).

apt: the security archives' ``Packages`` lists in ``/var/lib/apt/lists`` (reduced to the name, version
and architecture of each package, by ``grep -E`` on a live host and at ingestion) are compared with the
installed versions. Which lists are security lists is read from their ``InRelease``/``Release``
headers (Label ``Debian-Security``, suites ``*-security``). When the lists are stored compressed
(``Acquire::GzipIndexes``), a live host is asked with ``apt-get -s dist-upgrade`` (a simulation; it
neither locks nor downloads). dnf: ``dnf updateinfo list --security --cacheonly`` and
``dnf list --upgrades --cacheonly 'kernel*'``, both from the cached metadata only.

Kernels (check 04) are looked for in *every* Packages list, not only the security ones: a newer kernel
may come from ``-updates`` or a point release. Those lists are reduced at ingestion to their kernel
stanzas (``linux-image-*`` and the Ubuntu ``linux-{generic,virtual,kvm,aws}`` metapackages); a live host
filters them itself (``grep -A`` and ``awk``), compressed ones through apt's own decompressor.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs, fields_only
from nectar_audit.facts.updates.packages import Package, PackageDb, packages
from nectar_audit.facts.updates.versions import VersionError, dpkg_compare

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

LISTS = "/var/lib/apt/lists"
SECURITY_PACKAGES_GLOB = f"{LISTS}/*security*_Packages"
ALL_PACKAGES_GLOB = f"{LISTS}/*_Packages"
# Kernel images and the Ubuntu kernel metapackages (the latter pull in a new ABI's image).
_KERNEL_METAPACKAGES = ("generic", "virtual", "kvm", "aws")
KERNEL_PACKAGE_RE = re.compile(rf"linux-image-.+|linux-(?:{'|'.join(_KERNEL_METAPACKAGES)})")
_KERNEL_ERE = f"^Package: (linux-image-.+|linux-({'|'.join(_KERNEL_METAPACKAGES)}))$"
_BRIEF_KEYS = ("Package", "Version", "Architecture", "Source")
_KERNEL_FIELDS_ERE = f"^({'|'.join(_BRIEF_KEYS)}):"
_NOT_BRIEF = re.compile(f"^(?!(?:{'|'.join(_BRIEF_KEYS)}):|$)", re.M)
# grep finds the kernel stanzas of a 50 MB list in a third of the CPU awk needs to read it: its window
# of lines after each match covers any real stanza's identifying fields, and a stanza still going at
# the window's end is flagged (#cut) so that the lists are read again by awk alone, in paragraph mode.
# One grep reads every plain list (an Ubuntu host has a dozen): awk tells them apart by the file name
# grep puts in front of each line (-H; grep keeps the order of its arguments; the longest name wins
# where one is the start of another) and heads each with "#file PATH". With files="" (one list on
# stdin) lines are taken as they are.
# grep looks for fixed strings, a superset of the lines _KERNEL_ERE takes (awk applies it): with the
# expression, GNU grep matches candidate lines with its regex engine and spends 26 ms instead of 16 ms
# on Debian's 52 MB of lists.
_KERNEL_WINDOW = 60
_KERNEL_FIXED = ("Package: linux-image-", *(f"Package: linux-{m}" for m in _KERNEL_METAPACKAGES))
_KERNEL_GREP = f"grep -A {_KERNEL_WINDOW} -F " + " ".join(f"-e '{f}'" for f in _KERNEL_FIXED)
_KERNEL_LINES_AWK = (
    f"awk -v w={_KERNEL_WINDOW + 1} -v files=FILES "
    "'BEGIN { nf = split(files, F, \"\\n\"); i = 0 } "
    "function to(j) { while (i < j) { if (p) print \"\"; p = 0; i++; print \"#file \" F[i] } } "
    "$0 == \"--\" { if (p) print \"\"; p = 0; next } "
    "{ l = $0; if (nf) { j = 0; for (k = i < 1 ? 1 : i; k <= nf; k++) "
    "if ((index($0, F[k] \":\") == 1 || index($0, F[k] \"-\") == 1) && (!j || length(F[k]) > length(F[j]))) j = k; "
    "if (!j) next; to(j); l = substr($0, length(F[j]) + 2) } } "
    f"l ~ /^Package: / {{ if (p) print \"\"; p = (l ~ /{_KERNEL_ERE}/); n = 0 }} "
    "l == \"\" { if (p) print \"\"; p = 0; next } "
    f"p {{ n++; if (n >= w) cut = 1; if (l ~ /{_KERNEL_FIELDS_ERE}/) print l }} "
    "END { if (p) print \"\"; to(nf); if (cut) print \"#cut\" }'"
)
_KERNEL_AWK_FILES = _KERNEL_LINES_AWK.replace("FILES", '"$(printf \'%s\\n\' "$@")"')
_KERNEL_AWK_STDIN = _KERNEL_LINES_AWK.replace("FILES", '""')
_KERNEL_AWK = (
    f"awk 'BEGIN{{RS=\"\";FS=\"\\n\"}} $1 ~ /{_KERNEL_ERE}/ "
    f"{{for(i=1;i<=NF;i++) if ($i ~ /{_KERNEL_FIELDS_ERE}/) print $i; print \"\"}}'"
)
_RELEASE_KEYS = ("Origin", "Label", "Suite", "Codename", "Version", "Date", "Valid-Until")
_RELEASE_END = ("MD5Sum:", "SHA1:", "SHA256:", "SHA512:", "-----BEGIN PGP SIGNATURE")
_RELEASE_ERE = f"^({'|'.join(_RELEASE_KEYS)}):|" + "|".join(f"^{w}" for w in _RELEASE_END)
APT_HELPER = "/usr/lib/apt/apt-helper"
APT_SIMULATE = "apt-get -s -q -o Debug::NoLocking=true dist-upgrade"
# Not -q: under -q, dnf 4 with skip_if_unavailable=True skips a repository that has no cached metadata
# without a word and exits 0 (an empty list that proves nothing); without it dnf says so on stderr, and
# prints when the metadata was last checked. Both seen with dnf 4.14 in tests/facts/updates/test_dnf_real.py.
DNF_SECURITY = "dnf --cacheonly updateinfo list --security"
DNF_KERNEL = "dnf -q --cacheonly list --upgrades 'kernel*'"
_NO_CACHE = re.compile(r"Cache-only enabled but no cache for '([^']+)'")
# str(timedelta): "0:03:47", "1 day, 2:00:05", "12 days, 0:00:01".
_DNF_CHECKED = re.compile(r"^Last metadata expiration check: (?:(\d+) days?, )?(\d+):(\d\d):(\d\d) ago\b", re.M)

# A note of UpdateState: the lists downloaded last hold no security archive (whatever the sources say).
NO_SECURITY_LISTS = "the downloaded package lists hold no security archive"

STAMPS = ("/var/lib/apt/periodic/update-success-stamp", "/var/lib/apt/periodic/update-stamp")

ALIASES = "/etc/aliases"
ROOT_FORWARD = "/root/.forward"
HOME_FORWARDS = "/home/*/.forward"
PASSWD = "/etc/passwd"
MAX_ALIAS_DEPTH = 10  # sendmail's MaxAliasRecursion; postfix stops a little later
SENDMAIL = ("/usr/sbin/sendmail", "/usr/lib/sendmail")


# -- sanitizers: keep what the checks need, drop the bulk ----------------------------------------


def _lines(data: bytes) -> list[str]:
    """Lines as grep sees them (only \\n ends one), so that a host-side grep -E keeps the same lines."""
    lines = data.decode("utf-8", "replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


@fields_only
def package_stanzas(data: bytes) -> str:
    """Package stanzas a command cut to their name, version, architecture and source fields."""
    return data.decode("utf-8", "replace")


@fields_only
def release_header(data: bytes) -> str:
    """The identifying fields of a Release/InRelease file (its checksum lists and signature dropped)."""
    out = []
    for line in _lines(data):
        if line.startswith(_RELEASE_END):
            break
        key = line.split(":", 1)[0]
        if key in _RELEASE_KEYS:
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")


@fields_only
def packages_brief(data: bytes) -> str:
    """A Packages list reduced to the Package/Version/Architecture/Source of every stanza."""
    text = data.decode("utf-8", "replace")
    if _NOT_BRIEF.search(text) is None:  # reduced on the host already (NEEDS.prefilter): one scan
        return text if text.endswith("\n") else text + "\n"
    keep = tuple(k + ":" for k in _BRIEF_KEYS)
    out = [line for line in _lines(data) if not line or line.startswith(keep)]
    return "\n".join(out) + "\n"


@fields_only
def packages_kernel(data: bytes) -> str:
    """A Packages list reduced to its kernel stanzas' Package/Version/Architecture/Source: a few KiB of
    a list that is tens of MiB (Debian main)."""
    keep = tuple(k + ":" for k in _BRIEF_KEYS)
    out: list[str] = []
    for stanza in re.split(r"\n[ \t]*\n", data.decode("utf-8", "replace")):
        lines = stanza.strip("\n").splitlines()
        if not lines or not lines[0].startswith("Package:"):
            continue
        if KERNEL_PACKAGE_RE.fullmatch(lines[0][len("Package:"):].strip()) is None:
            continue
        out.extend(line for line in lines if line.startswith(keep))
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


# -- model ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingUpdate:
    name: str
    installed: str | None  # None for a package the upgrade would newly install (a new kernel ABI)
    candidate: str
    arch: str = ""
    security: bool = False
    origin: str = ""  # list file, apt origin ("Debian-Security:12/stable-security") or dnf repo
    advisory: str | None = None  # RHSA-2024:1234, FEDORA-2024-…, when known
    severity: str | None = None

    def describe(self) -> str:
        head = (
            f"{self.name} {self.installed} → {self.candidate}"
            if self.installed
            else f"{self.name} {self.candidate} (new)"
        )
        return head + (f" ({self.advisory})" if self.advisory else "")


@dataclass(frozen=True)
class UpdateState:
    manager: str  # apt | dnf
    source: str  # evidence source: list files, a command
    updates: tuple[PendingUpdate, ...]
    security_only: bool  # True when only security updates are known (apt lists, dnf updateinfo)
    security_sources: tuple[str, ...] = ()  # the security lists / repos consulted
    refreshed: dt.datetime | None = None  # when the metadata was last refreshed, if known
    notes: tuple[str, ...] = ()
    kernel_updates: tuple[PendingUpdate, ...] = ()  # dnf: newer kernel packages in the repos

    @property
    def security(self) -> list[PendingUpdate]:
        return [u for u in self.updates if u.security]


@dataclass(frozen=True)
class ReleaseInfo:
    path: str
    fields: dict[str, str]

    @property
    def prefix(self) -> str:
        name = self.path.rsplit("/", 1)[-1]
        return name[: -len("InRelease")] if name.endswith("_InRelease") else name[: -len("Release")]

    @property
    def is_security(self) -> bool:
        label = self.fields.get("Label", "")
        suite = self.fields.get("Suite", "")
        codename = self.fields.get("Codename", "")
        return (
            "security" in label.lower()
            or suite.endswith("-security")
            or codename.endswith("-security")
            or suite.endswith("/updates")
        )

    def describe(self) -> str:
        f = self.fields
        return f"{f.get('Label', f.get('Origin', '?'))}:{f.get('Version', '')}/{f.get('Suite', '?')}"


# -- parsers -------------------------------------------------------------------------------------


def parse_release(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(("MD5Sum:", "SHA1:", "SHA256:", "SHA512:")):
            break
        if ":" in line and not line.startswith((" ", "\t", "-")):
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return fields


_STANZA_FIELD = re.compile(r"^(Package|Version|Architecture):[ \t]*(\S+)", re.M)


@functools.lru_cache(maxsize=32)  # an Ubuntu host reads a dozen lists (kernel stanzas of most)
def parse_packages_list(text: str) -> Mapping[tuple[str, str], str]:
    """(name, arch) -> highest version in a Packages list (dpkg ordering). Read-only, and remembered: the
    hosts of a fleet read the same lists."""
    best: dict[tuple[str, str], str] = {}
    for stanza in text.split("\n\n"):
        fields = dict(_STANZA_FIELD.findall(stanza))
        name, version = fields.get("Package"), fields.get("Version")
        if not name or not version:
            continue
        key = (name, fields.get("Architecture", ""))
        old = best.get(key)
        try:
            if old is None or dpkg_compare(version, old) > 0:
                best[key] = version
        except VersionError:
            continue
    return MappingProxyType(best)


_INST = re.compile(r"^Inst (\S+) (?:\[([^\]]*)\] )?\((\S+) (.*?) ?\[([^\]]+)\]\)")


def parse_apt_simulation(text: str) -> list[PendingUpdate]:
    """``Inst`` lines of ``apt-get -s dist-upgrade``; security when an origin is a security suite."""
    out: list[PendingUpdate] = []
    for line in text.splitlines():
        m = _INST.match(line)
        if m is None:
            continue
        name, old, new, origins, arch = m.groups()
        parts = [o.strip() for o in origins.split(",") if o.strip()]
        security = any(_origin_is_security(o) for o in parts)
        out.append(
            PendingUpdate(
                name=name,
                installed=old or None,
                candidate=new,
                arch=arch,
                security=security,
                origin=", ".join(parts),
            )
        )
    return out


def _origin_is_security(origin: str) -> bool:
    label, _, rest = origin.partition(":")
    suite = rest.split("/", 1)[-1]
    return "security" in label.lower() or suite.endswith("-security") or suite.endswith("/updates")


_NEVRA = re.compile(
    r"^(?P<name>.+)-(?:(?P<epoch>\d+):)?(?P<version>[^-:]+)-(?P<release>[^-]+)\.(?P<arch>[^.]+)$"
)


def split_nevra(nevra: str) -> tuple[str, str, str] | None:
    """``openssl-libs-1:3.0.7-25.el9_3.x86_64`` -> (name, "1:3.0.7-25.el9_3", arch)."""
    m = _NEVRA.match(nevra)
    if m is None:
        return None
    evr = f"{m['version']}-{m['release']}"
    if m["epoch"] and m["epoch"] != "0":
        evr = f"{m['epoch']}:{evr}"
    return m["name"], evr, m["arch"]


def parse_dnf_updateinfo(text: str) -> list[PendingUpdate]:
    """dnf4 ``ID Severity/Sec. NEVRA`` lines and dnf5 ``ID Type Severity NEVRA Issued`` rows."""
    out: list[PendingUpdate] = []
    seen: set[tuple[str, str]] = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] in ("Name", "Last"):
            continue
        advisory = words[0]
        nevra = next((w for w in words[1:] if split_nevra(w) is not None and "." in w), None)
        if nevra is None:
            continue
        split = split_nevra(nevra)
        assert split is not None
        name, evr, arch = split
        severity = None
        for w in words[1:]:
            if w.endswith("/Sec."):
                severity = w[: -len("/Sec.")]
            elif w in ("Critical", "Important", "Moderate", "Low"):
                severity = w
        if (advisory, nevra) in seen:
            continue
        seen.add((advisory, nevra))
        out.append(
            PendingUpdate(
                name=name,
                installed=None,
                candidate=evr,
                arch=arch,
                security=True,
                origin="dnf updateinfo",
                advisory=advisory,
                severity=severity,
            )
        )
    return out


def parse_dnf_metadata_age(text: str) -> dt.timedelta | None:
    """How long ago dnf 4 last checked its repositories' metadata (its ``Last metadata expiration check``)."""
    m = _DNF_CHECKED.search(text)
    if m is None:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|\([A-Za-z0-9])")


def parse_dnf_list(text: str) -> list[PendingUpdate]:
    """``name.arch  evr  repo`` rows of ``dnf list --upgrades``.

    On a terminal dnf 4 colours the name and, when a column is wider than its share of the width, ends
    the line there and continues the row on the next line, indented to the following column
    (``kernel-rt-debug-modules-internal.x86_64`` / ``   5.14.0-362.24.1.el9_3 baseos``): indented
    lines are joined to the row they continue.
    """
    out: list[PendingUpdate] = []
    rows: list[list[str]] = []
    for raw in text.splitlines():
        line = _ANSI.sub("", raw).replace("\r", "")
        if not line.strip():
            continue
        if line[:1].isspace() and rows:
            rows[-1].extend(line.split())
        else:
            rows.append(line.split())
    for words in rows:
        if len(words) != 3 or "." not in words[0] or not words[1][:1].isdigit():
            continue
        name, _, arch = words[0].rpartition(".")
        out.append(PendingUpdate(name=name, installed=None, candidate=words[1], arch=arch, origin=words[2]))
    return out


def split_sections(stdout: str) -> dict[str, tuple[str, int]]:
    """The ``#name`` … ``#rc N`` sections of a multi-part command record."""
    out: dict[str, tuple[str, int]] = {}
    current: str | None = None
    body: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("#rc ") and current is not None:
            rc = int(line[4:]) if line[4:].strip().lstrip("-").isdigit() else -1
            out[current] = ("\n".join(body), rc)
            current, body = None, []
        elif line.startswith("#") and re.fullmatch(r"#[a-z]+", line):
            current, body = line[1:], []
        elif current is not None:
            body.append(line)
    return out


# -- the fact ------------------------------------------------------------------------------------


def _when(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def apt_releases(facts: Facts) -> list[ReleaseInfo]:
    b = facts.bundle
    out = []
    for path in (*b.glob(f"{LISTS}/*_InRelease"), *b.glob(f"{LISTS}/*_Release")):
        text = b.text(path)
        if text:
            out.append(ReleaseInfo(path, parse_release(text)))
    return out


def _release_date(text: str) -> dt.datetime | None:
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def last_refresh(facts: Facts, releases: list[ReleaseInfo] | None = None) -> dt.datetime | None:
    """When apt last refreshed its lists: periodic stamps, the lists directory, the newest Release Date."""
    b = facts.bundle
    times: list[dt.datetime] = []
    for path in (f"{LISTS}", *STAMPS):
        st = b.stats.get(path)
        if st is not None:
            times.append(_when(st.mtime))
    for rel in releases if releases is not None else apt_releases(facts):
        date = _release_date(rel.fields.get("Date", ""))
        if date is not None:
            times.append(date)
    return max(times) if times else None


# Line breaks other than \n that str.splitlines also splits on (tested one by one: a character class
# search is a hundred times slower over a few hundred kB).
_ODD_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_HEADER = "#file "


def split_decompressed_lists(stdout: str) -> list[tuple[str, str]]:
    """The ``apt.security_lists`` output: ``#file PATH`` headers, each followed by that list's stanzas."""
    if any(c in stdout for c in _ODD_BREAKS):
        stdout = "".join(line + "\n" for line in stdout.splitlines())
    # Found with str.find, not line by line: the security lists are a few hundred kB per host.
    starts = [0] if stdout.startswith(_HEADER) else []
    at = stdout.find("\n" + _HEADER)
    while at >= 0:
        starts.append(at + 1)
        at = stdout.find("\n" + _HEADER, at + 1)
    out: list[tuple[str, str]] = []
    for i, start in enumerate(starts):
        last = i + 1 == len(starts)
        end = len(stdout) if last else starts[i + 1] - 1  # the next header's line break is not the body's
        head_end = stdout.find("\n", start, end)
        if head_end < 0:  # a header with no line after it
            head_end = end
        body = stdout[head_end + 1:end]
        out.append((stdout[start + len(_HEADER):head_end], body if last and body.endswith("\n") else body + "\n"))
    return out


def _apt_updates(facts: Facts, db: PackageDb) -> UpdateState:
    b = facts.bundle
    stats = {p: s for p, s in b.stats.items() if p.startswith(LISTS + "/")}
    lists = [p for p in stats if re.search(r"_Packages(\.[a-z0-9]+)?$", p)]
    if not lists:
        raise NoPackageLists(
            f"apt has no package lists ({LISTS} is empty): pending updates cannot be known "
            "until `apt update` has run"
        )
    releases = apt_releases(facts)
    when = last_refresh(facts, releases)
    security_releases = [r for r in releases if r.is_security]
    sec_files = []
    for path in b.glob(SECURITY_PACKAGES_GLOB):
        name = path.rsplit("/", 1)[-1]
        rel = max(
            (r for r in releases if name.startswith(r.prefix)), key=lambda r: len(r.prefix), default=None
        )
        if rel is None or rel.is_security:
            sec_files.append(path)
    compressed = [p for p in lists if "security" in p and not p.endswith("_Packages")]

    # (path, text, truncated) of every security Packages list, plain or decompressed on the host.
    sec_lists: list[tuple[str, str, bool]] = []
    for path in sec_files:
        rec = b.file(path)
        sec_lists.append((path, b.text(path) or "", rec is not None and rec.truncated))
    decompressed = b.command("apt.security_lists")
    if not sec_lists and decompressed is not None and decompressed.rc == 0:
        for path, text in split_decompressed_lists(decompressed.stdout):
            name = path.rsplit("/", 1)[-1]
            rel = max(
                (r for r in releases if name.startswith(r.prefix)), key=lambda r: len(r.prefix), default=None
            )
            if rel is None or rel.is_security:
                sec_files.append(path)
                sec_lists.append((path, text, False))

    sim = b.command("apt.simulate")
    if not sec_lists:
        no_security = () if security_releases else (NO_SECURITY_LISTS,)
        if sim is not None and sim.rc == 0:
            simulated = parse_apt_simulation(sim.stdout)
            return UpdateState(
                "apt",
                f"command: {APT_SIMULATE}",
                tuple(simulated),
                security_only=False,
                security_sources=tuple(r.path for r in security_releases),
                refreshed=when,
                notes=no_security,
            )
        if compressed:
            raise EvidenceError(
                f"the security package lists are stored compressed ({compressed[0].rsplit('/', 1)[-1]}); "
                "pending security updates can only be listed on the live host (apt-get -s dist-upgrade)"
            )
        if security_releases:
            raise EvidenceError(
                "the security archive's Release file is present but none of its Packages lists"
            )
        return UpdateState(
            "apt", LISTS, (), security_only=True, security_sources=(), refreshed=when, notes=no_security
        )
    notes = [f"{path} was larger than the evidence limit and was read in part"
             for path, _, truncated in sec_lists if truncated]
    ups = [PendingUpdate(pkg.name, pkg.version, version, pkg.arch, security=True, origin=path.rsplit("/", 1)[-1])
           for pkg, version, path in _newer_installed(db, _newest(sec_lists))]
    return UpdateState(
        "apt",
        f"{LISTS}/*security*_Packages",
        tuple(ups),
        security_only=True,
        security_sources=tuple(sec_files),
        refreshed=when,
        notes=tuple(notes),
    )


def _dnf_updates(facts: Facts) -> UpdateState:
    b = facts.bundle
    rec = b.command("dnf.updates")
    if not b.live:
        raise EvidenceError(
            "pending dnf updates can only be listed on the live host "
            "(dnf updateinfo list --security --cacheonly); this is an offline image"
        )
    if rec is None:
        raise EvidenceError("the dnf update list was not gathered")
    if rec.missing:
        raise EvidenceError("dnf is not installed: pending security updates cannot be listed")
    sections = split_sections(rec.stdout)
    sec = sections.get("security")
    if sec is None:
        raise EvidenceError("dnf updateinfo gave no answer")
    text, rc = sec
    if rc != 0:
        last = (text.strip().splitlines() or [f"exit status {rc}"])[-1]
        if "cache" in text.lower():
            raise EvidenceError(
                f"dnf has no cached metadata to list security updates from ({last}); "
                "the audit never downloads metadata: run `dnf makecache` first"
            )
        raise EvidenceError(f"dnf updateinfo list --security failed: {last}")
    updates = parse_dnf_updateinfo(text)
    # With skip_if_unavailable=True (Debian's dnf.conf, some hand-made ones) dnf 4 skips a repository
    # without cached metadata, says so on stderr and exits 0: an empty list then proves nothing.
    uncached = _NO_CACHE.findall(text)
    if uncached and not updates:
        repos = list(dict.fromkeys(uncached))
        raise EvidenceError(
            f"dnf has no cached metadata for {', '.join(repos)} (skipped: skip_if_unavailable=True); "
            "the audit never downloads metadata: run `dnf makecache` first"
        )
    kernel: list[PendingUpdate] = []
    ktext = sections.get("kernel")
    if ktext is not None and ktext[1] == 0:
        kernel = parse_dnf_list(ktext[0])
    refreshed = None
    age = parse_dnf_metadata_age(text)
    if age is not None:
        try:
            now = dt.datetime.fromisoformat(b.gathered_at)
        except ValueError:
            now = None
        if now is not None:
            refreshed = (now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)) - age
    return UpdateState(
        "dnf",
        f"command: {DNF_SECURITY}",
        tuple(updates),
        security_only=True,
        security_sources=("dnf repositories (cached metadata)",),
        refreshed=refreshed,
        kernel_updates=tuple(kernel),
    )


@dataclass(frozen=True)
class KernelCandidates:
    """Newer kernel packages in every apt list (not only the security ones)."""

    updates: tuple[PendingUpdate, ...]
    lists: tuple[str, ...]  # the Packages lists read
    refreshed: dt.datetime | None
    notes: tuple[str, ...] = ()


class NoPackageLists(EvidenceError):
    """apt has no package lists at all (an image that never ran ``apt update``, or lists cleaned)."""


def apt_kernel_updates(facts: Facts) -> KernelCandidates:
    """Installed kernel packages (images, Ubuntu metapackages) with a newer version in any apt list."""
    b = facts.bundle
    db = facts.get(packages)
    stats = {p for p in b.stats if p.startswith(LISTS + "/")}
    lists = sorted(p for p in stats | set(b.files) if re.search(r"_Packages(\.[a-z0-9]+)?$", p))
    if not lists:
        raise NoPackageLists(
            f"apt has no package lists ({LISTS} is empty): available kernels cannot be known "
            "until `apt update` has run"
        )
    texts: list[tuple[str, str, bool]] = []
    cmd = b.command("apt.kernel_lists")
    if cmd is not None and cmd.rc == 0:
        # Live: every list filtered on the host, whole.
        texts.extend((path, text, False) for path, text in split_decompressed_lists(cmd.stdout))
    done = {p for p, _, _ in texts}
    for path in b.glob(ALL_PACKAGES_GLOB):
        if path in done:
            continue
        rec = b.file(path)
        # Security lists are kept brief (every package, for check 07); others only their kernel stanzas.
        texts.append((path, b.text(path) or "", rec is not None and rec.truncated))
    compressed = [p for p in lists if not p.endswith("_Packages")]
    notes: list[str] = []
    if not texts:
        if compressed:
            raise EvidenceError(
                f"the package lists are stored compressed ({compressed[0].rsplit('/', 1)[-1]}); available "
                "kernels can only be listed on the live host"
            )
        raise NoPackageLists(f"apt has no readable package lists in {LISTS}")
    notes += [f"{path} is larger than the evidence limit and was read in part: kernels listed past it "
              "are not seen" for path, _, truncated in texts if truncated]
    ups = []
    for pkg, version, path in _newer_installed(db, _newest(texts, KERNEL_PACKAGE_RE), KERNEL_PACKAGE_RE):
        origin = path.rsplit("/", 1)[-1]
        ups.append(PendingUpdate(pkg.name, pkg.version, version, pkg.arch, "security" in origin, origin))
    return KernelCandidates(
        tuple(ups), tuple(p for p, _, _ in texts), last_refresh(facts, apt_releases(facts)), tuple(notes)
    )


def _newest(lists: Iterable[tuple[str, str, bool]],
            only: re.Pattern[str] | None = None) -> dict[tuple[str, str], tuple[str, str]]:
    """(package, arch) -> (the highest version in ``lists``, the list it is in)."""
    available: dict[tuple[str, str], tuple[str, str]] = {}
    for path, text, _ in lists:
        for key, version in parse_packages_list(text).items():
            if only is not None and only.fullmatch(key[0]) is None:
                continue
            old = available.get(key)
            try:
                if old is None or dpkg_compare(version, old[0]) > 0:
                    available[key] = (version, path)
            except VersionError:
                continue
    return available


def _newer_installed(db: PackageDb, available: Mapping[tuple[str, str], tuple[str, str]],
                     only: re.Pattern[str] | None = None) -> list[tuple[Package, str, str]]:
    """Installed packages with a higher version available: (package, that version, its list), by name."""
    out: list[tuple[Package, str, str]] = []
    for pkg in db.installed():
        if only is not None and only.fullmatch(pkg.name) is None:
            continue
        for arch in (pkg.arch, "all"):
            hit = available.get((pkg.name, arch))
            if hit is None:
                continue
            try:
                if dpkg_compare(hit[0], pkg.version) > 0:
                    out.append((pkg, hit[0], hit[1]))
            except VersionError:
                pass
            break
    return sorted(out, key=lambda x: x[0].name)


def pending_updates(facts: Facts) -> UpdateState:
    """Pending (security) updates known from the host's own metadata; EvidenceError when unknowable."""
    db = facts.get(packages)
    if db.manager == "dpkg":
        return _apt_updates(facts, db)
    state = _dnf_updates(facts)
    return dataclasses.replace(state, updates=_with_installed(state.updates, db),
                               kernel_updates=_with_installed(state.kernel_updates, db))


def _with_installed(ups: Iterable[PendingUpdate], db: PackageDb) -> tuple[PendingUpdate, ...]:
    """dnf names only the version it would install: the installed one (the newest, for installonly
    packages such as kernels) comes from the rpm database. A package not installed stays new."""
    out = []
    for up in ups:
        mine = [p for p in db.get(up.name) if p.arch == up.arch] or db.get(up.name)
        if up.installed is None and mine:
            newest = max((p.version for p in mine), key=functools.cmp_to_key(db.compare))
            up = dataclasses.replace(up, installed=newest)
        out.append(up)
    return tuple(out)


# -- where root's mail goes (update and security notices are mailed to root) ---------------------


def parse_aliases(text: str) -> dict[str, tuple[str, int]]:
    """aliases(5): ``name: dest, dest`` with indented continuation lines; names are case-insensitive."""
    out: dict[str, tuple[str, int]] = {}
    current: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            current = None if not raw.strip() else current
            continue
        if raw[0] in " \t" and current is not None:
            value, line = out[current]
            out[current] = (f"{value} {raw.strip()}", line)
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            current = None
            continue
        current = name.strip().lower()
        out[current] = (value.strip(), lineno)
    return out


def classify_destination(dest: str) -> str:
    """remote | local | program | file | discard."""
    d = dest.strip().strip('"')
    if d in ("/dev/null",):
        return "discard"
    if d.startswith("|"):
        return "program"
    if d.startswith(("/", ":include:")):
        return "file"
    if "@" in d:
        return "remote"
    return "local"


@dataclass(frozen=True)
class RootMail:
    mta: str | None  # the sendmail program, or None when no MTA is installed
    destinations: tuple[tuple[str, str], ...]  # (destination, kind), after following local names
    source: str | None  # path:line of the alias or .forward used first
    unknown: str | None = None  # why the destination cannot be known
    chain: tuple[str, ...] = ()  # every hop followed: "/etc/aliases:3: alice: ops@example.org"
    loop: str | None = None  # "root → alice → root" when the expansion comes back to a name


def _forward_dests(text: str) -> list[str]:
    return [
        d.strip()
        for line in text.splitlines()
        if not line.strip().startswith("#")
        for d in line.split(",")
        if d.strip()
    ]


def _homes(facts: Facts) -> dict[str, str]:
    out = {"root": "/root"}
    text = facts.bundle.text(PASSWD) or ""
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 6 and parts[0]:
            out[parts[0].lower()] = parts[5]
    return out


class _Unknown(Exception):
    pass


def root_mail(facts: Facts) -> RootMail:
    """Where mail to root ends up: /etc/aliases followed through local names (a depth limit and a loop
    guard, a name aliased to itself or written ``\\name`` is that user's mailbox), then the ``.forward``
    of each local user it reaches, as sendmail and postfix's local(8) do."""
    b = facts.bundle
    mta = next((p for p in SENDMAIL if p in b.stats), None)
    aliases = parse_aliases(b.text(ALIASES) or "")
    homes = _homes(facts)
    finals: list[tuple[str, str]] = []
    chain: list[str] = []
    loops: list[str] = []
    first: list[str] = []

    def forward_of(user: str) -> tuple[str, str] | None:
        path = f"{homes.get(user, f'/home/{user}')}/.forward"
        try:
            text = b.text(path)
        except EvidenceError as exc:
            raise _Unknown(str(exc)) from None
        if text is None and user == "root" and b.live and not b.is_root:
            raise _Unknown(f"needs root to see whether {ROOT_FORWARD} exists")
        return (path, text) if text and _forward_dests(text) else None

    def expand(name: str, path: list[str]) -> None:
        key = name.lower()
        if key in path:
            loops.append(" → ".join([*path, key]))
            return
        if len(path) >= MAX_ALIAS_DEPTH:
            loops.append(" → ".join([*path, key]) + f" (deeper than {MAX_ALIAS_DEPTH})")
            return
        entry = aliases.get(key)
        if entry is not None:
            where, dests = f"{ALIASES}:{entry[1]}", [d.strip() for d in entry[0].split(",") if d.strip()]
        else:
            fwd = forward_of(key)
            if fwd is None:
                finals.append(("/var/mail/root" if key == "root" and not path else name, "local"))
                return
            where, dests = fwd[0], _forward_dests(fwd[1])
        chain.append(f"{where}: {key}: {', '.join(dests)}")
        if not first:
            first.append(where)
        for dest in dests:
            kind = classify_destination(dest)
            bare = dest.strip().strip('"')
            if kind != "local":
                finals.append((dest, kind))
            elif bare.startswith("\\") or bare.lower() == key:
                finals.append((bare.lstrip("\\"), "local"))  # that user's mailbox, no further expansion
            else:
                expand(bare, [*path, key])

    try:
        expand("root", [])
    except _Unknown as exc:
        return RootMail(mta, (), None, str(exc))
    return RootMail(
        mta,
        tuple(dict.fromkeys(finals)),
        first[0] if first else None,
        chain=tuple(chain),
        loop="; ".join(loops) or None,
    )


# The evidence this module reads (after the sanitizers it names).
NEEDS = Needs(
    files=(
        f"{LISTS}/*_InRelease",
        f"{LISTS}/*_Release",
        SECURITY_PACKAGES_GLOB,
        ALIASES,
        ROOT_FORWARD,
        HOME_FORWARDS,
        PASSWD,
    ),
    # Live hosts filter every list with the apt.kernel_lists command instead of sending tens of MB.
    offline_files=(ALL_PACKAGES_GLOB,),
    stats=(LISTS, f"{LISTS}/*", *STAMPS, *SENDMAIL),
    commands={
        # Lists kept compressed (apt's KeepCompressed) are read through apt's own decompressor,
        # reduced in the pipe to the fields the brief sanitizer keeps: ~20 ms instead of a resolver run.
        "apt.security_lists": (
            f'for f in {SECURITY_PACKAGES_GLOB}; do [ -f "$f" ] && exit 3; done\n'
            f"[ -x {APT_HELPER} ] || exit 127\n"
            "n=0\n"
            f'for f in {SECURITY_PACKAGES_GLOB}.*; do\n'
            '  [ -f "$f" ] || continue\n'
            '  echo "#file $f"; n=1\n'
            f'  with_timeout 20 {APT_HELPER} cat-file "$f" | grep -E "^(Package|Version|Architecture|Source):|^$"\n'
            "done\n"
            '[ "$n" = 1 ] || exit 4'
        ),
        # Every list, plain or compressed (apt's KeepCompressed), reduced on the host to its kernel
        # stanzas: Debian's main list is ~50 MB with its kernels past the 16 MiB a file record keeps.
        "apt.kernel_lists": (
            "n=0\n"
            "set --\n"
            f'for f in {ALL_PACKAGES_GLOB}; do [ -f "$f" ] && set -- "$@" "$f"; done\n'
            'if [ $# -gt 0 ]; then\n'
            "  n=1\n"
            f'  k=$(with_timeout 20 {_KERNEL_GREP} -H -- "$@" | {_KERNEL_AWK_FILES})\n'
            '  case "$k" in\n'
            '    *"#cut"*) for f do echo "#file $f"; with_timeout 20 ' + _KERNEL_AWK + ' "$f"; done ;;\n'
            "    *) printf '%s\\n\\n' \"$k\" ;;\n"
            "  esac\n"
            "fi\n"
            f'for f in {ALL_PACKAGES_GLOB}.*; do\n'
            f'  [ -f "$f" ] && [ -x {APT_HELPER} ] || continue\n'
            f'  k=$(with_timeout 20 {APT_HELPER} cat-file "$f" | {_KERNEL_GREP} | {_KERNEL_AWK_STDIN})\n'
            '  echo "#file $f"; n=1\n'
            '  case "$k" in\n'
            f'    *"#cut"*) with_timeout 20 {APT_HELPER} cat-file "$f" | ' + _KERNEL_AWK + " ;;\n"
            "    ?*) printf '%s\\n\\n' \"$k\" ;;\n"
            "  esac\n"
            "done\n"
            '[ "$n" = 1 ] || exit 4'
        ),
        "apt.simulate": (
            "command -v apt-get >/dev/null 2>&1 || exit 127\n"
            f'for f in {SECURITY_PACKAGES_GLOB}; do [ -f "$f" ] && exit 3; done\n'
            f'if [ -x {APT_HELPER} ]; then for f in {SECURITY_PACKAGES_GLOB}.*; do [ -f "$f" ] && exit 3; done; fi\n'
            f"with_timeout 30 {APT_SIMULATE}"
        ),
        "dnf.updates": (
            "command -v dnf >/dev/null 2>&1 || exit 127\n"
            # Only where dnf manages this system: Debian ships dnf too (for building other roots), and
            # asking it costs half a second for nothing.
            "( . /etc/os-release 2>/dev/null || . /usr/lib/os-release 2>/dev/null\n"
            '  case " $ID $ID_LIKE " in *" rhel "*|*" fedora "*|*" centos "*) exit 0;; esac; exit 1 ) || exit 127\n'
            f"echo '#security'; with_timeout 90 {DNF_SECURITY} 2>&1; echo \"#rc $?\"\n"
            f"echo '#kernel'; with_timeout 90 {DNF_KERNEL} 2>&1; echo \"#rc $?\""
        ),
    },
    # Superset of what the sanitizers keep, and of the lines release_header stops at.
    prefilter={
        f"{LISTS}/*_InRelease": _RELEASE_ERE,
        f"{LISTS}/*_Release": _RELEASE_ERE,
        SECURITY_PACKAGES_GLOB: "^[[:space:]]*$|" + _KERNEL_FIELDS_ERE,
    },
    sanitize={
        f"{LISTS}/*_InRelease": release_header,
        f"{LISTS}/*_Release": release_header,
        SECURITY_PACKAGES_GLOB: packages_brief,  # first: a pattern's first match wins
        ALL_PACKAGES_GLOB: packages_kernel,
    },
    # Package stanzas cut on the host to Package, Version, Architecture and Source: nothing to redact.
    command_sanitize={"apt.security_lists": package_stanzas, "apt.kernel_lists": package_stanzas},
)
