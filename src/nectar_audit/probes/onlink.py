"""Whether a probe's target sits on a subnet the probing machine is attached to (no router between).

A server that trusts "its local networks" (BIND's default ``allow-recursion { localnets; localhost; }``,
an NTP ``restrict``/chrony ``allow`` line for the LAN) answers a prober on its own subnet and may refuse
the Internet: such an answer shows exposure to the subnet, not to the world. The answer comes from the
prober's routing table, read from /proc/net/route and /proc/net/ipv6_route (Linux); elsewhere nothing is
known and nothing is said.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

_RTF_UP = 0x1
_RTF_GATEWAY = 0x2
_RTF_REJECT = 0x200
ROUTE4 = Path("/proc/net/route")
ROUTE6 = Path("/proc/net/ipv6_route")

Route = tuple[int, bool, str]  # prefix length, on-link (no gateway), network


def on_link_network(target: str, route4: str = "", route6: str = "") -> str | None:
    """The subnet (e.g. "10.0.0.0/24") through which ``target`` is reached directly, or None: reached
    through a gateway, by a default route only, or not routed at all. Longest prefix wins, as in the
    kernel's main table; routes that are down or rejecting are ignored."""
    try:
        ip = ipaddress.ip_address(target.split("%", 1)[0])
    except ValueError:
        return None
    routes = _routes4(route4) if ip.version == 4 else _routes6(route6)
    best: Route | None = None
    for plen, direct, network in routes:
        if ip in ipaddress.ip_network(network) and (best is None or plen > best[0]):
            best = (plen, direct, network)
    if best is None or best[0] == 0 or not best[1]:
        return None
    return best[2]


def local_on_link(target: str) -> str | None:
    """on_link_network with this machine's routing tables (None where they cannot be read)."""
    texts = []
    for path in (ROUTE4, ROUTE6):
        try:
            texts.append(path.read_text(encoding="ascii", errors="replace"))
        except OSError:
            texts.append("")
    return on_link_network(target, *texts)


def _routes4(text: str) -> list[Route]:
    # Iface Destination Gateway Flags RefCnt Use Metric Mask ...: addresses as the kernel holds them
    # (network order), printed as a number: byte-swapped on a little-endian machine.
    out: list[Route] = []
    for line in text.splitlines()[1:]:
        w = line.split()
        if len(w) < 8:
            continue
        try:
            dest, gateway, mask = (_v4(w[i]) for i in (1, 2, 7))
            flags = int(w[3], 16)
        except ValueError:
            continue
        if not flags & _RTF_UP or flags & _RTF_REJECT:
            continue
        try:
            net = ipaddress.IPv4Network(f"{dest}/{mask}")
        except ValueError:  # a mask that is not a prefix
            continue
        out.append((net.prefixlen, not flags & _RTF_GATEWAY and int(gateway) == 0, str(net)))
    return out


def _v4(word: str) -> ipaddress.IPv4Address:
    raw = bytes.fromhex(word)
    if len(raw) != 4:
        raise ValueError(word)
    return ipaddress.IPv4Address(raw[::-1] if sys.byteorder == "little" else raw)


def _routes6(text: str) -> list[Route]:
    # dest plen src src_plen next_hop metric refcnt use flags iface, hex in network order. Routes on lo
    # are the host's own addresses (a probe of those is the host itself, said elsewhere).
    out: list[Route] = []
    for line in text.splitlines():
        w = line.split()
        if len(w) < 10 or w[9] == "lo":
            continue
        try:
            dest = ipaddress.IPv6Address(bytes.fromhex(w[0]))
            plen = int(w[1], 16)
            next_hop = ipaddress.IPv6Address(bytes.fromhex(w[4]))
            flags = int(w[8], 16)
            net = ipaddress.IPv6Network(f"{dest}/{plen}")
        except ValueError:
            continue
        if not flags & _RTF_UP or flags & _RTF_REJECT:
            continue
        out.append((plen, not flags & _RTF_GATEWAY and int(next_hop) == 0, str(net)))
    return out
