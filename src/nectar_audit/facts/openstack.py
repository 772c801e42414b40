"""Typed view of one instance's OpenStack evidence (the ``cloud`` record of a host's bundle).

Pure: parses the JSON that ``cloud.gather`` wrote (Neutron/Nova/Glance field names, trimmed to what
the checks read), so saved bundles are re-judged offline without openstacksdk installed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nectar_audit.evidence import EvidenceError

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

RECORD_FORMAT = "nectar-audit-openstack-instance/1"
# Images published by the Nectar Research Cloud itself are owned by this project; their
# ``default_user`` property names the account cloud-init creates.
NECTAR_IMAGE_OWNER = "28eadf5ad64b42a4929b2fb7df99275c"

# Neutron accepts protocol names or IANA numbers; "any" / None mean every protocol.
_PROTO_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp", "132": "sctp", "icmpv6": "ipv6-icmp"}
PORTED = ("tcp", "udp", "sctp")
ICMP = ("icmp", "ipv6-icmp")


@dataclass(frozen=True)
class Rule:
    id: str
    group_id: str
    group_name: str
    direction: str  # ingress | egress
    family: int  # 4 | 6 (ethertype IPv4 / IPv6)
    protocol: str | None  # tcp, udp, icmp, ... ; None: any protocol
    port_min: int | None
    port_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None
    remote_group_name: str | None = None
    remote_address_group_id: str | None = None
    remote_address_group_name: str | None = None
    # The address group's addresses as Neutron expands them (None: the group could not be read).
    remote_addresses: tuple[str, ...] | None = None
    # Not a rule: a port with port security disabled, which Neutron does not filter at all.
    unfiltered_port: str | None = None

    @property
    def any_protocol(self) -> bool:
        return self.protocol is None

    @property
    def opens_ports(self) -> bool:
        """Lets something other than ICMP in (ICMP has types, not ports to serve)."""
        return self.protocol not in ICMP

    @property
    def remote_unknown(self) -> bool:
        """An address group this project cannot read: whom the rule admits is unknown."""
        return bool(self.remote_address_group_id) and self.remote_addresses is None

    def family_addresses(self) -> list[str]:
        """The address group's networks of this rule's family (Neutron ignores the others)."""
        out = []
        for a in self.remote_addresses or ():
            try:
                if ipaddress.ip_network(a, strict=False).version == self.family:
                    out.append(a)
            except ValueError:
                continue
        return out

    @property
    def all_ports(self) -> bool:
        """Every port of a ported protocol (no range, or 1-65535), or every protocol."""
        if self.protocol is None:
            return True
        if self.protocol not in PORTED:
            return False
        return self.port_min is None or (self.port_min <= 1 and (self.port_max or 65535) >= 65535)

    @property
    def world(self) -> bool:
        """Open to every address of its family: 0.0.0.0/0, ::/0, no remote at all, an address group
        holding one of those, or a port that is not filtered."""
        if self.unfiltered_port:
            return True
        if self.remote_group_id:
            return False
        if self.remote_address_group_id:
            return any(ipaddress.ip_network(a, strict=False).prefixlen == 0 for a in self.family_addresses())
        if not self.remote_ip_prefix:
            return True
        try:
            net = ipaddress.ip_network(self.remote_ip_prefix, strict=False)
        except ValueError:
            return False
        return net.prefixlen == 0

    @property
    def width(self) -> int:
        """How many ports of its protocol the rule opens (0 for ICMP and other portless protocols)."""
        if self.protocol not in PORTED:
            return 0 if self.protocol is not None else 65535
        if self.all_ports or self.port_min is None:
            return 65535
        hi = self.port_max if self.port_max is not None else self.port_min
        return max(hi - self.port_min + 1, 1)

    def covers(self, proto: str, port: int) -> bool:
        if self.direction != "ingress":
            return False
        if self.protocol is not None and self.protocol != proto:
            return False
        if self.protocol is None or self.port_min is None:
            return True
        hi = self.port_max if self.port_max is not None else self.port_min
        return self.port_min <= port <= hi

    @property
    def ports_label(self) -> str:
        if self.protocol is None:
            return "any protocol"
        if self.protocol in ICMP and self.port_min is not None:
            code = f" code {self.port_max}" if self.port_max is not None else ""
            return f"{self.protocol} type {self.port_min}{code}"
        if self.protocol not in PORTED:
            return self.protocol
        if self.all_ports:
            return f"{self.protocol}/all ports"
        hi = self.port_max if self.port_max is not None else self.port_min
        return f"{self.protocol}/{self.port_min}" if hi == self.port_min else f"{self.protocol}/{self.port_min}-{hi}"

    @property
    def remote_label(self) -> str:
        if self.unfiltered_port:
            return "anywhere (port security disabled)"
        if self.remote_group_id:
            return f"members of group {self.remote_group_name or self.remote_group_id}"
        if self.remote_address_group_id:
            name = self.remote_address_group_name or self.remote_address_group_id
            if self.remote_addresses is None:
                return f"address group {name} (its addresses could not be read)"
            nets = self.family_addresses()
            shown = ", ".join(nets[:6]) + (f", … ({len(nets)} in all)" if len(nets) > 6 else "")
            return f"address group {name} ({shown or f'no IPv{self.family} address'})"
        if not self.remote_ip_prefix:
            return f"anywhere ({'0.0.0.0/0' if self.family == 4 else '::/0'}, no remote set)"
        return self.remote_ip_prefix

    def describe(self) -> str:
        if self.unfiltered_port:
            return (f"port {self.unfiltered_port}: port_security_enabled = false: Neutron filters nothing "
                    f"(IPv{self.family}, every protocol and port, from anywhere)")
        if self.remote_group_id:
            remote = f"remote group {self.remote_group_name or '?'} ({self.remote_group_id})"
        elif self.remote_address_group_id:
            remote = f"remote {self.remote_label} [{self.remote_address_group_id}]"
        elif self.remote_ip_prefix:
            remote = f"remote prefix {self.remote_ip_prefix}"
        else:
            remote = f"no remote ({'0.0.0.0/0' if self.family == 4 else '::/0'})"
        return (f"security group {self.group_name!r} rule {self.id}: {self.direction} IPv{self.family} "
                f"{self.ports_label} from {remote}")


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
    rules: tuple[Rule, ...]
    stateful: bool = True


@dataclass(frozen=True)
class Port:
    id: str
    network_id: str
    fixed_ips: tuple[str, ...]
    floating_ips: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    port_security_enabled: bool
    name: str = ""

    @property
    def label(self) -> str:
        addrs = ", ".join((*self.fixed_ips, *(f"{a} (floating)" for a in self.floating_ips)))
        return f"port {self.id} ({addrs or 'no address'})"


@dataclass(frozen=True)
class Image:
    id: str
    name: str | None
    owner: str | None
    default_user: str | None
    visibility: str | None = None
    image_type: str | None = None  # Glance's image_type property: "snapshot" for Nova snapshots
    snapshot_of: str | None = None  # instance_uuid: the instance a snapshot was taken from

    @property
    def official(self) -> bool:
        return self.owner == NECTAR_IMAGE_OWNER

    @property
    def kind(self) -> str:
        if self.official:
            return "official Nectar image"
        if self.image_type == "snapshot":
            return "instance snapshot"
        return f"{self.visibility or 'non-official'} image"

    def describe(self) -> str:
        src = f", snapshot of instance {self.snapshot_of}" if self.snapshot_of else ""
        return (f"image {self.id}: name {self.name or '?'!s}, owner {self.owner or '?'}, "
                f"type {self.image_type or 'image'}, visibility {self.visibility or '?'}{src}")


@dataclass(frozen=True)
class Member:
    """Instances of the project carrying a remote group, alike in what protects them (one profile)."""

    security_group_ids: tuple[str, ...]  # every group on the instances' ports
    unfiltered: bool  # one of their ports has port security disabled
    families: tuple[int, ...]  # address families of their ports in the remote group
    count: int
    sample: tuple[tuple[str, str, tuple[str, ...]], ...]  # (server id, name, fixed IPs), a few

    def label(self) -> str:
        names = ", ".join(f"{name} ({', '.join(ips) or 'no address'})" for _, name, ips in self.sample)
        more = self.count - len(self.sample)
        return names + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class RemoteGroup:
    """A security group that rules name as their remote: who carries it (this instance excluded)."""

    id: str
    name: str
    members: tuple[Member, ...]

    def of_family(self, family: int) -> list[Member]:
        return [m for m in self.members if family in m.families]


@dataclass(frozen=True)
class KeyPair:
    name: str
    fingerprint: str | None  # SHA256:..., as ssh-keygen -l prints it
    type: str | None = None


@dataclass(frozen=True)
class Instance:
    id: str
    name: str
    status: str
    project_id: str | None
    region: str | None
    ports: tuple[Port, ...]
    groups: tuple[SecurityGroup, ...]
    image: Image | None
    image_id: str | None
    key_name: str | None
    keypair: KeyPair | None
    notes: tuple[str, ...] = ()  # what the inventory could not see (e.g. an image of another project)
    remote_groups: tuple[RemoteGroup, ...] = ()
    member_groups: tuple[SecurityGroup, ...] = ()  # groups of the remote groups' members, with rules
    volumes: tuple[str, ...] = ()  # attached volume ids (a volume-backed instance boots from one)
    address_groups: tuple[AddressGroup, ...] = ()  # those the rules name, with their addresses

    @property
    def addresses(self) -> list[str]:
        return [a for p in self.ports for a in (*p.floating_ips, *p.fixed_ips)]

    @property
    def public_addresses(self) -> list[str]:
        """Floating IPs, and fixed IPs that are globally routable (Nectar's public networks)."""
        out = [a for p in self.ports for a in p.floating_ips]
        for p in self.ports:
            for a in p.fixed_ips:
                try:
                    if ipaddress.ip_address(a).is_global:
                        out.append(a)
                except ValueError:
                    continue
        return out

    def group(self, gid: str) -> SecurityGroup | None:
        return next((g for g in self.groups if g.id == gid), None)

    @property
    def volume_backed(self) -> bool:
        """Nova records no image for an instance booted from a volume."""
        return self.image_id is None

    def remote_group(self, gid: str) -> RemoteGroup | None:
        return next((g for g in self.remote_groups if g.id == gid), None)

    def member_exposure(self, member: Member) -> list[Rule]:
        """What lets the world into ``member``'s instances: world-open rules of their groups, or an
        unfiltered port."""
        if member.unfiltered:
            return [unfiltered_rule(f"of {member.sample[0][1] if member.sample else '?'}", fam) for fam in (4, 6)]
        groups = {g.id: g for g in (*self.member_groups, *self.groups)}
        return [r for gid in member.security_group_ids for r in (groups[gid].rules if gid in groups else ())
                if r.direction == "ingress" and r.world and r.opens_ports]

    def ingress_rules(self, port: Port | None = None) -> list[Rule]:
        """Ingress rules of the groups on ``port`` (all ports when None), each once. A port with port
        security disabled contributes a rule per family that lets everything in (``unfiltered_port``)."""
        ports = [port] if port is not None else list(self.ports)
        seen: dict[str, Rule] = {}
        for p in ports:
            if not p.port_security_enabled:
                for fam in (4, 6):
                    r = unfiltered_rule(p.id, fam)
                    seen.setdefault(r.id, r)
                continue
            for gid in p.security_group_ids:
                g = self.group(gid)
                for r in g.rules if g else ():
                    if r.direction == "ingress":
                        seen.setdefault(r.id, r)
        return list(seen.values())

    def allowing(self, proto: str, port: int, family: int) -> list[Rule]:
        """Ingress rules that let a new ``proto`` connection to ``port`` (IPv``family``) in."""
        return [r for r in self.ingress_rules() if r.family == family and r.covers(proto, port)]


def unfiltered_rule(port_id: str, family: int) -> Rule:
    """What Neutron does for a port with port security disabled, as a rule: everything from anywhere."""
    return Rule(id=f"port-security-disabled:{port_id}:IPv{family}", group_id="", group_name="(none)",
                direction="ingress", family=family, protocol=None, port_min=None, port_max=None,
                remote_ip_prefix=None, remote_group_id=None, unfiltered_port=port_id)


# --------------------------------------------------------------------------------------------------
def _str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def normalise_protocol(value: Any) -> str | None:
    if value in (None, "", "any", "0"):
        return None
    text = str(value).lower()
    return _PROTO_NAMES.get(text, text)


def _family(ethertype: Any) -> int:
    return 6 if str(ethertype or "IPv4").lower() == "ipv6" else 4


def parse_rule(raw: Mapping[str, Any], group_id: str, group_name: str, names: Mapping[str, str],
               address_groups: Mapping[str, AddressGroup] | None = None) -> Rule:
    remote_group = _str(raw.get("remote_group_id"))
    remote_ag = _str(raw.get("remote_address_group_id"))
    ag = (address_groups or {}).get(remote_ag) if remote_ag else None
    return Rule(
        id=str(raw.get("id", "?")),
        group_id=group_id,
        group_name=group_name,
        direction=str(raw.get("direction", "ingress")),
        family=_family(raw.get("ethertype")),
        protocol=normalise_protocol(raw.get("protocol")),
        port_min=_int(raw.get("port_range_min")),
        port_max=_int(raw.get("port_range_max")),
        remote_ip_prefix=_str(raw.get("remote_ip_prefix")),
        remote_group_id=remote_group,
        remote_group_name=names.get(remote_group) if remote_group else None,
        remote_address_group_id=remote_ag,
        remote_address_group_name=ag.name if ag else None,
        remote_addresses=ag.addresses if ag else None,
    )


@dataclass(frozen=True)
class AddressGroup:
    id: str
    name: str
    addresses: tuple[str, ...]


def parse_address_groups(raw: Sequence[Mapping[str, Any]]) -> dict[str, AddressGroup]:
    return {str(a["id"]): AddressGroup(str(a["id"]), str(a.get("name") or a["id"]),
                                       tuple(str(x) for x in a.get("addresses") or ()))
            for a in raw if isinstance(a, Mapping) and a.get("id")}


def parse_groups(raw_groups: Sequence[Mapping[str, Any]], address_groups: Mapping[str, AddressGroup] | None = None,
                 names: Mapping[str, str] | None = None) -> tuple[SecurityGroup, ...]:
    names = {**(names or {}), **{str(g.get("id")): str(g.get("name") or g.get("id")) for g in raw_groups}}
    out = []
    for g in raw_groups:
        gid, name = str(g.get("id")), str(g.get("name") or g.get("id"))
        rules = tuple(parse_rule(r, gid, name, names, address_groups) for r in g.get("security_group_rules") or ())
        out.append(SecurityGroup(gid, name, rules, stateful=g.get("stateful", True) is not False))
    return tuple(out)


def parse_remote_groups(raw: Sequence[Mapping[str, Any]]) -> tuple[RemoteGroup, ...]:
    out = []
    for g in raw:
        members = tuple(Member(
            security_group_ids=tuple(str(x) for x in m.get("security_groups") or ()),
            unfiltered=bool(m.get("port_security_disabled")),
            families=tuple(int(f) for f in m.get("families") or ()),
            count=int(m.get("count") or 0),
            sample=tuple((str(i["id"]), str(i.get("name") or i["id"]), tuple(str(a) for a in i.get("fixed_ips") or ()))
                         for i in m.get("instances") or ()),
        ) for m in g.get("members") or ())
        out.append(RemoteGroup(str(g["id"]), str(g.get("name") or g["id"]), members))
    return tuple(out)


def parse_ports(raw_ports: Sequence[Mapping[str, Any]], raw_fips: Sequence[Mapping[str, Any]]) -> tuple[Port, ...]:
    fips: dict[str, list[str]] = {}
    for f in raw_fips:
        if f.get("port_id") and f.get("floating_ip_address"):
            fips.setdefault(str(f["port_id"]), []).append(str(f["floating_ip_address"]))
    out = []
    for p in raw_ports:
        pid = str(p.get("id"))
        fixed = tuple(str(ip["ip_address"]) for ip in p.get("fixed_ips") or () if ip.get("ip_address"))
        out.append(Port(
            id=pid,
            network_id=str(p.get("network_id", "")),
            fixed_ips=fixed,
            floating_ips=tuple(fips.get(pid, ())),
            security_group_ids=tuple(str(g) for g in p.get("security_groups") or ()),
            # Neutron omits the attribute when the port_security extension is off: then no filtering
            # can be switched off either, and groups apply.
            port_security_enabled=p.get("port_security_enabled", True) is not False,
            name=str(p.get("name") or ""),
        ))
    return tuple(out)


def parse_instance(record: Mapping[str, Any]) -> Instance:
    """An instance record (see ``cloud.gather.instance_record``) → Instance; EvidenceError when malformed."""
    try:
        if record.get("format") != RECORD_FORMAT:
            raise ValueError(f"unknown format {record.get('format')!r} (expected {RECORD_FORMAT})")
        server = record["server"]
        ags = parse_address_groups(record.get("address_groups") or ())
        groups = parse_groups(record.get("security_groups") or (), ags)
        member_groups = parse_groups(record.get("member_groups") or (), ags, {g.id: g.name for g in groups})
        ports = parse_ports(record.get("ports") or (), record.get("floating_ips") or ())
        img = record.get("image")
        image = Image(str(img["id"]), _str(img.get("name")), _str(img.get("owner")),
                      _str(img.get("default_user")), _str(img.get("visibility")), _str(img.get("image_type")),
                      _str(img.get("instance_uuid"))) if isinstance(img, Mapping) and img.get("id") else None
        kp = record.get("keypair")
        keypair = KeyPair(str(kp["name"]), _str(kp.get("fingerprint")), _str(kp.get("type"))) \
            if isinstance(kp, Mapping) and kp.get("name") else None
        image_ref = server.get("image")
        image_id = _str(image_ref.get("id")) if isinstance(image_ref, Mapping) else _str(image_ref)
        return Instance(
            id=str(server["id"]),
            name=str(server.get("name") or server["id"]),
            status=str(server.get("status", "UNKNOWN")),
            project_id=_str(record.get("project_id")),
            region=_str(record.get("region")),
            ports=ports,
            groups=groups,
            image=image,
            image_id=image_id,
            key_name=_str(server.get("key_name")),
            keypair=keypair,
            notes=tuple(str(n) for n in record.get("notes") or ()),
            remote_groups=parse_remote_groups(record.get("remote_groups") or ()),
            member_groups=member_groups,
            address_groups=tuple(ags.values()),
            volumes=tuple(str(v["id"]) for v in server.get("volumes_attached") or () if isinstance(v, Mapping)
                          and v.get("id")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EvidenceError(f"malformed OpenStack instance record: {exc}") from exc


def openstack_instance(facts: Facts) -> Instance | None:
    """The instance this host is, per the OpenStack API (None when the host was not audited as one)."""
    record = facts.bundle.cloud
    return None if record is None else parse_instance(record)
