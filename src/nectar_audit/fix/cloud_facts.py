"""What the cloud says about a target, for ``fix --os-cloud NAME``: one connection for the whole run, the
instance behind a target found by its addresses among Neutron's ports, and its record in the shape that
``nectar-audit cloud`` attaches (``bundle.cloud``), so 08's plan keeps what the security groups let in.

Only Neutron is asked (no Nova), once per run for every host: the project's ports, security groups (with
their rules), the address groups rules name and floating IPs, gathered by the ``cloud`` command's own code
(cloud/gather.py). The record's server is known by its id alone (Nova would add name, image, key pair:
08 reads none of them).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import socket
import threading
from collections.abc import Sequence
from typing import Any

from nectar_audit.cloud.auth import CloudError, connect, explain
from nectar_audit.cloud.gather import CallFailed, ProjectEvidence, ProjectIndex, gather_network, instance_record
from nectar_audit.config import Config
from nectar_audit.evidence import Bundle
from nectar_audit.model import HostResult, visible
from nectar_audit.remedy import Remedy

# The checks whose planners read the instance record (openstack_instance): 08 keeps what the groups let in.
USES_INSTANCE = ("Check-Security-08",)
_VOLUME_NOTE = "booted from a volume"  # instance_record's inference from a server without image: not ours
_LOCK = threading.Lock()


def options(config: Config) -> dict[str, Any]:
    got = config.extra.get("fix", {})
    return got if isinstance(got, dict) else {}


class CloudLink:
    """One cloud for one fix run: the connection (opened on first use, its failure kept too) and the
    project's Neutron view (read once, for every host). ``lock`` serialises the calls made through it."""

    def __init__(self, cloud: str) -> None:
        self.cloud = cloud
        self.lock = threading.RLock()
        self._conn: Any = None
        self._error: str | None = None
        self._project: tuple[ProjectEvidence, ProjectIndex] | str | None = None

    def connection(self) -> Any:
        """The authenticated connection; CloudError (the same one for every caller) otherwise."""
        with self.lock:
            if self._conn is None and self._error is None:
                try:
                    self._conn = connect(self.cloud)
                except CloudError as exc:
                    self._error = str(exc)
            if self._error is not None:
                raise CloudError(self._error)
            return self._conn

    def project(self) -> tuple[ProjectEvidence, ProjectIndex]:
        """The project's ports with their instances (known by id), groups, floating IPs; CloudError."""
        with self.lock:
            if self._project is None:
                try:
                    ev = _neutron_project(self.connection())
                    self._project = (ev, ProjectIndex(ev))
                except (CloudError, CallFailed) as exc:
                    self._project = str(exc)
            if isinstance(self._project, str):
                raise CloudError(self._project)
            return self._project


def link(config: Config) -> CloudLink | None:
    """The run's CloudLink when --os-cloud is given. It lives in the run's own options (the CLI makes them
    once per command), so every host and check of the run shares one connection."""
    opts = options(config)
    cloud = opts.get("os_cloud")
    if not cloud:
        return None
    with _LOCK:
        got = opts.get("cloud_link")
        if not isinstance(got, CloudLink):
            got = opts["cloud_link"] = CloudLink(str(cloud))
        return got


