"""Lab test of 08's fix through firewalld, on a host whose PID 1 is the real systemd (tests/lab/systemd.py).

The firewall lab root (test_18_firewalls_lab.py: firewalld, D-Bus, sshd) boots its own systemd in a lab
slot's network namespace. firewalld is enabled at boot (its wants-link, as ``systemctl enable`` makes it)
but stopped, so nothing filters: 08 fails. Its permanent zone lets in ssh and 8080/tcp, which the plan
keeps (firewalld loads that zone when it starts). systemd runs sshd, HTTP servers on 8080 and 9090 and a
UDP echo server on 5000 (kept with ``--allow 5000/udp``).
``nectar-audit fix --checks 08 --apply`` runs over SSH as an unprivileged sudo user: firewall-cmd edits
the zone, systemd starts firewalld over D-Bus, systemd-run holds the dead-man timer. Then, from the root
namespace over IPv4 and IPv6, the kernel's rules that firewalld loaded decide: SSH (real sshd, key
login and sudo), 8080 and UDP 5000 answer, 9090 is blocked by the zone's reject. A controller killed
before its confirmation leaves a host whose systemd timer puts the zone back and stops firewalld again
(the activation alone cannot tell: firewalld's wants-link was there before the run too).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nectar_audit.checks.host_firewall_fix import FIREWALLD_STARTED
from tests import lab
from tests.fix import test_18_firewalls_lab as fw18
from tests.fix.test_08_fix_lab import _prepare_root, _v6
from tests.fix.test_18_08_fix_lab import USER, _answers, _cli, _env, _write, hanging_controller
from tests.lab import systemd

pytestmark = pytest.mark.lab

fw_root = fw18.fw_root  # the cached firewall root (openssh-server, sudo, firewalld, dbus, nftables, ...)

KEPT, DROPPED, UDP = 8080, 9090, 5000
ZONE = "/etc/firewalld/zones/public.xml"
PUBLIC = """<?xml version="1.0" encoding="utf-8"?>
<zone>
  <short>Public</short>
  <service name="ssh"/>
  <service name="dhcpv6-client"/>
  <port port="8080" protocol="tcp"/>
  <forward/>
</zone>
"""
# Every file the fix may touch: after the dead-man undo each is byte-identical or absent again.
TOUCHED = (ZONE, FIREWALLD_STARTED, *(f"/etc/systemd/system/{link}" for link in fw18.UNITS_OF["firewalld"]))
UDP_ECHO = f"""
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", {UDP}))
while True:
    data, peer = s.recvfrom(512)
    s.sendto(b"echo:" + data, peer)
