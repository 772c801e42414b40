"""Tests of the test lab itself (tests/lab): cached root, overlays, netns hosts, chroot hosts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import REPO, lab
from tests.lab import netns as lab_netns
from tests.lab import rootfs as lab_rootfs
from tests.lab import state as lab_state

SSH_OPTS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]


def _mounts() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        return f.read()


def _netns_list() -> list[str]:
    out = lab.run(["ip", "netns", "list"], timeout=10, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _assert_netns_gone(name: str, veth: str, owner_pid: int | None = None) -> None:
    """The slot of namespace `name` (allocated by owner_pid) is released and its resources removed.

    Checked under the allocation lock: a concurrent lab process may already have re-used the slot.
    """
    owner_pid = os.getpid() if owner_pid is None else owner_pid
    slot_dir = lab_state.STATE_DIR / "slots" / name.rsplit("-", 1)[1]
    with lab_netns._alloc_lock():
        if slot_dir.exists():
            owner = json.loads((slot_dir / "owner.json").read_text())["owner"]
            assert not owner.startswith(f"{owner_pid}:"), f"{name} still allocated"
            return  # re-used by another process since
        assert name not in _netns_list()
        assert not Path("/sys/class/net", veth).exists()
        assert not Path("/etc/netns", name).exists()


# --- no root needed ----------------------------------------------------------------------------


def test_require_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    lab.require(True, "never raised")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="widget"):
        lab.require(False, "no widget")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="widget"):
        lab.require(False, "no widget")


def test_cache_key_follows_package_list() -> None:
    key = lab_rootfs.cache_key(lab.ROOT_PACKAGES)
    assert key == lab_rootfs.cache_key(reversed(lab.ROOT_PACKAGES))
    assert key != lab_rootfs.cache_key((*lab.ROOT_PACKAGES, "apparmor"))
    assert lab.root_path() == lab_rootfs.CACHE_BASE / key / "root"
    assert {"openssh-server", "linux-image-cloud-amd64", "exim4-daemon-light"} <= set(lab.ROOT_PACKAGES)


def test_build_once_builds_once_and_never_leaves_a_partial_directory(tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "thing"
    calls: list[str] = []

    def failing() -> None:
        dest.mkdir(parents=True)
        (dest / "half").write_text("x")
        raise RuntimeError("download broke")

    with pytest.raises(RuntimeError):
        lab_state.build_once(dest, 10, "test build", failing)
    assert not dest.exists()

    def good() -> None:
        calls.append("built")
        dest.mkdir(parents=True)
        (dest / "whole").write_text("x")

    assert lab_state.build_once(dest, 10, "test build", good) == dest
    assert lab_state.build_once(dest, 10, "test build", good) == dest
    assert calls == ["built"] and (dest / "whole").exists() and (dest / ".complete").exists()


def test_run_timeout_kills_the_whole_process_group() -> None:
    marker = f"101.{os.getpid()}"
    with pytest.raises(subprocess.TimeoutExpired):
        lab.run(["sh", "-c", f"sleep {marker} & sleep {marker}"], timeout=0.5)
    time.sleep(0.2)
    left = lab.run(["pgrep", "-f", f"sleep {marker}"], timeout=10, check=False)
    assert left.returncode == 1, left.stdout


def test_missing_binary_is_a_clear_error() -> None:
    with pytest.raises(lab.LabError, match=r"no-such-binary-xyz.*not found"):
        lab.run(["no-such-binary-xyz"])


def test_make_ssh_keypair(tmp_path: Path) -> None:
    lab.require_binary("ssh-keygen")
    key, pub = lab.make_ssh_keypair(tmp_path)
    assert key == tmp_path / "id_ed25519" and key.stat().st_mode & 0o077 == 0
    assert pub.startswith("ssh-ed25519 AAAA") and pub.endswith("nectar-lab")
    key2, pub2 = lab.make_ssh_keypair(tmp_path, type="rsa", passphrase="s3cret")
    assert key2.name == "id_rsa" and pub2.startswith("ssh-rsa ")
    # A passphrase-protected key cannot be read without it.
    bad = lab.run(["ssh-keygen", "-y", "-P", "wrong", "-f", str(key2)], check=False)
    assert bad.returncode != 0


# --- cached root and overlays -------------------------------------------------------------------


@pytest.mark.lab
def test_cached_root_has_packages_and_a_different_kernel(debian_root: Path) -> None:
    assert debian_root == lab.root_path() and debian_root.is_dir()
    assert (debian_root / "usr/sbin/sshd").is_file()
    assert (debian_root / "etc/debian_version").read_text().startswith("12.")
    kernels = lab.installed_kernels(debian_root)
    assert kernels and all(k.endswith("-cloud-amd64") for k in kernels)
    assert os.uname().release not in kernels  # installed kernel != running kernel
    status = (debian_root / "var/lib/dpkg/status").read_text()
    for pkg in lab.ROOT_PACKAGES:
        assert f"Package: {pkg}\nStatus: install ok installed" in status, pkg
    assert (debian_root / "usr/sbin/policy-rc.d").read_text().rstrip().endswith("exit 101")


@pytest.mark.lab
def test_overlay_writes_do_not_reach_the_cache(debian_root: Path, tmp_path: Path) -> None:
    motd = (debian_root / "etc/motd").read_bytes()
    with lab.overlay_root(tmp_path) as root:
        assert root != debian_root and os.path.ismount(root)
        conf = root / "etc/ssh/sshd_config.d/x.conf"
        conf.write_text("PasswordAuthentication yes\n")
        (root / "etc/motd").unlink()
        (root / "etc/hostname").write_text("changed\n")
        assert conf.read_text() == "PasswordAuthentication yes\n"
        assert not (debian_root / "etc/ssh/sshd_config.d/x.conf").exists()
        assert (debian_root / "etc/motd").read_bytes() == motd
        assert (debian_root / "etc/hostname").read_text() == "debian-lab\n"
        mountpoint = str(root)
        assert any(rec.get("mountpoint") == mountpoint for _, rec in lab_state.read_records("mounts"))
    assert f" {mountpoint} " not in _mounts()
    assert not any(rec.get("mountpoint") == mountpoint for _, rec in lab_state.read_records("mounts"))


@pytest.mark.lab
def test_lab_root_fixture_is_writable(lab_root: Path, debian_root: Path) -> None:
    (lab_root / "root/.marker").write_text("x")
    assert not (debian_root / "root/.marker").exists()


# --- network namespace hosts --------------------------------------------------------------------


@pytest.mark.lab
def test_netns_host_is_reachable_and_isolated(tmp_path: Path) -> None:
    lab.require_netns()
    ping = lab.require_binary("ping")
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.txt").write_text("hello from the namespace\n")
    with lab.netns_host(etc={"hostname": "nshost\n"}, hostname="nshost") as host:
        assert host.addr == f"10.200.{host.slot}.2" and host.gateway == f"10.200.{host.slot}.1"
        assert host.name in _netns_list()
        res = lab.run([ping, "-c", "1", "-W", "2", host.addr], timeout=10, check=False, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
        routes = host.run(["ip", "-4", "route", "show"], text=True).stdout
        assert "default" not in routes and f"10.200.{host.slot}.0/24" in routes
        assert host.run(["cat", "/etc/hostname"], text=True).stdout == "nshost\n"  # /etc/netns bind
        assert host.run(["hostname"], text=True).stdout.strip() == "nshost"  # UTS namespace
        server = host.spawn([sys.executable, "-m", "http.server", "--bind", host.addr, "--directory",
                             str(www), "8080"])
        lab.wait_for_tcp(host.addr, 8080)
        with urllib.request.urlopen(f"http://{host.addr}:8080/index.txt", timeout=5) as resp:
            assert resp.read() == b"hello from the namespace\n"
        # The server listens only inside the namespace, not in the root namespace.
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", 8080), timeout=1):
            pass
        name, veth, pid = host.name, host.veth, server.pid
    _assert_netns_gone(name, veth)
    assert server.poll() is not None
    assert not Path(f"/proc/{pid}").exists()


@pytest.mark.lab
def test_netns_host_kills_daemons_that_fork_away() -> None:
    lab.require_netns()
    with lab.netns_host() as host:
        host.run(["sh", "-c", "setsid sleep 300.77 </dev/null >/dev/null 2>&1 &"], check=True)
        lab.wait_until(lambda: len(host.pids()) == 1, 5, "the daemonised sleep")
        (orphan,) = host.pids()
    assert not Path(f"/proc/{orphan}").exists() or "300.77" not in Path(f"/proc/{orphan}/cmdline").read_text()


@pytest.mark.lab
def test_etc_entries_must_exist_in_etc() -> None:
    lab.require_netns()
    with pytest.raises(lab.LabError, match="does not exist"), lab.netns_host(etc={"no-such-etc-entry": "x"}):
        pass


_ALLOCATE = """
import sys
sys.path.insert(0, {repo!r})
from tests.lab import netns_host
with netns_host() as h:
    print(h.name, h.addr, h.gateway, flush=True)
    sys.stdin.read()
