"""Lab tests of the fixes that can cut the controller off (issue 19): 18 moves SSH to another port.

A chroot host on the cached Debian root runs real sshd, a real nftables ruleset (input policy drop, 22
let in) and a real fail2ban-server behind rsyslog. ``nectar-audit fix --checks 18 --ssh-port 2222
--apply`` runs over SSH from this machine as an unprivileged sudo user: real sshd decides the logins on
each port, real nft what gets in, fail2ban-client reports the jail's port. A controller killed between
the change and its confirmation leaves a host that the dead-man timer puts back by itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import REPO, lab

pytestmark = pytest.mark.lab

NEW = 2222
USER = "admin"
NFT = """#!/usr/sbin/nft -f

flush ruleset

table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established,related accept
\t\tiif "lo" accept
\t\ticmp type echo-request accept
\t\ttcp dport 22 accept
\t}
}
"""
# Every file the fix may touch: after an undo (or the dead-man timer) each is byte-identical or absent again.
TOUCHED = ("/etc/nftables.conf", "/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/00-nectar-audit-18.conf",
           "/etc/fail2ban/jail.d/zz-nectar-audit-18.local")


def _write(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    p.chmod(mode)


def _prepare_root(root: Path, pub: str) -> None:
    """An admin with a key and sudo (the login the fix keeps working), the firewall, fail2ban's log."""
    with (root / "etc/passwd").open("a") as f:
        f.write(f"{USER}:x:1000:1000:{USER}:/home/{USER}:/bin/bash\n")
    with (root / "etc/group").open("a") as f:
        f.write(f"{USER}:x:1000:\n")
    with (root / "etc/shadow").open("a") as f:
        f.write(f"{USER}:*:19000:0:99999:7:::\n")
    home = root / "home" / USER
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh/authorized_keys").write_text(pub + "\n")
    for p in (home, home / ".ssh", home / ".ssh/authorized_keys"):
        os.chown(p, 1000, 1000)
    (home / ".ssh").chmod(0o700)
    _write(root, "/etc/sudoers.d/admin", f"{USER} ALL=(ALL) NOPASSWD: ALL\n", 0o440)
    _write(root, "/etc/nftables.conf", NFT, 0o755)
    _write(root, "/var/log/auth.log", "")


def _digests(host: lab.ChrootHost) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for path in TOUCHED:
        p = host.path(path)
        out[path] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    return out


def _answers(host: lab.ChrootHost, key: Path, known: Path, port: int) -> bool:
    """A real key login on ``port`` from this machine, and sudo -n after it."""
    proc = subprocess.run(
        ["ssh", "-p", str(port), "-i", str(key), "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
         "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=3", "-o", "IdentitiesOnly=yes",
         "-F", "/dev/null", f"{USER}@{host.addr}", "sudo -n true"],
        capture_output=True, timeout=30, check=False)
    return proc.returncode == 0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "nectar_audit", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "NO_COLOR": "1"}


@pytest.fixture
def moved_host(lab_root: Path, tmp_path: Path) -> Iterator[tuple[lab.ChrootHost, Path, Path, dict[str, Any]]]:
    lab.require_netns()
    lab.require_binary("ssh")
    key, pub = lab.make_ssh_keypair(tmp_path)
    _prepare_root(lab_root, pub)
    with lab.chroot_host(lab_root, hostname="port-lab") as host:
        host.exec(["nft", "-f", "/etc/nftables.conf"], check=True)
        host.start(["rsyslogd", "-n"])
        lab.wait_until(lambda: host.exec(["test", "-S", "/dev/log"]).returncode == 0, 10, "/dev/log")
        f2b = host.start(["fail2ban-server", "-f", "-x"])
        lab.wait_until(lambda: host.exec(["fail2ban-client", "status", "sshd"]).returncode == 0, 30,
                       "fail2ban's sshd jail")
        sshd = host.start(["/usr/sbin/sshd", "-D", "-e"])
        lab.wait_for_tcp(host.addr, 22)
        host_key = host.path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
        known = tmp_path / "known_hosts"
        # The host key under the address only: the new port's key is the same host's (asyncssh and
        # OpenSSH fall back to the plain entry for another port).
        known.write_text(f"{host.addr} {host_key[0]} {host_key[1]}\n[{host.addr}]:{NEW} {host_key[0]} "
                         f"{host_key[1]}\n")
        yield host, key, known, {"sshd": sshd, "fail2ban": f2b}


def _fix_argv(host: lab.ChrootHost, key: Path, known: Path, *extra: str) -> list[str]:
    return _cli("fix", f"{USER}@{host.addr}", "--checks", "18", "--ssh-port", str(NEW), "--apply", "--yes",
                "-i", str(key), "--known-hosts", str(known), "--config", os.devnull, "--confirm-timeout", "30",
                *extra)


def _jail_ports(host: lab.ChrootHost) -> str:
    actions = host.exec(["fail2ban-client", "get", "sshd", "actions"], text=True, check=True).stdout
    name = actions.strip().splitlines()[-1].strip().lstrip("`-| ").strip()
    return str(host.exec(["fail2ban-client", "get", "sshd", "action", name, "port"], text=True,
                         check=True).stdout.strip())


