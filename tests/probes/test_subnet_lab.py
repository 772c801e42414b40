"""Vantage on the target's own subnet: a server that trusts its local networks (BIND's default
allow-recursion { localnets; localhost; }) answers a prober attached to the same subnet and may refuse
the Internet. From there a recursion or NTP failure is a warning that says so; through a router it is a
failure. Whether the target is on the prober's subnet comes from the prober's own routing table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nectar_audit.model import Status
from nectar_audit.probes import Observation
from nectar_audit.probes.onlink import on_link_network
from nectar_audit.probes.run import to_checks
from tests import REPO, SAMPLES, lab

ROOT = REPO
SAMPLES = SAMPLES / "routes"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def _tables() -> tuple[str, str]:
    return ((SAMPLES / "proc-net-route.debian12").read_text(), (SAMPLES / "proc-net-ipv6_route.debian12").read_text())


@pytest.mark.parametrize(("target", "network"), [
    ("192.0.2.77", "192.0.2.0/24"),          # the interface's own subnet
    ("198.51.100.7", None),                  # through the gateway 192.0.2.1
    ("198.51.100.200", "198.51.100.128/25"),  # a more specific on-link route beats the routed /24
    ("203.0.113.5", None),                   # an unreachable route
    ("10.0.0.1", None),                      # no route at all (these tables have no default route)
    ("2001:db8:1::99", "2001:db8:1::/64"),
    ("2001:db8:2::5", None),                 # via 2001:db8:1::1
    ("2001:db8:3::1", None),                 # unreachable (the kernel puts it on lo)
    ("fe80::1%d0", "fe80::/64"),
    ("::1", None),                           # the host itself is said elsewhere
    ("not-an-address", None),
])
def test_on_link_network_from_real_route_tables(target: str, network: str | None) -> None:
    """Tables read from a namespace with on-link, routed and unreachable routes (ip route add ...)."""
    assert on_link_network(target, *_tables()) == network


def test_on_link_network_ignores_garbage() -> None:
    assert on_link_network("10.1.1.1", "Iface Destination\nbad line\neth0 zz 00 0001 0 0 0 00FFFFFF", "x y") is None


def test_subnet_vantage_turns_recursion_and_ntp_failures_into_warnings() -> None:
    dns = Observation("05", "10.0.0.6", 53, "udp", "10.0.0.5", "fail", "DNS recurses for 10.0.0.5: open resolver")
    ntp = Observation("06", "10.0.0.6", 123, "udp", "10.0.0.5", "fail", "answers monlist")
    ssh = Observation("01", "10.0.0.6", 22, "tcp", "10.0.0.5", "fail", "offers password")
    ok = Observation("05", "10.0.0.6", 53, "tcp", "10.0.0.5", "pass", "refuses recursion")
    near = {c.id[-2:]: c for c in to_checks([dns, ntp, ssh, ok], on_link="10.0.0.0/24")}
    assert near["05"].status is Status.WARN and near["06"].status is Status.WARN
    assert near["05"].findings[0].message == (
        "DNS recurses for 10.0.0.5: open resolver (observed from 10.0.0.5); 10.0.0.5 is on the target's own "
        "subnet 10.0.0.0/24: servers that trust their local networks (BIND's default allow-recursion "
        "{ localnets; localhost; }, an NTP restrict or chrony allow line for the LAN) answer it, so this shows "
        "exposure to that subnet (on a shared network, every instance on it), not yet to the Internet; to "
        "settle it, run `nectar-audit probe 10.0.0.6` from outside the subnet")
    # Password login does not depend on the client's subnet (as a rule): the failure stands, noted.
    assert near["01"].status is Status.FAIL
    assert any(e.source == "vantage" for e in near["01"].findings[0].evidence)
    # A refusal seen from the subnet stands as a pass.
    assert near["05"].findings[1].status is Status.PASS
    far = {c.id[-2:]: c for c in to_checks([dns, ntp, ssh])}
    assert far["05"].status is Status.FAIL and far["06"].status is Status.FAIL
    assert not any(e.source == "vantage" for c in far.values() for f in c.findings for e in f.evidence)


@pytest.mark.lab
def test_on_link_network_inside_a_namespace() -> None:
    """The function on a live routing table: a lab host's own subnet is on-link, an address routed
    through its gateway is not."""
    lab.require_netns()
    with lab.netns_host() as host:
        lab.run(["ip", "-n", host.name, "route", "add", "192.0.2.0/24", "via", host.gateway], timeout=30)
        code = ("from nectar_audit.probes.onlink import local_on_link as f; "
                f"print(f({host.gateway!r}), f('192.0.2.9'), f('198.51.100.1'))")
        r = host.run([sys.executable, "-c", code], text=True, env=ENV, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"10.200.{host.slot}.0/24", "None", "None"]


def _probe(address: str) -> dict[str, dict[str, object]]:
    r = subprocess.run([sys.executable, "-m", "nectar_audit", "probe", address, "--ports", "53", "--format", "json",
                        "--timeout", "2"], capture_output=True, text=True, timeout=60, env=ENV)
    assert r.returncode in (0, 1), r.stderr
    (h,) = json.loads(r.stdout)["hosts"]
    assert h["error"] is None
    return {c["id"][-2:]: c for c in h["checks"]}


@pytest.mark.lab
@pytest.mark.parametrize("acl", ["", "allow-recursion { any; };"])
def test_bind_seen_from_its_subnet_warns_and_through_a_router_fails(tmp_path: Path, acl: str) -> None:
    """BIND with its default recursion ACL (localnets; localhost) and as an open resolver, probed by
    `nectar-audit probe` from this machine: at its subnet address (on-link here) a warning naming the
    subnet; at an address of the host routed through it (a /32 on its lo, as clouds route floating
    addresses), the open resolver fails."""
    lab.require_netns()
    named = lab.require_binary("named")
    conf = tmp_path / "named.conf"
    conf.write_text(
        f'options {{ directory "{tmp_path}"; pid-file "{tmp_path}/pid"; session-keyfile "{tmp_path}/sk";\n'
        f"  listen-on {{ any; }}; listen-on-v6 {{ none; }}; recursion yes; {acl}\n"
        "  dnssec-validation no; };\ncontrols { };\n"
    )
    with lab.netns_host() as host:
        routed = f"10.200.{host.slot}.200"
        lab.run(["ip", "-n", host.name, "addr", "add", f"{routed}/32", "dev", "lo"], timeout=30)
        lab.run(["ip", "route", "add", f"{routed}/32", "via", host.addr], timeout=30)
        host.spawn([named, "-g", "-u", "root", "-c", str(conf)], log_name="named")
        lab.wait_for_tcp(host.addr, 53)
        lab.wait_for_tcp(routed, 53)
        near = _probe(host.addr)["05"]
        far = _probe(routed)["05"]
    assert near["status"] == "warn", near
    assert f"on the target's own subnet 10.200.{host.slot}.0/24" in near["summary"]
    assert "open resolver" in near["summary"]
    # Through the router BIND still sees a source of its own subnet (this lab has no other), so its
    # default ACL answers too; what matters here is the prober's side: no subnet vantage, a failure.
    assert far["status"] == "fail", far
    assert "own subnet" not in json.dumps(far)
