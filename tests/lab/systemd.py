"""A host whose PID 1 is the root's real systemd: for code that takes another path under systemd.

The machine's init is not systemd, so code that asks systemd (``systemd-run`` timers, ``systemctl``)
needs its own: the lab root's systemd 252 boots as PID 1 of new pid, mount, UTS, IPC, net and cgroup
namespaces, chrooted into an overlay of the root, in about 0.5 s. Its network namespace is private
(loopback only), or with ``network=True`` a lab slot's (tests/lab/netns.py): eth0 at ``host.addr``, reached
from the root namespace over the slot's veth as a chroot host is. What it needs and why:

- a cgroup2 hierarchy it may write: a fresh child cgroup of the machine's cgroup2 mount (on a hybrid
  machine ``/sys/fs/cgroup/unified``), made the root of its cgroup namespace and mounted at
  ``/sys/fs/cgroup``; systemd then runs in unified mode without controllers (they stay with v1);
- ``container=`` in its environment (it skips what only a real machine's init does), /proc, a read-only
  /sys and /proc/sys (global sysctls belong to the machine; net.* is its own netns's: writable), tmpfs
  /run and /tmp, a private /dev whose ``console`` is /dev/null (systemd logs to its own journald:
  ``host.log()``);
- no CAP_SYS_TIME nor CAP_SYS_MODULE in its bounding set: the clock and the kernel are shared, and units
  that would touch them (chrony, modules-load) are skipped by their own conditions;
- a small ``nalab.target`` (basic.target only) as the default unit: no getty, no daemons of the root.

Teardown SIGKILLs systemd from the parent namespace (the kernel then kills everything in its pid
namespace) and removes the cgroup tree bottom-up.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ._proc import (
    DEFAULT_TIMEOUT,
    DIE_WITH_PARENT,
    Argv,
    LabError,
    missing_binary_message,
    run,
    stop_process,
    wait_until,
    which,
)
from .chroot import HOST_ENV
from .netns import NetnsHost, netns_host
from .rootfs import is_cached_root

CGROUP_PREFIX = "nalab-systemd-"
BOOT_TIMEOUT = 60.0

_TARGET = """[Unit]
Description=nectar-audit lab: basic system only
Requires=basic.target
After=basic.target
AllowIsolate=yes
"""

_BOOT_SCRIPT = r"""
set -eu
R=$1 NAME=$2
hostname "$NAME"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,rw "$R/proc/sys/net"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
# In the new cgroup namespace this shows the cgroup made for this host as the whole hierarchy.
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid,nodev,size=64m tmpfs "$R/run"
mount -t tmpfs -o mode=1777,nosuid,nodev,size=64m tmpfs "$R/tmp"
mount -t tmpfs -o mode=0755,nosuid,size=1m tmpfs "$R/dev"
for n in null zero full random urandom tty; do
    : > "$R/dev/$n"
    mount --bind "/dev/$n" "$R/dev/$n"
