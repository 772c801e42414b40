"""Which address and which ports `scan --probe` probes (issue 6): the host's own evidence (non-loopback
listeners, the ports its firewall lets in) plus the defaults, bounded; an ssh_config alias is probed at its
HostName. Unit tests of the pure planner, then lab tests on real evidence and a real `scan --probe`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nectar_audit.catalog import all_needs
from nectar_audit.facts.firewall.model import PortRange, Verdict
from nectar_audit.facts.system.sockets import Listener
from nectar_audit.probes import DEFAULT_PORTS
from nectar_audit.probes.plan import MAX_PORTS, EvidenceTap, PortPlan, plan_ports, resolve_address
from nectar_audit.targets.script_runner import ScriptTarget
from nectar_audit.targets.ssh import SshTarget
from nectar_audit.targets.ssh_options import SshOptions
from tests import REPO, lab
from tests.lab import sshd_hosts as S

ROOT = REPO
OPEN = Verdict(True, "inet f input: tcp dport 9000 accept")


def L(proto: str, address: str, port: int, process: str = "p") -> Listener:
    # As ss reports them: IPV6_V6ONLY known (False: a "::" socket takes IPv4 too).
    v6 = ":" in address
    return Listener(proto, 6 if v6 else 4, address, port, 100, process, "root", v6only=False if v6 else None)


def R(proto: str, lo: int, hi: int, verdict: Verdict = OPEN) -> PortRange:
    return PortRange(proto, 4, lo, hi, verdict)


def test_plan_listeners_firewall_then_defaults() -> None:
    listeners = [
        L("tcp", "0.0.0.0", 22, "sshd"),
        L("tcp", "::", 8443, "nginx"),
        L("tcp", "127.0.0.1", 5432, "postgres"),  # loopback: not probed
        L("tcp", "10.0.0.5", 3000, "grafana"),  # a specific address: one of the host's own
        L("udp", "0.0.0.0", 123, "chronyd"),
        L("udp", "0.0.0.0", 5353, "avahi-daemon"),  # no generic UDP probe
        L("udp", "0.0.0.0", 68, "dhclient"),  # a client, not a service
    ]
    ranges = [
        R("tcp", 9000, 9000),
        R("tcp", 10000, 10003),
        R("tcp", 20000, 30000),  # too wide
        R("tcp", 6000, 6000, Verdict(False, "only from", sources=("10.0.0.0/8",))),  # restricted: probed
        R("tcp", 7000, 7000, Verdict(False, "drop")),  # closed: not probed
        R("udp", 53, 53),
        R("udp", 161, 161),  # UDP other than DNS/NTP: not probed
    ]
    plan = plan_ports(listeners, ranges)
    want = {22, 8443, 3000, 123, 9000, 10000, 10001, 10002, 10003, 6000, 53, *DEFAULT_PORTS}
    assert plan.ports == tuple(sorted(want))
    assert 5432 not in plan.ports and 7000 not in plan.ports and 5353 not in plan.ports and 161 not in plan.ports
    assert plan.why[8443] == "listener [::]:8443/tcp by nginx (pid 100, user root)"
    assert plan.why[9000] == "the host firewall lets in 9000/tcp: open (inet f input: tcp dport 9000 accept)"
    assert plan.why[6000].startswith("the host firewall lets in 6000/tcp: only from 10.0.0.0/8")
    assert plan.why[22].startswith("listener 0.0.0.0:22/tcp by sshd")  # a listener before a default
    assert plan.why[80] == "a default port"
    assert plan.own_addresses == frozenset({"10.0.0.5"})
    assert plan.notes == (
        "not probed (no harmless generic UDP probe): 5353/udp (avahi-daemon)",
        "firewall ranges too wide to probe port by port: 20000-30000/tcp (IPv4)",
    )


def test_plan_is_bounded() -> None:
    listeners = [L("tcp", "0.0.0.0", p) for p in range(30000, 30100)]
    plan = plan_ports(listeners, None)
    assert len(plan.ports) == MAX_PORTS
    assert set(plan.ports) == set(range(30000, 30000 + MAX_PORTS))  # listeners first, defaults dropped
    assert plan.notes[-1].startswith(f"at most {MAX_PORTS} ports are probed; not probed: 30064, 30065")
    assert plan.notes[-1].endswith(", ".join(str(p) for p in DEFAULT_PORTS))


def test_plan_without_evidence_is_the_defaults() -> None:
    plan = plan_ports(None, None)
    assert plan.ports == tuple(sorted(DEFAULT_PORTS))
    assert plan.notes == ("the host's listeners are unknown: its firewall and the default ports were probed",)
    assert PortPlan().ports == DEFAULT_PORTS


def test_alias_is_probed_at_its_hostname(tmp_path: Path) -> None:
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        "Host labalias\n  HostName 192.0.2.44\n  User root\n"
        "Host jumped\n  HostName 2001:db8::7\n  ProxyJump bastion.example\n"
        "Host named\n  HostName localhost\n"
    )
    opts = SshOptions(config_files=(str(cfg),))
    assert resolve_address(SshTarget.from_spec("labalias", opts)) == (
        "192.0.2.44",
        ["ssh_config alias 'labalias' has HostName 192.0.2.44"],
    )
    address, notes = resolve_address(SshTarget.from_spec("root@jumped", opts))
    assert address == "2001:db8::7"
    assert notes[1] == "the audit reached jumped through ProxyJump bastion.example; the probes go directly from here"
    address, notes = resolve_address(SshTarget.from_spec("named", opts))
    assert address in ("127.0.0.1", "::1") and notes[-1] == f"localhost resolves to {address}"
    # A literal address target is used as it is.
    assert resolve_address(SshTarget.from_spec("root@192.0.2.9", SshOptions(config_files=()))) == ("192.0.2.9", [])


def test_tap_delegates_and_learns() -> None:
    class Fake:
        kind = "ssh"
        name = "fake"
        host = "192.0.2.1"
        notices: tuple[str, ...] = ()

        def gather(self, needs: object) -> object:
            raise RuntimeError("not called")

    tap = EvidenceTap(Fake())
    assert (tap.kind, tap.name, tap.host) == ("ssh", "fake", "192.0.2.1")
    assert tap.probe_plan is None


# -- lab: real evidence from a namespace host ----------------------------------------------------------
NFT = """table inet f {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    tcp dport { 22, 8080, 9000 } accept
    udp dport 123 accept
    tcp dport 10000-10002 accept
    reject with tcp reset
    reject
  }
}
"""
UDP_LISTENER = "import socket,sys,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "\
    "s.bind(('0.0.0.0',int(sys.argv[1]))); time.sleep(3600)"


@pytest.mark.lab
def test_plan_from_real_evidence() -> None:
    lab.require_netns()
    nft = lab.require_binary("nft")
    with lab.netns_host() as host:
        assert host.run([nft, "-f", "-"], input=NFT, text=True).returncode == 0
        host.spawn([sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "8080"], log_name="http")
        host.spawn([sys.executable, "-c", UDP_LISTENER, "5353"], log_name="udp5353")
        host.spawn([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "8081"], log_name="loopback")
        lab.wait_for_tcp(host.addr, 8080)
        lab.wait_until(lambda: ":5353 " in host.run(["ss", "-Hlun"], text=True).stdout, 10, "udp 5353")
        lab.wait_until(lambda: ":8081 " in host.run(["ss", "-Hltn"], text=True).stdout, 10, "tcp 8081")
        target = EvidenceTap(ScriptTarget(host.name, ["ip", "netns", "exec", host.name, "sh", "-s"]))
        target.gather(all_needs())
    plan = target.probe_plan
    assert plan is not None
    assert plan.why[8080].startswith("listener 0.0.0.0:8080/tcp by python")
    assert plan.why[9000] == (
        "the host firewall lets in 9000/tcp: open (inet f input: tcp dport { 22, 8080, 9000 } accept)")
    assert {10000, 10001, 10002} <= set(plan.ports)
    assert 8081 not in plan.ports  # loopback only
    assert plan.notes[0].startswith("not probed (no harmless generic UDP probe): 5353/udp (python")
    assert set(DEFAULT_PORTS) <= set(plan.ports)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "nectar_audit", *args], capture_output=True, text=True,
                          timeout=180, env=env, cwd=cwd)


@pytest.mark.lab
def test_scan_probe_alias_uses_hostname_and_host_evidence(tmp_path: Path) -> None:
    """`scan --probe labalias`: the probes go to the alias's HostName, on the ports the host's own listeners
    (8080, not a default port) and firewall (9000, nothing listening) name, plus the defaults."""
    S.require_ssh_lab()
    nft = lab.require_binary("nft")
    key, pub = S.client_key(tmp_path / "client")

    def before(net: lab.NetnsHost) -> None:
        assert net.run([nft, "-f", "-"], input=NFT, text=True).returncode == 0
        net.spawn([sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "8080"], log_name="http")

    with S.ssh_host(tmp_path / "h", {"root": pub}, hostname="lab-probe", before_start=before) as h:
        lab.wait_for_tcp(h.addr, 8080)
        known = tmp_path / "known_hosts"
        known.write_text(h.known_hosts_line())
        cfg = tmp_path / "ssh_config"
        cfg.write_text(f"Host labalias\n  HostName {h.addr}\n  User root\n  IdentityFile {key}\n"
                       f"  UserKnownHostsFile {known}\n")
        r = _cli("scan", "labalias", "-F", str(cfg), "--probe", "--checks", "15", "--format", "json")
    assert r.returncode in (0, 1), r.stderr
    (host,) = json.loads(r.stdout)["hosts"]
    assert host["error"] is None
    findings = [f for c in host["checks"] for f in c["findings"]]
    probes = [f for f in findings if any(e["source"].startswith("probe ") for e in f["evidence"])]
    targets = {e["source"].split()[1].rsplit(":", 1)[0] for f in probes for e in f["evidence"]
               if e["source"].startswith("probe 1")}
    assert targets == {h.addr}  # never the alias string, never another address
    msgs = {f["message"] for f in probes}
    gw = h.net.gateway
    assert f"{h.addr}:8080/tcp open and served to {gw}: make sure it is meant to be (observed from {gw})" in msgs
    assert (f"{h.addr}:9000/tcp refused: open with nothing listening (or a firewall rejects with a reset) "
            f"(observed from {gw})") in msgs
    assert f"{h.addr}:8080/tcp: plain HTTP (HTTP/1.0 200 OK) without redirect to https (observed from {gw})" in msgs
    why = {e["detail"] for f in probes for e in f["evidence"] if e["source"] == "probe plan"}
    assert any(d.startswith("port 8080 probed: listener 0.0.0.0:8080/tcp") for d in why), why
    assert "port 9000 probed: the host firewall lets in 9000/tcp: open (inet f input: tcp dport { 22, 8080, 9000 } " \
        "accept)" in why
    assert f"ssh_config alias 'labalias' has HostName {h.addr}" in why
    ssh = next(c for c in host["checks"] if c["id"] == "Check-Security-01")
    assert ssh["status"] == "pass"  # PasswordAuthentication no: only publickey offered
