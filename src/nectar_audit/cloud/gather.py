"""Read a project's instances, ports, security groups, floating IPs, images and key pairs.

One listing call per resource type for the whole project (plus one per distinct image), whatever the
number of instances. What is kept is trimmed to the fields the checks read, under the OpenStack API's
own JSON names; nothing secret (no user data, metadata, public key material or tokens) is kept: key
pairs become their SHA256 fingerprints.

openstacksdk traps handled here: a port's groups are ``security_group_ids`` and its port security
``is_port_security_enabled``; the rules inside a group object are plain dicts with JSON keys; a rule
resource's family is ``ether_type``; Glance's custom image properties (``default_user``) land in
``properties``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nectar_audit.cloud.auth import explain
from nectar_audit.facts.openstack import RECORD_FORMAT
from nectar_audit.shape import List, Map, Obj, Opt, ShapeError, check

PROJECT_FORMAT = "nectar-audit-openstack-project/1"
_RULE_KEYS = ("id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
              "remote_ip_prefix", "remote_group_id", "remote_address_group_id")


_S = Opt(str)
_NUM = Opt((int, str))  # Neutron's port ranges and protocols: numbers, or their text
# Every field the cloud side reads from a saved openstack.json (``cloud --evidence``), with its type.
_SERVER = Obj({
    "id": str, "name": str, "status": _S, "key_name": _S, "project_id": _S,
    "image": Opt(Obj({"id": _S})),
    "addresses": Opt(Map(List(Obj({"addr": _S, "version": Opt(int), "OS-EXT-IPS:type": _S})))),
    "security_groups": Opt(List(Obj({"name": _S}))),
    "volumes_attached": Opt(List(Obj({"id": _S}))),
}, required=("id", "name"))
PROJECT_SHAPE = Obj({
    "format": str, "auth_url": _S, "region": _S, "project_id": _S, "gathered_at": str, "notes": List(str),
    "servers": List(_SERVER),
    # Instances outside --limit, kept as members of remote-group rules only.
    "other_servers": List(_SERVER),
    "address_groups": List(Obj({"id": str, "name": _S, "addresses": List(str)}, required=("id",))),
    "ports": List(Obj({
        "id": str, "name": _S, "network_id": _S, "device_id": _S, "device_owner": _S,
        "fixed_ips": Opt(List(Obj({"ip_address": _S, "subnet_id": _S}))),
        "security_groups": Opt(List(str)), "port_security_enabled": Opt(bool),
    }, required=("id",))),
    "security_groups": List(Obj({
        "id": str, "name": _S, "stateful": Opt(bool),
        "security_group_rules": List(Obj({
            "id": _S, "direction": _S, "ethertype": _S, "protocol": _NUM, "port_range_min": _NUM,
            "port_range_max": _NUM, "remote_ip_prefix": _S, "remote_group_id": _S,
            "remote_address_group_id": _S,
        })),
    }, required=("id", "security_group_rules"))),
    "floating_ips": List(Obj({"id": str, "floating_ip_address": _S, "fixed_ip_address": _S, "port_id": _S},
                             required=("id",))),
    "images": Map(Opt(Obj({"id": str, "name": _S, "owner": _S, "visibility": _S, "default_user": _S,
                           "os_distro": _S}, required=("id",)))),
    "keypairs": Map(Obj({"name": str, "type": _S, "fingerprint": _S}, required=("name",))),
}, required=("format",))


@dataclass
class ProjectEvidence:
    """Everything read from the API, as saved by ``cloud --save-evidence`` (JSON, no secrets)."""

    auth_url: str | None
    region: str | None
    project_id: str | None
    gathered_at: str
    servers: list[dict[str, Any]] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(default_factory=list)
    security_groups: list[dict[str, Any]] = field(default_factory=list)
    floating_ips: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    keypairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    address_groups: list[dict[str, Any]] = field(default_factory=list)
    # Instances left out by --limit: still members of the remote groups that rules name.
    other_servers: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"format": PROJECT_FORMAT, **{k: v for k, v in vars(self).items()}}

    @classmethod
    def from_json(cls, data: Any) -> ProjectEvidence:
        """A saved ``openstack.json``; ShapeError (a ValueError) naming the first field of a wrong type."""
        if not isinstance(data, dict) or data.get("format") != PROJECT_FORMAT:
            raise ShapeError(f"not a nectar-audit OpenStack evidence file (format {PROJECT_FORMAT})")
        check(data, PROJECT_SHAPE)
        kw = {k: data[k] for k in ("auth_url", "region", "project_id", "gathered_at", "servers", "ports",
                                   "security_groups", "floating_ips", "images", "keypairs", "notes",
                                   "address_groups", "other_servers") if k in data}
        kw.setdefault("gathered_at", "")
        for key in ("servers", "ports", "security_groups", "floating_ips", "address_groups", "other_servers"):
            items = kw.get(key, [])
            if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("id"), str)
                                                      for i in items):
                raise ValueError(f"{key!r} must be a list of objects with a string id")
        for server in (*kw.get("servers", []), *kw.get("other_servers", [])):
            if not isinstance(server.get("name"), str):
                raise ValueError(f"server {server['id']} has no name")
        for key in ("images", "keypairs"):
            if not isinstance(kw.get(key, {}), dict):
                raise ValueError(f"{key!r} must be an object")
        if not isinstance(kw.get("notes", []), list):
            raise ValueError("'notes' must be a list")
        for key in ("auth_url", "region", "project_id"):
            kw.setdefault(key, None)
        return cls(**kw)


def ssh_fingerprint(public_key: str | None) -> str | None:
    """``SHA256:…`` of an OpenSSH public key line, as ``ssh-keygen -l`` prints it."""
    parts = (public_key or "").split()
    if len(parts) < 2:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


# -- trimming SDK resources to API-shaped dicts -------------------------------------------------------
def _server(s: Any) -> dict[str, Any]:
    image = getattr(s, "image", None)
    image_id = getattr(image, "id", None) if image is not None else None
    if image_id is None and isinstance(image, Mapping):
        image_id = image.get("id")
    return {
        "id": s.id,
        "name": s.name,
        "status": s.status,
        "image": {"id": image_id} if image_id else None,
        "key_name": s.key_name,
        "project_id": getattr(s, "project_id", None),
        "addresses": {net: [{"addr": a.get("addr"), "version": a.get("version"),
                             "OS-EXT-IPS:type": a.get("OS-EXT-IPS:type")} for a in addrs]
                      for net, addrs in (s.addresses or {}).items()},
        "security_groups": [{"name": g.get("name")} for g in s.security_groups or ()],
        "volumes_attached": [{"id": v.get("id")} for v in getattr(s, "attached_volumes", None) or ()
                             if isinstance(v, Mapping) and v.get("id")],
    }


def _port(p: Any) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "network_id": p.network_id,
        "device_id": p.device_id,
        "device_owner": p.device_owner,
        "fixed_ips": [{"ip_address": ip.get("ip_address"), "subnet_id": ip.get("subnet_id")}
                      for ip in p.fixed_ips or ()],
        "security_groups": list(p.security_group_ids or ()),
        "port_security_enabled": p.is_port_security_enabled,
    }


def _group(g: Any) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "stateful": getattr(g, "stateful", True),
        "security_group_rules": [{k: r.get(k) for k in _RULE_KEYS} for r in g.security_group_rules or ()],
    }


def _fip(f: Any) -> dict[str, Any]:
    return {"id": f.id, "floating_ip_address": f.floating_ip_address,
            "fixed_ip_address": f.fixed_ip_address, "port_id": f.port_id}


def _image(i: Any) -> dict[str, Any]:
    props = getattr(i, "properties", None) or {}
    return {"id": i.id, "name": i.name, "owner": i.owner, "visibility": getattr(i, "visibility", None),
            "default_user": props.get("default_user"), "os_distro": getattr(i, "os_distro", None),
            # Nova sets both on the snapshots it takes (custom Glance properties, like default_user).
            "image_type": props.get("image_type") or getattr(i, "image_type", None),
            "instance_uuid": getattr(i, "instance_uuid", None) or props.get("instance_uuid")}


def _address_group(a: Any) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "addresses": sorted(str(x) for x in a.addresses or ())}


def _keypair(k: Any) -> dict[str, Any]:
    return {"name": k.name, "type": getattr(k, "type", None), "fingerprint": ssh_fingerprint(k.public_key)}


# -- the calls ---------------------------------------------------------------------------------------
class CallFailed(Exception):
    pass


def _list(what: str, call: Any) -> list[Any]:
    # ``call`` is a lambda: openstacksdk raises already when the proxy (conn.network) is looked up for a
    # service missing from the catalog.
    try:
        return list(call())
    except Exception as exc:  # openstacksdk raises many types; each becomes one clear sentence
        raise CallFailed(explain(exc, what)) from None


def gather_project(conn: Any) -> ProjectEvidence:
    """Read the project; CallFailed when a listing every check needs (servers, ports, groups) fails."""
    auth_url = None
    try:
        auth_url = str(conn.config.get_auth_args().get("auth_url") or "") or None
    except Exception:
        auth_url = None
    ev = ProjectEvidence(
        auth_url=auth_url,
        region=conn.config.get_region_name() or None,
        project_id=conn.current_project_id,
        gathered_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    servers = _list("listing servers (Nova)", lambda: conn.compute.servers(details=True))
    ev.servers = [_server(s) for s in servers]
    gather_network(conn, ev)
    try:
        ev.keypairs = {k.name: _keypair(k) for k in _list("listing key pairs (Nova)",
                                                          lambda: conn.compute.keypairs())}
    except CallFailed as exc:
        ev.notes.append(f"key pairs unknown: {exc}")
    for image_id in sorted({s["image"]["id"] for s in ev.servers if s.get("image")}):
        try:
            ev.images[image_id] = _image(conn.image.get_image(image_id))
        except Exception as exc:
            ev.images[image_id] = None
            ev.notes.append(f"image {image_id}: {explain(exc, 'reading the image (Glance)')}")
    return ev


def gather_network(conn: Any, ev: ProjectEvidence, ports: list[Any] | None = None) -> None:
    """Neutron's share of the evidence: the ports of ``ev``'s servers, every security group, the address
    groups that rules name, floating IPs. ``ports``: the project's port listing when already made."""
    server_ids = {s["id"] for s in (*ev.servers, *ev.other_servers)}
    listed = ports if ports is not None else _list("listing ports (Neutron)", lambda: conn.network.ports())
    ev.ports = [_port(p) for p in listed if p.device_id in server_ids]
    ev.security_groups = [_group(g) for g in _list("listing security groups (Neutron)",
                                                   lambda: conn.network.security_groups())]
    # Only when a rule names one: clouds without the address-group extension answer 404.
    if any(r.get("remote_address_group_id") for g in ev.security_groups for r in g["security_group_rules"]):
        try:
            ev.address_groups = [_address_group(a) for a in _list("listing address groups (Neutron)",
                                                                  lambda: conn.network.address_groups())]
        except CallFailed as exc:
            ev.notes.append(f"address groups unknown: {exc}")
    try:
        ev.floating_ips = [_fip(f) for f in _list("listing floating IPs (Neutron)", lambda: conn.network.ips())]
    except CallFailed as exc:
        ev.notes.append(f"floating IPs unknown: {exc}")


