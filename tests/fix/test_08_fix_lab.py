"""Lab tests of 08's fix (issue 19): a default-drop host firewall turned on over SSH without cutting off.

A chroot host on the cached Debian root has no firewall loaded and real listeners: sshd on 22, a Python
HTTP server on 8080 (kept with ``--allow 8080/tcp``) and another on 9090 (not kept). ``nectar-audit fix
--checks 08 --apply`` runs over SSH as an unprivileged sudo user. From the root namespace: real sshd
decides the key login, the HTTP servers answer or the kernel's nftables drops the SYN (the connection
times out), over IPv4 and over an IPv6 address the test gives the lab link. A controller killed before
its confirmation leaves a host whose dead-man timer puts every file back and removes the ruleset. The
same with Docker's chains loaded (left alone: no flush, our own table), and on the same root made to
look like Ubuntu: ufw.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import SAMPLES, lab
from tests.fix.test_18_08_fix_lab import USER, _answers, _cli, _env, _write, hanging_controller

pytestmark = pytest.mark.lab

KEPT, DROPPED = 8080, 9090
# Every file the fix may touch: after the dead-man undo each is byte-identical or absent again.
TOUCHED = ("/etc/nftables.conf", "/etc/nftables.d/nectar-audit-08.nft",
           "/etc/systemd/system/sysinit.target.wants/nftables.service", "/etc/ufw/ufw.conf",
           "/etc/default/ufw", "/etc/ufw/user.rules", "/etc/ufw/user6.rules")


def _prepare_root(root: Path, pub: str, ubuntu: bool) -> None:
    """An admin with a key and sudo (the login the fix must keep working); no firewall loaded."""
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
    if ubuntu:
        # The planner picks the distribution's tool from os-release: Ubuntu -> ufw (installed in the root).
        os_release = root / "etc/os-release"
        if os_release.is_symlink():
            os_release.unlink()
        os_release.write_text('NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'
                              'PRETTY_NAME="Ubuntu 24.04 LTS"\nVERSION_CODENAME=noble\n')


def _digests(host: lab.ChrootHost) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for path in TOUCHED:
        p = host.path(path)
        out[path] = p.read_bytes() if p.exists() or p.is_symlink() else None
    return out


def _tcp(addr: str, port: int) -> str:
    """'open' (an HTTP server answered), 'refused', or 'timeout' (dropped) from the root namespace."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        try:
            s.connect((addr, port))
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return "open" if s.recv(12).startswith(b"HTTP/") else "closed"
        except ConnectionRefusedError:
            return "refused"
        except OSError:
            return "timeout"


def _v6(host: lab.ChrootHost) -> str:
    """Give the lab link a ULA /64 (nodad: usable at once); the host's address."""
    slot = host.net.slot
    inner, outer = f"fd00:10:200:{slot:x}::2", f"fd00:10:200:{slot:x}::1"
    lab.run(["ip", "-6", "addr", "add", f"{outer}/64", "dev", host.net.veth, "nodad"])
    host.exec(["ip", "-6", "addr", "add", f"{inner}/64", "dev", "eth0", "nodad"], check=True)
    return inner


@pytest.fixture(params=["nftables", "docker", "ufw"])
def open_host(request: Any, lab_root: Path, tmp_path: Path
              ) -> Iterator[tuple[lab.ChrootHost, Path, Path, str, str]]:
    lab.require_netns()
    lab.require_binary("ssh")
    lab.require_binary("ip")
    key, pub = lab.make_ssh_keypair(tmp_path)
    _prepare_root(lab_root, pub, request.param == "ufw")
    with lab.chroot_host(lab_root, hostname="fw-lab") as host:
        v6 = _v6(host)
        if request.param == "docker":
            # Docker's own chains (a real dump), loaded by iptables' nf_tables backend as dockerd does.
            # Its container publishes 8080 in the dump: moved to 8081, so our own 8080 listener is reached.
            dump = (SAMPLES / "firewall/docker-iptables-nft-save.v4").read_bytes().replace(
                b"--dport 8080 -j DNAT", b"--dport 8081 -j DNAT")
            host.exec(["iptables-nft-restore"], input=dump, check=True)
        sshd = host.start(["/usr/sbin/sshd", "-D", "-e"])
        for port in (KEPT, DROPPED):
            # Python's http.server binds "::" dual-stack: one listener for IPv4 and IPv6.
            host.start(["python3", "-m", "http.server", "--bind", "::", str(port), "--directory", "/usr/share/doc"])
            lab.wait_for_tcp(host.addr, port)
        lab.wait_for_tcp(host.addr, 22)
        host_key = host.path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
        known = tmp_path / "known_hosts"
        known.write_text(f"{host.addr} {host_key[0]} {host_key[1]}\n")
        assert sshd.poll() is None
        yield host, key, known, v6, request.param


def _fix_argv(host: lab.ChrootHost, key: Path, known: Path, *extra: str) -> list[str]:
    return _cli("fix", f"{USER}@{host.addr}", "--checks", "08", "--allow", f"{KEPT}/tcp", "--apply", "--yes",
                "-i", str(key), "--known-hosts", str(known), "--config", os.devnull, "--confirm-timeout", "30",
                *extra)


