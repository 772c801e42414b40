"""The cached Debian root (debootstrap + packages) and per-test writable overlays of it."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import state
from ._proc import DIE_WITH_PARENT, LabCommandError, LabError, missing_binary_message, run, which

SUITE = "bookworm"
VARIANT = "minbase"
# The one place listing what the lab root has installed (beside debootstrap's minbase). Changing it
# changes the cache key, so the next run rebuilds. --no-install-recommends is used.
ROOT_PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "rsyslog",
    "fail2ban",
    "sudo",
    "iptables",
    "nftables",
    "ufw",
    "exim4-daemon-light",
    "unattended-upgrades",
    "cron",
    "chrony",
    "linux-image-cloud-amd64",
    "iproute2",
    "procps",
    # systemd-journald for check 14's journald lab (tests/checks/test_14_journald_lab.py). Not systemd-sysv: the
    # hosts' init stays the lab's shell, systemd is only there as binaries, units and configuration.
    "systemd",
    # The README's install command makes a virtualenv (tests/test_readme_install_lab.py); a lab host
    # reaches no mirror for the script to apt-get it itself.
    "python3-venv",
)
# A second root for the fix lab of checks 02, 05 and 06 (tests/fix/test_02_05_06_fix_lab.py): the mail, DNS and
# NTP daemons a fix reconfigures and restarts inside a chroot host. Postfix replaces exim4 and NTPsec replaces
# chrony (each pair conflicts); exim and chrony are tested on the default root.
NET_ROOT_PACKAGES: tuple[str, ...] = (
    *(p for p in ROOT_PACKAGES if p not in ("exim4-daemon-light", "chrony")),
    "postfix",
    "dovecot-imapd",
    "bind9",
    "bind9-dnsutils",
    "unbound",
    "dnsmasq",
    "ntpsec",
)
# A small root for the firewalls the default root lacks (tests/fix/test_18_firewalls_lab.py):
# iptables-persistent (netfilter-persistent.service restores the rule files at boot; ufw's package Breaks
# it) and firewalld with its D-Bus system bus. Each host disables the one it does not test.
FW_ROOT_PACKAGES: tuple[str, ...] = ("openssh-server", "sudo", "iproute2", "procps", "python3", "nftables",
                                     "iptables", "iptables-persistent", "firewalld", "dbus")
# Every root the tests use: `python -m tests.lab build-root` builds them all before the suite runs, so that
# no test's set-up spends minutes on debootstrap.
ALL_ROOTS: tuple[tuple[str, ...], ...] = (ROOT_PACKAGES, NET_ROOT_PACKAGES, FW_ROOT_PACKAGES)
# Bump when the build recipe below changes in a way that changes the resulting root.
RECIPE_VERSION = 1

CACHE_BASE = Path(os.environ.get("NECTAR_AUDIT_LAB_CACHE", "/var/cache/nectar-audit-lab"))
BUILD_LOCK_TIMEOUT = 3600.0
APT_OPTIONS = (
    # The archive may be a dated snapshot: its Release files can be past Valid-Until.
    "-o", "Acquire::Check-Valid-Until=false",
    "-o", "Acquire::Check-Date=false",
    "-o", "Dpkg::Options::=--force-confdef",
    "-o", "Dpkg::Options::=--force-confold",
    "-o", "APT::Install-Recommends=false",
)  # fmt: skip

Log = Callable[[str], None]


def _stderr_log(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def cache_key(packages: Iterable[str] = ROOT_PACKAGES) -> str:
    spec = {"suite": SUITE, "variant": VARIANT, "packages": sorted(set(packages)), "recipe": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def root_path(packages: Iterable[str] = ROOT_PACKAGES) -> Path:
    """Where the cached root for this package list lives (it may not be built yet)."""
    return CACHE_BASE / cache_key(packages) / "root"


# --- apt sources of this machine -------------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def _parse_deb822(text: str) -> list[AptSource]:
    out: list[AptSource] = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            out.append(AptSource(uri, tuple(fields.get("suites", "").split()),
                                 tuple(fields.get("components", "").split())))
    return out


def _parse_one_line(text: str) -> list[AptSource]:
    out: list[AptSource] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2:
            out.append(AptSource(words[0], (words[1],), tuple(words[2:])))
    return out


def host_apt_sources(etc: Path = Path("/etc/apt")) -> list[AptSource]:
    """The `deb` entries apt on this machine uses (deb822 .sources and one-line .list files)."""
    out: list[AptSource] = []
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*"))]
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.name.endswith(".sources"):
            out += _parse_deb822(text)
        elif path.name.endswith(".list"):
            out += _parse_one_line(text)
    return out


def debian_mirror(suite: str = SUITE) -> str:
    """The Debian mirror this machine's apt uses for `suite` (override: NECTAR_AUDIT_LAB_MIRROR)."""
    env = os.environ.get("NECTAR_AUDIT_LAB_MIRROR")
    if env:
        return env
    for src in host_apt_sources():
        if suite in src.suites:
            return src.uri
    raise LabError(f"no apt source for Debian {suite} in /etc/apt/sources.list or /etc/apt/sources.list.d/*; "
                   "set NECTAR_AUDIT_LAB_MIRROR to a Debian mirror URL")


