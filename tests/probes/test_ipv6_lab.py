"""Probes over IPv6 (issue 6): a namespace with an IPv6 address (nodad), real daemons listening on it, and
ip6 rules in its nftables. Every probe reaches the IPv6 address, reports its IPv6 source, and writes
endpoints as [address]:port."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nectar_audit.probes.run import observe
from tests import REPO, lab
from tests.probes.test_probes_lab import MODE7_SERVER

pytestmark = pytest.mark.lab
ROOT = REPO
LAB6 = ipaddress.ip_network("fd00:200::/32")  # lab IPv6 space: never routed off the machine


def _ensure_unreachable() -> None:
    """Like the lab's `unreachable 10.200.0.0/16`: traffic to a torn-down IPv6 lab host stays here."""
    routes = lab.run(["ip", "-6", "route", "show", "table", "all"], timeout=15, text=True).stdout
    if str(LAB6) in routes:
        return
    for line in routes.splitlines():
        word = line.split()[0] if line.split() else ""
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(word, strict=False)
            if net.prefixlen and isinstance(net, ipaddress.IPv6Network) and net.overlaps(LAB6):
                pytest.fail(f"a route of this machine overlaps the lab's IPv6 space {LAB6}: {line}")
    lab.run(["ip", "-6", "route", "add", "unreachable", str(LAB6)], timeout=15, check=False)


@contextlib.contextmanager
def v6_host() -> Iterator[tuple[lab.NetnsHost, str, str]]:
    """(host, its IPv6 address, the root side's IPv6 address)."""
    lab.require_netns()
    _ensure_unreachable()
    with lab.netns_host() as host:
        addr, gw = f"fd00:200:{host.slot:x}::2", f"fd00:200:{host.slot:x}::1"
        lab.run(["ip", "addr", "add", f"{gw}/64", "dev", host.veth, "nodad"], timeout=15)
        lab.run(["ip", "-n", host.name, "addr", "add", f"{addr}/64", "dev", "eth0", "nodad"], timeout=15)
        yield host, addr, gw


def wait_tcp6(addr: str, port: int) -> None:
    assert ipaddress.ip_address(addr) in LAB6

    def ok() -> bool:
        try:
            with socket.create_connection((addr, port), timeout=1.0):
                return True
        except OSError:
            return False

    lab.wait_until(ok, 15, f"TCP [{addr}]:{port}")


NFT6 = """table ip6 f {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept
    tcp dport { 22, 53, 8080, 8443, 9000 } accept
    udp dport { 53, 123 } accept
  }
}
"""


def test_probes_over_ipv6(tmp_path: Path) -> None:
    nft = lab.require_binary("nft")
    sshd = lab.require_binary("sshd")
    unbound = lab.require_binary("unbound")
    openssl = lab.require_binary("openssl")
    subprocess.run([lab.require_binary("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "hk")],
                   check=True, timeout=30)
    (tmp_path / "sshd_config").write_text(
        f"ListenAddress ::\nHostKey {tmp_path}/hk\nStrictModes no\nUsePAM no\nPidFile {tmp_path}/sshd.pid\n"
        "PasswordAuthentication yes\nKbdInteractiveAuthentication no\n")
    (tmp_path / "unbound.conf").write_text(
        'server:\n    interface: ::0\n    port: 53\n    username: ""\n    chroot: ""\n'
        f'    directory: "{tmp_path}"\n    pidfile: ""\n    use-syslog: no\n    do-ip4: no\n'
        '    module-config: "iterator"\n    access-control: ::/0 allow\nremote-control:\n    control-enable: no\n')
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem"), "-days", "30",
                    "-subj", "/CN=v6.example.test"], check=True, timeout=60, capture_output=True)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    with v6_host() as (host, a, g):
        assert host.run([nft, "-f", "-"], input=NFT6, text=True).returncode == 0
        host.spawn([sshd, "-D", "-f", str(tmp_path / "sshd_config"), "-E", str(tmp_path / "sshd.log")],
                   log_name="sshd")
        host.spawn([unbound, "-d", "-c", str(tmp_path / "unbound.conf")], log_name="unbound")
        host.spawn([sys.executable, "-c", MODE7_SERVER, "123", "6"], log_name="mode7")
        host.spawn([sys.executable, "-m", "http.server", "--bind", "::", "8080"], log_name="http")
        host.spawn([openssl, "s_server", "-6", "-accept", "8443", "-cert", str(tmp_path / "c.pem"), "-key",
                    str(tmp_path / "k.pem"), "-www", "-quiet"], log_name="s_server")
        for port in (22, 53, 8080, 8443):
            wait_tcp6(a, port)
        lab.wait_until(lambda: ":123 " in host.run(["ss", "-Hlun"], text=True).stdout, 10, "udp 123")
        time.sleep(0.2)
        obs = observe(a, [22, 53, 123, 8080, 8443, 9000, 9001], timeout=1.0)
        r = subprocess.run([sys.executable, "-m", "nectar_audit", "probe", a, "--ports", "9000,8080", "--format",
                            "json", "--timeout", "1"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])})
    assert {o.source for o in obs} == {g} and {o.target for o in obs} == {a}
    got = {(o.check, o.port, o.proto): (o.verdict, o.message) for o in obs}
    e = f"[{a}]"
    assert got[("15", 22, "tcp")] == ("manual", f"{e}:22/tcp open and served to {g}: make sure it is meant to be")
    assert got[("13", 22, "tcp")][0] == "pass"
    fails = [o.message for o in obs if o.check == "01" and o.verdict == "fail"]
    assert fails[0] == (f"SSH on {e}:22 offers password authentication to {g} for user 'nectar-audit-no-such-user' "
                        "(offered: publickey, password)")
    for proto in ("udp", "tcp"):
        verdict, message = got[("05", 53, proto)]
        assert verdict == "fail" and message.startswith(f"DNS on {e}:53/{proto} recurses for {g} (")
    monlist = [o for o in obs if o.check == "06"][2]
    assert (monlist.verdict, monlist.message) == ("fail", (
        f"NTP on {e}:123/udp answers monlist (mode 7) to {g}: 3 packets, 1320 bytes out for 48 in (amplification "
        "x27.5)"))
    assert got[("13", 8080, "tcp")] == (
        "fail", f"{e}:8080/tcp: plain HTTP (HTTP/1.0 200 OK) without redirect to https (observed from {g})")
    verdict, message = got[("13", 8443, "tcp")]
    assert verdict == "pass" and message.startswith(f"{e}:8443/tcp: TLS: TLSv1.3, certificate CN=v6.example.test, ")
    assert got[("15", 9000, "tcp")] == (
        "pass", f"{e}:9000/tcp refused: open with nothing listening (or a firewall rejects with a reset)")
    assert got[("15", 9001, "tcp")] == ("pass", f"{e}:9001/tcp filtered (no answer in 1s)")
    assert r.returncode == 1, r.stderr
    (h,) = json.loads(r.stdout)["hosts"]
    assert h["target"] == f"probe:{a}"
    assert {c["id"][-2:]: c["status"] for c in h["checks"]} == {"13": "fail", "15": "manual"}
    assert all(f"(observed from {g})" in f["message"] for c in h["checks"] for f in c["findings"])
