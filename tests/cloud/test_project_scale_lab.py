"""A project as big projects are, on real Keystone and Neutron: listings come in pages (Neutron's
pagination_max_limit in the lab, Nova's max_limit in the fake) and openstacksdk must follow every page;
a region whose catalog has no Neutron ends with one clear sentence (exit 2)."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner, Result

from nectar_audit.cli import main
from tests.lab.cloud_fakes import FakeNova
from tests.lab.openstack_lab import ADMIN_PASSWORD, PAGE_SIZE, OpenStackLab

pytestmark = pytest.mark.lab

INSTANCES = 50  # three pages of ports and of servers
EXPOSED = 5  # of which open to the world on tcp/22


@dataclass
class Big:
    api: OpenStackLab
    nova: FakeNova
    port_ids: list[str]


@pytest.fixture(scope="module")
def big(openstack_api: OpenStackLab) -> Iterator[Big]:
    api = openstack_api
    c = api.connect()
    net = c.network.create_network(name="pg-net")
    sub = c.network.create_subnet(network_id=net.id, cidr="10.70.0.0/22", ip_version=4)
    default = c.network.create_security_group(name="pg-default")
    for ethertype in ("IPv4", "IPv6"):
        c.network.create_security_group_rule(security_group_id=default.id, direction="ingress", ethertype=ethertype,
                                             remote_group_id=default.id)
    ssh = c.network.create_security_group(name="pg-ssh-world")
    c.network.create_security_group_rule(security_group_id=ssh.id, direction="ingress", ethertype="IPv4",
                                         protocol="tcp", port_range_min=22, port_range_max=22,
                                         remote_ip_prefix="0.0.0.0/0")
    sids = [str(uuid.uuid4()) for _ in range(INSTANCES)]
    ports = list(c.network.create_ports([
        {"network_id": net.id, "device_id": sid, "device_owner": "compute:nova", "fixed_ips": [{"subnet_id": sub.id}],
         "security_groups": [default.id, ssh.id] if i < EXPOSED else [default.id]} for i, sid in enumerate(sids)]))
    nova = FakeNova(api, max_limit=PAGE_SIZE)
    image = nova.add_image("NeCTAR Ubuntu 24.04 LTS (Noble) amd64")
    for i, port in enumerate(sorted(ports, key=lambda p: sids.index(p.device_id))):
        nova.add_server(f"pg-{i:03d}", [port], image_id=image,
                        groups=["pg-default", "pg-ssh-world"] if i < EXPOSED else ["pg-default"])
    yield Big(api, nova, [p.id for p in ports])


def run_cloud(b: Big, *args: str, region: str | None = None) -> Result:
    env = b.api.env()
    if region:
        env["OS_REGION_NAME"] = region
    with b.nova.mocker():
        return CliRunner().invoke(main, ["cloud", *args], env=env, catch_exceptions=False)


def test_every_page_is_read(big: Big) -> None:
    # Neutron itself pages: a listing without a limit stops at PAGE_SIZE with a link to the next page.
    token = big.api.connect().auth_token
    req = urllib.request.Request(f"{big.api.neutron_url}/v2.0/ports", headers={"X-Auth-Token": token})
    with urllib.request.urlopen(req, timeout=30) as r:
        first = json.load(r)
    assert len(first["ports"]) == PAGE_SIZE
    assert any(link["rel"] == "next" for link in first["ports_links"])

    big.nova.calls.clear()
    result = run_cloud(big, "--limit", "pg-*", "--format", "json", "--checks", "15")
    assert result.exit_code == 0, result.output[-2000:]  # warnings only
    hosts = {h["hostname"]: h for h in json.loads(result.stdout)["hosts"]}
    assert len(hosts) == INSTANCES
    assert sum(c.startswith("GET /v2.1/servers/detail") for c in big.nova.calls) == INSTANCES // PAGE_SIZE + 1
    seen_ports = {p["id"] for h in hosts.values() for p in h["cloud"]["ports"]}
    assert seen_ports == set(big.port_ids)  # every port, from every Neutron page, on its instance

    quiet = hosts[f"pg-{INSTANCES - 1:03d}"]
    group = quiet["cloud"]["remote_groups"][0]
    assert group["name"] == "pg-default" and group["member_count"] == INSTANCES - 1
    statuses = [f["status"] for f in quiet["checks"][0]["findings"] if "pg-default" in f["message"]]
    assert statuses == ["warn"]  # one finding for the IPv4 + IPv6 pair: 5 members are open to the world
    message = next(f["message"] for f in quiet["checks"][0]["findings"] if "pg-default" in f["message"])
    assert f"{INSTANCES - 1} instance(s), {EXPOSED} of them open to the world" in message
    assert "pg-000 (10.70." in message
    # The members listed in evidence are bounded; the others are counted.
    assert len(json.dumps(quiet["cloud"])) < 20_000


def test_catalog_without_neutron(big: Big) -> None:
    api = big.api
    admin = api.connect(**api.auth("admin", ADMIN_PASSWORD, "admin"))
    ident = admin.identity
    if ident.find_region("NoNeutron") is None:
        ident.create_region(id="NoNeutron")
        for name, kind, url in (("nova-nonet", "compute", api.compute_url), ("glance-nonet", "image", api.image_url)):
            svc = ident.create_service(name=name, type=kind)
            ident.create_endpoint(service_id=svc.id, interface="public", url=url, region_id="NoNeutron")
    result = run_cloud(big, region="NoNeutron")
    assert result.exit_code == 2, result.output
    assert result.stderr == ("nectar-audit: listing ports (Neutron) is not in the service catalog for this region: "
                             "public endpoint for network service in NoNeutron region not found\n")
    assert "Traceback" not in result.output
