"""Lab tests of the active probes against real daemons in network namespaces (issue 6)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nectar_audit.model import CheckResult, Evidence, Finding, HostResult, Status
from nectar_audit.probes import vantage_note
from nectar_audit.probes.dns import probe_dns
from nectar_audit.probes.ntp import MONLIST_REQUEST, probe_ntp
from nectar_audit.probes.reach import probe_tcp
from nectar_audit.probes.run import scan_probe
from nectar_audit.probes.ssh import NONEXISTENT_USER, probe_ssh
from nectar_audit.targets.ssh import SshTarget
from nectar_audit.targets.ssh_options import SshOptions
from tests import REPO, lab
from tests.lab import netns_host, require_binary, require_netns, wait_for_tcp

pytestmark = pytest.mark.lab
ROOT = REPO

# A vulnerable mode-7 responder: answers MON_GETLIST_1 like ntpd < 4.2.7p26, with 3 packets of 440 bytes
# (an 8-byte header: response bit, VN 2, mode 7, more bit and sequence, implementation 3, request 42,
# error 0 and 6 items, item size 72; then 6 mon_data items of 72 bytes). argv: port [6 | IPv4 address
# to bind: a wildcard socket answers from the interface's address, not from a second one on lo].
MODE7_SERVER = r"""
import socket, sys
family = socket.AF_INET6 if sys.argv[2:] == ["6"] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
bind = "::" if family == socket.AF_INET6 else (sys.argv[2] if sys.argv[2:] else "0.0.0.0")
s.bind((bind, int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(2048)
    if len(data) >= 4 and (data[0] & 7) == 7 and data[3] == 0x2a:
        for seq in range(3):
            more = 0x40 if seq < 2 else 0
            header = bytes([0x97, more | seq, 0x03, 0x2a, 0x00, 0x06, 0x00, 72])
            s.sendto(header + bytes(6 * 72), peer)
"""


def _wait_udp_bound(host: object, port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = host.run(["ss", "-Hlun", f"sport = :{port}"], text=True)  # type: ignore[attr-defined]
        if out.stdout.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing bound to udp {port}")


def test_monlist_responder_fails_06_with_amplification() -> None:
    require_netns()
    with netns_host() as host:
        host.spawn([sys.executable, "-c", MODE7_SERVER, "123"], log_name="mode7")
        _wait_udp_bound(host, 123)
        obs = probe_ntp(host.addr, timeout=1.0)
        monlist = obs[2]
        assert monlist.verdict == "fail"
        assert f"{3 * 440} bytes out for {len(MONLIST_REQUEST)} in (amplification x27.5)" in monlist.message
        assert monlist.source == host.gateway
        assert obs[0].verdict == "pass" and obs[1].verdict == "pass"  # no mode 3/6 answers from it
        assert vantage_note(monlist.source, host.addr) is None


def test_ntpsec_default_serves_time_refuses_mode6_and_monlist(tmp_path: Path) -> None:
    require_netns()
    ntpd = require_binary("ntpd")
    conf = tmp_path / "ntp.conf"
    conf.write_text(f"driftfile {tmp_path}/drift\n")  # no server/pool lines: the clock is shared
    with netns_host() as host:
        host.spawn([ntpd, "-n", "-c", str(conf), "-p", str(tmp_path / "pid")], log_name="ntpd")
        _wait_udp_bound(host, 123)
        time.sleep(0.3)
        obs = probe_ntp(host.addr, timeout=1.0)
        assert [o.verdict for o in obs] == ["manual", "pass", "pass"], obs
        assert obs[0].message == f"NTP on {host.addr}:123/udp serves time to {host.gateway}"
        assert "does not answer monlist" in obs[2].message


def test_reach_served_refused_filtered() -> None:
    require_netns()
    nft = require_binary("nft")
    rules = (
        "table inet f {\n chain input {\n  type filter hook input priority 0; policy drop;\n"
        "  ct state established,related accept\n  iif lo accept\n  tcp dport { 8000, 8080 } accept\n"
        "  tcp dport 8082 reject with icmpx admin-prohibited\n }\n}\n"
    )
    with netns_host() as host:
        r = host.run([nft, "-f", "-"], input=rules, text=True)
        assert r.returncode == 0, r.stderr
        host.spawn([sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "8000"], log_name="http")
        wait_for_tcp(host.addr, 8000)
        served = probe_tcp(host.addr, 8000)
        assert served.verdict == "manual" and "open and served" in served.message
        assert served.source == host.gateway
        a = host.addr
        refused = probe_tcp(a, 8080)  # opened in the namespace's nftables, nothing listening
        assert (refused.verdict, refused.message) == (
            "pass", f"{a}:8080/tcp refused: open with nothing listening (or a firewall rejects with a reset)")
        dropped = probe_tcp(a, 8081, timeout=0.5)  # dropped by the policy
        assert (dropped.verdict, dropped.message) == ("pass", f"{a}:8081/tcp filtered (no answer in 0.5s)")
        rejected = probe_tcp(a, 8082, timeout=0.5)  # an ICMP "administratively prohibited"
        assert (rejected.verdict, rejected.message) == ("pass", f"{a}:8082/tcp filtered (No route to host)")
        assert {refused.source, dropped.source, rejected.source} == {host.gateway}


def test_vantage_from_own_host() -> None:
    note = vantage_note("127.0.0.1", "127.0.0.1")
    assert note is not None and "cannot prove world-facing behaviour" in note
    assert vantage_note("10.0.0.5", "10.0.0.6", frozenset({"10.0.0.5"})) is not None
    assert vantage_note("10.0.0.1", "10.0.0.6") is None


def _unbound(tmp_path: Path, open_resolver: bool) -> Path:
    acl = "    access-control: 0.0.0.0/0 allow\n" if open_resolver else ""
    conf = tmp_path / f"unbound-{open_resolver}.conf"
    conf.write_text(
        'server:\n    interface: 0.0.0.0\n    port: 53\n    username: ""\n    chroot: ""\n'
        f'    directory: "{tmp_path}"\n    pidfile: ""\n    use-syslog: no\n'
        '    do-not-query-localhost: no\n    module-config: "iterator"\n'
        + acl
        + "remote-control:\n    control-enable: no\n"
    )
    return conf


@pytest.mark.parametrize("open_resolver", [True, False])
def test_unbound_open_and_closed(tmp_path: Path, open_resolver: bool) -> None:
    require_netns()
    unbound = require_binary("unbound")
    conf = _unbound(tmp_path, open_resolver)
    with netns_host() as host:
        host.spawn([unbound, "-d", "-c", str(conf)], log_name="unbound")
        wait_for_tcp(host.addr, 53)
        obs = probe_dns(host.addr, timeout=3.0)
        assert [o.proto for o in obs] == ["udp", "tcp"]
        for o in obs:
            assert o.source == host.gateway
            if open_resolver:
                assert o.verdict == "fail", o
                assert "open resolver" in o.message and "with ra set" in o.message
            else:
                assert o.verdict == "pass", o
                assert o.message.endswith(f"refuses recursion to {host.gateway} (REFUSED, no ra)")


@pytest.mark.parametrize(("password", "root"), [(True, True), (False, False), (False, True)])
def test_sshd_auth_methods(tmp_path: Path, password: bool, root: bool) -> None:
    require_netns()
    sshd = require_binary("sshd")
    keygen = require_binary("ssh-keygen")
    key = tmp_path / "hostkey"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    conf = tmp_path / "sshd_config"
    conf.write_text(
        f"Port 22\nHostKey {key}\nStrictModes no\nUsePAM no\nPidFile {tmp_path}/pid\n"
        f"PasswordAuthentication {'yes' if password else 'no'}\nKbdInteractiveAuthentication no\n"
        f"PermitRootLogin {'yes' if root else 'no'}\n"
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    with netns_host() as host:
        host.spawn([sshd, "-D", "-f", str(conf), "-E", str(tmp_path / "log")], log_name="sshd")
        wait_for_tcp(host.addr, 22)
        obs = probe_ssh(host.addr, timeout=5.0)
        assert obs[0].verdict == "pass" and "SSH-2.0-OpenSSH_" in obs[0].message
        for o, user in zip(obs[1:], (NONEXISTENT_USER, "root")):
            assert o.source == host.gateway
            if password:
                assert o.verdict == "fail", o
                assert o.message == (
                    f"SSH on {host.addr}:22 offers password authentication to {host.gateway} for user "
                    f"{user!r} (offered: publickey, password)"
                )
            else:
                assert o.verdict == "pass", o
                assert o.message.endswith(f"offers only publickey authentication to {host.gateway} for user {user!r}")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "nectar_audit", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_cli_probe_json(tmp_path: Path) -> None:
    require_netns()
    sshd = require_binary("sshd")
    key = tmp_path / "hostkey"
    subprocess.run(
        [require_binary("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    conf = tmp_path / "sshd_config"
    conf.write_text(f"HostKey {key}\nStrictModes no\nUsePAM no\nPidFile {tmp_path}/pid\nPasswordAuthentication yes\n")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    with netns_host() as host:
        host.spawn([sshd, "-D", "-f", str(conf), "-E", str(tmp_path / "log")], log_name="sshd")
        host.spawn([sys.executable, "-c", MODE7_SERVER, "123"], log_name="mode7")
        host.spawn([sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "8080"], log_name="http")
        wait_for_tcp(host.addr, 22)
        wait_for_tcp(host.addr, 8080)
        _wait_udp_bound(host, 123)
        r = _cli("probe", host.addr, "--ports", "22,123,8080,8099", "--format", "json", "--timeout", "1")
        assert r.returncode == 1, r.stderr
        (h,) = json.loads(r.stdout)["hosts"]
        assert h["target"] == f"probe:{host.addr}"
        status = {c["id"][-2:]: c["status"] for c in h["checks"]}
        # The monlist answer is seen from the host's own subnet (this machine is on-link): a warning.
        assert status == {"01": "fail", "06": "warn", "13": "fail", "15": "manual"}
        c06 = next(c for c in h["checks"] if c["id"] == "Check-Security-06")
        assert f"is on the target's own subnet 10.200.{host.slot}.0/24" in c06["summary"]
        assert all(f"observed from {host.gateway}" in f["message"] for c in h["checks"] for f in c["findings"])


def test_cli_probe_from_own_host_is_not_proof() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        port = srv.getsockname()[1]  # bound, not listening: refused
        r = _cli("probe", "127.0.0.1", "--ports", str(port), "--format", "json", "--timeout", "1")
    assert r.returncode == 0, r.stderr
    (c,) = json.loads(r.stdout)["hosts"][0]["checks"]
    assert c["status"] == "manual"
    assert "cannot prove world-facing behaviour" in c["summary"]


def test_cli_probe_rejects_names() -> None:
    r = _cli("probe", "example.com")
    assert r.returncode == 2 and "not an IP address" in r.stderr


def test_cli_probe_refuses_a_port_scan() -> None:
    r = _cli("probe", "10.200.250.2", "--ports", ",".join(str(p) for p in range(1000, 1065)))
    assert r.returncode == 2 and "at most 64 ports per address (65 given)" in r.stderr


def test_scan_probe_local_says_vantage_is_host_itself() -> None:
    r = _cli("scan", "--probe", "--checks", "15", "--format", "json")
    (h,) = json.loads(r.stdout)["hosts"]
    (c,) = [c for c in h["checks"] if c["id"] == "Check-Security-15"]
    assert any(
        f["status"] == "manual" and f["message"].startswith("active probes skipped: the vantage would be the host")
        for f in c["findings"]
    ), c
    r2 = _cli("scan", "--checks", "15", "--format", "json")  # --no-probe is the default
    assert "active probes skipped" not in r2.stdout


def test_scan_probe_merges_into_ssh_target_checks() -> None:
    require_netns()
    with netns_host() as host:
        # An address of the host reached through it (a /32 on its lo, as clouds route floating
        # addresses): not this machine's subnet, so the monlist answer is a failure, not a warning.
        routed = f"10.200.{host.slot}.200"
        lab.run(["ip", "-n", host.name, "addr", "add", f"{routed}/32", "dev", "lo"], timeout=30)
        lab.run(["ip", "route", "add", f"{routed}/32", "via", host.addr], timeout=30)
        host.spawn([sys.executable, "-c", MODE7_SERVER, "123", routed], log_name="mode7")
        _wait_udp_bound(host, 123)
        existing = Finding(Status.PASS, "config: no ntpd installed", [Evidence("/etc/ntp.conf", "absent")])
        res = HostResult(
            target=f"root@{routed}",
            checks=[CheckResult("Check-Security-06", "t", "medium", [existing], existing.message)],
        )
        scan_probe(res, SshTarget(routed, user="root", options=SshOptions(config_files=())), timeout=0.5)
        c06 = next(c for c in res.checks if c.id == "Check-Security-06")
        assert c06.status is Status.FAIL and c06.findings[0] is existing
        assert c06.summary.startswith(f"NTP on {routed}:123/udp answers monlist (mode 7) to {host.gateway}: 3 ")
        assert c06.summary.endswith(f"(observed from {host.gateway})")
        c15 = next(c for c in res.checks if c.id == "Check-Security-15")
        assert c15.status is Status.PASS  # every TCP port refused: nothing else listens


@pytest.mark.parametrize("open_resolver", [True, False])
def test_bind9_open_and_closed(tmp_path: Path, open_resolver: bool) -> None:
    require_netns()
    named = require_binary("named")
    acl = "any;" if open_resolver else "localhost;"
    conf = tmp_path / "named.conf"
    conf.write_text(
        f'options {{ directory "{tmp_path}"; pid-file "{tmp_path}/pid"; session-keyfile "{tmp_path}/sk";\n'
        f"  listen-on {{ any; }}; listen-on-v6 {{ none; }}; recursion yes; allow-recursion {{ {acl} }};\n"
        "  dnssec-validation no; };\ncontrols { };\n"
    )
    with netns_host() as host:
        host.spawn([named, "-g", "-u", "root", "-c", str(conf)], log_name="named")
        wait_for_tcp(host.addr, 53)
        obs = probe_dns(host.addr, timeout=3.0)
        want = "fail" if open_resolver else "pass"
        assert [(o.proto, o.verdict) for o in obs] == [("udp", want), ("tcp", want)], obs
        assert all(o.source == host.gateway for o in obs)
