"""One lab host = one network namespace with one veth pair to the root namespace.

Slots are allocated across concurrent pytest processes under a file lock:
STATE_DIR/slots/<n>/owner.json holds the owner "pid:starttime"; slot n gives namespace
"nalab-<n>", root-side veth "nalab-<n>-r" with 10.200.<n>.1/24 and eth0 inside with 10.200.<n>.2/24.
Slots of dead owners are reclaimed (their namespace, veth and /etc/netns entry are removed first).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Union

from . import state
from ._proc import DEFAULT_TIMEOUT, DIE_WITH_PARENT, Argv, LabError, run, stop_process, wait_until

LAB_NET = ipaddress.ip_network("10.200.0.0/16")
SLOTS = range(1, 255)
NAME_PREFIX = "nalab-"
ALLOC_TIMEOUT = 60.0
ETC_NETNS = Path("/etc/netns")

EtcEntry = Union[Path, str]


def slot_names(slot: int) -> tuple[str, str]:
    """(namespace name, root-side veth name) of a slot."""
    return f"{NAME_PREFIX}{slot}", f"{NAME_PREFIX}{slot}-r"


def _slots_dir() -> Path:
    return state.STATE_DIR / "slots"


def _alloc_lock() -> contextlib.AbstractContextManager[None]:
    return state.file_lock(state.STATE_DIR / "alloc.lock", ALLOC_TIMEOUT, "allocating a lab netns slot")


def netns_pids(name: str) -> list[int]:
    """PIDs of processes in the named network namespace."""
    res = run(["ip", "netns", "pids", name], timeout=15, check=False, text=True)
    return [int(p) for p in res.stdout.split() if p.isdigit()] if res.returncode == 0 else []


def _kill_netns_processes(name: str) -> None:
    pids = netns_pids(name)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        with contextlib.suppress(LabError):
            wait_until(lambda: not netns_pids(name), 10, f"processes in netns {name} to die")


def destroy_netns(name: str, veth: str) -> list[str]:
    """Remove everything a slot may own; return error messages (empty if all went well)."""
    errors: list[str] = []
    netns_exists = Path("/run/netns", name).exists()
    if netns_exists:
        _kill_netns_processes(name)
    # Delete the veth first: otherwise it lingers for seconds after the namespace is gone.
    if Path("/sys/class/net", veth).exists():
        res = run(["ip", "link", "del", veth], timeout=30, check=False, text=True)
        if res.returncode != 0 and Path("/sys/class/net", veth).exists():
            errors.append(f"ip link del {veth}: {res.stderr.strip()}")
    if netns_exists:
        res = run(["ip", "netns", "del", name], timeout=30, check=False, text=True)
        if res.returncode != 0 and Path("/run/netns", name).exists():
            errors.append(f"ip netns del {name}: {res.stderr.strip()}")
    etc_dir = ETC_NETNS / name
    if etc_dir.exists():
        shutil.rmtree(etc_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        ETC_NETNS.rmdir()  # only if empty
    return errors


def _foreign_routes() -> list[ipaddress.IPv4Network]:
    """IPv4 routes of the root namespace that overlap LAB_NET and are not the lab's own."""
    res = run(["ip", "-o", "-4", "route", "show", "table", "all"], timeout=15, check=False, text=True)
    out: list[ipaddress.IPv4Network] = []
    for line in res.stdout.splitlines():
        words = line.split()
        if not words or words[0] in ("unreachable", "broadcast", "local"):
            continue
        if "dev" in words and words[words.index("dev") + 1].startswith(NAME_PREFIX):
            continue
        dst = words[0] if words[0] != "default" else "0.0.0.0/0"
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(dst, strict=False)
            if isinstance(net, ipaddress.IPv4Network) and net.overlaps(LAB_NET) and net.prefixlen > 0:
                out.append(net)
    return out


def _ensure_unreachable_route(foreign: list[ipaddress.IPv4Network]) -> None:
    """Make 10.200.0.0/16 unreachable in the root namespace unless something real uses it.

    Each slot adds its own /24 via its veth; without this, traffic to an address of a host that no
    longer exists would follow the default route off the machine.
    """
    if foreign:
        return
    res = run(["ip", "-4", "route", "show", "type", "unreachable", str(LAB_NET)], timeout=15, check=False,
              text=True)
    if res.stdout.strip():
        return
    run(["ip", "-4", "route", "add", "unreachable", str(LAB_NET)], timeout=15, check=False)


def _read_owner(slot_dir: Path) -> str:
    try:
        return str(json.loads((slot_dir / "owner.json").read_text()).get("owner", ""))
    except (OSError, ValueError):
        return ""