"""


def _digests(host: systemd.SystemdHost) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for path in TOUCHED:
        p = host.path(path)
        if p.is_symlink():
            out[path] = "-> " + os.readlink(p)
        else:
            out[path] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    return out


def _udp(addr: str) -> str:
    """From the root namespace: 'echo' (the server answered), 'refused' (ICMP port unreachable: no listener,
    no firewall), 'blocked' (dropped, or another ICMP error: the firewall's reject)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(1.5)  # a veth to a namespace answers in microseconds: no answer is a drop
        s.connect((addr, UDP))
        try:
            s.send(b"ping")
            return "echo" if s.recv(64) == b"echo:ping" else "other"
        except ConnectionRefusedError:
            return "refused"
        except OSError:
            return "blocked"


def _state(host: systemd.SystemdHost) -> str:
    return host.systemctl("is-active", "firewalld").strip()


def _fw(host: systemd.SystemdHost, *args: str) -> str:
    return str(host.exec(["firewall-cmd", *args], text=True, check=True).stdout)


@pytest.fixture
def fwd_host(fw_root: Path, tmp_path: Path) -> Iterator[tuple[systemd.SystemdHost, Path, Path, str]]:
    """(host, key, known_hosts, its IPv6 address): firewalld enabled at boot but stopped, services up."""
    problem = systemd.problem()
    lab.require(problem is None, problem or "")
    lab.require_netns()
    lab.require_binary("ssh")
    key, pub = lab.make_ssh_keypair(tmp_path)
    with lab.overlay_root(tmp_path, fw_root) as root:
        _prepare_root(root, pub, ubuntu=False)
        for link in fw18.UNITS_OF["iptables"]:  # one firewall at boot: firewalld's links stay
            (root / "etc/systemd/system" / link).unlink(missing_ok=True)
        _write(root, ZONE, PUBLIC)
        # A boot that does not reach "running" raises: the test errors, locally as under CI.
        with systemd.systemd_host(root, hostname="firewalld-lab", workdir=tmp_path, network=True) as host:
            v6 = _v6(host)  # type: ignore[arg-type]  # duck-typed: .net and .exec as a chroot host's
            # As multi-user.target would: sshd, and logins allowed (systemd-user-sessions removes /run/nologin).
            host.exec(["systemctl", "start", "ssh", "systemd-user-sessions"], check=True)
            for port in (KEPT, DROPPED):
                # Python's http.server binds "::" dual-stack: one listener for IPv4 and IPv6.
                host.exec(["systemd-run", f"--unit=nalab-http-{port}", "python3", "-m", "http.server", "--bind",
                           "::", str(port), "--directory", "/usr/share/doc"], check=True)
            host.exec(["systemd-run", "--unit=nalab-udp-echo", "python3", "-c", UDP_ECHO], check=True)
            for port in (22, KEPT, DROPPED):
                lab.wait_for_tcp(host.addr, port)
            lab.wait_until(lambda: _udp(host.addr) == "echo", 10, "the UDP echo server")
            host_key = host.path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
            known = tmp_path / "known_hosts"
            known.write_text(f"{host.addr} {host_key[0]} {host_key[1]}\n")
            assert host.systemctl("is-enabled", "firewalld").strip() == "enabled"
            assert _state(host) == "inactive"
            yield host, key, known, v6


def _fix_argv(host: systemd.SystemdHost, key: Path, known: Path, timeout: int, *extra: str) -> list[str]:
    return _cli("fix", f"{USER}@{host.addr}", "--checks", "08", "--allow", f"{UDP}/udp", "--apply", "--yes",
                "-i", str(key), "--known-hosts", str(known), "--config", os.devnull, "--confirm-timeout",
                str(timeout), *extra)


def _scan_08(host: systemd.SystemdHost, key: Path, known: Path) -> str:
    scan = subprocess.run(_cli("scan", f"{USER}@{host.addr}", "--checks", "08", "--format", "json", "-i", str(key),
                               "--known-hosts", str(known), "--config", os.devnull),
                          capture_output=True, text=True, timeout=300, env=_env(), check=False)
    checks = json.loads(scan.stdout)["hosts"][0]["checks"]
    assert [c["id"] for c in checks] == ["Check-Security-08"], scan.stdout
    return str(checks[0]["status"]) + "\n" + json.dumps(checks[0].get("findings"), indent=1)


def _runs(host: systemd.SystemdHost) -> list[Path]:
    return sorted(host.path("/var/lib/nectar-audit/fix").iterdir())


def test_08_turns_on_firewalld_over_ssh_under_systemd(fwd_host: Any) -> None:
    host, key, known, v6 = fwd_host
    for addr in (host.addr, v6):  # nothing filters yet
        assert fw18._probe(addr, KEPT) == "http" and fw18._probe(addr, DROPPED) == "http", addr
        assert _udp(addr) == "echo", addr
    assert _scan_08(host, key, known).startswith("fail")
    # The plan: firewalld loads its zone when it starts, so 8080 stays let in (nothing is loaded now).
    shown = subprocess.run([a for a in _fix_argv(host, key, known, 30) if a not in ("--apply", "--yes")],
                           capture_output=True, text=True, timeout=300, env=_env(), check=False)
    assert f"verified: let in: {KEPT}/tcp (python3; firewalld's permanent configuration lets it in" in shown.stdout, \
        shown.stdout + shown.stderr
    assert f"verified: let in: {UDP}/udp (fix --allow)" in shown.stdout
    assert f"note: no longer let in: {DROPPED}/tcp (python3)" in shown.stdout
    assert f"no longer let in: {KEPT}/tcp" not in shown.stdout
    proc = subprocess.run(_fix_argv(host, key, known, 30, "--format", "json"), capture_output=True, text=True,
                          timeout=300, env=_env(), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr + host.log(60)
    doc = json.loads(proc.stdout)
    outcome = doc["hosts"][0]["outcomes"]
    assert [(o["check"], o["status"], o["after"]) for o in outcome] == [("Check-Security-08", "applied", "pass")], \
        outcome
    # systemd runs firewalld now; real sshd still lets the key login (and sudo) in.
    assert _state(host) == "active"
    assert _answers(host, key, known, 22)  # type: ignore[arg-type]
    # The kernel's rules that firewalld loaded: IPv4 and IPv6 alike.
    for addr in (host.addr, v6):
        assert fw18._probe(addr, 22) == "ssh", addr
        assert fw18._probe(addr, KEPT) == "http", addr
        assert _udp(addr) == "echo", addr
        assert fw18._probe(addr, DROPPED) == "blocked", addr  # the zone's reject, not the TCP stack's reset
    # firewalld's permanent and runtime configurations agree, and name what was kept.
    permanent, live = _fw(host, "--permanent", "--list-all"), _fw(host, "--list-all")
    assert permanent == live, (permanent, live)
    ports = _fw(host, "--list-ports").split()
    assert f"{KEPT}/tcp" in ports and f"{UDP}/udp" in ports and f"{DROPPED}/tcp" not in ports, ports
    assert "ssh" in _fw(host, "--list-services").split()
    # The dead-man timer was systemd's, and the run was confirmed: nothing undone.
    [run] = _runs(host)
    assert (run / "deadman").read_text() == "systemd\n"
    assert (run / "confirmed").exists() and not (run / "undone").exists()
    assert host.path(FIREWALLD_STARTED).read_text() == f"/var/lib/nectar-audit/fix/{run.name}\n"
    status = _scan_08(host, key, known)
    assert status.startswith("pass"), status


def test_controller_killed_before_confirmation_systemd_timer_restores_firewalld(fwd_host: Any,
                                                                                tmp_path: Path) -> None:
    host, key, known, v6 = fwd_host
    before = _digests(host)
    marker = tmp_path / "confirming"
    with hanging_controller(_fix_argv(host, key, known, 10), marker, _env()):
        # firewalld runs the new zone, nothing is confirmed: 9090 is blocked, SSH still works.
        assert fw18._probe(host.addr, DROPPED) == "blocked"
        assert _answers(host, key, known, 22)  # type: ignore[arg-type]
        assert _digests(host) != before
    # Within the confirmation timeout (10 s) and a margin, systemd's timer put the host back by itself.
    [run] = _runs(host)
    try:
        lab.wait_until(lambda: (run / "undone").exists() and _state(host) == "inactive", 60,
                       "systemd's dead-man timer to undo the run")
    except lab.LabError as exc:
        log = (run / "deadman.log").read_text() if (run / "deadman.log").exists() else "(no deadman.log)"
        raise AssertionError(f"{exc}: firewalld {_state(host)}; {log}\n{host.log(40)}") from exc
    assert (run / "deadman").read_text() == "systemd\n" and not (run / "confirmed").exists()
    assert _digests(host) == before
    for addr in (host.addr, v6):
        assert fw18._probe(addr, DROPPED) == "http" and _udp(addr) == "echo", addr
    assert _answers(host, key, known, 22)  # type: ignore[arg-type]
    assert "table inet firewalld" not in host.exec(["nft", "list", "ruleset"], text=True, check=True).stdout