done
: > "$R/dev/console"
mount --bind /dev/null "$R/dev/console"
mkdir -m 0755 "$R/dev/pts"
mkdir -m 1777 "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev,size=16m tmpfs "$R/dev/shm"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
exec chroot "$R" /usr/bin/env -i container=nectar-audit-lab LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --system --unit=nalab.target
"""


def _cgroup2_base() -> Path | None:
    """This process's own cgroup in the machine's cgroup2 hierarchy (None: no cgroup2 mounted)."""
    mount = None
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                mount = Path(left.split()[4])
                break
    if mount is None:
        return None
    own = "/"
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            if line.startswith("0::"):
                own = line[3:].strip()
    base = mount / own.lstrip("/")
    return base if base.is_dir() else mount


def _remove_cgroup(path: Path, timeout: float = 10.0) -> None:
    """rmdir a cgroup and its children, deepest first (a cgroup goes once its processes are reaped)."""
    deadline = time.monotonic() + timeout
    while path.exists():
        for dirpath, _, _ in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
        if not path.exists():
            return
        if time.monotonic() > deadline:
            raise LabError(f"cannot remove cgroup {path}: processes are left in it")
        time.sleep(0.05)


def sweep_cgroups() -> None:
    """Remove the empty cgroups of systemd hosts whose test process died (non-empty ones stay)."""
    base = _cgroup2_base()
    if base is None:
        return
    for entry in base.glob(CGROUP_PREFIX + "*"):
        pid = entry.name[len(CGROUP_PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(LabError):
                _remove_cgroup(entry, timeout=0.5)


def problem() -> str | None:
    """Why a systemd host cannot boot here (None: the prerequisites are there; booting is the test)."""
    if os.geteuid() != 0:
        return "a systemd host needs root"
    if _cgroup2_base() is None:
        return "no cgroup2 hierarchy is mounted (systemd needs one for its host)"
    for name in ("unshare", "nsenter", "setpriv", "chroot"):
        if which(name) is None:
            return missing_binary_message(name)
    try:
        probe = subprocess.run(["unshare", "--cgroup", "--pid", "--fork", "--mount", "true"],
                               capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot probe cgroup namespaces: {exc}"
    if probe.returncode != 0:
        return f"no cgroup namespaces: {probe.stderr.decode(errors='replace').strip()}"
    return None


class SystemdHost:
    """A running systemd host: see systemd_host()."""

    def __init__(self, root: Path, hostname: str, workdir: Path, cgroup: Path, net: NetnsHost | None = None
                 ) -> None:
        self.root = root
        self.hostname = hostname
        self.workdir = workdir
        self.cgroup = cgroup
        self.net = net  # the lab slot whose network namespace it runs in (None: a private one)
        self.pid = 0  # machine-side PID of systemd
        self._unshare: subprocess.Popen[Any] | None = None

    def __repr__(self) -> str:
        return f"SystemdHost(hostname={self.hostname!r}, pid={self.pid}, root={str(self.root)!r})"

    @property
    def addr(self) -> str:
        """Its eth0 address, reached from the root namespace (only with network=True)."""
        if self.net is None:
            raise LabError(f"systemd host {self.hostname} has no lab network: boot it with network=True")
        return self.net.addr

    @property
    def gateway(self) -> str:
        """The root namespace's end of its veth (only with network=True)."""
        if self.net is None:
            raise LabError(f"systemd host {self.hostname} has no lab network: boot it with network=True")
        return self.net.gateway

    def path(self, inside: str) -> Path:
        """Machine-side path of a file of the host's root filesystem (not /run, /tmp, /proc, /dev)."""
        return self.root / inside.lstrip("/")

    def _nsenter(self, argv: Argv) -> list[str]:
        if not self.pid:
            raise LabError("systemd host is not running")
        return ["nsenter", "--target", str(self.pid), "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup",
                "--root", "--wd", "--", *(os.fspath(a) for a in argv)]

    def sh_argv(self) -> list[str]:
        """argv of ``sh -s`` inside the host."""
        return self._nsenter(["sh", "-s"])

    def exec(self, argv: Argv, input: bytes | str | None = None, timeout: float = DEFAULT_TIMEOUT, *,
             check: bool = False, text: bool = False, env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[Any]:
        """Run argv inside the host (its namespaces and root, a clean root environment) and wait for it."""
        return run(self._nsenter(argv), input=input, timeout=timeout, check=check, text=text,
                   env={**HOST_ENV, **(env or {})})

    def systemctl(self, *args: str) -> str:
        """``systemctl ARGS`` inside: the host's systemd answers over /run/systemd/private."""
        return str(self.exec(["systemctl", "--no-pager", *args], text=True).stdout)

    def log(self, lines: int = 200) -> str:
        """The tail of the host's journal (systemd and its units log there)."""
        if not self.pid:
            return ""
        res = self.exec(["journalctl", "--no-pager", "-n", str(lines)], text=True, timeout=30)
        return str(res.stdout) + str(res.stderr)

    def _boot(self, timeout: float) -> None:
        script = self.workdir / "boot.sh"
        script.write_text(_BOOT_SCRIPT)
        q = shlex.quote
        # In a lab slot: enter its netns (not `ip netns exec`, whose fresh /sys hides the cgroup2 mount).
        net = (f"nsenter --net={q(f'/run/netns/{self.net.name}')} " if self.net is not None else "")
        # Join the host's cgroup first: unshare --cgroup then makes it the namespace's root.
        inner = (f"echo $$ > {q(str(self.cgroup / 'cgroup.procs'))} && exec {net}setpriv --bounding-set "
                 f"-sys_time,-sys_module -- unshare --mount --uts --ipc {'' if net else '--net '}--pid --cgroup "
                 f"--fork --kill-child --propagation private sh {q(str(script))} {q(str(self.root))} "
                 f"{q(self.hostname)}")
        with (self.workdir / "unshare.log").open("wb") as log:
            self._unshare = subprocess.Popen([*DIE_WITH_PARENT, "sh", "-c", inner], stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def found() -> bool:
            assert self._unshare is not None
            if self._unshare.poll() is not None:
                raise LabError(f"systemd host {self.hostname} exited at boot:\n{self._boot_output()}")
            kids = _children(self._unshare.pid)
            with contextlib.suppress(OSError):
                if kids and os.readlink(f"/proc/{kids[0]}/exe").endswith("/systemd"):
                    self.pid = kids[0]
                    return True
            return False

        wait_until(found, timeout, f"systemd to start in {self.hostname}")
        deadline = time.monotonic() + timeout
        state = ""
        while state not in ("running", "degraded"):
            if time.monotonic() > deadline:
                raise LabError(f"systemd host {self.hostname}: is-system-running says {state!r} after "
                               f"{timeout:g}s\n{self._boot_output()}")
            # --wait blocks until the boot job is done; before systemd listens it fails at once.
            left = max(1.0, deadline - time.monotonic())
            res = self.exec(["systemctl", "is-system-running", "--wait"], text=True, timeout=left)
            state = res.stdout.strip()
            if state not in ("running", "degraded"):
                time.sleep(0.05)
        if state == "degraded":
            failed = self.systemctl("--failed", "--plain", "--no-legend")
            raise LabError(f"systemd host {self.hostname} is degraded: units failed:\n{failed}")

    def _boot_output(self) -> str:
        unshare_log = self.workdir / "unshare.log"
        out = unshare_log.read_text(errors="replace") if unshare_log.exists() else ""
        with contextlib.suppress(LabError, subprocess.SubprocessError, OSError):
            out += self.log()
        return out

    def _shutdown(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)  # from outside: pid 1 of the namespace, all of it dies
        if self._unshare is not None:
            stop_process(self._unshare, grace=5.0)
        self.pid = 0
        _remove_cgroup(self.cgroup)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


_counter = 0


@contextlib.contextmanager
def systemd_host(root: Path, *, hostname: str = "sdhost", workdir: Path | None = None,
                 boot_timeout: float = BOOT_TIMEOUT, network: bool = False) -> Iterator[SystemdHost]:
    """Boot the real systemd of `root` (a writable overlay_root() view) as PID 1 of new namespaces.

    Yields once ``systemctl is-system-running`` says ``running`` (``degraded`` raises, naming the failed
    units). Without `network` the host has no network beyond its own loopback; with it, it runs in a lab
    slot's network namespace (``host.net``, ``host.addr``, ``host.gateway``: see netns_host()). Teardown
    kills systemd and everything under it, removes its cgroup, then the slot.
    """
    global _counter
    root = Path(root)
    if is_cached_root(root):
        raise LabError(f"{root} is the pristine cached lab root: boot an overlay_root() view instead")
    if not (root / "lib/systemd/systemd").exists():
        raise LabError(f"{root} has no /lib/systemd/systemd")
    base = _cgroup2_base()
    if base is None:
        raise LabError("no cgroup2 hierarchy is mounted")
    sweep_cgroups()
    (root / "etc/hostname").write_text(hostname + "\n")
    (root / "etc/systemd/system/nalab.target").write_text(_TARGET)
    _counter += 1
    work = Path(tempfile.mkdtemp(prefix=f"{hostname}-systemd-", dir=workdir))
    with contextlib.ExitStack() as stack:
        net = stack.enter_context(netns_host(workdir=work)) if network else None
        cgroup = base / f"{CGROUP_PREFIX}{os.getpid()}-{_counter}"
        cgroup.mkdir()
        host = SystemdHost(root, hostname, work, cgroup, net)
        try:
            host._boot(boot_timeout)
            yield host
        finally:
            host._shutdown()