def _reclaim(slot_dir: Path, slot: int) -> list[str]:
    name, veth = slot_names(slot)
    errors = destroy_netns(name, veth)
    if not errors:
        shutil.rmtree(slot_dir, ignore_errors=True)
    return errors


def allocate_slot() -> int:
    """Atomically claim a free slot (reclaiming those of dead processes)."""
    slots = state.ensure_dir(_slots_dir())
    with _alloc_lock():
        foreign = _foreign_routes()
        _ensure_unreachable_route(foreign)
        for slot in SLOTS:
            slot_dir = slots / str(slot)
            if slot_dir.exists():
                owner = _read_owner(slot_dir)
                if owner and state.owner_alive(owner):
                    continue
                if _reclaim(slot_dir, slot):
                    continue  # could not clean it: leave it alone
            net = ipaddress.ip_network(f"10.200.{slot}.0/24")
            if any(net.overlaps(f) for f in foreign):
                continue
            name, veth = slot_names(slot)
            leftover = Path("/run/netns", name).exists() or Path("/sys/class/net", veth).exists()
            if leftover and destroy_netns(name, veth):
                continue  # something we cannot remove is in the way
            slot_dir.mkdir()
            (slot_dir / "owner.json").write_text(json.dumps({"owner": state.owner_token(), "netns": name}))
            return slot
    raise LabError(f"all {len(SLOTS)} lab netns slots under {slots} are in use by live processes")


def release_slot(slot: int) -> None:
    with _alloc_lock():
        shutil.rmtree(_slots_dir() / str(slot), ignore_errors=True)


def sweep_slots(include_own: bool = False) -> list[str]:
    """Tear down slots of dead processes (and of this process if include_own); return their names."""
    slots = _slots_dir()
    if not slots.is_dir():
        return []
    done: list[str] = []
    me = state.owner_token()
    with _alloc_lock():
        for slot_dir in sorted(slots.iterdir()):
            if not slot_dir.name.isdigit():
                continue
            owner = _read_owner(slot_dir)
            if owner and state.owner_alive(owner) and not (include_own and owner == me):
                continue
            if not _reclaim(slot_dir, int(slot_dir.name)):
                done.append(slot_names(int(slot_dir.name))[0])
    return done


def _netns_exec_argv(name: str, argv: Argv, hostname: str | None) -> list[str]:
    cmd = [os.fspath(a) for a in argv]
    if hostname is not None:
        cmd = ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *cmd]
    return ["ip", "netns", "exec", name, *cmd]


class NetnsHost:
    """A network namespace host: see netns_host()."""

    def __init__(self, slot: int, workdir: Path, hostname: str | None) -> None:
        self.slot = slot
        self.name, self.veth = slot_names(slot)
        self.gateway = f"10.200.{slot}.1"
        self.addr = f"10.200.{slot}.2"
        self.prefixlen = 24
        self.hostname = hostname
        self.workdir = workdir
        self.etc_dir = ETC_NETNS / self.name
        self._procs: list[tuple[subprocess.Popen[Any], Path]] = []

    def __repr__(self) -> str:
        return f"NetnsHost(name={self.name!r}, addr={self.addr!r}, gateway={self.gateway!r})"

    def run(self, argv: Argv, **kw: Any) -> subprocess.CompletedProcess[Any]:
        """Run argv inside the namespace (`ip netns exec`) and wait for it.

        Keywords: timeout (default 60 s), check (default False), input, text, env, cwd, stdout, stderr.
        """
        kw.setdefault("timeout", DEFAULT_TIMEOUT)
        kw.setdefault("check", False)
        return run(_netns_exec_argv(self.name, argv, self.hostname), **kw)

    def spawn(self, argv: Argv, *, log_name: str | None = None, **kw: Any) -> subprocess.Popen[Any]:
        """Start a long-running process (daemon) inside the namespace; killed on teardown.

        stdout and stderr go to a log file (see log()) unless given; stdin is /dev/null. It gets
        SIGKILL if this Python process dies (children it forks are left to sweep()).
        Other keywords go to subprocess.Popen (env, cwd, pass_fds, ...).
        """
        cmd = [*DIE_WITH_PARENT, *_netns_exec_argv(self.name, argv, self.hostname)]
        label = log_name or Path(os.fspath(argv[0])).name
        logfile = self.workdir / f"{len(self._procs):02d}-{label}.log"
        with logfile.open("wb") as log:
            kw.setdefault("stdin", subprocess.DEVNULL)
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", subprocess.STDOUT if kw["stdout"] is log else log)
            proc: subprocess.Popen[Any] = subprocess.Popen(cmd, start_new_session=True, **kw)
        self._procs.append((proc, logfile))
        return proc

    def log(self, proc: subprocess.Popen[Any]) -> str:
        """What a spawned process wrote to stdout/stderr so far."""
        for p, logfile in self._procs:
            if p is proc:
                return logfile.read_text(errors="replace") if logfile.exists() else ""
        raise KeyError(f"process {proc.pid} was not spawned by {self.name}")

    def pids(self) -> list[int]:
        return netns_pids(self.name)

    def dump_logs(self, lines: int = 40) -> str:
        parts = []
        for proc, logfile in self._procs:
            text = logfile.read_text(errors="replace") if logfile.exists() else ""
            tail = "\n".join(text.splitlines()[-lines:])
            args = proc.args
            cmd = " ".join(os.fsdecode(a) for a in args) if isinstance(args, (list, tuple)) else str(args)
            parts.append(f"--- {self.name}: {cmd} (rc={proc.poll()}) ---\n{tail}")
        return "\n".join(parts)

    def _stop_processes(self) -> None:
        for proc, _ in reversed(self._procs):
            stop_process(proc, grace=2.0)
        _kill_netns_processes(self.name)


