"""The pure side of Neutron's semantics: records built from saved project evidence, and judged offline
(the API itself is exercised in the *_lab.py modules)."""

from __future__ import annotations

import json

from nectar_audit.catalog import implemented
from nectar_audit.cloud.audit import instance_targets, limit_servers
from nectar_audit.cloud.gather import MEMBER_SAMPLE, ProjectEvidence, ProjectIndex, instance_record
from nectar_audit.config import Config
from nectar_audit.engine import judge
from nectar_audit.facts.openstack import parse_instance
from nectar_audit.model import HostResult, Status


def rule(rid: str, proto: str | None = None, lo: int | None = None, hi: int | None = None, *, ether: str = "IPv4",
         prefix: str | None = None, group: str | None = None, ag: str | None = None) -> dict[str, object]:
    return {"id": rid, "direction": "ingress", "ethertype": ether, "protocol": proto, "port_range_min": lo,
            "port_range_max": hi if hi is not None else lo, "remote_ip_prefix": prefix, "remote_group_id": group,
            "remote_address_group_id": ag}


def evidence(n_members: int = 3) -> ProjectEvidence:
    groups = [
        {"id": "g-default", "name": "default", "security_group_rules": [
            rule("d4", group="g-default"), rule("d6", ether="IPv6", group="g-default")]},
        {"id": "g-ssh", "name": "ssh", "security_group_rules": [rule("s1", "tcp", 22, prefix="0.0.0.0/0")]},
        {"id": "g-ag", "name": "via-ag", "security_group_rules": [rule("a1", "tcp", 80, ag="ag-1")]},
    ]
    servers = [{"id": f"s{i}", "name": f"vm{i}", "status": "ACTIVE", "image": None, "key_name": None,
                "addresses": {}, "security_groups": []} for i in range(n_members)]
    ports = [{"id": f"p{i}", "device_id": f"s{i}", "network_id": "n", "port_security_enabled": True,
              "security_groups": ["g-default", "g-ssh"] if i == 0 else ["g-default"],
              "fixed_ips": [{"ip_address": f"10.0.0.{i + 1}"}]} for i in range(n_members)]
    ports[-1]["security_groups"] = ["g-default", "g-ag"]
    return ProjectEvidence(auth_url=None, region=None, project_id="p", gathered_at="", servers=servers, ports=ports,
                           security_groups=groups, address_groups=[{"id": "ag-1", "name": "everyone",
                                                                    "addresses": ["0.0.0.0/0"]}],
                           images={"img-gone": None},
                           notes=["image img-gone: reading the image (Glance): not found (HTTP 404)"])


def test_members_are_profiles_and_exclude_the_instance() -> None:
    ev = evidence()
    inst = parse_instance(instance_record(ev, "s1"))
    (rg,) = inst.remote_groups
    assert rg.name == "default"
    assert sorted(m.count for m in rg.members) == [1, 1]  # vm0 (with ssh), vm2 (with via-ag); not vm1 itself
    exposed = {m.sample[0][1]: [r.id for r in inst.member_exposure(m)] for m in rg.members}
    assert exposed == {"vm0": ["s1"], "vm2": ["a1"]}  # an address group holding 0.0.0.0/0 is the world
    assert {g.id for g in inst.member_groups} == {"g-ssh", "g-ag"}


def test_member_sample_is_bounded_and_counted() -> None:
    ev = evidence(60)
    rec = instance_record(ev, "s5")
    members = rec["remote_groups"][0]["members"]
    assert sum(m["count"] for m in members) == 59
    assert all(len(m["instances"]) <= MEMBER_SAMPLE for m in members)
    big = max(parse_instance(rec).remote_groups[0].members, key=lambda m: m.count)
    assert big.count == 57  # vm0 and vm59 have groups of their own: profiles of their own
    assert big.label().endswith(f"and {57 - MEMBER_SAMPLE} more")


def test_index_is_shared_and_matches_a_fresh_one() -> None:
    ev = evidence(20)
    index = ProjectIndex(ev)
    for s in ev.servers:
        assert instance_record(ev, s["id"], index) == instance_record(ev, s["id"])


