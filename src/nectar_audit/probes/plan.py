"""What `scan --probe` probes on an SSH target: which address, and which ports, from the host's own evidence.

Ports: the host's non-loopback listeners, the ports its firewall lets in (when its rules were read),
then the defaults, at most ``MAX_PORTS``. UDP is probed on 53 and 123 only (there is no harmless
generic UDP probe). The address: the ssh_config HostName of the target (an alias is resolved the way the
SSH connection resolves it), as a literal IP address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nectar_audit.config import Config
from nectar_audit.evidence import Bundle, Needs
from nectar_audit.facts import Facts
from nectar_audit.facts import firewall as firewall_facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.firewall import PortRange, firewall
from nectar_audit.facts.system import Listener, listeners
from nectar_audit.probes import DEFAULT_PORTS

MAX_PORTS = 64
NARROW = 16  # firewall ranges of up to this many ports are probed port by port
UDP_PROBED = frozenset({53, 123})
CLIENT_PORTS = frozenset({("udp", 68), ("udp", 546)})  # DHCP clients look like listeners

# The host's own evidence a probe plan reads (its listeners, its firewall), gathered with the scan.
NEEDS = firewall_facts.NEEDS | system_facts.NEEDS


@dataclass(frozen=True)
class PortPlan:
    ports: tuple[int, ...] = DEFAULT_PORTS
    why: dict[int, str] = field(default_factory=dict)  # port -> where it came from
    own_addresses: frozenset[str] = frozenset()  # addresses the host's listeners are bound to
    notes: tuple[str, ...] = ()  # what was not probed, and why


def plan_ports(
    listeners: Sequence[Listener] | None,
    ranges: Sequence[PortRange] | None,
    defaults: Sequence[int] = DEFAULT_PORTS,
    limit: int = MAX_PORTS,
) -> PortPlan:
    """Pure: listeners first, then the firewall's allowed ports, then the defaults; at most `limit`."""
    why: dict[int, str] = {}
    notes: list[str] = []
    own: set[str] = set()
    skipped_udp: list[str] = []
    for s in listeners or ():
        if s.loopback or (s.proto, s.port) in CLIENT_PORTS:
            continue
        if not s.wildcard:
            own.add(str(ipaddress.ip_address(s.address)))
        if s.proto == "udp" and s.port not in UDP_PROBED:
            skipped_udp.append(f"{s.port}/udp ({s.process or 'unknown process'})")
            continue
        why.setdefault(s.port, f"listener {s.describe()}")
    if skipped_udp:
        notes.append("not probed (no harmless generic UDP probe): " + ", ".join(dict.fromkeys(skipped_udp)))
    if listeners is None:
        notes.append("the host's listeners are unknown: its firewall and the default ports were probed")
    wide: list[str] = []
    for r in ranges or ():
        if r.verdict.allowed is False and not r.verdict.sources:
            continue
        if r.hi - r.lo + 1 > NARROW:
            wide.append(f"{r.label()} (IPv{r.family})")
            continue
        for port in range(r.lo, r.hi + 1):
            if r.proto == "tcp" or port in UDP_PROBED:
                why.setdefault(port, f"the host firewall lets in {r.label()}: {r.verdict.describe()}")
    if wide:
        notes.append("firewall ranges too wide to probe port by port: " + ", ".join(dict.fromkeys(wide)))
    for port in defaults:
        why.setdefault(port, "a default port")
    chosen = list(why)[:limit]
    if len(why) > limit:
        dropped = [str(p) for p in list(why)[limit:]]
        notes.append(f"at most {limit} ports are probed; not probed: {', '.join(dropped)}")
    return PortPlan(tuple(sorted(chosen)), {p: why[p] for p in chosen}, frozenset(own), tuple(notes))


def plan_from_bundle(bundle: Bundle, config: Config | None = None) -> PortPlan:
    """The plan from a gathered evidence bundle; evidence that cannot be read leaves a note, never an error."""
    facts = Facts(bundle, config)
    notes: list[str] = []
    socks: list[Listener] | None
    try:
        socks = facts.get(listeners)
    except Exception as exc:  # an enrichment: a parser's failure is the scan's business, not the probe's
        socks = None
        notes.append(f"listeners unreadable: {exc}")
    ranges: list[PortRange] | None = None
    try:
        fw = facts.get(firewall)
        if fw.loaded_known or fw.enabled_at_boot:
            ranges = fw.open_ports()
        else:
            notes.append("no firewall rules in the evidence")
    except Exception as exc:
        notes.append(f"firewall rules unreadable: {exc}")
    plan = plan_ports(socks, ranges)
    return PortPlan(plan.ports, plan.why, plan.own_addresses, tuple(notes) + plan.notes)


class EvidenceTap:
    """Wraps a target: learns the probe plan from its evidence bundle as the scan gathers it (the bundle
    itself is not kept)."""

    def __init__(self, target: Any, config: Config | None = None) -> None:
        self.target = target
        self.config = config
        self.probe_plan: PortPlan | None = None

    def __getattr__(self, name: str) -> Any:
        if name in ("target", "__setstate__"):  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.target, name)

    def _learn(self, bundle: Bundle) -> Bundle:
        self.probe_plan = plan_from_bundle(bundle, self.config)
        return bundle

    def gather(self, needs: Needs) -> Bundle:
        return self._learn(self.target.gather(needs))

    async def gather_async(self, needs: Needs) -> Bundle:
        loop = asyncio.get_running_loop()
        inner = getattr(self.target, "gather_async", None)
        if inner is None:
            return await loop.run_in_executor(None, self.gather, needs)
        bundle: Bundle = await inner(needs)
        # Parsing the firewall takes tens of milliseconds: not on the event loop that drives the fleet's SSH.
        return await loop.run_in_executor(None, self._learn, bundle)


def resolve_address(target: Any) -> tuple[str, list[str]]:
    """(literal IP address to probe, evidence lines) for an SSH target: its ssh_config HostName, resolved."""
    import asyncssh

    host = str(target.host)
    notes: list[str] = []
    options = getattr(target, "options", None)
    files = getattr(options, "config_files", None)
    config: Any = () if files is None else list(files)
    try:
        resolved = asyncssh.SSHClientConnectionOptions(
            config=config, host=host, client_keys=None, known_hosts=None, agent_path=None
        )
        hostname = str(resolved.host or host)
        jump = resolved.tunnel if isinstance(resolved.tunnel, str) else None
    except (OSError, ValueError, asyncssh.Error) as exc:
        hostname, jump = host, None
        notes.append(f"ssh config not read ({exc}): probing {host} as given")
    if hostname != host:
        notes.append(f"ssh_config alias {host!r} has HostName {hostname}")
    if jump and jump.strip().lower() != "none":
        notes.append(f"the audit reached {host} through ProxyJump {jump}; the probes go directly from here")
    try:
        return str(ipaddress.ip_address(hostname)), notes
    except ValueError:
        pass
    infos = socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP)
    address = str(ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0]))
    notes.append(f"{hostname} resolves to {address}")
    return address, notes