MEMBER_SAMPLE = 8  # member instances named per profile in a record (the rest are counted)


class ProjectIndex:
    """Lookups over a project's evidence, built once for all its instances (a record per instance
    must not scan the whole project: that is quadratic in the number of instances)."""

    def __init__(self, ev: ProjectEvidence) -> None:
        self.ev = ev
        self.servers = {s["id"]: s for s in (*ev.other_servers, *ev.servers)}
        self.ports_of: dict[str, list[dict[str, Any]]] = {}
        for p in ev.ports:
            self.ports_of.setdefault(str(p.get("device_id")), []).append(p)
        self.fips_of: dict[str, list[dict[str, Any]]] = {}
        for f in ev.floating_ips:
            if f.get("port_id"):
                self.fips_of.setdefault(str(f["port_id"]), []).append(f)
        self.groups = {g["id"]: g for g in ev.security_groups}
        self.address_groups = {a["id"]: a for a in ev.address_groups}
        self._profiles: dict[str, dict[tuple[Any, ...], list[tuple[str, str, list[str]]]]] = {}

    def profiles(self, gid: str) -> dict[tuple[Any, ...], list[tuple[str, str, list[str]]]]:
        """Instances carrying group ``gid`` on a port, by (their groups, port security off somewhere,
        families of their addresses in the group): what one needs to judge them, once per group."""
        if gid not in self._profiles:
            out: dict[tuple[Any, ...], list[tuple[str, str, list[str]]]] = {}
            for sid, server in self.servers.items():
                ports = self.ports_of.get(sid, ())
                members = [p for p in ports if gid in (p.get("security_groups") or ())]
                if not members:
                    continue
                ips = [str(ip["ip_address"]) for p in members for ip in p.get("fixed_ips") or ()
                       if ip.get("ip_address")]
                key = (tuple(sorted({g for p in ports for g in p.get("security_groups") or ()})),
                       any(p.get("port_security_enabled") is False for p in ports),
                       tuple(sorted({6 if ":" in a else 4 for a in ips})))
                out.setdefault(key, []).append((sid, str(server.get("name") or sid), ips))
            self._profiles[gid] = out
        return self._profiles[gid]

    def remote_group(self, gid: str, exclude: str) -> dict[str, Any]:
        members = []
        for (groups, unfiltered, families), insts in self.profiles(gid).items():
            others = [i for i in insts if i[0] != exclude]
            if others:
                members.append({"security_groups": list(groups), "port_security_disabled": unfiltered,
                                "families": list(families), "count": len(others),
                                "instances": [{"id": i, "name": n, "fixed_ips": ips}
                                              for i, n, ips in others[:MEMBER_SAMPLE]]})
        name = (self.groups.get(gid) or {}).get("name") or gid
        return {"id": gid, "name": name, "members": members}