def test_unreadable_address_group_is_unknown_not_safe() -> None:
    ev = evidence()
    ev.address_groups = []
    ev.notes.append("address groups unknown: listing address groups (Neutron): not found (HTTP 404)")
    rec = instance_record(ev, "s2")
    inst = parse_instance(rec)
    (a1,) = [r for r in inst.ingress_rules() if r.id == "a1"]
    assert a1.remote_unknown and not a1.world
    assert "its addresses could not be read" in a1.remote_label
    assert any(n.startswith("address groups unknown") for n in rec["notes"])
    result = _judge(ev, "vm2")
    f15 = next(c for c in result.checks if c.id == "Check-Security-15")
    assert any(f.status is Status.MANUAL and "could not be read" in f.message for f in f15.findings)


def test_volume_backed_gets_no_other_instance_image_note() -> None:
    ev = evidence()
    ev.servers[0]["image"] = {"id": "img-gone"}
    assert any("img-gone" in n for n in instance_record(ev, "s0")["notes"])
    assert not any("img-gone" in n for n in instance_record(ev, "s1")["notes"])  # volume-backed


def test_limit_keeps_the_others_for_membership_and_round_trips() -> None:
    ev = evidence()
    limit_servers(ev, ["vm1"])
    assert [s["id"] for s in ev.servers] == ["s1"]
    assert [s["id"] for s in ev.other_servers] == ["s0", "s2"]
    assert [t.name for t in instance_targets(ev)] == ["openstack:vm1"]
    rec = instance_targets(ev)[0].record
    assert sum(m["count"] for m in rec["remote_groups"][0]["members"]) == 2
    again = ProjectEvidence.from_json(json.loads(json.dumps(ev.to_json())))
    assert again == ev


def test_old_evidence_without_the_new_fields_still_loads() -> None:
    data = evidence().to_json()
    for key in ("address_groups", "other_servers"):
        del data[key]
    ev = ProjectEvidence.from_json(data)
    assert ev.address_groups == [] and ev.other_servers == []


def _judge(ev: ProjectEvidence, name: str) -> HostResult:
    target = next(t for t in instance_targets(ev) if t.name == f"openstack:{name}")
    result = HostResult(target=target.name)
    judge(target.gather(None), implemented(), Config(), result)  # type: ignore[arg-type]
    return result


def test_unfiltered_port_is_probed_on_the_usual_service_ports() -> None:
    from nectar_audit.cloud.audit import probed_ports
    from nectar_audit.probes import DEFAULT_PORTS

    ev = evidence()
    ev.ports[1].update(port_security_enabled=False, security_groups=[])
    ports = probed_ports(instance_record(ev, "s1"))
    assert list(ports) == list(DEFAULT_PORTS)
    assert ports[22] == "port security is disabled on port p1 (10.0.0.2): every port is reachable"


def test_member_rule_within_a_world_rule_adds_nothing() -> None:
    ev = evidence()
    ev.security_groups[0]["security_group_rules"] = [rule("d4", "tcp", 22, group="g-default")]
    ev.ports[1]["security_groups"] = ["g-default", "g-ssh"]
    result = _judge(ev, "vm1")
    f15 = next(c for c in result.checks if c.id == "Check-Security-15")
    (member,) = [f for f in f15.findings if "'default'" in f.message]
    assert member.status is Status.PASS
    assert member.message.endswith("the world reaches the same ports anyway (the rule adds nothing)")
    # Without the world rule here, the exposed member (vm0, ssh open to the world) makes it a warning.
    ev.ports[1]["security_groups"] = ["g-default"]
    f15 = next(c for c in _judge(ev, "vm1").checks if c.id == "Check-Security-15")
    assert [f.status for f in f15.findings if "'default'" in f.message] == [Status.WARN]


def test_a_record_saved_before_members_were_recorded_is_manual_not_pass() -> None:
    from nectar_audit.cloud.checks import CLOUD_CHECKS
    from nectar_audit.cloud.checks.base import CloudView
    from nectar_audit.evidence.bundle import Bundle
    from nectar_audit.facts import Facts

    rec = instance_record(evidence(), "s1")
    del rec["remote_groups"], rec["member_groups"], rec["address_groups"]
    facts = Facts(Bundle(target="t", kind="openstack", live=False, cloud=rec))
    findings = CLOUD_CHECKS["Check-Security-15"](CloudView.of(parse_instance(rec), facts))
    assert [(f.status, f.message) for f in findings if "'default'" in f.message] == [
        (Status.MANUAL, "any protocol (IPv4 and IPv6) from members of group 'default': who carries that group is "
                        "not in the evidence")]
