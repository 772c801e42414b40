"""The cloud cross-check end to end: instances whose Neutron ports carry the fixed IPs of lab namespace
hosts running a real sshd, audited with `nectar-audit cloud --ssh-user root`.

lab-web: sshd on 22 and a service on 9000; its groups open tcp/22 and tcp/8080 (nothing there) to the
world. lab-moved: sshd moved to 2222 while its group still opens only tcp/22.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from nectar_audit.cli import main
from tests import lab
from tests.lab import sshd_hosts as S
from tests.lab._proc import DIE_WITH_PARENT, stop_process
from tests.lab.cloud_fakes import FakeNova
from tests.lab.openstack_lab import OpenStackLab

pytestmark = pytest.mark.lab

FOREIGN_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl hand-added"
# One process holding three listeners: 9000 (no rule opens it), 7000 (opened, but the host firewall drops
# it), 25 (opened to the world: a mail port served to the internet).
LISTENERS = ("import socket,time\nkeep=[]\nfor p in (9000, 7000, 25):\n    s=socket.socket(); "
             "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', p)); s.listen(); "
             "keep.append(s)\ntime.sleep(3600)")
HOST_RULES = "table inet filter {\n chain input {\n  type filter hook input priority 0; policy accept;\n" \
             "  tcp dport 7000 drop\n }\n}\n"


@dataclass
class Fleet:
    api: OpenStackLab
    nova: FakeNova
    web: S.SshLabHost
    moved: S.SshLabHost
    args: list[str]


@pytest.fixture(scope="module")
def fleet(openstack_api: OpenStackLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    S.require_ssh_lab()
    base = tmp_path_factory.mktemp("cloudhosts")
    key, pub = S.client_key(base)
    with S.ssh_host(base / "web", {"root": pub + "\n" + FOREIGN_KEY, "auditor": pub},
                    hostname="lab-web") as web, \
            S.ssh_host(base / "moved", {"root": pub}, hostname="lab-moved", port=2222) as moved:
        # Inside the host's own PID namespace, where the audit's ss sees who owns the socket.
        svc = subprocess.Popen([*DIE_WITH_PARENT, *web.local_argv()[:-2], sys.executable, "-c", LISTENERS],
                               start_new_session=True)
        lab.wait_until(lambda: web.net.run(["ss", "-Htln", "sport = :25"], text=True).stdout.strip() != "",
                       10, "the test listeners")
        (base / "rules.nft").write_text(HOST_RULES)
        web.net.run(["nft", "-f", str(base / "rules.nft")], check=True)
        c = openstack_api.connect()
        net = c.network.create_network(name="lab-hosts")
        nova = FakeNova(openstack_api)
        image = nova.add_image("NeCTAR Debian 12 (Bookworm) amd64", default_user="auditor")
        nova.add_keypair("lab-key", pub)
        ssh_only = c.network.create_security_group(name="ssh-only")
        c.network.create_security_group_rule(security_group_id=ssh_only.id, direction="ingress", ethertype="IPv4",
                                             protocol="tcp", port_range_min=22, port_range_max=22,
                                             remote_ip_prefix="0.0.0.0/0")
        web_sg = c.network.create_security_group(name="web-8080")
        for port, remote in ((8080, "0.0.0.0/0"), (7000, "0.0.0.0/0"), (25, "0.0.0.0/0"), (8443, "192.0.2.0/24")):
            c.network.create_security_group_rule(security_group_id=web_sg.id, direction="ingress", ethertype="IPv4",
                                                 protocol="tcp", port_range_min=port, port_range_max=port,
                                                 remote_ip_prefix=remote)
        for host, name, groups in ((web, "lab-web", [ssh_only, web_sg]), (moved, "lab-moved", [ssh_only])):
            prefix = host.addr.rsplit(".", 1)[0]
            sub = c.network.create_subnet(network_id=net.id, cidr=f"{prefix}.0/24", ip_version=4)
            port = c.network.create_port(network_id=net.id, device_id=str(uuid.uuid4()), device_owner="compute:nova",
                                         fixed_ips=[{"subnet_id": sub.id, "ip_address": host.addr}],
                                         security_groups=[g.id for g in groups])
            nova.add_server(name, [port], key_name="lab-key", image_id=image, groups=[g.name for g in groups])
        (base / "known_hosts").write_text(web.known_hosts_line() + moved.known_hosts_line())
        (base / "ssh_config").write_text(f"Host {moved.addr}\n    Port 2222\n")
        args = ["-i", str(key), "--known-hosts", str(base / "known_hosts"), "-F", str(base / "ssh_config"),
                "--ssh-user", "root"]
        try:
            yield Fleet(openstack_api, nova, web, moved, args)
        finally:
            stop_process(svc)


def run_cloud(f: Fleet, *args: str) -> Result:
    with f.nova.mocker():
        return CliRunner().invoke(main, ["cloud", *f.args, "--limit", "lab-*", *args], env=f.api.env(),
                                  catch_exceptions=False)


def cloud_findings(host: dict[str, Any], cid: str) -> list[tuple[str, str]]:
    check = next(c for c in host["checks"] if c["id"] == f"Check-Security-{cid}")
    return [(f["status"], f["message"]) for f in check["findings"] if f["message"].startswith("[cloud]")]


@pytest.fixture(scope="module")
def report(fleet: Fleet) -> dict[str, dict[str, Any]]:
    result = run_cloud(fleet, "--format", "json")
    assert result.exit_code == 1, result.output
    return {h["cloud"]["name"]: h for h in json.loads(result.stdout)["hosts"]}


def test_hosts_audited_over_ssh(report: dict[str, dict[str, Any]], fleet: Fleet) -> None:
    web, moved = report["lab-web"], report["lab-moved"]
    assert web["error"] is None and moved["error"] is None
    assert web["hostname"] == "lab-web" and moved["hostname"] == "lab-moved"  # from the host itself
    assert web["cloud"]["host_audit"] == "ssh"
    assert web["target"] == f"openstack:lab-web (root@{fleet.web.addr})"
    # Host checks ran too (not only the cloud ones).
    assert {c["id"] for c in web["checks"]} >= {"Check-Security-01", "Check-Security-17"}


def test_port_open_with_no_service_15(report: dict[str, dict[str, Any]]) -> None:
    web = cloud_findings(report["lab-web"], "15")
    assert ("fail", "[cloud] tcp/8080 IPv4 is open in the security groups but nothing listens there: a port "
                    "open with no service bound") in web
    assert any(s == "pass" and "tcp/22 IPv4 → sshd" in m for s, m in web), web
    # Open to one network only: graded like the host firewall side of 15 (warn, not fail).
    assert ("warn", "[cloud] tcp/8443 IPv4 is open in the security groups (to 192.0.2.0/24) but nothing listens "
                    "there: a port open with no service bound") in web
    assert any(s == "fail" and m.startswith("[cloud] tcp/7000 IPv4 is open in the security groups and python")
               and m.endswith("but the host firewall drops it: the rule opens nothing but a way to probe")
               for s, m in web), web
    moved = cloud_findings(report["lab-moved"], "15")
    assert any(s == "fail" and m.startswith("[cloud] tcp/22 IPv4 is open") for s, m in moved), moved


def test_two_layers_08(report: dict[str, dict[str, Any]]) -> None:
    web = report["lab-web"]
    check = next(c for c in web["checks"] if c["id"] == "Check-Security-08")
    cloud = [f for f in check["findings"] if f["message"].startswith("[cloud]")]
    assert cloud[0]["status"] == "warn"
    # sshd listens on :: too, and the groups open tcp/22 for IPv4 only.
    assert cloud[0]["message"].startswith("[cloud] only the security groups protect tcp/22 IPv6 (sshd (pid ")
    assert f"tcp/9000 IPv4 ({Path(sys.executable).name[:15]} (pid " in cloud[0]["message"]
    table = [e["detail"] for e in cloud[0]["evidence"]]
    assert any(row.startswith("tcp/8080 IPv4: cloud allows 0.0.0.0/0 (web-8080) | host firewall: open")
               and row.endswith("listening: nothing") for row in table), table
    assert any(row.startswith("tcp/9000 IPv4: cloud allows closed |") for row in table), table


def test_mail_served_to_the_world_02(report: dict[str, dict[str, Any]]) -> None:
    web = cloud_findings(report["lab-web"], "02")
    assert len(web) == 1 and web[0][0] == "fail", web
    # The listener's command name is the interpreter's file name as exec'd (python, python3, ...).
    assert web[0][1].startswith(f"[cloud] {Path(sys.executable).name[:15]} (pid ")
    assert "serves mail on tcp/25 and the security groups let the whole internet reach it" in web[0][1]
    assert cloud_findings(report["lab-moved"], "02")[0][0] == "pass"


def test_ssh_port_vs_groups_18(report: dict[str, dict[str, Any]]) -> None:
    moved = cloud_findings(report["lab-moved"], "18")
    assert ("fail", "[cloud] sshd listens on tcp/2222 but no security group rule allows it: SSH is unreachable "
                    "from outside the project (locked out)") in moved
    assert ("fail", "[cloud] sshd moved off port 22 but the security groups still open tcp/22, where nothing "
                    "listens") in moved
    assert cloud_findings(report["lab-web"], "18") == [
        ("pass", "[cloud] sshd's port tcp/22 is allowed by the security groups")]


def test_key_pair_against_authorized_keys_10(report: dict[str, dict[str, Any]]) -> None:
    web = cloud_findings(report["lab-web"], "10")
    assert ("pass", "[cloud] key pair 'lab-key' injected by Nova is authorised for auditor, root") in web
    assert any(s == "warn" and "1 authorised key(s) did not come from the metadata service" in m
               and "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU" in m for s, m in web), web
    assert cloud_findings(report["lab-moved"], "10") == [
        ("pass", "[cloud] key pair 'lab-key' injected by Nova is authorised for root")]


def test_official_image_default_user_is_expected(report: dict[str, dict[str, Any]]) -> None:
    # The image's default_user (an official Nectar image) is the account cloud-init made: its NOPASSWD
    # sudo is the platform default (warn), where any other account's is a failure.
    check = next(c for c in report["lab-web"]["checks"] if c["id"] == "Check-Security-16")
    auditor = [(f["status"], f["message"]) for f in check["findings"] if f["message"].startswith("auditor ")]
    assert auditor and auditor[0][0] == "warn", check["findings"]
    assert auditor[0][1].startswith("auditor (the cloud image's default user) can run any command as root")


def test_saved_bundles_rejudge_to_the_same_result(fleet: Fleet, tmp_path: Path,
                                                  report: dict[str, dict[str, Any]]) -> None:
    result = run_cloud(fleet, "--format", "json", "--save-evidence", str(tmp_path))
    assert result.exit_code == 1
    bundle = next(tmp_path.glob("openstack_lab-web*.json"))
    again = CliRunner().invoke(main, ["scan", f"evidence:{bundle}", "--format", "json"])
    host = json.loads(again.stdout)["hosts"][0]
    live = next(h for h in json.loads(result.stdout)["hosts"] if h["cloud"]["name"] == "lab-web")
    assert host["checks"] == live["checks"]
    assert host["cloud"] == live["cloud"]


def test_unreachable_instance_still_judged_from_the_api(fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "ssh_config").write_text(f"Host {fleet.moved.addr}\n    Port 2999\n")
    args = [a if a != str(Path(fleet.args[5])) else str(tmp_path / "ssh_config") for a in fleet.args]
    with fleet.nova.mocker():
        result = CliRunner().invoke(main, ["cloud", *args, "--limit", "lab-moved", "--format", "json",
                                           "--connect-timeout", "3"], env=fleet.api.env())
    assert result.exit_code == 2, result.output
    host = json.loads(result.stdout)["hosts"][0]
    assert host["cloud"]["host_audit"].startswith("failed: ")
    assert any(s == "error" and "could not be audited" in m for s, m in cloud_findings(host, "08"))
    assert cloud_findings(host, "18") == [("warn", "[cloud] the security groups allow SSH's default port 22; the host "
                                                "could not be audited over SSH")]  # from the groups alone


def test_probe_the_ports_the_groups_open(fleet: Fleet) -> None:
    result = run_cloud(fleet, "--format", "json", "--probe", "--checks", "15")
    web = next(h for h in json.loads(result.stdout)["hosts"] if h["cloud"]["name"] == "lab-web")
    findings = next(c for c in web["checks"] if c["id"] == "Check-Security-15")["findings"]
    gateway = fleet.web.net.gateway
    probed = [f for f in findings if f"observed from {gateway}" in f["message"]]
    assert probed, findings
    at_8080 = [f for f in probed if ":8080" in json.dumps(f["evidence"])]
    assert at_8080 and "refused" in at_8080[0]["message"], probed
    plan = [e["detail"] for f in at_8080 for e in f["evidence"] if e["source"] == "probe plan"]
    assert plan == ["port 8080 probed: security group 'web-8080' opens tcp/8080 to 0.0.0.0/0"]
    # Nothing outside the groups' ports is touched (9000 listens, but no rule opens it).
    assert not any(":9000" in json.dumps(f["evidence"]) for f in probed)
