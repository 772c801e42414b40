"""The running kernel against the installed kernel packages, and what says a reboot is due.

Installed kernels come from the package database (``linux-image-<release>`` on Debian/Ubuntu,
``kernel-core``/``kernel`` and their flavours on the RHEL family), ordered by the package manager's own
version rules. Reboot flags: ``/run/reboot-required(.pkgs)`` (Debian/Ubuntu, written by package
hooks) and, on rpm systems, ``dnf needs-restarting -r``'s rule (a package from its core list — or
from ``/etc/dnf/plugins/needs-restarting.d/*.conf`` — installed after boot). Live patching
(Canonical Livepatch, kpatch) shows as loaded modules under ``/sys/kernel/livepatch``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cmp_to_key
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs
from nectar_audit.facts.host import host
from nectar_audit.facts.updates.packages import Package, PackageDb, packages
from nectar_audit.facts.updates.versions import VersionError, comparator

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

REBOOT_FILES = ("/run/reboot-required", "/var/run/reboot-required")
REBOOT_PKGS = ("/run/reboot-required.pkgs", "/var/run/reboot-required.pkgs")
NEEDS_RESTARTING_D = "/etc/dnf/plugins/needs-restarting.d/*.conf"
LIVEPATCH_STATUS = "canonical-livepatch status"

NEEDS = Needs(
    files=(*REBOOT_FILES, *REBOOT_PKGS, NEEDS_RESTARTING_D),
    stats=("/boot/vmlinuz-*", "/sys/kernel/livepatch/*", *REBOOT_FILES),
    commands={
        # The kernel's boot time (constant, unlike now - uptime which jitters between two gathers).
        "kernel.btime": "sed -n 's/^btime //p' /proc/stat",
        "kernel.livepatch": (
            f"command -v canonical-livepatch >/dev/null 2>&1 || exit 127\nwith_timeout 5 {LIVEPATCH_STATUS}"
        )
    },
)

# dnf-plugins-core needs_restarting.py: updates of these packages after boot call for a reboot.
NEED_REBOOT = (
    "kernel",
    "kernel-core",
    "kernel-rt",
    "glibc",
    "linux-firmware",
    "systemd",
    "dbus",
    "dbus-broker",
    "dbus-daemon",
    "microcode_ctl",
)

_DEB_KERNEL = re.compile(r"linux-image-(?:unsigned-)?(\d+\.\d+[^\s]*)")
# uname -r suffix of rpm kernel flavours (kernel-debug-core 5.14.0-362.el9 -> 5.14.0-362.el9.x86_64+debug).
_RPM_SUFFIX = {"-debug": "+debug", "-rt-debug": "+debug", "-64k": "+64k", "-64k-debug": "+64k-debug"}
_RPM_KERNEL = re.compile(r"kernel(?P<flavour>-rt|-debug|-rt-debug|-64k|-64k-debug|-uek|-uki-virt)?(?:-core)?")


@dataclass(frozen=True)
class InstalledKernel:
    release: str  # as `uname -r` prints it
    package: str
    version: str  # the package's version ([E:]V-R)
    install_time: int | None = None

    @property
    def flavour(self) -> str:
        return kernel_flavour(self.release)


@dataclass(frozen=True)
class RebootFlag:
    source: str  # the file, or "needs-restarting rule"
    packages: tuple[str, ...]


@dataclass(frozen=True)
class KernelState:
    manager: str
    package_source: str
    running: str | None  # None offline
    installed: tuple[InstalledKernel, ...]  # oldest first, in package version order
    boot_time: dt.datetime | None
    reboot_flags: tuple[RebootFlag, ...]
    livepatch: tuple[str, ...]  # loaded live patch modules, and Livepatch's own status line
    vmlinuz: tuple[str, ...]  # releases with a /boot/vmlinuz-<release>

    @property
    def running_package(self) -> InstalledKernel | None:
        return next((k for k in self.installed if k.release == self.running), None)

    def newest(self) -> InstalledKernel | None:
        """The newest installed kernel of the running flavour (of any flavour if none matches)."""
        if not self.installed:
            return None
        if self.running is not None:
            same = [k for k in self.installed if k.flavour == kernel_flavour(self.running)]
            if same:
                return same[-1]
        return self.installed[-1]

    def compare_release(self, a: str, b: str) -> int:
        """Order two `uname -r` strings with the package manager's rules (best effort across flavours)."""
        try:
            return comparator(self.manager)(a, b)
        except VersionError:
            return 0


def kernel_flavour(release: str) -> str:
    """``6.1.0-18-cloud-amd64`` -> ``cloud-amd64``; ``5.15.0-91-generic`` -> ``generic``;
    ``5.14.0-362.8.1.el9_3.x86_64+debug`` -> ``+debug``; ``…el9_3.x86_64`` -> ``""``."""
    m = re.match(r"^\d+\.\d+(?:\.\d+)?-\d+-(.+)$", release)
    if m:
        return m.group(1)
    plus = release.find("+")
    if plus >= 0:
        return release[plus:]
    if re.search(r"\.rt\d", release) or ".rt" in release:
        return "rt"
    return ""