def root_sources_list(suite: str = SUITE) -> str:
    """sources.list for the root: the host's suite, -updates and -security entries, component main."""
    wanted = (suite, f"{suite}-updates", f"{suite}-security")
    lines: list[str] = []
    for src in host_apt_sources():
        for s in src.suites:
            line = f"deb {src.uri} {s} main"
            if s in wanted and line not in lines:
                lines.append(line)
    if not lines:
        lines.append(f"deb {debian_mirror(suite)} {suite} main")
    return "\n".join(lines) + "\n"


# --- building the cached root ----------------------------------------------------------------

_INSTALL_SCRIPT = r"""
set -eu
R=$1; shift
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount --rbind /dev "$R/dev"
export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true LC_ALL=C.UTF-8 \
       PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
APT="apt-get $APT_OPTIONS"
echo "+ apt-get update"; chroot "$R" $APT update
echo "+ apt-get dist-upgrade"; chroot "$R" $APT -y dist-upgrade
echo "+ apt-get install $*"; chroot "$R" $APT -y install "$@"
chroot "$R" apt-get clean
chroot "$R" dpkg-query -W -f '${Package} ${Version}\n' > "$R/../packages.lock.txt"
"""


def _prerequisites() -> None:
    if os.geteuid() != 0:
        raise LabError("building the lab root needs root (debootstrap, chroot, mount)")
    for name in ("debootstrap", "unshare", "chroot", "mount"):
        if which(name) is None:
            raise LabError(missing_binary_message(name))


def _run_logged(argv: list[str], logfile: Path, timeout: float) -> None:
    with logfile.open("ab") as log:
        log.write(f"\n### {' '.join(argv)}\n".encode())
        log.flush()
        try:
            # Own pid namespace: if this process dies, unshare dies (pdeathsig), its child (pid 1 of the
            # namespace) is killed (--kill-child) and with it every process of the step. Own mount
            # namespace: mounts made by the step (proc, dev in the chroot) never outlive it.
            run([*DIE_WITH_PARENT, "unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation",
                 "private", "--", *argv],
                timeout=timeout, stdout=log, stderr=log)
        except LabCommandError as exc:
            tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-40:])
            raise LabError(f"{exc}\n--- {logfile} (tail) ---\n{tail}") from None


def build_root(packages: Iterable[str] = ROOT_PACKAGES, *, log: Log = _stderr_log) -> Path:
    """Build (once, under a file lock) and return the cached root for this package list."""
    pkgs = sorted(set(packages))
    key = cache_key(pkgs)
    base = CACHE_BASE / key
    final = base / "root"
    if final.is_dir():
        return final
    _prerequisites()
    state.ensure_dir(base)
    with state.file_lock(base / "build.lock", BUILD_LOCK_TIMEOUT, "building the lab root", on_wait=log):
        if final.is_dir():  # another process built it while we waited
            return final
        for stale in base.glob("build-*"):  # left by a build that was killed
            log(f"removing stale partial build {stale}")
            run(["rm", "-rf", "--one-file-system", str(stale)], timeout=600)
        mirror = debian_mirror()
        tmp = Path(tempfile.mkdtemp(prefix="build-", dir=base))
        tmp.chmod(0o755)  # becomes "/" of the hosts: daemons' users must traverse it
        target = tmp / "root"
        logfile = base / "build.log"
        logfile.write_text(f"build of {key} at {time.ctime()}\npackages: {' '.join(pkgs)}\n")
        t0 = time.monotonic()
        try:
            log(f"debootstrap --variant={VARIANT} {SUITE} from {mirror} (log: {logfile})")
            _run_logged(["debootstrap", f"--variant={VARIANT}", SUITE, str(target), mirror], logfile, 1800)
            t1 = time.monotonic()
            log(f"debootstrap done in {t1 - t0:.0f}s; installing {len(pkgs)} packages")
            policy = target / "usr/sbin/policy-rc.d"
            policy.write_text("#!/bin/sh\n# lab root: package installs never start daemons\nexit 101\n")
            policy.chmod(0o755)
            (target / "etc/apt/sources.list").write_text(root_sources_list())
            shutil.copy2("/etc/resolv.conf", target / "etc/resolv.conf", follow_symlinks=True)
            (target / "etc/hostname").write_text("debian-lab\n")
            (target / "etc/hosts").write_text(
                "127.0.0.1\tlocalhost\n127.0.1.1\tdebian-lab\n::1\tlocalhost ip6-localhost ip6-loopback\n")
            _run_logged(
                ["env", f"APT_OPTIONS={' '.join(APT_OPTIONS)}", "sh", "-c", _INSTALL_SCRIPT, "install-root",
                 str(target), *pkgs],
                logfile, 2400)
            t2 = time.monotonic()
            log(f"packages installed in {t2 - t1:.0f}s")
            (tmp / "packages.txt").write_text("\n".join(pkgs) + "\n")
            (tmp / "build-info.json").write_text(json.dumps(
                {"key": key, "suite": SUITE, "variant": VARIANT, "mirror": mirror, "packages": pkgs,
                 "recipe": RECIPE_VERSION, "built": time.time(), "seconds": round(t2 - t0, 1)}, indent=1))
            # Publish atomically: <key>/root appears only complete. Metadata lives beside it.
            for name in ("packages.txt", "build-info.json", "packages.lock.txt"):
                if (tmp / name).exists():
                    os.replace(tmp / name, base / name)
            os.rename(target, final)
            tmp.rmdir()
        except BaseException:
            run(["rm", "-rf", "--one-file-system", str(tmp)], timeout=600, check=False)
            raise
        log(f"lab root ready at {final} ({time.monotonic() - t0:.0f}s)")
    return final


