"""Nova and Glance for the cloud tests: requests-mock answering the catalog's compute and image endpoints
with JSON shaped like the real APIs (Nova 2.1 microversions, Glance v2), beside the real Keystone and
Neutron of tests/lab/openstack_lab.py. Servers are built from real Neutron ports, as Nova would show them.

Nova's policy is mimicked the way Nova enforces it: the token is validated against the real Keystone
and a token without a reader/member/admin role on the project gets HTTP 403.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests_mock

from tests.lab.openstack_lab import ADMIN_PASSWORD, OpenStackLab

NECTAR_OWNER = "28eadf5ad64b42a4929b2fb7df99275c"
ALLOWED_ROLES = {"reader", "member", "admin"}


@dataclass
class FakeNova:
    lab: OpenStackLab
    servers: list[dict[str, Any]] = field(default_factory=list)
    keypairs: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    # Nova's [api] max_limit: a longer listing comes in pages linked by servers_links (Nova's default 1000).
    max_limit: int = 1000
    _admin_token: str | None = None
    _roles_cache: dict[str, set[str]] = field(default_factory=dict)

    # -- building state ----------------------------------------------------------------------------
    def add_server(self, name: str, ports: list[Any], *, key_name: str | None = None, image_id: str | None = None,
                   status: str = "ACTIVE", groups: list[str] | None = None,
                   volumes: list[str] | None = None) -> dict[str, Any]:
        """A server owning ``ports`` (openstacksdk Port objects, already created with its device_id).
        Without ``image_id`` it is volume-backed, as Nova shows one: ``"image": ""`` and the volume
        it boots from among ``os-extended-volumes:volumes_attached``."""
        sid = ports[0].device_id if ports else str(uuid.uuid4())
        addresses: dict[str, list[dict[str, Any]]] = {}
        for p in ports:
            for ip in p.fixed_ips:
                version = 6 if ":" in ip["ip_address"] else 4
                addresses.setdefault("private", []).append({
                    "version": version, "addr": ip["ip_address"], "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": p.mac_address})
        server = {
            "id": sid, "name": name, "status": status, "tenant_id": self.lab.project_id,
            "user_id": "0" * 32, "hostId": "", "locked": False, "tags": [], "metadata": {},
            "image": {"id": image_id, "links": []} if image_id else "",
            "flavor": {"original_name": "m3.small", "vcpus": 2, "ram": 4096, "disk": 30, "ephemeral": 0,
                       "swap": 0, "extra_specs": {}},
            "key_name": key_name, "addresses": addresses,
            "security_groups": [{"name": g} for g in (groups or [])],
            "accessIPv4": "", "accessIPv6": "", "config_drive": "",
            "OS-EXT-STS:vm_state": status.lower(), "OS-EXT-STS:power_state": 1, "OS-EXT-STS:task_state": None,
            "OS-EXT-AZ:availability_zone": "melbourne-qh2", "created": "2026-11-01T00:00:00Z",
            "updated": "2026-11-01T00:00:00Z", "links": [],
            "os-extended-volumes:volumes_attached": [
                {"id": v, "delete_on_termination": not image_id} for v in (volumes or ([] if image_id else
                                                                                    [str(uuid.uuid4())]))],
        }
        self.servers.append(server)
        return server

    def add_keypair(self, name: str, public_key: str) -> None:
        self.keypairs.append({"keypair": {"name": name, "public_key": public_key, "type": "ssh",
                                          "fingerprint": "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff"}})

    def add_image(self, name: str, owner: str = NECTAR_OWNER, default_user: str | None = "ubuntu",
                  visibility: str = "public", snapshot_of: str | None = None) -> str:
        """An image as Glance v2 shows it; ``snapshot_of`` (an instance id) makes it a Nova snapshot,
        with the custom properties Nova sets on one (image_type, instance_uuid, base_image_ref)."""
        iid = str(uuid.uuid4())
        image = {"id": iid, "name": name, "owner": owner, "visibility": visibility, "status": "active",
                 "container_format": "bare", "disk_format": "qcow2", "os_distro": "ubuntu", "min_disk": 0,
                 "min_ram": 0, "protected": False, "tags": [], "file": f"/v2/images/{iid}/file",
                 "schema": "/v2/schemas/image", "self": f"/v2/images/{iid}", "size": 1, "checksum": None,
                 "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
        if default_user:
            image["default_user"] = default_user  # a Glance custom property: top-level in the JSON
        if snapshot_of:
            image.update(image_type="snapshot", instance_uuid=snapshot_of, image_location="snapshot",
                         base_image_ref=str(uuid.uuid4()), owner_project_name="research", user_id="0" * 32)
        self.images[iid] = image
        return iid

    # -- the fake services -------------------------------------------------------------------------
    def _roles(self, token: str) -> set[str]:
        if token in self._roles_cache:  # as keystonemiddleware caches a validated token
            return self._roles_cache[token]
        if self._admin_token is None:
            body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}).encode()
            req = urllib.request.Request(f"{self.lab.keystone_url}/auth/tokens", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                self._admin_token = r.headers["X-Subject-Token"]
        req = urllib.request.Request(f"{self.lab.keystone_url}/auth/tokens",
                                     headers={"X-Auth-Token": self._admin_token, "X-Subject-Token": token})
        with urllib.request.urlopen(req, timeout=10) as r:
            data = json.load(r)
        self._roles_cache[token] = {role["name"] for role in data["token"].get("roles", ())}
        return self._roles_cache[token]

    def _authorised(self, request: Any, context: Any) -> bool:
        token = request.headers.get("X-Auth-Token", "")
        if not ALLOWED_ROLES & self._roles(token):
            context.status_code = 403
            return False
        return True

    def mocker(self) -> requests_mock.Mocker:
        m = requests_mock.Mocker(real_http=True)
        compute = self.lab.compute_url.rstrip("/")
        root = compute.rsplit("/", 1)[0]
        version = {"id": "v2.1", "status": "CURRENT", "version": "2.96", "min_version": "2.1",
                   "updated": "2013-07-23T11:33:21Z", "links": [{"rel": "self", "href": compute + "/"}]}

        def record(request: Any) -> None:
            self.calls.append(f"{request.method} {request.path_url}")

        def versions(request: Any, context: Any) -> dict[str, Any]:
            record(request)
            return {"version": version} if request.path.rstrip("/").endswith("v2.1") else {"versions": [version]}

        def servers(request: Any, context: Any) -> dict[str, Any]:
            record(request)
            if not self._authorised(request, context):
                return {"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:servers:"
                                      "detail to be performed."}}
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)
            limit = min(int(query.get("limit", [self.max_limit])[0]), self.max_limit)
            marker = query.get("marker", [None])[0]
            ids = [s["id"] for s in self.servers]
            if marker is not None and marker not in ids:
                context.status_code = 400
                return {"badRequest": {"code": 400, "message": f"marker [{marker}] not found"}}
            start = ids.index(marker) + 1 if marker is not None else 0
            page = self.servers[start:start + limit]
            body: dict[str, Any] = {"servers": page}
            if len(page) == limit:  # Nova links a next page whenever a page is full
                body["servers_links"] = [{"rel": "next", "href": f"{compute}/servers/detail?"
                                          + urllib.parse.urlencode({"limit": limit, "marker": page[-1]["id"]})}]
            return body

        def keypairs(request: Any, context: Any) -> dict[str, Any]:
            record(request)
            return {"keypairs": self.keypairs}

        def image(request: Any, context: Any) -> dict[str, Any]:
            record(request)
            iid = request.path.rstrip("/").rsplit("/", 1)[-1]
            if iid not in self.images:
                context.status_code = 404
                return {"message": f"No image found with ID {iid}", "code": "404 Not Found"}
            return self.images[iid]

        def image_versions(request: Any, context: Any) -> dict[str, Any]:
            record(request)
            return {"versions": [{"id": "v2.16", "status": "CURRENT",
                                  "links": [{"rel": "self", "href": self.lab.image_url + "/v2/"}]}]}

        m.get(re.compile(re.escape(root) + r"/?$"), json=versions)
        m.get(re.compile(re.escape(compute) + r"/?$"), json=versions)
        m.get(re.compile(re.escape(compute) + r"/servers/detail"), json=servers)
        m.get(re.compile(re.escape(compute) + r"/os-keypairs"), json=keypairs)
        m.get(re.compile(re.escape(self.lab.image_url) + r"/?$"), json=image_versions)
        m.get(re.compile(re.escape(self.lab.image_url) + r"/v2/?$"), json=image_versions)
        m.get(re.compile(re.escape(self.lab.image_url) + r"/v2/images/[^/]+$"), json=image)
        return m
