"""SSH lab hosts for the remote-audit tests: a network namespace running a real sshd with its own /etc.

Each host gets, through /etc/netns/<ns>/ (bind-mounted over /etc by `ip netns exec`): its own /etc/ssh
(sshd_config, an ed25519 host key, authorized keys per user), /etc/passwd, /etc/group and /etc/shadow
with two extra users (``auditor``: passwordless sudo, ``pwuser``: sudo with a password), /etc/sudoers
and /etc/sudoers.d, and /etc/hostname. sshd runs with private copies of wtmp/btmp/lastlog bind-mounted
in its mount namespace, so test logins never reach the machine's own login records.

Client keys and known_hosts live in the test's tmp dir; ~/.ssh of the machine is never read or written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import lab
from tests.lab._proc import stop_process

SSHD = "/usr/sbin/sshd"
USERS = {"auditor": 2001, "pwuser": 2002}
SUDOERS = """\
Defaults\tenv_reset
Defaults\tsecure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Defaults\tuse_pty
root\tALL=(ALL:ALL) ALL
auditor\tALL=(ALL:ALL) NOPASSWD: ALL
pwuser\tALL=(ALL:ALL) ALL
@includedir /etc/sudoers.d
"""
SSHD_CONFIG = """\
Port {port}
{listen}
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
PrintLastLog no
PidFile none
{extra}
"""
# PID 1 of the host's own PID namespace: private login records for sshd and every session it starts
# (the machine's are never written), then sshd as its child, as under a real init.
_INIT_SCRIPT = """
set -e
for f in /var/log/wtmp /var/log/btmp /var/log/lastlog; do
  [ -e "$f" ] && mount --bind "$NA_LOGS/$(basename "$f")" "$f"
done
set +e
"$@" &
child=$!
trap 'kill "$child" 2>/dev/null' TERM INT
wait "$child"
"""


def require_ssh_lab() -> None:
    lab.require_netns()
    for binary in ("sshd", "ssh-keygen", "sudo", "mount"):
        lab.require_binary(binary)


@dataclass
class SshLabHost:
    net: lab.NetnsHost
    sshd: subprocess.Popen[Any]  # the process group holding the host's PID namespace (init, sshd)
    init_pid: int  # PID 1 of the host's PID namespace, as seen from here
    host_key: str  # "ssh-ed25519 AAAA... comment"
    port: int
    listen: str  # the address sshd listens on

    @property
    def bare_key(self) -> str:
        """The host key without its comment, as a client records it."""
        return " ".join(self.host_key.split()[:2])

    @property
    def addr(self) -> str:
        return self.net.addr

    @property
    def ns(self) -> str:
        return self.net.name

    def known_hosts_line(self, name: str | None = None) -> str:
        host = name or self.listen
        pattern = host if self.port == 22 else f"[{host}]:{self.port}"
        return f"{pattern} {self.host_key}\n"

    def local_argv(self) -> list[str]:
        """argv running `sh -s` with exactly the view sshd's sessions have (same namespaces and /etc)."""
        return ["nsenter", "--target", str(self.init_pid), "--mount", "--uts", "--net", "--ipc", "--pid",
                "sh", "-s"]