def _neutron_project(conn: Any) -> ProjectEvidence:
    try:
        ports = list(conn.network.ports())
    except Exception as exc:  # openstacksdk raises many types; each becomes one sentence
        raise CloudError(explain(exc, "listing ports (Neutron)")) from None
    # Every port owner but Neutron's own (DHCP, routers) is an instance, as 18's side counts them.
    devices = sorted({str(p.device_id) for p in ports
                      if p.device_id and not str(p.device_owner or "").startswith("network:")})
    ev = ProjectEvidence(auth_url=None, region=conn.config.get_region_name() or None,
                         project_id=conn.current_project_id,
                         gathered_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    ev.servers = [{"id": d, "name": d, "status": None, "image": None, "key_name": None} for d in devices]
    gather_network(conn, ev, ports)
    return ev


def target_addresses(target: Any) -> list[str]:
    """The addresses a target is reached at (its host resolved), each once."""
    host = getattr(target, "host", None)
    if not isinstance(host, str) or not host:
        return []
    try:
        return [str(ipaddress.ip_address(host.split("%", 1)[0]))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return sorted({str(i[4][0]) for i in infos})


def find_instance(ports: Sequence[tuple[str, str | None, Sequence[str]]], fips: Sequence[tuple[str | None, str | None]],
                  addresses: Sequence[str], instance_id: str | None) -> str:
    """The instance (device id) behind a target: the one port owner with one of its ``addresses`` (fixed or
    floating), checked against the ``instance_id`` the host reports. ``ports``: (id, device id, fixed IPs);
    ``fips``: (port id, floating address). CloudError saying why when there is no single answer."""
    # Private addresses repeat across networks: every instance with one of the target's addresses.
    devices: dict[str, set[str]] = {}
    owner: dict[str, str | None] = {}
    for pid, dev, ips in ports:
        owner[pid] = dev
        for ip in ips:
            devices.setdefault(str(ip), set()).add(dev or "")
    for port_id, address in fips:
        if port_id in owner and address:
            devices.setdefault(str(address), set()).add(owner[port_id] or "")
    candidates = sorted({d for a in addresses for d in devices.get(a, ()) if d})
    where = ", ".join(addresses) or "no address"
    if instance_id:
        if candidates and instance_id not in candidates:
            raise CloudError(f"the address {where} belongs to instance {', '.join(candidates)} but the host says "
                             f"it is {instance_id}: not touching either")
        device: str | None = instance_id
    elif len(candidates) == 1:
        device = candidates[0]
    elif candidates:
        raise CloudError(f"several instances of this project have the address {where} ({', '.join(candidates)}) "
                         "and the host reports no instance id: not guessing")
    else:
        device = None
    if not device or not any(dev == device for _pid, dev, _ips in ports):
        raise CloudError(f"no port of this project has the target's address ({where})"
                         + (f" or belongs to instance {instance_id}" if instance_id else ""))
    return device




def record_for(lk: CloudLink, target: Any, instance_id: str | None) -> dict[str, Any]:
    """The instance record of ``target`` (cloud/gather.py's ``instance_record``); CloudError when the
    instance is not found (or the cloud not reached)."""
    ev, index = lk.project()
    ports = [(str(p["id"]), p.get("device_id"),
              [str(ip["ip_address"]) for ip in p.get("fixed_ips") or () if ip.get("ip_address")]) for p in ev.ports]
    fips = [(f.get("port_id"), f.get("floating_ip_address")) for f in ev.floating_ips]
    device = find_instance(ports, fips, target_addresses(target), instance_id)
    record = instance_record(ev, device, index)
    record["notes"] = [n for n in record["notes"] if not n.startswith(_VOLUME_NOTE)]
    record["notes"].append(f"read by fix --os-cloud {lk.cloud} from Neutron only: the instance is known by its id")
    return record


@dataclasses.dataclass(frozen=True)
class Lookup:
    """The outcome of attaching a target's instance record: what the plan of each check reading it says."""

    cloud: str
    instance: str | None = None
    groups: tuple[str, ...] = ()  # "name (id)" of the groups on the instance's ports
    error: str | None = None

    def into(self, remedy: Remedy) -> Remedy:
        """``remedy`` saying where its security groups came from, or that they could not be read."""
        if remedy.check not in USES_INSTANCE:
            return remedy
        if self.error is None:
            groups = ", ".join(self.groups) or "none"
            seen = (f"the instance's security groups were read (cloud {self.cloud}, instance {self.instance}; "
                    f"groups: {groups}): a service they let in stays let in")
            return dataclasses.replace(remedy, preconditions=(visible(seen), *remedy.preconditions))
        why = (f"security groups NOT read (cloud {self.cloud}: {self.error}): planned without them, as without "
               "--os-cloud: only sshd's ports, the current firewall's rules and --allow keep a service")
        return dataclasses.replace(remedy, notes=(visible(why), *remedy.notes))


def attach_instance(target: Any, result: HostResult, bundle: Bundle, config: Config) -> Lookup | None:
    """With --os-cloud and no record in ``bundle`` yet: find ``target``'s instance and attach its record as
    ``bundle.cloud`` (what ``nectar-audit cloud`` attaches). None when there is nothing to look up."""
    lk = link(config)
    if lk is None or bundle.cloud is not None:
        return None
    identity = result.extra.get("identity", {})
    instance_id = identity.get("instance_id") if isinstance(identity, dict) else None
    try:
        record = record_for(lk, target, instance_id if isinstance(instance_id, str) else None)
    except CloudError as exc:
        return Lookup(lk.cloud, error=str(exc))
    bundle.cloud = record
    names = [f"{g.get('name') or g['id']} ({g['id']})" for g in record["security_groups"]
             if any(g["id"] in (p.get("security_groups") or ()) for p in record["ports"])]
    return Lookup(lk.cloud, str(record["server"]["id"]), tuple(names))
