"""Neutron's own semantics, each as its own scenario on a real Keystone and Neutron (Nova and Glance as
request-level fakes in their exact JSON shapes): what `nectar-audit cloud` concludes must be what Neutron
really lets in.

- ports with and without port security (an unfiltered port is open to everything, on every check);
- address groups with and without 0.0.0.0/0 and ::/0 (judged by their addresses, of the rule's family);
- remote-group rules across instances (members resolved; one finding for the IPv4 + IPv6 pair; a warning
  only where a member is itself open to the world);
- ICMP-only rules (no open port), wide world-open ranges (warn, not manual);
- snapshots, private images and volume-backed instances (check 10, and their own notes).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner, Result

from nectar_audit.cli import main
from tests.lab.cloud_fakes import FakeNova
from tests.lab.openstack_lab import OpenStackLab

pytestmark = pytest.mark.lab

PREFIX = "ns-"


@dataclass
class Scenario:
    api: OpenStackLab
    nova: FakeNova
    ports: dict[str, Any] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


def rule(c: Any, sg: Any, proto: str | None, lo: int | None = None, hi: int | None = None, *,
         remote: str | None = None, ethertype: str = "IPv4", group: Any = None, address_group: Any = None) -> Any:
    kw: dict[str, Any] = {"security_group_id": sg.id, "direction": "ingress", "ethertype": ethertype}
    if proto:
        kw["protocol"] = proto
    if lo is not None:
        kw.update(port_range_min=lo, port_range_max=hi if hi is not None else lo)
    if remote:
        kw["remote_ip_prefix"] = remote
    if group is not None:
        kw["remote_group_id"] = group.id
    if address_group is not None:
        kw["remote_address_group_id"] = address_group.id
    return c.network.create_security_group_rule(**kw)


@pytest.fixture(scope="module")
def scenario(openstack_api: OpenStackLab) -> Iterator[Scenario]:
    api = openstack_api
    c = api.connect()
    net = c.network.create_network(name="ns-net")
    v4 = c.network.create_subnet(network_id=net.id, cidr="10.60.0.0/24", ip_version=4)
    v6 = c.network.create_subnet(network_id=net.id, cidr="fd00:60::/64", ip_version=6)
    nova = FakeNova(api)
    sc = Scenario(api, nova)
    official = nova.add_image("NeCTAR Ubuntu 24.04 LTS (Noble) amd64")
    host = [10]

    def server(name: str, groups: list[Any], *, v6addr: bool = False, secure: bool = True,
               image: str | None = official, **kw: Any) -> Any:
        sid = str(uuid.uuid4())
        host[0] += 1
        ips = [{"subnet_id": v4.id, "ip_address": f"10.60.0.{host[0]}"}]
        if v6addr:
            ips.append({"subnet_id": v6.id, "ip_address": f"fd00:60::{host[0]:x}"})
        port_kw: dict[str, Any] = {"network_id": net.id, "device_id": sid, "device_owner": "compute:nova",
                                   "fixed_ips": ips, "security_groups": [g.id for g in groups]}
        if not secure:
            port_kw.update(security_groups=[], port_security_enabled=False)
        port = c.network.create_port(**port_kw)
        nova.add_server(PREFIX + name, [port], groups=[g.name for g in groups], image_id=image, **kw)
        sc.ports[name], sc.ids[name] = port, sid
        return port

    # -- port security -----------------------------------------------------------------------------
    ssh_net = c.network.create_security_group(name="ns-ssh-net")
    rule(c, ssh_net, "tcp", 22, remote="192.0.2.0/24")
    server("nosec", [], secure=False)
    server("sec", [ssh_net])

    # -- address groups ----------------------------------------------------------------------------
    ag_world = c.network.create_address_group(name="ns-ag-world", addresses=["0.0.0.0/0", "10.1.0.0/16"])
    ag_world6 = c.network.create_address_group(name="ns-ag-world6", addresses=["::/0"])
    ag_narrow = c.network.create_address_group(name="ns-ag-narrow", addresses=["192.0.2.0/24", "2001:db8::/32"])
    via_ag = c.network.create_security_group(name="ns-via-ag")
    rule(c, via_ag, "tcp", 25, address_group=ag_world)
    rule(c, via_ag, "udp", 53, ethertype="IPv6", address_group=ag_world6)
    rule(c, via_ag, "udp", 123, address_group=ag_world6)  # IPv4 rule, IPv6-only group: admits nobody
    server("ag-world", [via_ag], v6addr=True)
    narrow = c.network.create_security_group(name="ns-ag-narrow")
    rule(c, narrow, None, address_group=ag_narrow)
    rule(c, narrow, None, ethertype="IPv6", address_group=ag_narrow)
    server("ag-narrow", [narrow])

    # -- remote groups -----------------------------------------------------------------------------
    ssh_world = c.network.create_security_group(name="ns-ssh-world")
    rule(c, ssh_world, "tcp", 22, remote="0.0.0.0/0")
    for cluster in ("quiet", "exposed", "alone"):
        g = c.network.create_security_group(name=f"ns-{cluster}")
        rule(c, g, None, group=g)  # Nectar's stock "default": any protocol from the group's members,
        rule(c, g, None, ethertype="IPv6", group=g)  # once per family
        sc.ports[f"group-{cluster}"] = g
    quiet, exposed, alone = (sc.ports[f"group-{n}"] for n in ("quiet", "exposed", "alone"))
    server("q1", [quiet], v6addr=True)
    server("q2", [quiet], v6addr=True)
    server("e1", [exposed, ssh_world], v6addr=True)
    server("e2", [exposed], v6addr=True)
    server("lone", [alone], v6addr=True)

    # -- ICMP and ranges ---------------------------------------------------------------------------
    icmp = c.network.create_security_group(name="ns-icmp")
    rule(c, icmp, "icmp", remote="0.0.0.0/0")
    rule(c, icmp, "ipv6-icmp", ethertype="IPv6")
    server("icmp", [icmp])
    ranges = c.network.create_security_group(name="ns-ranges")
    rule(c, ranges, "tcp", 8000, 8099, remote="0.0.0.0/0")
    rule(c, ranges, "tcp", 9000, 9003, remote="0.0.0.0/0")
    server("range", [ranges])

    # -- images --------------------------------------------------------------------------------------
    snap = nova.add_image("web-before-upgrade", owner=api.project_id, default_user=None, visibility="private",
                          snapshot_of=sc.ids["sec"])
    server("snap", [ssh_net], image=snap, key_name=None)
    server("vol", [ssh_net], image=None, volumes=["0b6c1a52-5e2a-4a64-9d8c-4b7a1f0e2c11"])
    server("gone", [ssh_net], image=str(uuid.uuid4()))  # its image was deleted since
    yield sc


def run_cloud(sc: Scenario, *args: str) -> Result:
    with sc.nova.mocker():
        return CliRunner().invoke(main, ["cloud", "--limit", f"{PREFIX}*", *args], env=sc.api.env(),
                                  catch_exceptions=False)


@pytest.fixture(scope="module")
def report(scenario: Scenario) -> dict[str, dict[str, Any]]:
    result = run_cloud(scenario, "--format", "json")
    assert result.exit_code == 1, result.output
    return {h["hostname"][len(PREFIX):]: h for h in json.loads(result.stdout)["hosts"]}


def check(host: dict[str, Any], cid: str) -> dict[str, Any]:
    return next(c for c in host["checks"] if c["id"] == f"Check-Security-{cid}")


def findings(host: dict[str, Any], cid: str) -> list[tuple[str, str]]:
    return [(f["status"], f["message"]) for f in check(host, cid)["findings"]]


def evidence(host: dict[str, Any], cid: str) -> list[str]:
    return [e["detail"] for f in check(host, cid)["findings"] for e in f["evidence"]]


# -- port security ----------------------------------------------------------------------------------
def test_unfiltered_port_is_open_on_every_check(report: dict[str, dict[str, Any]], scenario: Scenario) -> None:
    nosec, port = report["nosec"], scenario.ports["nosec"].id
    assert nosec["cloud"]["ports"][0]["port_security_enabled"] is False
    for cid, what in (("02", "mail (tcp/24, tcp/25, "), ("05", "DNS (udp/53, tcp/53)"), ("06", "NTP (udp/123)")):
        assert check(nosec, cid)["status"] == "warn", findings(nosec, cid)
        (_, message), = findings(nosec, cid)
        assert message.startswith(f"[cloud] port security is disabled on port {port}, so the whole internet "
                                  f"reaches {what}"), message
        assert any(f"port {port}: port_security_enabled = false" in e for e in evidence(nosec, cid))
    assert findings(nosec, "18") == [("warn", f"[cloud] port security is disabled on port {port}: SSH's default "
                                              "port 22 is reachable from anywhere; the host itself was not audited "
                                              "(add --ssh-user USER to see what listens)")]
    assert check(nosec, "15")["status"] == "fail" and check(nosec, "08")["status"] == "fail"
    # Only the port-security finding: the unfiltered port is not also reported as a "rule".
    assert [s for s, _ in findings(nosec, "15")] == ["fail"]


def test_filtered_port_keeps_the_groups_verdicts(report: dict[str, dict[str, Any]]) -> None:
    sec = report["sec"]
    assert sec["cloud"]["ports"][0]["port_security_enabled"] is True
    for cid in ("02", "05", "06"):
        assert check(sec, cid)["status"] == "pass", findings(sec, cid)
    assert findings(sec, "18")[0][1].startswith("[cloud] the security groups allow SSH's default port 22")
    assert check(sec, "15")["status"] == "pass"


# -- address groups ---------------------------------------------------------------------------------
def test_address_group_with_the_world_is_world_open(report: dict[str, dict[str, Any]]) -> None:
    host = report["ag-world"]
    cloud = host["cloud"]
    rules = {(r["protocol"], r["ethertype"]): r for g in cloud["security_groups"] for r in g["rules"]}
    ags = {a["name"]: a for a in cloud["address_groups"]}
    assert ags["ns-ag-world"]["addresses"] == ["0.0.0.0/0", "10.1.0.0/16"]
    assert rules[("tcp", "IPv4")]["remote_address_group_id"] == ags["ns-ag-world"]["id"]
    assert rules[("tcp", "IPv4")]["world"] is True
    assert rules[("udp", "IPv6")]["world"] is True  # ::/0 for an IPv6 rule
    assert rules[("udp", "IPv4")]["world"] is False  # an IPv4 rule takes none of an IPv6-only group
    assert check(host, "02")["status"] == "warn"
    assert any("from remote address group ns-ag-world (0.0.0.0/0, 10.1.0.0/16)" in e for e in evidence(host, "02"))
    assert check(host, "05")["status"] == "warn" and "udp/53" in check(host, "05")["summary"]
    assert check(host, "06")["status"] == "pass"
    assert findings(host, "15") == [("manual", "[cloud] open to the world per the security groups: tcp/25, udp/53; "
                                               "whether a service is bound to each is unknown: the host itself was "
                                               "not audited (add --ssh-user USER to see what listens)")]


def test_address_group_without_the_world_is_a_network(report: dict[str, dict[str, Any]]) -> None:
    host = report["ag-narrow"]
    assert findings(host, "15") == [("warn", "[cloud] a security group rule lets every protocol in from address "
                                             "group ns-ag-narrow (192.0.2.0/24) (IPv4 and IPv6)")]
    assert len(check(host, "15")["findings"][0]["evidence"]) == 2
    for cid in ("02", "05", "06"):
        assert check(host, cid)["status"] == "pass"


# -- remote groups ----------------------------------------------------------------------------------
def test_remote_group_members_none_exposed(report: dict[str, dict[str, Any]], scenario: Scenario) -> None:
    q1 = report["q1"]
    assert check(q1, "15")["status"] == "pass"
    (status, message), = [f for f in findings(q1, "15") if "ns-quiet" in f[1]]  # one for the IPv4 + IPv6 pair
    assert status == "pass"
    assert message == ("[cloud] any protocol (IPv4 and IPv6) from members of group 'ns-quiet': 1 instance(s), "
                       "none of them open to the world")
    ev = next([e["detail"] for e in f["evidence"]] for f in check(q1, "15")["findings"] if "ns-quiet" in f["message"])
    assert f"members of group 'ns-quiet' (this instance excluded): ns-q2 (10.60.0.{_host(scenario, 'q2')}, " \
           f"fd00:60::{_host(scenario, 'q2'):x})" in ev, ev
    assert sum("remote group ns-quiet" in e for e in ev) == 2
    groups = {g["name"]: g for g in q1["cloud"]["remote_groups"]}
    assert groups["ns-quiet"]["member_count"] == 1
    assert groups["ns-quiet"]["members"][0]["name"] == "ns-q2"


def _host(sc: Scenario, name: str) -> int:
    return int(sc.ports[name].fixed_ips[0]["ip_address"].rsplit(".", 1)[1])


def test_remote_group_member_open_to_the_world_warns(report: dict[str, dict[str, Any]]) -> None:
    e2 = report["e2"]
    assert check(e2, "15")["status"] == "warn"
    (status, message), = [f for f in findings(e2, "15") if "ns-exposed" in f[1]]
    assert status == "warn", message
    assert message.startswith("[cloud] any protocol (IPv4 and IPv6) from members of group 'ns-exposed': 1 "
                              "instance(s), 1 of them open to the world (ns-e1 (10.60.0.")
    assert any(e.startswith("member(s) ns-e1 (") and "security group 'ns-ssh-world'" in e
               and "tcp/22 from remote prefix 0.0.0.0/0" in e for e in evidence(e2, "15"))
    # e1 itself: its one fellow member (e2) is reachable from nowhere else.
    e1 = [f for f in findings(report["e1"], "15") if "ns-exposed" in f[1]]
    assert e1 == [("pass", "[cloud] any protocol (IPv4 and IPv6) from members of group 'ns-exposed': 1 "
                           "instance(s), none of them open to the world")]
    assert report["e1"]["cloud"]["remote_groups"][0]["members"][0]["open_to_world"] is False
    assert report["e2"]["cloud"]["remote_groups"][0]["members"][0]["open_to_world"] is True


def test_remote_group_without_other_members_admits_nobody(report: dict[str, dict[str, Any]]) -> None:
    assert findings(report["lone"], "15") == [
        ("pass", "[cloud] any protocol (IPv4 and IPv6) from members of group 'ns-alone': no other instance carries "
                 "that group with an address of the rule's family, so it admits nobody"),
        ("pass", "[cloud] no security group rule opens a port to the whole internet")]


# -- ICMP and ranges ----------------------------------------------------------------------------------
def test_icmp_only_is_no_open_port(report: dict[str, dict[str, Any]]) -> None:
    assert findings(report["icmp"], "15") == [
        ("pass", "[cloud] no security group rule opens a port to the whole internet (ICMP only: icmp, ipv6-icmp)")]
    assert len(evidence(report["icmp"], "15")) == 2


def test_wide_world_range_warns(report: dict[str, dict[str, Any]]) -> None:
    got = findings(report["range"], "15")
    assert ("warn", "[cloud] tcp/8000-8099 (100 ports) is open to the world (IPv4): a range that wide opens ports "
                    "no service listens on") in got
    assert any(s == "manual" and "tcp/9000-9003" in m for s, m in got), got
    fix = check(report["range"], "15")["findings"][0]["remediation"]
    assert fix.startswith("openstack security group rule delete ")


# -- images -------------------------------------------------------------------------------------------
def test_snapshot_is_manual_on_10_with_the_image_in_evidence(report: dict[str, dict[str, Any]],
                                                              scenario: Scenario) -> None:
    snap = report["snap"]
    got = findings(snap, "10")
    assert got[0][0] == "manual"
    assert got[0][1].startswith("[cloud] booted from instance snapshot 'web-before-upgrade' (owner "
                                f"{scenario.api.project_id}), not an official Nectar image: it may carry the "
                                "authorised keys of the instance it was taken from")
    image_ev = check(snap, "10")["findings"][0]["evidence"][0]["detail"]
    assert "name web-before-upgrade" in image_ev and f"owner {scenario.api.project_id}" in image_ev
    assert "type snapshot" in image_ev and f"snapshot of instance {scenario.ids['sec']}" in image_ev
    assert snap["cloud"]["image"]["image_type"] == "snapshot"
    assert snap["cloud"]["image"]["official_nectar"] is False
    assert not any(s == "manual" for s, _ in findings(report["sec"], "10"))  # official image


def test_volume_backed_instance_keeps_its_own_notes(report: dict[str, dict[str, Any]]) -> None:
    vol, gone = report["vol"], report["gone"]
    assert vol["cloud"]["boot"] == "volume" and vol["cloud"]["image"] is None
    assert vol["cloud"]["notes"] == ["booted from a volume (0b6c1a52-5e2a-4a64-9d8c-4b7a1f0e2c11): Nova records "
                                     "no image for it"]
    assert any("not found (HTTP 404)" in n for n in gone["cloud"]["notes"])
    assert not any("HTTP 404" in n for n in report["sec"]["cloud"]["notes"])
    assert findings(vol, "10")[0] == ("manual", "[cloud] booted from a volume: the image it was made from is "
                                                "unknown to Nova: it may carry the authorised keys of the instance "
                                                "it was taken from; the host itself was not audited (add "
                                                "--ssh-user USER to see what listens) and compare its "
                                                "authorized_keys")
    assert findings(gone, "10")[0][0] == "manual" and "cannot be read" in findings(gone, "10")[0][1]


def test_every_cloud_finding_names_its_rules(report: dict[str, dict[str, Any]]) -> None:
    """A finding about what the groups let in carries the rules it rests on, as the dashboard shows them."""
    for name, cid in (("ag-world", "02"), ("ag-narrow", "15"), ("e2", "15"), ("range", "15"), ("sec", "18"),
                      ("icmp", "15"), ("sec", "08")):
        ev = evidence(report[name], cid)
        assert any(e.startswith("security group 'ns-") and " rule " in e and ": ingress IPv" in e and " from " in e
                   for e in ev), (name, cid, ev)


def test_limit_keeps_the_others_as_members(scenario: Scenario) -> None:
    """--limit selects what is reported; the instances left out still count as remote-group members."""
    with scenario.nova.mocker():
        result = CliRunner().invoke(main, ["cloud", "--limit", f"{PREFIX}e2", "--format", "json", "--checks", "15"],
                                    env=scenario.api.env(), catch_exceptions=False)
    hosts = json.loads(result.stdout)["hosts"]
    assert [h["hostname"] for h in hosts] == ["ns-e2"]
    assert hosts[0]["checks"][0]["status"] == "warn"