def _etc(workdir: Path, hostname: str, authorized: Mapping[str, str], sshd_config: str) -> dict[str, Any]:
    etc = workdir / "etc"
    ssh = etc / "ssh"
    (ssh / "authorized_keys").mkdir(parents=True)
    lab.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"host-{hostname}",
             "-f", str(ssh / "ssh_host_ed25519_key")], timeout=60)
    (ssh / "sshd_config").write_text(sshd_config)
    for user, keys in authorized.items():
        (ssh / "authorized_keys" / user).write_text(keys if keys.endswith("\n") else keys + "\n")
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    shadow = Path("/etc/shadow").read_text()
    for user, uid in USERS.items():
        passwd += f"{user}:x:{uid}:{uid}:lab user:/tmp:/bin/sh\n"
        group += f"{user}:x:{uid}:\n"
        shadow += f"{user}:*:19000:0:99999:7:::\n"
    (etc / "passwd").write_text(passwd)
    (etc / "group").write_text(group)
    (etc / "shadow").write_text(shadow)
    os.chmod(etc / "shadow", 0o640)
    (etc / "sudoers").write_text(SUDOERS)
    os.chmod(etc / "sudoers", 0o440)
    (etc / "sudoers.d").mkdir()
    (etc / "hostname").write_text(hostname + "\n")
    # As Debian's installer writes it. Without its own name here sudo says "unable to resolve host" and
    # mails root through a double-forked sendmail, a stray process racing every audit's process list.
    (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost\n")
    return {name: etc / name for name in ("ssh", "passwd", "group", "shadow", "sudoers", "sudoers.d",
                                          "hostname", "hosts")}


@contextlib.contextmanager
def ssh_host(workdir: Path, authorized: Mapping[str, str], *, hostname: str, port: int = 22,
             sshd_extra: str = "", listen: str | None = None,
             before_start: Any = None) -> Iterator[SshLabHost]:
    """A namespace host with a real sshd; ``authorized`` maps user -> authorized_keys lines.

    listen: an address to listen on instead of all (e.g. an inner address only a bastion reaches);
    before_start(net) runs after the namespace exists and before sshd starts.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    listen_line = f"ListenAddress {listen}" if listen else ""
    config = SSHD_CONFIG.format(port=port, listen=listen_line, extra=sshd_extra)
    etc = _etc(workdir, hostname, authorized, config)
    logs = workdir / "logs"
    logs.mkdir()
    for name in ("wtmp", "btmp", "lastlog"):
        (logs / name).touch()
        with contextlib.suppress(OSError):
            os.chmod(logs / name, Path("/var/log", name).stat().st_mode & 0o777)
    host_key = (workdir / "etc/ssh/ssh_host_ed25519_key.pub").read_text().strip()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    with lab.netns_host(etc=etc, hostname=hostname, workdir=workdir / "run") as net:
        if before_start is not None:
            before_start(net)
        proc = net.spawn(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", _INIT_SCRIPT, "sh",
                          SSHD, "-D", "-e", "-f", "/etc/ssh/sshd_config"],
                         log_name="sshd", env={**os.environ, "NA_LOGS": str(logs)})
        address = listen or net.addr
        if listen is None:
            lab.wait_for_tcp(address, port, timeout=15)
        else:
            lab.wait_until(lambda: "Server listening" in net.log(proc) or proc.poll() is not None, 15,
                           "sshd to listen")
        if proc.poll() is not None:
            raise lab.LabError(f"sshd died: {net.log(proc)}")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if len(children) != 1:
            raise lab.LabError(f"expected one init process under {proc.pid}, found {children}")
        yield SshLabHost(net, proc, int(children[0]), host_key, port, address)


def client_key(directory: Path) -> tuple[Path, str]:
    return lab.make_ssh_keypair(directory)


def link_namespaces(a: lab.NetnsHost, b: lab.NetnsHost, a_addr: str, b_addr: str, prefix: int = 30) -> None:
    """A private veth link between two lab namespaces (no route from the root namespace to it)."""
    tag = f"{os.getpid() % 10000}{a.slot}"
    tmp_a, tmp_b = f"najA{tag}"[:15], f"najB{tag}"[:15]
    lab.run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b], timeout=30)
    try:
        lab.run(["ip", "link", "set", tmp_a, "netns", a.name, "name", "inner0"], timeout=30)
        lab.run(["ip", "link", "set", tmp_b, "netns", b.name, "name", "inner0"], timeout=30)
    except Exception:
        for name in (tmp_a, tmp_b):
            lab.run(["ip", "link", "del", name], timeout=30, check=False)
        raise
    for net, addr in ((a, a_addr), (b, b_addr)):
        lab.run(["ip", "-n", net.name, "addr", "add", f"{addr}/{prefix}", "dev", "inner0"], timeout=30)
        lab.run(["ip", "-n", net.name, "link", "set", "inner0", "up"], timeout=30)


@contextlib.contextmanager
def silent_tcp_server(net: lab.NetnsHost, port: int = 22) -> Iterator[None]:
    """A TCP listener in the namespace that accepts connections and never says a word (no SSH banner)."""
    code = ("import socket,time\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('0.0.0.0', {port})); s.listen(64); print('listening', flush=True)\n"
            "held=[]\n"
            "while True:\n    c,_=s.accept(); held.append(c)\n")
    proc = net.spawn([shutil.which("python3") or "python3", "-c", code], log_name="silent")
    try:
        lab.wait_for_tcp(net.addr, port, timeout=15)
        yield
    finally:
        stop_process(proc, grace=1)


@contextlib.contextmanager
def loopback_silent_server() -> Iterator[int]:
    """Same as silent_tcp_server but on 127.0.0.1 in this process (no root needed); yields the port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for c in held:
            c.close()
        srv.close()