def test_18_applied_over_ssh_moves_the_port_everywhere(moved_host: Any) -> None:
    host, key, known, procs = moved_host
    assert _answers(host, key, known, 22) and not _answers(host, key, known, NEW)
    proc = subprocess.run(_fix_argv(host, key, known, "--format", "json"), capture_output=True, text=True,
                          timeout=300, env=_env(), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    outcome = doc["hosts"][0]["outcomes"]
    assert [(o["check"], o["status"], o["after"]) for o in outcome] == [("Check-Security-18", "applied", "pass")], \
        outcome
    assert "next phase" in outcome[0]["message"]
    assert "Port 2222" in proc.stderr  # the ssh_config stanza to add
    # Real sshd: a key login with sudo works on the new port, nothing listens on 22 any more.
    assert _answers(host, key, known, NEW)
    assert not _answers(host, key, known, 22)
    sshd_t = host.exec(["sshd", "-T"], text=True, check=True).stdout.splitlines()
    assert [line for line in sshd_t if line.startswith("port ")] == [f"port {NEW}"]
    # The firewall lets the new port in and no longer 22 (file and kernel agree).
    ruleset = host.exec(["nft", "list", "ruleset"], text=True, check=True).stdout
    assert f"tcp dport {NEW} accept" in ruleset and "tcp dport 22 accept" not in ruleset, ruleset
    assert host.exec(["nft", "-c", "-f", "/etc/nftables.conf"]).returncode == 0
    # fail2ban's sshd jail bans on the new port.
    assert _jail_ports(host) == str(NEW)
    # A fresh scan over the new port passes 18.
    scan = subprocess.run(_cli("scan", f"{USER}@{host.addr}:{NEW}", "--checks", "18", "--format", "json", "-i",
                               str(key), "--known-hosts", str(known), "--config", os.devnull),
                          capture_output=True, text=True, timeout=300, env=_env(), check=False)
    checks = json.loads(scan.stdout)["hosts"][0]["checks"]
    assert [(c["id"], c["status"]) for c in checks] == [("Check-Security-18", "pass")], scan.stdout
    # A second apply changes nothing (18 passes: no plan).
    argv = [f"{USER}@{host.addr}:{NEW}" if a == f"{USER}@{host.addr}" else a for a in _fix_argv(host, key, known)]
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=_env(), check=False)
    assert again.returncode == 0 and "nothing to fix" in again.stdout, again.stdout + again.stderr
    assert procs["sshd"].poll() is None and procs["fail2ban"].poll() is None


# A controller whose confirmation never comes: the real fix code, but the new connection hangs (as when
# the network drops right after the change). It says when it got there, then the test kills it.
HANGING = """
import sys, time
from pathlib import Path
from nectar_audit.targets import ssh
def hang(self, *a, **k):
    Path(sys.argv[1]).write_text("confirming")
    time.sleep(3600)
ssh.SshTarget.confirm_login = hang
from nectar_audit.cli import main
main(sys.argv[2:])
"""


@contextlib.contextmanager
def hanging_controller(fix_argv: list[str], marker: Path, env: dict[str, str]) -> Iterator[None]:
    """``fix_argv`` (as ``_cli`` builds it) run by HANGING: the block runs once the change is live and the
    controller waits for its confirmation; then the controller is killed, as by a lost laptop."""
    controller = subprocess.Popen([sys.executable, "-c", HANGING, str(marker), *fix_argv[3:]], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        lab.wait_until(lambda: marker.exists() or controller.poll() is not None, 120,
                       "the controller to reach the confirmation")
        assert controller.poll() is None, controller.stderr.read() if controller.stderr else ""
        yield
    finally:
        os.killpg(controller.pid, signal.SIGKILL)
        controller.wait()


def test_controller_killed_before_confirmation_host_restores_itself(moved_host: Any, tmp_path: Path) -> None:
    host, key, known, procs = moved_host
    before = _digests(host)
    marker = tmp_path / "confirming"
    # A shorter timer than the other tests' (the last --confirm-timeout counts): it is what the test waits for.
    with hanging_controller(_fix_argv(host, key, known, "--confirm-timeout", "12"), marker, _env()):
        # The change is live: sshd listens on both ports now, nothing is confirmed.
        assert _answers(host, key, known, NEW) and _answers(host, key, known, 22)
        assert _digests(host) != before
    # Within the confirmation timeout (12 s) and a margin, the host put everything back by itself.
    lab.wait_until(lambda: _digests(host) == before and not _answers(host, key, known, NEW), 60,
                   "the dead-man timer to undo the run")
    assert _answers(host, key, known, 22)
    ruleset = host.exec(["nft", "list", "ruleset"], text=True, check=True).stdout
    assert f"dport {NEW}" not in ruleset and "tcp dport 22 accept" in ruleset
    assert _jail_ports(host) in ("ssh", "22")
    runs = host.exec(["sh", "-c", "cat /var/lib/nectar-audit/fix/*/deadman"], text=True).stdout.split()
    assert runs == ["sleep"]  # no systemd in the lab host: the detached sleep did it
    assert procs["sshd"].poll() is None
