"""A full lab host: its own netns, mount/uts/ipc/pid namespaces and a chrooted Debian root."""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ._proc import DEFAULT_TIMEOUT, DIE_WITH_PARENT, Argv, LabError, run, stop_process
from .netns import NetnsHost, netns_host
from .rootfs import is_cached_root

READY_TIMEOUT = 30.0
HOST_ENV: dict[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/sh",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}

# Runs with the machine's binaries as PID 1 of new mount/uts/ipc/pid namespaces, inside the host's
# netns; sets up the root's special filesystems, writes READY to stdout (a pipe), then chroots and
# waits forever (reaping orphans) as the namespace's init.
_START_SCRIPT = r"""
set -eu
R=$1 NAME=$2 KDIR=$3 KMSG=$4
hostname "$NAME"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
# The hosts share the machine's kernel: keep global sysctls read-only, net.* (per netns) writable.
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,rw "$R/proc/sys/net"
# A host's rsyslog (imklog) must not drain the machine's kernel log, nor spin on an EOF: /proc/kmsg
# is a FIFO that init holds open and never writes, so readers block.
mount --bind "$KMSG" "$R/proc/kmsg"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t tmpfs -o mode=0755,nosuid,nodev,size=64m tmpfs "$R/run"
mkdir -m 1777 "$R/run/lock"
mount -t tmpfs -o mode=0755,nosuid,size=1m tmpfs "$R/dev"
for n in null zero full random urandom tty; do
    : > "$R/dev/$n"
    mount --bind "/dev/$n" "$R/dev/$n"
done
mkdir -m 0755 "$R/dev/pts"
mkdir -m 1777 "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev,size=16m tmpfs "$R/dev/shm"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
if [ -n "$KDIR" ]; then
    mount --bind "$KDIR/osrelease" "$R/proc/sys/kernel/osrelease"
    mount --bind "$KDIR/version" "$R/proc/version"
    mkdir -p "$R/run/.lab"
    : > "$R/run/.lab/uname.real"
    mount --bind "$R/usr/bin/uname" "$R/run/.lab/uname.real"
    mount --bind "$KDIR/uname" "$R/usr/bin/uname"
fi
exec 9<>"$KMSG"
echo READY
exec >/dev/null
exec chroot "$R" /bin/sh -c 'trap "exit 0" TERM INT; while :; do sleep 2147483647 & wait $!; done'
"""

_UNAME_SHIM = r"""#!/bin/sh
# lab: report a fake kernel release (real binary bind-mounted at /run/.lab/uname.real)
real=/run/.lab/uname.real
out=$("$real" "$@") || exit $?
rel=$("$real" -r)
case $out in *"$rel"*) out="${out%%"$rel"*}"@RELEASE@"${out#*"$rel"}" ;; esac
printf '%s\n' "$out"
"""


def _runtime_dirs_script(root: Path) -> str:
    """Shell lines creating /run directories the way systemd would (tmpfiles.d + RuntimeDirectory=)."""
    lines = ["set -u"]
    seen: set[str] = set()

    def add(path: str, mode: str, user: str, group: str) -> None:
        if path.startswith("/var/run/"):
            path = "/run/" + path[len("/var/run/"):]
        if not path.startswith("/run/") or "%" in path or path in seen:
            return
        seen.add(path)
        mode = mode if mode not in ("", "-") else "0755"
        user = user if user not in ("", "-") else "root"
        group = group if group not in ("", "-") else "root"
        q = shlex.quote
        lines.append(f"install -d -m {q(mode.lstrip('~'))} -o {q(user)} -g {q(group)} {q(path)} 2>/dev/null"
                     f" || mkdir -p {q(path)}")

    add("/run/sshd", "0755", "root", "root")
    confs: list[Path] = []
    for d in ("usr/lib/tmpfiles.d", "etc/tmpfiles.d"):
        confs += sorted((root / d).glob("*.conf"))
    for conf in confs:
        for raw in conf.read_text(errors="replace").splitlines():
            f = raw.split()
            if len(f) >= 2 and f[0] in ("d", "D"):
                add(f[1], *(f[2:5] + ["-"] * (3 - len(f[2:5]))))
    for unit_dir in ("lib/systemd/system", "etc/systemd/system"):
        for unit in sorted((root / unit_dir).glob("*.service")):
            if unit.is_symlink():  # aliases and enablement links point at units read anyway
                continue
            keys: dict[str, str] = {}
            try:
                text = unit.read_text(errors="replace")
            except OSError:
                continue
            for raw in text.splitlines():
                key, sep, value = raw.strip().partition("=")
                if sep:
                    keys[key] = value.strip()
            for name in keys.get("RuntimeDirectory", "").split():
                add(f"/run/{name}", keys.get("RuntimeDirectoryMode", "0755"), keys.get("User", "root"),
                    keys.get("Group", keys.get("User", "root")))
    return "\n".join(lines) + "\n"


def _child_pid(parent: int) -> int | None:
    try:
        with open(f"/proc/{parent}/task/{parent}/children", encoding="ascii") as f:
            kids = f.read().split()
        if kids:
            return int(kids[0])
    except OSError:
        pass
    for entry in os.scandir("/proc"):  # fallback without CONFIG_PROC_CHILDREN
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == parent:
                return int(entry.name)
    return None


class ChrootHost:
    """A running chroot host: see chroot_host()."""

    def __init__(self, root: Path, net: NetnsHost, hostname: str, kernel_release: str | None) -> None:
        self.root = root
        self.net = net
        self.hostname = hostname
        self.kernel_release = kernel_release
        self.pid = 0  # machine-side PID of the namespace's init
        self._init: subprocess.Popen[Any] | None = None
        self._started: list[tuple[subprocess.Popen[Any], Path]] = []

    def __repr__(self) -> str:
        return (f"ChrootHost(hostname={self.hostname!r}, addr={self.addr!r}, pid={self.pid}, "
                f"root={str(self.root)!r})")

    @property
    def name(self) -> str:
        """The network namespace's name."""
        return self.net.name

    @property
    def addr(self) -> str:
        return self.net.addr

    @property
    def gateway(self) -> str:
        return self.net.gateway

    def path(self, inside: str) -> Path:
        """Machine-side path of a file of the host's root, e.g. host.path('/etc/ssh/sshd_config').

        Only the root filesystem is visible this way: /proc, /sys, /run and /dev inside the host are
        private mounts (check them with exec(), e.g. ["test", "-S", "/dev/log"]).
        """
        return self.root / inside.lstrip("/")

    def _nsenter(self, argv: Argv) -> list[str]:
        if not self.pid:
            raise LabError("chroot host is not running")
        return ["nsenter", "--target", str(self.pid), "--mount", "--uts", "--ipc", "--net", "--pid",
                "--root", "--wd", "--", *(os.fspath(a) for a in argv)]

    def sh_argv(self) -> list[str]:
        """argv of ``sh -s`` inside the host: what a ScriptTarget runs to gather evidence there."""
        return self._nsenter(["sh", "-s"])

    def exec(
        self,
        argv: Argv,
        input: bytes | str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        check: bool = False,
        text: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[Any]:
        """Run argv inside the host (all its namespaces and its root) and wait for it.

        The environment is a clean root login-like one (HOST_ENV) updated with env. E.g. the gather
        script: host.exec(["sh", "-s"], input=script_bytes). Do not use it for daemons that keep
        stdout open: use start().
        """
        return run(self._nsenter(argv), input=input, timeout=timeout, check=check, text=text,
                   env={**HOST_ENV, **(env or {})})

    def start(self, argv: Argv, *, env: Mapping[str, str] | None = None, log_name: str | None = None
              ) -> subprocess.Popen[Any]:
        """Start a process inside the host without waiting (a daemon, foreground or self-forking).

        Its stdout/stderr go to a log file (read with log()); everything in the host dies on teardown.
        Examples: ["rsyslogd"], ["/usr/sbin/sshd"], ["fail2ban-server", "-x", "-b"], ["exim4", "-bd"],
        ["chronyd", "-x"].
        """
        label = log_name or Path(os.fspath(argv[0])).name
        logfile = self.net.workdir / f"{self.hostname}-{len(self._started):02d}-{label}.log"
        with logfile.open("wb") as log:
            proc: subprocess.Popen[Any] = subprocess.Popen(
                [*DIE_WITH_PARENT, *self._nsenter(argv)], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env={**HOST_ENV, **(env or {})}, start_new_session=True)
        self._started.append((proc, logfile))
        return proc

    def log(self, proc: subprocess.Popen[Any]) -> str:
        """What a process started with start() wrote to stdout/stderr so far."""
        for p, logfile in self._started:
            if p is proc:
                return logfile.read_text(errors="replace") if logfile.exists() else ""
        raise KeyError(f"process {proc.pid} was not started by {self.hostname}")

    def alive(self) -> bool:
        return self._init is not None and self._init.poll() is None

    def _boot(self, ready_timeout: float) -> None:
        kdir = ""
        if self.kernel_release is not None:
            kd = Path(tempfile.mkdtemp(prefix=f"{self.hostname}-kernel-", dir=self.net.workdir))
            real = os.uname().release
            (kd / "osrelease").write_text(self.kernel_release + "\n")
            with open("/proc/version", encoding="utf-8") as f:
                (kd / "version").write_text(f.read().replace(real, self.kernel_release, 1))
            shim = kd / "uname"
            shim.write_text(_UNAME_SHIM.replace("@RELEASE@", self.kernel_release.replace('"', "")))
            shim.chmod(0o755)
            kdir = str(kd)
        script = self.net.workdir / f"{self.hostname}-start.sh"
        script.write_text(_START_SCRIPT)
        kmsg = Path(tempfile.mkdtemp(prefix=f"{self.hostname}-", dir=self.net.workdir)) / "kmsg"
        os.mkfifo(kmsg, 0o600)
        rfd, wfd = os.pipe()
        try:
            self._init = self.net.spawn(
                ["unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child",
                 "--propagation", "private",
                 "sh", str(script), str(self.root), self.hostname, kdir, str(kmsg)],
                log_name=f"{self.hostname}-init", stdout=wfd)
            os.close(wfd)
            wfd = -1
            data = b""
            deadline = time.monotonic() + ready_timeout
            while b"READY" not in data:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LabError(f"chroot host {self.hostname} not ready after {ready_timeout:g}s:\n"
                                   + self.net.log(self._init))
                readable, _, _ = select.select([rfd], [], [], left)
                if readable:
                    chunk = os.read(rfd, 64)
                    if not chunk:
                        raise LabError(f"chroot host {self.hostname} start script failed:\n"
                                       + self.net.log(self._init))
                    data += chunk
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
        child = None
        deadline = time.monotonic() + 5
        while child is None and time.monotonic() < deadline:
            child = _child_pid(self._init.pid)
            if child is None:
                time.sleep(0.01)
        if child is None:
            raise LabError(f"cannot find the init process of chroot host {self.hostname}")
        self.pid = child
        # Wait until init has chrooted, so nsenter --root lands in the host's root.
        deadline = time.monotonic() + 10
        while True:
            if time.monotonic() > deadline:
                raise LabError(f"init of chroot host {self.hostname} did not chroot:\n"
                               + self.net.log(self._init))
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{child}/root") != "/":
                    break
            time.sleep(0.01)
        res = self.exec(["sh", "-s"], input=_runtime_dirs_script(self.root), timeout=30)
        if res.returncode != 0:
            raise LabError(f"creating /run directories in {self.hostname} failed: {res.stderr!r}")

    def _shutdown(self) -> None:
        if self._init is not None:
            # SIGTERM to unshare's process group: init (trap) exits, which kills every process in
            # its pid namespace; SIGKILL follows after the grace period.
            stop_process(self._init, grace=5.0)
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        for proc, _ in self._started:
            stop_process(proc, grace=0.5)
        self.pid = 0


@contextlib.contextmanager
def chroot_host(
    root: Path,
    *,
    hostname: str = "labhost",
    kernel_release: str | None = None,
    workdir: Path | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> Iterator[ChrootHost]:
    """Boot a host on `root` (a writable view from overlay_root(), never the cached root).

    The host has its own netns (`.name`, `.addr`, `.gateway` as netns_host), hostname (UTS ns),
    mounts, IPC and PID namespace whose init (machine-side PID `.pid`) is a shell waiting forever.
    /proc, /sys (ro), tmpfs /run (with the directories tmpfiles.d and systemd RuntimeDirectory=
    would create), a private /dev and devpts are mounted; global sysctls are read-only.
    /etc/hostname and a 127.0.1.1 line in /etc/hosts are written into root.
    kernel_release: if set, `uname -r`/`-a`, /proc/sys/kernel/osrelease and /proc/version report it
    (default: the machine's kernel, which differs from the root's installed linux-image).
    Teardown kills its init, so every process in the host dies, then removes the netns.
    """
    root = Path(root)
    if is_cached_root(root):
        raise LabError(f"{root} is the pristine cached lab root: boot an overlay_root() view instead")
    if not (root / "bin/sh").exists():
        raise LabError(f"{root} does not look like a root filesystem (no /bin/sh)")
    (root / "etc/hostname").write_text(hostname + "\n")
    hosts = root / "etc/hosts"
    text = hosts.read_text() if hosts.exists() else "127.0.0.1\tlocalhost\n"
    kept = [ln for ln in text.splitlines() if not ln.startswith("127.0.1.1")]
    hosts.write_text("\n".join([kept[0], f"127.0.1.1\t{hostname}", *kept[1:]]) + "\n")
    with netns_host(workdir=workdir) as net:
        host = ChrootHost(root, net, hostname, kernel_release)
        try:
            host._boot(ready_timeout)
            yield host
        finally:
            host._shutdown()