def deb_kernels(db: PackageDb) -> list[InstalledKernel]:
    out: dict[str, InstalledKernel] = {}
    for pkg in db.installed():
        m = _DEB_KERNEL.fullmatch(pkg.name)
        if m is None or pkg.name.endswith(("-dbg", "-dbgsym")):
            continue
        release = m.group(1)
        # linux-image-unsigned-X and linux-image-X are the same kernel; keep one.
        out.setdefault(release, InstalledKernel(release, pkg.name, pkg.version))
    return list(out.values())


def rpm_kernels(db: PackageDb) -> list[InstalledKernel]:
    out: dict[str, InstalledKernel] = {}
    for pkg in db.installed():
        m = _RPM_KERNEL.fullmatch(pkg.name)
        if m is None:
            continue
        flavour = m.group("flavour") or ""
        evr = pkg.version.split(":", 1)[-1]
        release = f"{evr}.{pkg.arch}" if pkg.arch else evr
        release += _RPM_SUFFIX.get(flavour, "")
        current = out.get(release)
        # kernel-core carries the image on EL8+; "kernel" is its meta package with the same version.
        if current is None or pkg.name.endswith("-core"):
            out[release] = InstalledKernel(release, pkg.name, pkg.version, pkg.install_time)
    return list(out.values())


def parse_reboot_pkgs(text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for line in text.splitlines():
        name = line.strip()
        if name:
            seen[name] = None
    return tuple(seen)


def needs_restarting(db: PackageDb, boot: dt.datetime, extra: tuple[str, ...] = ()) -> list[Package]:
    """Packages of dnf needs-restarting's reboot list installed after ``boot``."""
    names = set(NEED_REBOOT) | set(extra)
    limit = boot.timestamp()
    return sorted(
        (
            p
            for p in db.installed()
            if p.name in names and p.install_time is not None and p.install_time > limit
        ),
        key=lambda p: p.name,
    )


def _boot_time(facts: Facts) -> dt.datetime | None:
    rec = facts.bundle.command("kernel.btime")
    if rec is not None and rec.rc == 0 and rec.stdout.strip().isdigit():
        return dt.datetime.fromtimestamp(int(rec.stdout.strip()), dt.timezone.utc)
    info = facts.get(host)
    if info.uptime_s is None:
        return None
    try:
        now = dt.datetime.fromisoformat(facts.bundle.gathered_at)
    except ValueError:
        return None
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    return now - dt.timedelta(seconds=info.uptime_s)


def kernel_state(facts: Facts) -> KernelState:
    b = facts.bundle
    db = facts.get(packages)
    cmp = comparator(db.manager)
    kernels = deb_kernels(db) if db.manager == "dpkg" else rpm_kernels(db)

    def order(a: InstalledKernel, c: InstalledKernel) -> int:
        try:
            return cmp(a.version, c.version)
        except VersionError:
            return 0

    kernels.sort(key=cmp_to_key(order))
    running = facts.get(host).kernel_release if b.live else None
    boot = _boot_time(facts) if b.live else None

    flags: list[RebootFlag] = []
    for flag, pkgs_file in zip(REBOOT_FILES, REBOOT_PKGS):
        if b.text(flag) is not None or flag in b.stats:
            listed = parse_reboot_pkgs(b.text(pkgs_file) or "")
            flags.append(RebootFlag(flag, listed))
            break
    if db.manager == "rpm" and boot is not None:
        extra: list[str] = []
        for path in b.glob(NEEDS_RESTARTING_D):
            try:
                extra += [ln.strip() for ln in (b.text(path) or "").splitlines() if ln.strip()]
            except EvidenceError:
                continue
        late = needs_restarting(db, boot, tuple(extra))
        if late:
            flags.append(
                RebootFlag(
                    "needs-restarting rule (core packages installed after boot)",
                    tuple(f"{p.name} {p.version}" for p in late),
                )
            )

    live: list[str] = [p.rsplit("/", 1)[-1] for p in b.stat_glob("/sys/kernel/livepatch/*")] if b.live else []
    cmd = b.command("kernel.livepatch")
    if cmd is not None and cmd.rc == 0:
        state = next((ln.strip() for ln in cmd.stdout.splitlines() if "patch state" in ln), "")
        if state:
            live.append(f"Livepatch {state}")
    vmlinuz = tuple(p[len("/boot/vmlinuz-") :] for p in b.stat_glob("/boot/vmlinuz-*"))
    return KernelState(
        db.manager, db.source, running, tuple(kernels), boot, tuple(flags), tuple(live), vmlinuz
    )