def _install_etc(name: str, etc: Mapping[str, EtcEntry]) -> None:
    target = ETC_NETNS / name
    target.mkdir(parents=True, exist_ok=True)
    for entry, source in etc.items():
        if "/" in entry or entry in ("", ".", ".."):
            raise LabError(f"etc entry names are top-level /etc names, got {entry!r}")
        if not Path("/etc", entry).exists():
            raise LabError(f"/etc/{entry} does not exist on this machine: `ip netns exec` only bind-mounts "
                           f"/etc/netns/{name}/{entry} over existing /etc entries")
        dest = target / entry
        if isinstance(source, Path):
            if source.is_dir():
                shutil.copytree(source, dest, symlinks=True)
            else:
                shutil.copy2(source, dest)
        else:
            dest.write_text(source)


def _create(host: NetnsHost) -> None:
    name, veth = host.name, host.veth
    cidr = f"/{host.prefixlen}"
    run(["ip", "netns", "add", name], timeout=30)
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name], timeout=30)
    run(["ip", "addr", "add", host.gateway + cidr, "dev", veth], timeout=30)
    run(["ip", "link", "set", veth, "up"], timeout=30)
    run(["ip", "-n", name, "addr", "add", host.addr + cidr, "dev", "eth0"], timeout=30)
    run(["ip", "-n", name, "link", "set", "eth0", "up"], timeout=30)
    run(["ip", "-n", name, "link", "set", "lo", "up"], timeout=30)


@contextlib.contextmanager
def netns_host(
    etc: Mapping[str, EtcEntry] | None = None,
    *,
    hostname: str | None = None,
    workdir: Path | None = None,
) -> Iterator[NetnsHost]:
    """A fresh network namespace host reachable from the root namespace at `.addr`.

    etc: {"ssh": Path(dir), "hosts": "127.0.0.1 localhost\\n", ...} is copied (a str value is written as
    a file) to /etc/netns/<name>/<entry>, which `ip netns exec` bind-mounts over /etc/<entry> for
    processes run/spawned in this host. Only names that exist in /etc are allowed. Edit
    `host.etc_dir / entry` to change them later (affects processes started afterwards).
    hostname: run()/spawn() run under `unshare --uts` with this hostname.
    workdir: where spawn() logs go (default: a temporary directory removed on exit).
    The namespace has no default route: it only reaches 10.200.<slot>.0/24.
    """
    own_workdir = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="nectar-lab-")) if workdir is None else workdir
    wd.mkdir(parents=True, exist_ok=True)
    slot = allocate_slot()
    host = NetnsHost(slot, wd, hostname)
    failed = False
    try:
        _create(host)
        if etc:
            _install_etc(host.name, etc)
        yield host
    except BaseException:
        failed = True
        with contextlib.suppress(Exception):
            if host._procs:
                print(host.dump_logs(), file=sys.stderr)
        raise
    finally:
        try:
            host._stop_processes()
        finally:
            errors = destroy_netns(host.name, host.veth)
            if not errors:
                release_slot(slot)
            if own_workdir:
                shutil.rmtree(wd, ignore_errors=True)
            if errors and not failed:
                raise LabError("netns teardown failed: " + "; ".join(errors))


def wait_for_tcp(addr: str, port: int, timeout: float = 10.0) -> None:
    """Wait until a TCP connect to addr:port succeeds (loopback or lab addresses only)."""
    import socket

    ip = ipaddress.ip_address(addr)
    if not (ip.is_loopback or ip in LAB_NET):
        raise LabError(f"refusing to connect to {addr}: lab traffic goes to loopback or 10.200.0.0/16 only")

    def ok() -> bool:
        try:
            with socket.create_connection((addr, port), timeout=1.0):
                return True
        except OSError:
            return False

    wait_until(ok, timeout, f"TCP {addr}:{port}", interval=0.05)

