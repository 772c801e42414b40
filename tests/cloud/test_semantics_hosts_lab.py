"""Neutron's semantics cross-checked with real hosts over SSH (`nectar-audit cloud --ssh-user root`):
lab namespace hosts running a real sshd, whose fixed IPs are those of real Neutron ports.

sx-open: its port has port security disabled, and a process listens on tcp/25: mail served to the world
although no security group opens tcp/25. sx-member: carries group sx-cluster (any protocol from its
members) and a Jupyter-like service on tcp/8888 (plaintext HTTP) that no rule opens to the world; its
fellow member sx-peer (known from the API only, left out by --limit) has SSH open to the world; it boots
from a snapshot, which the host audit settles for check 10 (only the key pair's key is authorised).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from nectar_audit.cli import main
from tests import lab
from tests.lab import sshd_hosts as S
from tests.lab._proc import DIE_WITH_PARENT, stop_process
from tests.lab.cloud_fakes import FakeNova
from tests.lab.openstack_lab import OpenStackLab

pytestmark = pytest.mark.lab


def listener(port: int) -> str:
    return (f"import socket,time\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(('0.0.0.0', {port})); s.listen()\ntime.sleep(3600)")


@dataclass
class Pair:
    report: dict[str, dict[str, Any]]
    open_port: str


@pytest.fixture(scope="module")
def pair(openstack_api: OpenStackLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    S.require_ssh_lab()
    base = tmp_path_factory.mktemp("sxhosts")
    key, pub = S.client_key(base)
    with S.ssh_host(base / "open", {"root": pub}, hostname="sx-open") as opened, \
            S.ssh_host(base / "member", {"root": pub}, hostname="sx-member") as member:
        procs = [subprocess.Popen([*DIE_WITH_PARENT, *h.local_argv()[:-2], sys.executable, "-c", listener(p)],
                                  start_new_session=True) for h, p in ((opened, 25), (member, 8888))]
        try:
            for h, p in ((opened, 25), (member, 8888)):
                lab.wait_until(lambda h=h, p=p: h.net.run(["ss", "-Htln", f"sport = :{p}"], text=True).stdout.strip()
                               != "", 10, f"the test listener on {p}")
            c = openstack_api.connect()
            net = c.network.create_network(name="sx-hosts")
            nova = FakeNova(openstack_api)
            image = nova.add_image("NeCTAR Debian 12 (Bookworm) amd64", default_user=None)
            snapshot = nova.add_image("member-golden", owner=openstack_api.project_id, default_user=None,
                                      visibility="private", snapshot_of=str(uuid.uuid4()))
            nova.add_keypair("sx-key", pub)
            ssh = c.network.create_security_group(name="sx-ssh")
            c.network.create_security_group_rule(security_group_id=ssh.id, direction="ingress", ethertype="IPv4",
                                                 protocol="tcp", port_range_min=22, port_range_max=22,
                                                 remote_ip_prefix="0.0.0.0/0")
            cluster = c.network.create_security_group(name="sx-cluster")
            for ethertype in ("IPv4", "IPv6"):
                c.network.create_security_group_rule(security_group_id=cluster.id, direction="ingress",
                                                     ethertype=ethertype, remote_group_id=cluster.id)
            ports = {}
            for host, name, groups in ((opened, "sx-open", None), (member, "sx-member", [cluster, ssh]),
                                       (None, "sx-peer", [cluster, ssh])):
                addr = host.addr if host else "10.222.0.9"
                prefix = addr.rsplit(".", 1)[0]
                sub = c.network.create_subnet(network_id=net.id, cidr=f"{prefix}.0/24", ip_version=4)
                kw: dict[str, Any] = {"security_groups": [g.id for g in groups]} if groups else \
                    {"security_groups": [], "port_security_enabled": False}
                port = c.network.create_port(network_id=net.id, device_id=str(uuid.uuid4()),
                                             device_owner="compute:nova",
                                             fixed_ips=[{"subnet_id": sub.id, "ip_address": addr}], **kw)
                nova.add_server(name, [port], key_name="sx-key", image_id=snapshot if name == "sx-member" else image,
                                groups=[g.name for g in groups or ()])
                ports[name] = port
            (base / "known_hosts").write_text(opened.known_hosts_line() + member.known_hosts_line())
            args = ["-i", str(key), "--known-hosts", str(base / "known_hosts"), "--ssh-user", "root"]
            with nova.mocker():
                result = CliRunner().invoke(main, ["cloud", *args, "--limit", "sx-open", "--limit", "sx-member",
                                                   "--format", "json"], env=openstack_api.env(),
                                            catch_exceptions=False)
            assert result.exit_code == 1, result.output[-3000:]
            report = {h["cloud"]["name"]: h for h in json.loads(result.stdout)["hosts"]}
            yield Pair(report, ports["sx-open"].id)
        finally:
            for proc in procs:
                stop_process(proc)


def cloud_findings(host: dict[str, Any], cid: str) -> list[tuple[str, str]]:
    check = next(c for c in host["checks"] if c["id"] == f"Check-Security-{cid}")
    return [(f["status"], f["message"]) for f in check["findings"] if f["message"].startswith("[cloud]")]


def test_both_hosts_audited(pair: Pair) -> None:
    assert set(pair.report) == {"sx-open", "sx-member"}
    assert all(h["cloud"]["host_audit"] == "ssh" and h["error"] is None for h in pair.report.values())


def test_unfiltered_port_mail_served_to_the_world_fails_02(pair: Pair) -> None:
    got = cloud_findings(pair.report["sx-open"], "02")
    assert len(got) == 1 and got[0][0] == "fail", got
    assert got[0][1].startswith(f"[cloud] {sys.executable.rsplit('/', 1)[1][:15]} (pid ")
    assert got[0][1].endswith(f"serves mail on tcp/25 and port security is disabled on port {pair.open_port}, so "
                              "the whole internet reaches it: a mail server on an instance should listen on "
                              "localhost only; relay through your institution's mail service")
    assert cloud_findings(pair.report["sx-open"], "18") == [
        ("pass", "[cloud] sshd's port tcp/22 is reachable (port security disabled)")]


def test_listener_open_to_members_in_plaintext_warns_15(pair: Pair) -> None:
    host = pair.report["sx-member"]
    got = [f for f in cloud_findings(host, "15") if "sx-cluster" in f[1]]
    assert len(got) == 1, cloud_findings(host, "15")  # IPv4 and IPv6 rules: one finding
    status, message = got[0]
    assert status == "warn"
    assert message.startswith("[cloud] jupyter on tcp/8888 (")
    assert message.endswith("serves in plaintext to the 1 instance(s) carrying group 'sx-cluster': any of them "
                            "can read or replay its traffic")
    check = next(c for c in host["checks"] if c["id"] == "Check-Security-15")
    ev = [e["detail"] for f in check["findings"] if "sx-cluster" in f["message"] for e in f["evidence"]]
    assert any(e.startswith("members of group 'sx-cluster' (this instance excluded): sx-peer (10.222.0.9)")
               for e in ev), ev
    assert any(e.startswith("member(s) sx-peer (10.222.0.9) open to the world: security group 'sx-ssh'")
               for e in ev), ev
    assert any("reachable only through this rule" in e and ":8888" in e for e in ev), ev
    # sshd is reached from the world anyway: the membership adds nothing there.
    assert not any("reachable only through this rule" in e and ":22 " in e for e in ev), ev


def test_snapshot_settled_by_the_host_10(pair: Pair) -> None:
    got = cloud_findings(pair.report["sx-member"], "10")
    assert ("pass", "[cloud] key pair 'sx-key' injected by Nova is authorised for root") in got, got
    assert got[-1][0] == "pass" and got[-1][1].startswith("[cloud] booted from instance snapshot 'member-golden' "
                                                         "(owner ")
    assert got[-1][1].endswith("not an official Nectar image; every key authorised on the host came from the "
                               "metadata service")
    assert not any(s == "manual" for s, _ in got)