"""


@pytest.mark.lab
def test_concurrent_allocations_get_different_subnets() -> None:
    lab.require_netns()
    code = _ALLOCATE.format(repo=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(3)]
    try:
        with lab.netns_host() as mine:
            lines = []
            for p in procs:
                assert p.stdout is not None
                lines.append(p.stdout.readline().split())
            assert all(len(line) == 3 for line in lines), lines
            names = {line[0] for line in lines} | {mine.name}
            subnets = {line[1].rsplit(".", 1)[0] for line in lines} | {mine.addr.rsplit(".", 1)[0]}
            assert len(names) == 4 and len(subnets) == 4
            # Hosts of other processes are real, separate namespaces.
            assert {line[0] for line in lines} <= set(_netns_list())
    finally:
        for p in procs:
            p.communicate("", timeout=30)
    assert all(p.returncode == 0 for p in procs)
    for p, (name, _, _) in zip(procs, lines):
        _assert_netns_gone(name, name + "-r", p.pid)


@pytest.mark.lab
def test_slots_of_killed_processes_are_reclaimed() -> None:
    lab.require_netns()
    code = _ALLOCATE.format(repo=str(REPO))
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None
    name = p.stdout.readline().split()[0]
    p.send_signal(signal.SIGKILL)  # no teardown runs
    p.wait(timeout=10)
    p.stdout.close()
    assert p.stdin is not None
    p.stdin.close()
    with lab_netns._alloc_lock():  # left behind, unless a concurrent lab process reclaimed it already
        assert name in _netns_list() or not (lab_state.STATE_DIR / "slots" / name.rsplit("-", 1)[1]).exists()
    lab.sweep()  # (a concurrent pytest session may sweep it first)
    _assert_netns_gone(name, name + "-r", p.pid)


# --- chroot hosts -------------------------------------------------------------------------------


@pytest.mark.lab
def test_chroot_host_runs_commands_and_sshd(lab_root: Path, tmp_path: Path) -> None:
    lab.require_netns()
    ssh = lab.require_binary("ssh")
    key, pub = lab.make_ssh_keypair(tmp_path / "keys")
    ssh_dir = lab_root / "root/.ssh"
    # exist_ok: with systemd in ROOT_PACKAGES the root already has an empty /root/.ssh (0700), made by
    # systemd's postinst from tmpfiles.d/provision.conf, as on a real Debian 12 system.
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pub + "\n")
    t0 = time.monotonic()
    with lab.chroot_host(lab_root, hostname="smoke1") as host:
        boot = time.monotonic() - t0
        assert host.exec(["cat", "/etc/debian_version"], text=True).stdout.startswith("12.")
        assert host.exec(["hostname"], text=True).stdout.strip() == "smoke1"
        assert host.exec(["uname", "-r"], text=True).stdout.strip() == os.uname().release
        gathered = host.exec(["sh", "-s"], input=b"echo pid=$$; id -u; cat /etc/hostname\n", text=True)
        assert gathered.stdout.split() == ["pid=" + gathered.stdout.split()[0][4:], "0", "smoke1"]
        assert int(gathered.stdout.split()[0][4:]) > 1  # inside the host's pid namespace
        init = host.exec(["cat", "/proc/1/cmdline"]).stdout
        assert b"sleep" in init and os.path.exists(f"/proc/{host.pid}")
        sshd = host.start(["/usr/sbin/sshd", "-D", "-e"])
        lab.wait_for_tcp(host.addr, 22)
        with socket.create_connection((host.addr, 22), timeout=5) as s:
            assert s.recv(64).startswith(b"SSH-2.0-OpenSSH")
        login = lab.run([ssh, *SSH_OPTS, "-i", str(key), f"root@{host.addr}", "hostname; uname -n"],
                        timeout=30, check=False, text=True)
        assert login.returncode == 0, login.stderr + host.log(sshd)
        assert login.stdout.split() == ["smoke1", "smoke1"]
        mounted_root, pid, name, veth = str(host.root), host.pid, host.name, host.net.veth
    assert boot < 10
    assert not Path(f"/proc/{pid}").exists()
    assert sshd.poll() is not None
    _assert_netns_gone(name, veth)
    # Nothing of the host's own mounts is left in the machine's mount table (the overlay itself
    # belongs to lab_root and is unmounted after the test).
    assert f"{mounted_root}/proc" not in _mounts() and f"{mounted_root}/dev" not in _mounts()


@pytest.mark.lab
def test_chroot_host_services_and_fake_kernel(lab_root: Path, debian_root: Path) -> None:
    lab.require_netns()
    (installed,) = lab.installed_kernels(lab_root)
    with lab.chroot_host(lab_root, hostname="smoke2", kernel_release=installed) as host:
        assert host.exec(["uname", "-r"], text=True).stdout.strip() == installed
        assert installed in host.exec(["uname", "-a"], text=True).stdout
        assert host.exec(["cat", "/proc/sys/kernel/osrelease"], text=True).stdout.strip() == installed
        # Global sysctls are read-only inside; the namespace's own net.* ones are writable.
        assert host.exec(["sh", "-c", "echo 1 > /proc/sys/kernel/sysrq"]).returncode != 0
        assert host.exec(["sysctl", "-w", "net.ipv4.ip_forward=1"]).returncode == 0
        assert host.exec(["cat", "/proc/sys/net/ipv4/ip_forward"], text=True).stdout.strip() == "1"
        host.start(["rsyslogd", "-n"])
        lab.wait_until(lambda: host.exec(["test", "-S", "/dev/log"]).returncode == 0, 10, "/dev/log")
        host.exec(["logger", "-p", "auth.info", "lab-smoke-marker"], check=True)
        auth_log = host.path("/var/log/auth.log")
        lab.wait_until(lambda: auth_log.exists() and "lab-smoke-marker" in auth_log.read_text(),
                       10, "the line in auth.log")
        assert "smoke2" in host.path("/var/log/auth.log").read_text()
        ps = host.exec(["ps", "-o", "pcpu=,comm=", "-C", "rsyslogd"], text=True).stdout.split()
        assert ps[1] == "rsyslogd" and float(ps[0]) < 50, ps  # imklog must not spin on /proc/kmsg
    assert not (debian_root / "var/log/auth.log").exists() or "lab-smoke-marker" not in (
        debian_root / "var/log/auth.log").read_text(errors="replace")
    assert os.uname().release != installed


@pytest.mark.lab
def test_chroot_host_refuses_the_cached_root(debian_root: Path) -> None:
    with pytest.raises(lab.LabError, match="pristine"), lab.chroot_host(debian_root):
        pass


def test_lab_addresses_only() -> None:
    with pytest.raises(lab.LabError, match="refusing"):
        lab.wait_for_tcp("192.0.2.1", 22, timeout=0.1)
    assert lab_netns.LAB_NET.prefixlen == 16