@functools.cache
def debian_root() -> Path:
    """The cached, pristine Debian bookworm root for ROOT_PACKAGES (built on first use).

    Never write into it: use overlay_root() for a writable per-test view.
    """
    return build_root(ROOT_PACKAGES)


def is_cached_root(path: Path) -> bool:
    """True if path is (inside) a cached lab root, which must stay pristine."""
    try:
        resolved = path.resolve()
        cache = CACHE_BASE.resolve()
    except OSError:
        return False
    return resolved == cache or cache in resolved.parents


def installed_kernels(root: Path) -> list[str]:
    """Kernel releases installed in a root, from /boot/vmlinuz-* (e.g. ['6.1.0-37-cloud-amd64'])."""
    return sorted(p.name[len("vmlinuz-"):] for p in (root / "boot").glob("vmlinuz-*"))


# --- per-test overlays -----------------------------------------------------------------------


def _is_mountpoint(path: Path) -> bool:
    target = os.fsencode(os.path.realpath(path))
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and fields[4].decode("unicode_escape").encode("latin-1") == target:
                return True
    return False


def unmount(path: Path) -> None:
    """Unmount path (lazily if busy)."""
    if not _is_mountpoint(path):
        return
    try:
        run(["umount", str(path)], timeout=30)
    except LabCommandError:
        run(["umount", "-l", str(path)], timeout=30)


@contextlib.contextmanager
def overlay_root(tmp_path: Path, lower: Path | None = None) -> Iterator[Path]:
    """A writable view of the cached root (or `lower`) under tmp_path, unmounted on exit.

    overlayfs with lower = the pristine root, upper/work under tmp_path; falls back to
    `cp -a --reflink=auto` only if the overlay mount fails. Writes never reach the cache.
    """
    lower = debian_root() if lower is None else lower
    workdir = Path(tempfile.mkdtemp(prefix="overlay-", dir=tmp_path))
    upper, work, merged = workdir / "upper", workdir / "work", workdir / "merged"
    for d in (upper, work, merged):
        d.mkdir(mode=0o755)
    upper.chmod(0o755)  # the upper dir's mode becomes the mode of "/" in the merged view
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if any(c in str(workdir) + str(lower) for c in ",:"):
        raise LabError(f"overlay paths must not contain ',' or ':': {workdir}, {lower}")
    record: Path | None = None
    mounted = False
    try:
        run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], timeout=30)
        mounted = True
    except (LabCommandError, LabError) as exc:
        _stderr_log(f"overlay mount failed, copying the root instead (slow): {exc}")
        run(["cp", "-a", "--reflink=auto", f"{lower}/.", str(merged)], timeout=900)
    try:
        if mounted:
            record = state.write_record("mounts", {"mountpoint": str(merged)})
        yield merged
    finally:
        if mounted:
            unmount(merged)
        if record is not None:
            state.remove_record(record)


def sweep_mounts(include_own: bool = False) -> list[str]:
    """Unmount overlays recorded by dead processes (and this one's if include_own)."""
    done: list[str] = []
    me = state.owner_token()
    for path, rec in state.read_records("mounts"):
        owner = str(rec.get("owner", ""))
        if state.owner_alive(owner) and not (include_own and owner == me):
            continue
        mountpoint = Path(str(rec.get("mountpoint", "")))
        with contextlib.suppress(LabError, LabCommandError, OSError):
            if mountpoint.is_absolute():
                unmount(mountpoint)
                done.append(str(mountpoint))
        state.remove_record(path)
    return done
