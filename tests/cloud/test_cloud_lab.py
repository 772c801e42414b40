"""`nectar-audit cloud` against a real Keystone and a real Neutron (tests/lab/openstack_lab.py), with
Nova and Glance answered by requests-mock in Nova's and Glance's own JSON shapes (tests/lab/cloud_fakes.py).

Covers: authentication as the OpenStack CLI does it (openrc variables, clouds.yaml, application
credentials) and each way it goes wrong; the inventory (ports, groups and rules, port security, floating
IPs, images, key pairs); the cloud-only verdicts of checks 02/05/06/08/10/15/18; saved evidence.
The cross-check with real hosts is in test_cloud_hosts_lab.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from nectar_audit.cli import main
from tests.lab.cloud_fakes import FakeNova
from tests.lab.openstack_lab import ADMIN_PASSWORD, USER_PASSWORD, OpenStackLab

pytestmark = pytest.mark.lab

ALICE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"
ALICE_FP = "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"


@dataclass
class Project:
    api: OpenStackLab
    nova: FakeNova
    ids: dict[str, str]


def _rule(c: Any, sg: Any, proto: str | None, lo: int | None = None, hi: int | None = None,
          remote: str | None = None, ethertype: str = "IPv4", remote_group: str | None = None) -> Any:
    kw: dict[str, Any] = {"security_group_id": sg.id, "direction": "ingress", "ethertype": ethertype}
    if proto:
        kw["protocol"] = proto
    if lo is not None:
        kw.update(port_range_min=lo, port_range_max=hi if hi is not None else lo)
    if remote:
        kw["remote_ip_prefix"] = remote
    if remote_group:
        kw["remote_group_id"] = remote_group
    return c.network.create_security_group_rule(**kw)


@pytest.fixture(scope="module")
def project(openstack_api: OpenStackLab) -> Iterator[Project]:
    api = openstack_api
    c = api.connect()
    admin = api.connect(**api.auth("admin", ADMIN_PASSWORD, "admin"))
    net = c.network.create_network(name="cloudtest-private")
    sub = c.network.create_subnet(network_id=net.id, cidr="192.168.50.0/24", ip_version=4, name="v4")
    # A provider ("public") network and a router make floating IPs, as on Nectar.
    public = admin.network.create_network(name="cloudtest-public", is_router_external=True,
                                          provider_network_type="vxlan")
    pub_sub = admin.network.create_subnet(network_id=public.id, cidr="203.0.113.0/24", ip_version=4,
                                          enable_dhcp=False)
    router = c.network.create_router(name="r1", external_gateway_info={"network_id": public.id})
    c.network.add_interface_to_router(router, subnet=sub.id)

    ssh_world = c.network.create_security_group(name="ssh-world")
    _rule(c, ssh_world, "tcp", 22, remote="0.0.0.0/0")
    db = c.network.create_security_group(name="db")
    web = c.network.create_security_group(name="web")
    _rule(c, web, "tcp", 80, remote="0.0.0.0/0")
    _rule(c, web, "tcp", 443, ethertype="IPv6")  # no remote at all: the whole IPv6 internet
    _rule(c, web, "tcp", 5432, remote_group=db.id)  # members of "db" only: not world-open
    _rule(c, web, "6", 8443, remote="192.0.2.0/24")  # protocol by number, one network
    allow_all = c.network.create_security_group(name="allow-all")
    _rule(c, allow_all, None)  # every protocol, every port, from anywhere
    mail = c.network.create_security_group(name="mail")
    _rule(c, mail, "tcp", 25, remote="0.0.0.0/0")
    _rule(c, mail, "udp", 53, remote="0.0.0.0/0")
    _rule(c, mail, "udp", 123, remote="::/0", ethertype="IPv6")

    nova = FakeNova(api)
    official = nova.add_image("NeCTAR Ubuntu 24.04 LTS (Noble) amd64", default_user="ubuntu")
    own_image = nova.add_image("my snapshot", owner=api.project_id, default_user=None)
    nova.add_keypair("alice-key", ALICE_KEY)
    ids: dict[str, str] = {}

    def server(name: str, groups: list[Any], ip: str, **kw: Any) -> Any:
        sid = str(uuid.uuid4())
        port_kw: dict[str, Any] = {"network_id": net.id, "device_id": sid, "device_owner": "compute:nova",
                                   "fixed_ips": [{"subnet_id": sub.id, "ip_address": ip}]}
        if groups:
            port_kw["security_groups"] = [g.id for g in groups]
        else:
            port_kw.update(security_groups=[], port_security_enabled=False)
        port = c.network.create_port(**port_kw)
        nova.add_server(name, [port], groups=[g.name for g in groups], **kw)
        ids[name] = sid
        return port

    web_port = server("vm-web", [ssh_world, web], "192.168.50.10", key_name="alice-key", image_id=official)
    fip = c.network.create_ip(floating_network_id=public.id, port_id=web_port.id)
    ids["fip"] = fip.floating_ip_address
    server("vm-nosec", [], "192.168.50.11", key_name="alice-key", image_id=own_image)
    server("vm-open", [allow_all], "192.168.50.12", image_id=str(uuid.uuid4()))  # image deleted since
    server("vm-mail", [mail], "192.168.50.13", key_name="someone-elses-key")
    assert pub_sub.id
    yield Project(api, nova, ids)


def run_cloud(p: Project, *args: str, env: dict[str, str] | None = None) -> Result:
    with p.nova.mocker():
        return CliRunner().invoke(main, ["cloud", *args], env=env if env is not None else p.api.env(),
                                  catch_exceptions=False)


def hosts_of(result: Result) -> dict[str, dict[str, Any]]:
    data = json.loads(result.stdout)
    return {h["hostname"]: h for h in data["hosts"]}


def check(host: dict[str, Any], cid: str) -> dict[str, Any]:
    return next(c for c in host["checks"] if c["id"] == f"Check-Security-{cid}")


def messages(host: dict[str, Any], cid: str) -> list[tuple[str, str]]:
    return [(f["status"], f["message"]) for f in check(host, cid)["findings"]]


@pytest.fixture(scope="module")
def report(project: Project) -> dict[str, dict[str, Any]]:
    result = run_cloud(project, "--format", "json")
    assert result.exit_code == 1, result.output  # fails: port security off, allow-all
    return hosts_of(result)


def test_inventory_every_instance_with_ports_groups_rules(report: dict[str, dict[str, Any]],
                                                          project: Project) -> None:
    assert set(report) == {"vm-web", "vm-nosec", "vm-open", "vm-mail"}
    web = report["vm-web"]
    assert web["target"] == "openstack:vm-web"
    cloud = web["cloud"]
    assert cloud["server_id"] == project.ids["vm-web"]
    assert cloud["project_id"] == project.api.project_id
    assert cloud["host_audit"] == "not requested"
    assert cloud["ports"][0]["fixed_ips"] == ["192.168.50.10"]
    assert cloud["ports"][0]["floating_ips"] == [project.ids["fip"]]
    assert {g["name"] for g in cloud["security_groups"]} >= {"ssh-world", "web"}
    rules = {(r["protocol"], r["port_range_min"], r["ethertype"]): r
             for g in cloud["security_groups"] for r in g["rules"] if r["direction"] == "ingress"}
    assert rules[("tcp", 22, "IPv4")]["world"] is True
    assert rules[("tcp", 443, "IPv6")]["world"] is True  # no remote at all
    assert rules[("tcp", 5432, "IPv4")]["world"] is False  # remote_group_id
    assert rules[("tcp", 8443, "IPv4")]["world"] is False  # protocol "6" read as tcp
    assert cloud["image"] == {"id": cloud["image"]["id"], "name": "NeCTAR Ubuntu 24.04 LTS (Noble) amd64",
                              "owner": "28eadf5ad64b42a4929b2fb7df99275c", "official_nectar": True,
                              "default_user": "ubuntu", "visibility": "public", "image_type": None,
                              "snapshot_of": None}
    assert cloud["key_fingerprint"] == ALICE_FP
    assert report["vm-nosec"]["cloud"]["ports"][0]["port_security_enabled"] is False
    assert report["vm-nosec"]["cloud"]["image"]["official_nectar"] is False


def test_no_secret_reaches_the_report(project: Project) -> None:
    result = run_cloud(project, "--format", "json")
    for secret in (USER_PASSWORD, ADMIN_PASSWORD, ALICE_KEY.split()[1]):
        assert secret not in result.output


def test_open_ports_15(report: dict[str, dict[str, Any]]) -> None:
    assert check(report["vm-nosec"], "15")["status"] == "fail"
    assert any("port security disabled" in m for _, m in messages(report["vm-nosec"], "15"))
    assert check(report["vm-open"], "15")["status"] == "fail"
    assert ("fail", "[cloud] a security group rule lets every protocol in from anywhere (0.0.0.0/0, no remote "
                    "set)") in messages(report["vm-open"], "15")
    web = messages(report["vm-web"], "15")
    assert check(report["vm-web"], "15")["status"] == "manual"
    assert any(s == "manual" and "tcp/22, tcp/443, tcp/80" in m for s, m in web), web


def test_layers_08_and_ssh_18_without_host(report: dict[str, dict[str, Any]]) -> None:
    assert check(report["vm-nosec"], "08")["status"] == "fail"
    assert check(report["vm-web"], "08")["status"] == "manual"
    assert check(report["vm-web"], "18")["status"] == "warn"
    assert check(report["vm-mail"], "18")["status"] == "manual"


def test_mail_dns_ntp_reachable_from_world(report: dict[str, dict[str, Any]]) -> None:
    mail = report["vm-mail"]
    for cid, port in (("02", "tcp/25"), ("05", "udp/53"), ("06", "udp/123")):
        assert check(mail, cid)["status"] == "warn", (cid, messages(mail, cid))
        assert port in check(mail, cid)["summary"]
    for cid in ("02", "05", "06"):
        assert check(report["vm-web"], cid)["status"] == "pass"
        assert check(report["vm-open"], cid)["status"] == "warn"  # allow-all reaches them too


def test_keys_10(report: dict[str, dict[str, Any]]) -> None:
    assert check(report["vm-web"], "10")["status"] == "pass"
    assert ALICE_FP in check(report["vm-web"], "10")["summary"]
    assert check(report["vm-open"], "10")["status"] == "warn"  # booted without a key pair
    mail = messages(report["vm-mail"], "10")
    assert any(s == "manual" and "not visible to these credentials" in m for s, m in mail), mail


def test_deleted_image_is_a_note_not_a_failure(report: dict[str, dict[str, Any]]) -> None:
    notes = report["vm-open"]["cloud"]["notes"]
    assert any("not found (HTTP 404)" in n for n in notes), notes
    assert report["vm-open"]["cloud"]["image"]["name"] is None


def test_limit_and_checks(project: Project) -> None:
    result = run_cloud(project, "--format", "json", "--limit", "vm-w*", "--checks", "15,18")
    hosts = hosts_of(result)
    assert list(hosts) == ["vm-web"]
    assert [c["id"] for c in hosts["vm-web"]["checks"]] == ["Check-Security-15", "Check-Security-18"]
    assert result.exit_code == 0


def test_text_report(project: Project) -> None:
    result = run_cloud(project, "--limit", "vm-nosec")
    assert result.exit_code == 1
    assert "port security disabled" in result.stdout
    assert "openstack port set --enable-port-security" in result.stdout


def test_saved_evidence_rejudges_offline(project: Project, tmp_path: Path) -> None:
    live = run_cloud(project, "--format", "json", "--save-evidence", str(tmp_path))
    saved = json.loads((tmp_path / "openstack.json").read_text())
    assert saved["format"] == "nectar-audit-openstack-project/1"
    assert ALICE_KEY.split()[1] not in (tmp_path / "openstack.json").read_text()
    offline = CliRunner().invoke(main, ["cloud", "--format", "json", "--evidence", str(tmp_path / "openstack.json")],
                                 env={"OS_AUTH_URL": "http://127.0.0.1:1/v3"})

    def strip(r: Result) -> list[Any]:
        return [{k: v for k, v in h.items() if k not in ("started", "duration_s")}
                for h in json.loads(r.stdout)["hosts"]]
    assert strip(offline) == strip(live)
    # Each instance's bundle re-judges with `scan evidence:` to the same checks.
    bundle = tmp_path / "openstack_vm-web.json"
    assert bundle.exists(), sorted(p.name for p in tmp_path.iterdir())
    scanned = CliRunner().invoke(main, ["scan", f"evidence:{bundle}", "--format", "json",
                                        "--checks", "02,05,06,08,10,15,18"])
    web = next(h for h in strip(live) if h["hostname"] == "vm-web")
    again = strip(scanned)[0]
    assert again["checks"] == web["checks"]
    assert again["cloud"] == web["cloud"]


# -- authentication ---------------------------------------------------------------------------------
def test_no_credentials(project: Project) -> None:
    result = run_cloud(project, env={k: "" for k in project.api.env() if k.startswith("OS_")})
    assert result.exit_code == 2
    assert "no OpenStack credentials" in result.stderr
    assert "Traceback" not in result.output


def test_bad_password(project: Project) -> None:
    env = project.api.env()
    env["OS_PASSWORD"] = "wrong"
    result = run_cloud(project, env=env)
    assert result.exit_code == 2
    assert "rejected the credentials (HTTP 401)" in result.stderr
    assert "wrong" not in result.output


def test_unreachable_endpoint(project: Project) -> None:
    from tests.lab.openstack_lab import free_port

    env = project.api.env()
    env["OS_AUTH_URL"] = f"http://127.0.0.1:{free_port()}/v3"
    result = run_cloud(project, env=env)
    assert result.exit_code == 2
    assert "cannot reach the identity service (Keystone)" in result.stderr


def test_missing_permission(project: Project) -> None:
    api = project.api
    admin = api.connect(**api.auth("admin", ADMIN_PASSWORD, "admin"))
    role = admin.identity.find_role("guest") or admin.identity.create_role(name="guest")
    user = admin.identity.find_user("gus") or admin.identity.create_user(name="gus", password=USER_PASSWORD,
                                                                         domain_id="default")
    admin.identity.assign_project_role_to_user(api.project_id, user, role)
    result = run_cloud(project, env=api.env(**api.auth("gus", USER_PASSWORD)))
    assert result.exit_code == 2
    assert "missing permission for listing servers (Nova) (HTTP 403)" in result.stderr


def test_unknown_region(project: Project) -> None:
    result = run_cloud(project, "--region", "Nowhere")
    assert result.exit_code == 2
    assert "not in the service catalog" in result.stderr or "region" in result.stderr.lower()


def test_application_credential(project: Project) -> None:
    api = project.api
    conn = api.connect()
    cred = conn.identity.create_application_credential(user=conn.current_user_id, name=f"audit-{uuid.uuid4()}")
    env = {k: v for k, v in api.env().items() if not k.startswith("OS_")}
    env.update(OS_AUTH_TYPE="v3applicationcredential", OS_AUTH_URL=api.keystone_url,
               OS_APPLICATION_CREDENTIAL_ID=cred.id, OS_APPLICATION_CREDENTIAL_SECRET=cred.secret,
               OS_REGION_NAME="RegionOne", OS_IDENTITY_API_VERSION="3")
    result = run_cloud(project, "--format", "json", "--checks", "15", env=env)
    assert result.exit_code == 1, result.output
    assert set(hosts_of(result)) == {"vm-web", "vm-nosec", "vm-open", "vm-mail"}
    assert cred.secret not in result.output


def test_clouds_yaml(project: Project, tmp_path: Path) -> None:
    api = project.api
    a = api.auth()
    (tmp_path / "clouds.yaml").write_text(
        "clouds:\n  nectar:\n    auth:\n"
        f"      auth_url: {a['auth_url']}\n      username: {a['username']}\n      password: {a['password']}\n"
        f"      project_name: {a['project_name']}\n      user_domain_name: Default\n"
        "      project_domain_name: Default\n    region_name: RegionOne\n    identity_api_version: 3\n")
    env = {k: v for k, v in api.env().items() if not k.startswith("OS_")}
    env.update(OS_CLIENT_CONFIG_FILE=str(tmp_path / "clouds.yaml"))
    result = run_cloud(project, "--os-cloud", "nectar", "--format", "json", "--checks", "18", env=env)
    assert result.exit_code == 0, result.output
    assert "vm-web" in hosts_of(result)
    missing = run_cloud(project, "--os-cloud", "nosuch", env=env)
    assert missing.exit_code == 2 and "nosuch" in missing.stderr
