"""Installed packages: dpkg's status database (a text file) or the rpm database (through ``rpm -qa``).

The dpkg status file is read as a file, so live hosts and offline images give the same answer. The
rpm database is binary (SQLite, BerkeleyDB or ndb holding rpm headers): on a live host one
``rpm -qa --qf`` lists it; on an offline image without running rpm it cannot be known, and the fact
says so instead of guessing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs, fields_only
from nectar_audit.facts.updates.versions import comparator

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

DPKG_STATUS = "/var/lib/dpkg/status"
RPM_QF = r"%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{INSTALLTIME}\n"
RPM_COMMAND = f"rpm -qa --qf '{RPM_QF}'"
# Where an rpm database lives (EL7/8 BerkeleyDB, EL9 SQLite, Fedora/EL10 in /usr/lib/sysimage). A
# Debian host with the rpm tool installed has an empty /var/lib/rpm: rpm is then not asked at all.
_RPM_DBS = (
    "/var/lib/rpm/rpmdb.sqlite",
    "/var/lib/rpm/Packages",
    "/var/lib/rpm/Packages.db",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
    "/usr/lib/sysimage/rpm/Packages.db",
    "/usr/lib/sysimage/rpm/Packages",
)

# The fields of dpkg's status parse_dpkg_status reads: all the sanitizer keeps, and the host sends.
_STATUS_KEYS = "Package|Status|Version|Architecture|Source"


# dpkg states in which the package's files are on disk and configured (or nearly so).
_INSTALLED_STATES = ("installed", "triggers-pending", "triggers-awaited")


@dataclass(frozen=True)
class Package:
    name: str
    version: str  # as the package manager prints it: dpkg [E:]U[-R], rpm [E:]V-R (epoch only if set)
    arch: str = ""
    status: str = "installed"  # dpkg's state word (installed, half-configured, config-files, ...)
    source: str | None = None  # dpkg Source package name
    install_time: int | None = None  # rpm INSTALLTIME, seconds since the epoch

    @property
    def installed(self) -> bool:
        return self.status in _INSTALLED_STATES


@dataclass(frozen=True)
class PackageDb:
    manager: str  # dpkg | rpm
    source: str  # where the list comes from, for evidence: a path or "command: rpm -qa ..."
    packages: tuple[Package, ...]
    _by_name: dict[str, list[Package]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for pkg in self.packages:
            if pkg.installed:
                self._by_name.setdefault(pkg.name, []).append(pkg)

    def get(self, name: str) -> list[Package]:
        """Installed packages of that name (several for multi-arch or rpm's installonly kernels)."""
        return list(self._by_name.get(name, ()))

    def is_installed(self, name: str) -> bool:
        return name in self._by_name

    def installed(self) -> Iterator[Package]:
        for pkgs in self._by_name.values():
            yield from pkgs

    def matching(self, pattern: str) -> list[Package]:
        """Installed packages whose name matches the regular expression (fullmatch)."""
        rx = re.compile(pattern)
        return [p for p in self.installed() if rx.fullmatch(p.name)]

    def compare(self, a: str, b: str) -> int:
        return comparator(self.manager)(a, b)


# -- parsers -------------------------------------------------------------------------------------

_FIELD = re.compile(rf"^({_STATUS_KEYS}):[ \t]*(.*?)[ \t]*$", re.M)
_KEPT = re.compile(rf"^(?:(?:{_STATUS_KEYS}):.*|[ \t]*)(?:\n|\Z)", re.M)
_NOT_KEPT = re.compile(rf"^(?!(?:{_STATUS_KEYS}):|[ \t]*(?:\n|\Z))", re.M)


@fields_only
def sanitize_dpkg_status(data: bytes) -> str:
    """Only the fields parse_dpkg_status reads, and the blank lines between stanzas: a fifth of the
    file, which a fleet otherwise keeps in memory (and pickles to its judges) once per host."""
    text = data.decode("utf-8", "replace")
    if _NOT_KEPT.search(text) is None:  # reduced on the host already (NEEDS.prefilter): one scan
        return text
    return "".join(m.group(0) for m in _KEPT.finditer(text))


@functools.lru_cache(maxsize=4)
def parse_dpkg_status(text: str) -> tuple[Package, ...]:
    """Stanzas of /var/lib/dpkg/status; only the fields this tool needs are looked at. Remembered: the
    hosts of a fleet built from one image list the same packages."""
    out: list[Package] = []
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields = dict(_FIELD.findall(stanza))
        name = fields.get("Package")
        if not name:
            continue
        status_words = fields.get("Status", "").split()
        state = status_words[-1] if len(status_words) == 3 else "unknown"
        version = fields.get("Version", "")
        if not version and state in _INSTALLED_STATES:
            state = "unknown"
        source = fields.get("Source")
        if source:
            source = source.split()[0]
        out.append(
            Package(
                name=name,
                version=version,
                arch=fields.get("Architecture", ""),
                status=state,
                source=source or None,
            )
        )
    return tuple(out)


def parse_rpm_qa(text: str) -> list[Package]:
    """Lines of ``rpm -qa --qf`` with the RPM_QF format: name, epoch, version, release, arch, install time."""
    out: list[Package] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 6 or not parts[0] or not parts[2]:
            continue
        name, epoch, version, release, arch, itime = parts
        evr = f"{version}-{release}" if release else version
        if epoch not in ("", "0", "(none)"):
            evr = f"{epoch}:{evr}"
        install_time = int(itime) if itime.isdigit() else None
        out.append(
            Package(name=name, version=evr, arch="" if arch == "(none)" else arch, install_time=install_time)
        )
    return out


# -- the fact ------------------------------------------------------------------------------------


def packages(facts: Facts) -> PackageDb:
    """The installed packages, or EvidenceError saying why they cannot be known."""
    b = facts.bundle
    status = b.text(DPKG_STATUS)
    if status is not None:
        rec = b.file(DPKG_STATUS)
        if rec is not None and rec.truncated:
            raise EvidenceError(f"{DPKG_STATUS} is larger than the evidence limit and was cut short")
        pkgs = parse_dpkg_status(status)
        if not pkgs:
            raise EvidenceError(f"{DPKG_STATUS} lists no packages (empty or corrupt)")
        return PackageDb("dpkg", DPKG_STATUS, tuple(pkgs))
    rpm_db = [p for p in _RPM_DBS if p in b.stats]
    cmd = b.command("packages.rpm")
    if cmd is not None and cmd.rc == 0:
        rpms = parse_rpm_qa(cmd.stdout)
        if rpms:
            return PackageDb("rpm", f"command: {RPM_COMMAND}", tuple(rpms))
        raise EvidenceError("rpm -qa listed no packages")
    if cmd is not None and cmd.rc not in (3, 127):
        err = (cmd.stderr.strip().splitlines() or [f"exit status {cmd.rc}"])[-1]
        raise EvidenceError(f"rpm -qa failed: {err}")
    if rpm_db:
        if not b.live:
            raise EvidenceError(
                f"the rpm database ({rpm_db[0]}) is binary and is not read from an offline image: "
                "installed rpm packages and their versions cannot be known without running rpm on the host"
            )
        raise EvidenceError(f"{rpm_db[0]} exists but the rpm command is not available to list it")
    raise EvidenceError(f"no package database found ({DPKG_STATUS} or an rpm database)")


# The evidence this module reads (after the sanitizers it names).
NEEDS = Needs(
    files=(DPKG_STATUS,),
    sanitize={DPKG_STATUS: sanitize_dpkg_status},
    # The lines dpkg_status_fields keeps (a superset: it drops the rest again): a ninth of the file.
    prefilter={DPKG_STATUS: f"^(({_STATUS_KEYS}):|[[:space:]]*$)"},
    stats=_RPM_DBS,
    commands={
        "packages.rpm": (
            # dpkg's database decides where it is there (the fact reads it first): a Debian host with
            # rpm installed for building other roots need not list that database.
            f'[ -s {DPKG_STATUS} ] && exit 3\n'
            "for d in " + " ".join(_RPM_DBS) + '; do [ -e "$d" ] && found=1; done\n'
            '[ -n "$found" ] || exit 3\n'
            "command -v rpm >/dev/null 2>&1 || exit 127\n"
            f"with_timeout 30 {RPM_COMMAND}"
        ),
    },
)