def _scan_08(host: lab.ChrootHost, key: Path, known: Path) -> str:
    scan = subprocess.run(_cli("scan", f"{USER}@{host.addr}", "--checks", "08", "--format", "json", "-i", str(key),
                               "--known-hosts", str(known), "--config", os.devnull),
                          capture_output=True, text=True, timeout=300, env=_env(), check=False)
    checks = json.loads(scan.stdout)["hosts"][0]["checks"]
    assert [c["id"] for c in checks] == ["Check-Security-08"], scan.stdout
    return str(checks[0]["status"]) + "\n" + json.dumps(checks[0].get("findings"), indent=1)


def _ruleset(host: lab.ChrootHost) -> str:
    """The loaded ruleset without counters (-s: stateless), comparable before and after."""
    return str(host.exec(["nft", "-s", "list", "ruleset"], text=True, check=True).stdout)


def test_08_applied_over_ssh_keeps_ssh_and_the_kept_service(open_host: Any) -> None:
    host, key, known, v6, tool = open_host
    for addr in (host.addr, v6):
        assert _tcp(addr, KEPT) == "open" and _tcp(addr, DROPPED) == "open"
    assert _scan_08(host, key, known).startswith("fail")
    # The plan names what stays reachable and what will not, with the way to keep it.
    shown = subprocess.run([a for a in _fix_argv(host, key, known) if a not in ("--apply", "--yes")],
                           capture_output=True, text=True, timeout=300, env=_env(), check=False)
    assert "verified: let in: 22/tcp (sshd listens on it" in shown.stdout, shown.stdout + shown.stderr
    assert f"verified: let in: {KEPT}/tcp (fix --allow)" in shown.stdout
    assert f"note: no longer let in: {DROPPED}/tcp (python3): nothing but an open default lets it in; keep it " \
           f"with --allow {DROPPED}/tcp" in shown.stdout, shown.stdout
    assert "dead-man:" in shown.stdout
    proc = subprocess.run(_fix_argv(host, key, known, "--format", "json"), capture_output=True, text=True,
                          timeout=300, env=_env(), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    outcome = doc["hosts"][0]["outcomes"]
    assert [(o["check"], o["status"], o["after"]) for o in outcome] == [("Check-Security-08", "applied", "pass")], \
        outcome
    # A fresh scan passes 08; real sshd still lets the key login (and sudo) in.
    status = _scan_08(host, key, known)
    assert status.startswith("pass"), status
    assert _answers(host, key, known, 22)
    # The kept server answers, the other one's SYN is dropped (no answer, not even a reset): IPv4 and IPv6.
    for addr in (host.addr, v6):
        assert _tcp(addr, KEPT) == "open", addr
        assert _tcp(addr, DROPPED) == "timeout", addr
    if tool in ("nftables", "docker"):
        ruleset = _ruleset(host)
        assert "table inet nectar_audit" in ruleset and "policy drop" in ruleset, ruleset
        # Docker's chains are left alone (no flush): its forwarding and DNAT rules are all still there.
        assert (tool == "docker") == ("chain DOCKER-ISOLATION-STAGE-1" in ruleset), ruleset
        assert (tool == "docker") == ("flush ruleset" not in host.path("/etc/nftables.conf").read_text())
        assert host.exec(["nft", "-c", "-f", "/etc/nftables.conf"]).returncode == 0
        assert host.path("/etc/systemd/system/sysinit.target.wants/nftables.service").is_symlink()
    else:
        assert host.path("/etc/ufw/ufw.conf").read_text().count("ENABLED=yes") == 1
        added = host.exec(["ufw", "show", "added"], text=True, check=True).stdout
        assert f"ufw allow {KEPT}/tcp" in added and "ufw allow 22/tcp" in added, added
    # A second apply finds nothing to fix.
    again = subprocess.run(_fix_argv(host, key, known), capture_output=True, text=True, timeout=300, env=_env(),
                           check=False)
    assert again.returncode == 0 and "nothing to fix" in again.stdout, again.stdout + again.stderr


def test_controller_killed_before_confirmation_host_drops_the_firewall(open_host: Any, tmp_path: Path) -> None:
    host, key, known, v6, tool = open_host
    before = _digests(host)
    rules_before = _ruleset(host)
    marker = tmp_path / "confirming"
    # A shorter timer than the other tests' (the last --confirm-timeout counts): it is what the test waits for.
    with hanging_controller(_fix_argv(host, key, known, "--confirm-timeout", "12"), marker, _env()):
        # The firewall is live, nothing is confirmed: 9090 is dropped, SSH still works.
        assert _tcp(host.addr, DROPPED) == "timeout"
        assert _answers(host, key, known, 22)
        assert _digests(host) != before
    # Within the confirmation timeout (12 s) and a margin, the host put everything back by itself.
    try:
        lab.wait_until(lambda: _digests(host) == before and _tcp(host.addr, DROPPED) == "open", 60,
                       "the dead-man timer to undo the run")
    except lab.LabError as exc:
        log = host.exec(["sh", "-c", "cat /var/lib/nectar-audit/fix/*/deadman.log"], text=True).stdout
        changed = [p for p, v in _digests(host).items() if v != before[p]]
        raise AssertionError(f"{exc}: changed {changed}, {DROPPED}: {_tcp(host.addr, DROPPED)}; {log}") from exc
    assert _tcp(v6, DROPPED) == "open" and _tcp(host.addr, KEPT) == "open"
    assert _answers(host, key, known, 22)
    if tool in ("nftables", "docker"):
        assert _ruleset(host) == rules_before  # Docker's chains too
    runs = host.exec(["sh", "-c", "cat /var/lib/nectar-audit/fix/*/deadman"], text=True).stdout.split()
    assert runs == ["sleep"]  # no systemd in the lab host: the detached sleep did it