def instance_record(ev: ProjectEvidence, server_id: str, index: ProjectIndex | None = None) -> dict[str, Any]:
    """One server's slice of the project evidence: what a host's bundle carries as ``cloud``."""
    ix = index if index is not None and index.ev is ev else ProjectIndex(ev)
    server = ix.servers[server_id]
    ports = ix.ports_of.get(server_id, [])
    port_ids = [p["id"] for p in ports]
    gids = {g for p in ports for g in p.get("security_groups") or ()}
    groups = [ix.groups[g] for g in sorted(gids) if g in ix.groups]
    remote = sorted({r.get("remote_group_id") for g in groups for r in g["security_group_rules"]
                     if r.get("direction") == "ingress"} - {None})
    remote_groups = [ix.remote_group(g, server_id) for g in remote]
    # Names of the groups that rules refer to (remote_group_id), for readable evidence.
    groups += [{"id": g, "name": ix.groups[g]["name"], "security_group_rules": []}
               for g in remote if g not in gids and g in ix.groups]
    # The members' own groups, with their rules: whether the world reaches a member is judged from them.
    member_gids = {g for rg in remote_groups for m in rg["members"] for g in m["security_groups"]} - gids
    member_groups = [ix.groups[g] for g in sorted(member_gids) if g in ix.groups]
    ag_ids = {r.get("remote_address_group_id") for g in (*groups, *member_groups)
              for r in g["security_group_rules"]} - {None}
    image_id = (server.get("image") or {}).get("id")
    notes = [n for n in ev.notes if not n.startswith("image ") or (image_id and n.startswith(f"image {image_id}:"))]
    if not image_id:
        vols = ", ".join(v["id"] for v in server.get("volumes_attached") or ()) or "no volume listed"
        notes.append(f"booted from a volume ({vols}): Nova records no image for it")
    missing = gids - {g["id"] for g in groups}
    if missing:
        notes.append(f"security groups not visible to this project: {', '.join(sorted(missing))}")
    unseen = sorted(a for a in ag_ids if a not in ix.address_groups)
    if unseen and not any(n.startswith("address groups unknown") for n in notes):
        notes.append(f"address groups not visible to this project: {', '.join(unseen)}")
    keypair = ev.keypairs.get(server.get("key_name") or "")
    if server.get("key_name") and keypair is None:
        notes.append(f"key pair {server['key_name']!r} is not visible to these credentials (key pairs belong "
                     "to the user who created them)")
    return {
        "format": RECORD_FORMAT,
        "auth_url": ev.auth_url,
        "region": ev.region,
        "project_id": ev.project_id,
        "gathered_at": ev.gathered_at,
        "server": server,
        "ports": ports,
        "floating_ips": [f for pid in port_ids for f in ix.fips_of.get(pid, ())],
        "security_groups": groups,
        "address_groups": [ix.address_groups[a] for a in sorted(ag_ids) if a in ix.address_groups],
        "remote_groups": remote_groups,
        "member_groups": member_groups,
        "image": ev.images.get(image_id) if image_id else None,
        "keypair": keypair,
        "notes": notes,
    }
