"""The pure parts of the cloud audit: the instance model, rule semantics, evidence records, error
sentences and target selection (the API itself is exercised in test_cloud_lab.py)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nectar_audit.catalog import implemented
from nectar_audit.cloud import auth
from nectar_audit.cloud.audit import MAX_PROBED_PORTS, instance_targets, limit_servers, probed_ports, ssh_address
from nectar_audit.cloud.gather import ProjectEvidence, instance_record, ssh_fingerprint
from nectar_audit.engine import merge_checks
from nectar_audit.evidence.bundle import Bundle, EvidenceError
from nectar_audit.facts.openstack import RECORD_FORMAT, normalise_protocol, parse_instance, parse_rule
from nectar_audit.model import CheckResult, Finding, HostResult, Status

SG_WEB = {"id": "sg-web", "name": "web", "stateful": True, "security_group_rules": [
    {"id": "r1", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22,
     "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0", "remote_group_id": None},
    {"id": "r2", "direction": "ingress", "ethertype": "IPv6", "protocol": "6", "port_range_min": 443,
     "port_range_max": 443, "remote_ip_prefix": None, "remote_group_id": None},
    {"id": "r3", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 5432,
     "port_range_max": 5432, "remote_ip_prefix": None, "remote_group_id": "sg-db"},
    {"id": "r4", "direction": "egress", "ethertype": "IPv4", "protocol": None, "port_range_min": None,
     "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": None},
    {"id": "r5", "direction": "ingress", "ethertype": "IPv4", "protocol": "udp", "port_range_min": 6000,
     "port_range_max": 6100, "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": None},
    {"id": "r6", "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", "port_range_min": None,
     "port_range_max": None, "remote_ip_prefix": "0.0.0.0/0", "remote_group_id": None},
]}
SG_DB = {"id": "sg-db", "name": "db", "security_group_rules": [
    {"id": "d1", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 5432,
     "port_range_max": 5432, "remote_ip_prefix": "0.0.0.0/0"}]}


def project() -> ProjectEvidence:
    return ProjectEvidence(
        auth_url="https://keystone.rc.nectar.org.au:5000/v3/", region="Melbourne", project_id="p1",
        gathered_at="2026-11-29T00:00:00+00:00",
        servers=[
            {"id": "s1", "name": "web", "status": "ACTIVE", "image": {"id": "img1"}, "key_name": "k1",
             "addresses": {}, "security_groups": [{"name": "web"}]},
            {"id": "s2", "name": "web", "status": "SHUTOFF", "image": None, "key_name": None, "addresses": {},
             "security_groups": []},
            {"id": "s3", "name": "db-1", "status": "ACTIVE", "image": {"id": "img-gone"}, "key_name": "k-other",
             "addresses": {}, "security_groups": [{"name": "db"}]},
        ],
        ports=[
            {"id": "p1", "device_id": "s1", "network_id": "n1", "security_groups": ["sg-web"],
             "port_security_enabled": True,
             "fixed_ips": [{"ip_address": "2001:db8::5"}, {"ip_address": "192.168.1.5"}]},
            {"id": "p2", "device_id": "s2", "network_id": "n1", "security_groups": [],
             "port_security_enabled": False, "fixed_ips": [{"ip_address": "192.168.1.6"}]},
            {"id": "p3", "device_id": "s3", "network_id": "n1", "security_groups": ["sg-db"],
             "fixed_ips": [{"ip_address": "192.168.1.7"}]},
        ],
        security_groups=[SG_WEB, SG_DB],
        floating_ips=[{"id": "f1", "floating_ip_address": "203.0.113.5", "fixed_ip_address": "192.168.1.5",
                       "port_id": "p1"}],
        images={"img1": {"id": "img1", "name": "NeCTAR Ubuntu 24.04", "owner": "28eadf5ad64b42a4929b2fb7df99275c",
                         "default_user": "ubuntu"}, "img-gone": None},
        keypairs={"k1": {"name": "k1", "type": "ssh", "fingerprint": "SHA256:abc"}},
        notes=["image img-gone: reading the image (Glance): not found (HTTP 404)"],
    )


def test_protocols_and_families() -> None:
    assert normalise_protocol("6") == "tcp"
    assert normalise_protocol("17") == "udp"
    assert normalise_protocol("any") is None and normalise_protocol(None) is None and normalise_protocol("0") is None
    assert normalise_protocol("icmpv6") == "ipv6-icmp"
    r = parse_rule({"id": "x", "ethertype": "IPv6", "protocol": "TCP", "port_range_min": "80"}, "g", "g", {})
    assert (r.family, r.protocol, r.port_min, r.port_max) == (6, "tcp", 80, None)
    assert r.covers("tcp", 80) and not r.covers("tcp", 81) and not r.covers("udp", 80)


def test_world_and_ranges() -> None:
    inst = parse_instance(instance_record(project(), "s1"))
    rules = {r.id: r for r in inst.groups[0].rules}
    assert rules["r1"].world and rules["r2"].world  # 0.0.0.0/0; no remote at all
    assert not rules["r3"].world  # remote group
    assert rules["r3"].remote_label == "members of group db"
    assert not rules["r5"].world and rules["r5"].ports_label == "udp/6000-6100"
    assert rules["r6"].ports_label == "icmp" and not rules["r6"].all_ports
    assert rules["r4"].all_ports and rules["r4"].any_protocol
    assert [r.id for r in inst.allowing("tcp", 443, 6)] == ["r2"]
    assert inst.allowing("tcp", 443, 4) == []  # the IPv6 rule does not open IPv4
    assert inst.allowing("udp", 6050, 4)[0].id == "r5"
    assert all(r.direction == "ingress" for r in inst.ingress_rules())


def test_port_security_off_means_everything_is_let_in() -> None:
    inst = parse_instance(instance_record(project(), "s2"))
    assert inst.ports[0].port_security_enabled is False
    rules = inst.ingress_rules()
    assert [(r.family, r.unfiltered_port, r.world, r.all_ports) for r in rules] == [(4, "p2", True, True),
                                                                                    (6, "p2", True, True)]
    assert [r.id for r in inst.allowing("udp", 53, 6)] == ["port-security-disabled:p2:IPv6"]
    # The attribute missing (extension off) counts as enabled.
    assert parse_instance(instance_record(project(), "s3")).ports[0].port_security_enabled is True


def test_instance_record_is_the_servers_slice() -> None:
    rec = instance_record(project(), "s1")
    assert rec["format"] == RECORD_FORMAT
    assert [p["id"] for p in rec["ports"]] == ["p1"]
    assert [f["id"] for f in rec["floating_ips"]] == ["f1"]
    # The referenced remote group comes along by name only (its rules are another instance's business).
    assert [(g["id"], len(g["security_group_rules"])) for g in rec["security_groups"]] == [("sg-web", 6),
                                                                                          ("sg-db", 0)]
    assert rec["image"]["default_user"] == "ubuntu"
    assert rec["notes"] == []
    other = instance_record(project(), "s3")
    assert any("img-gone" in n for n in other["notes"])
    assert any("key pair 'k-other' is not visible" in n for n in other["notes"])
    inst = parse_instance(rec)
    assert inst.image is not None and inst.image.official
    assert inst.addresses == ["203.0.113.5", "2001:db8::5", "192.168.1.5"]
    assert inst.public_addresses == ["203.0.113.5"]


def test_malformed_record_is_an_evidence_error() -> None:
    with pytest.raises(EvidenceError, match="malformed OpenStack instance record"):
        parse_instance({"format": RECORD_FORMAT})
    with pytest.raises(EvidenceError, match="unknown format"):
        parse_instance({"format": "other"})


def test_project_evidence_round_trip() -> None:
    ev = project()
    again = ProjectEvidence.from_json(json.loads(json.dumps(ev.to_json())))
    assert again == ev
    with pytest.raises(ValueError, match="not a nectar-audit OpenStack evidence file"):
        ProjectEvidence.from_json({"format": 1})
    for bad, why in (({"servers": [{"id": 1}]}, r"servers\[0\]\.id: expected a string, got the number 1"),
                     ({"servers": [{"id": "s"}]}, r"servers\[0\]\.name: missing"),
                     ({"ports": {"id": "p"}}, "ports: expected a list, got an object"),
                     ({"images": []}, "images: expected an object, got a list")):
        with pytest.raises(ValueError, match=why):
            ProjectEvidence.from_json({"format": "nectar-audit-openstack-project/1", **bad})


def test_cli_malformed_evidence_file_is_a_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nectar_audit.cli import main

    bad = tmp_path / "openstack.json"
    bad.write_text(json.dumps({"format": "nectar-audit-openstack-project/1", "servers": [{"id": "x"}]}))
    result = CliRunner().invoke(main, ["cloud", "--evidence", str(bad)])
    assert result.exit_code == 2
    assert "servers[0].name: missing" in result.output and "Traceback" not in result.output
    bad.write_text("{not json")
    result = CliRunner().invoke(main, ["cloud", "--evidence", str(bad)])
    assert result.exit_code == 2 and "cannot read" in result.output


def test_bundle_carries_the_record() -> None:
    bundle = Bundle(target="t", kind="openstack", live=False, cloud=instance_record(project(), "s1"))
    data = json.loads(json.dumps(bundle.to_json()))
    assert Bundle.from_json(data).cloud == bundle.cloud
    plain = Bundle(target="t", kind="local", live=True).to_json()
    assert "cloud" not in plain


def test_ssh_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    pub = (tmp_path / "k.pub").read_text()
    out = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], check=True, capture_output=True,
                         text=True).stdout.split()[1]
    assert ssh_fingerprint(pub) == out
    assert ssh_fingerprint("ssh-ed25519 not-base64!") is None
    assert ssh_fingerprint(None) is None


def test_targets_names_addresses_and_limits() -> None:
    ev = project()
    targets = instance_targets(ev)
    assert [t.name for t in targets] == ["openstack:db-1", "openstack:web[s1]", "openstack:web[s2]"]
    assert all(t.kind == "openstack" for t in targets)
    rec = instance_record(ev, "s1")
    assert ssh_address(rec) == "203.0.113.5"
    assert ssh_address(rec, "fixed") == "192.168.1.5"  # IPv4 before IPv6
    assert ssh_address(instance_record(ev, "s2"), "floating") is None
    ssh = instance_targets(ev, ssh_user="ubuntu")
    by_name = {t.record["server"]["id"]: t for t in ssh}
    assert by_name["s1"].name == "openstack:web[s1] (ubuntu@203.0.113.5)"
    assert by_name["s2"].host is None  # SHUTOFF: nothing to log in to
    assert any("SHUTOFF" in n for n in by_name["s2"].record["notes"])
    limited = copy.deepcopy(ev)
    limit_servers(limited, ["db-*", "s2"])
    assert [s["id"] for s in limited.servers] == ["s2", "s3"]


def test_probed_ports_are_bounded() -> None:
    ev = project()
    ports = probed_ports(instance_record(ev, "s1"))
    assert list(ports) == [22, 443, 5432, 6000, 6001, 6002, 6003, 6004, 6005, 6006, 6007, 6008]
    assert ports[22] == "security group 'web' opens tcp/22 to 0.0.0.0/0"
    group = ev.security_groups[0]
    group["security_group_rules"] = [
        {"id": f"x{i}", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 1000 + i,
         "port_range_max": 1000 + i} for i in range(200)]
    assert len(probed_ports(instance_record(ev, "s1"))) == MAX_PROBED_PORTS


def test_cloud_only_bundle_judges_only_cloud_checks() -> None:
    from nectar_audit.config import Config
    from nectar_audit.engine import judge

    target = instance_targets(project())[2]  # web[s2]: port security off
    bundle = target.gather(None)  # type: ignore[arg-type]
    result = HostResult(target=target.name)
    judge(bundle, implemented(), Config(), result)
    assert result.hostname == "web"
    ids = [c.id for c in result.checks]
    assert ids == ["Check-Security-02", "Check-Security-05", "Check-Security-06", "Check-Security-08",
                   "Check-Security-10", "Check-Security-15", "Check-Security-18"]
    by_id = {c.id: c for c in result.checks}
    assert by_id["Check-Security-15"].status is Status.FAIL
    assert by_id["Check-Security-15"].title == "Are ports opened for not required services?"
    assert by_id["Check-Security-10"].status is Status.WARN  # no key pair
    assert result.extra["cloud"]["host_audit"] == "not requested"


def test_merge_checks_keeps_registry_order() -> None:
    result = HostResult(target="t", checks=[CheckResult("Check-Security-15", "t15", "high",
                                                        [Finding(Status.PASS, "ok")], "ok")])
    merge_checks(result, [CheckResult("Check-Security-02", "", "", [Finding(Status.WARN, "w")], ""),
                          CheckResult("Check-Security-15", "", "", [Finding(Status.FAIL, "f")], "")],
                 implemented())
    assert [c.id for c in result.checks] == ["Check-Security-02", "Check-Security-15"]
    assert result.checks[1].status is Status.FAIL and result.checks[1].summary == "f"
    assert result.checks[0].title == "Are you running a mail server?"


def test_error_sentences_from_real_exception_types() -> None:
    from keystoneauth1 import exceptions as ka
    from openstack import exceptions as sdk

    def wrapped(inner: Exception) -> Exception:
        try:
            try:
                raise inner
            except Exception as exc:
                raise sdk.SDKException(str(exc)) from exc
        except Exception as outer:
            return outer

    assert "rejected the credentials" in auth.explain(wrapped(ka.Unauthorized("The request you have made "
                                                                              "requires authentication.")))
    assert auth.explain(wrapped(ka.ConnectFailure("Unable to establish connection to http://x"))).startswith(
        "cannot reach the OpenStack API")
    assert auth.explain(ka.MissingRequiredOptions([])).startswith("no OpenStack credentials")
    assert "missing permission" in auth.explain(sdk.ForbiddenException("Policy doesn't allow"), "listing servers")
    assert auth.explain(ka.EndpointNotFound("no network")).endswith("no network")


def test_without_openstacksdk_the_error_says_what_to_install() -> None:
    code = ("import sys; sys.modules['openstack'] = None\n"
            "from nectar_audit.cloud.auth import connect, CloudError\n"
            "try:\n    connect()\nexcept CloudError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "the cloud audit needs openstacksdk: pip install 'nectar-audit[cloud]'"
