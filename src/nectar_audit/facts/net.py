"""Address sets and access grants shared by every network domain (DNS, NTP, mail, the firewall's reach).

Network sets are kept as sorted integer intervals per family, so subtracting, intersecting and judging
thousands of ACL entries stays linear. A ``Grant`` is the result of evaluating an access list; ``judge``
grades it against the operator's trusted networks and the host's own subnets (``local_networks``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from nectar_audit.evidence import EvidenceError, Needs
from nectar_audit.model import Evidence

if TYPE_CHECKING:
    from nectar_audit.facts import Facts


Net = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Addr = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

ANY4 = ipaddress.ip_network("0.0.0.0/0")
ANY6 = ipaddress.ip_network("::/0")
LOOPBACK: tuple[Net, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("::ffff:127.0.0.0/104"),
)
# Stands for "the subnets of this host's interfaces" when they cannot be known (offline images):
# benchmark space (RFC 2544) that no real configuration allows on purpose.
LOCALNETS_PLACEHOLDER = ipaddress.ip_network("198.18.0.0/15")

FIB_TRIE = "/proc/net/fib_trie"
IF_INET6 = "/proc/net/if_inet6"

# local_networks reads the host's own addresses (live only).
NEEDS = Needs(files=(FIB_TRIE, IF_INET6))

# --------------------------------------------------------------------------------------------------
# Network sets
def _split(nets: Iterable[Net]) -> tuple[list[ipaddress.IPv4Network], list[ipaddress.IPv6Network]]:
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for n in nets:
        if isinstance(n, ipaddress.IPv4Network):
            v4.append(n)
        else:
            v6.append(n)
    return v4, v6


Interval = tuple[int, int]


# The judges of a host evaluate the same few hundred networks (ACLs, rules, the host's subnets) over and
# over: their ranges, and the network of a range that is one block, are remembered (ipaddress objects
# are slow to make). A range of many blocks is not: a host's ACLs could then fill the memory with them.
@functools.lru_cache(maxsize=4096)
def _span(n: Net) -> tuple[int, int, int]:
    lo = int(n.network_address)
    return n.version, lo, lo | ((1 << (n.max_prefixlen - n.prefixlen)) - 1)


@functools.lru_cache(maxsize=4096)
def _block(version: int, lo: int, prefixlen: int) -> Net:
    return ipaddress.IPv4Network((lo, prefixlen)) if version == 4 else ipaddress.IPv6Network((lo, prefixlen))


def _summarize(version: int, lo: int, hi: int) -> Iterable[Net]:
    size = hi - lo + 1
    if size & (size - 1) == 0 and lo & (size - 1) == 0:  # one aligned block
        return (_block(version, lo, (32 if version == 4 else 128) - (size.bit_length() - 1)),)
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return ipaddress.summarize_address_range(cls(lo), cls(hi))


def _intervals(nets: Iterable[Net]) -> dict[int, list[Interval]]:
    """Per IP version, the sorted, merged [first, last] address ranges of ``nets``."""
    raw: dict[int, list[Interval]] = {4: [], 6: []}
    for n in nets:
        version, lo, hi = _span(n)
        raw[version].append((lo, hi))
    out: dict[int, list[Interval]] = {}
    for version, ranges in raw.items():
        merged: list[Interval] = []
        for lo, hi in sorted(ranges):
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        out[version] = merged
    return out


def _networks(ivs: dict[int, list[Interval]]) -> list[Net]:
    out: list[Net] = []
    for version in (4, 6):
        for lo, hi in ivs.get(version, []):
            out.extend(_summarize(version, lo, hi))
    return out


def collapse(nets: Iterable[Net]) -> list[Net]:
    return _networks(_intervals(nets))


def _difference(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    j = 0
    for lo, hi in a:
        cur = lo
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= hi:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            if cur > hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def _intersection(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(nets: Iterable[Net], minus: Iterable[Net]) -> list[Net]:
    """The addresses of ``nets`` that are in none of ``minus``."""
    a, b = _intervals(nets), _intervals(minus)
    return _networks({v: _difference(a[v], b[v]) for v in (4, 6)})


def intersect(a: Iterable[Net], b: Iterable[Net]) -> list[Net]:
    x, y = _intervals(a), _intervals(b)
    return _networks({v: _intersection(x[v], y[v]) for v in (4, 6)})


def overlaps(a: Iterable[Net], b: Iterable[Net]) -> bool:
    x, y = _intervals(a), _intervals(b)
    return any(_intersection(x[v], y[v]) for v in (4, 6))


def parse_net(text: str) -> Net | None:
    """``10.0.0.0/8``, ``10/8`` (BIND shorthand), ``192.168.1.1``, ``fe80::/10``; None if not a network."""
    text = text.strip().strip("[]")
    addr, slash, plen = text.partition("/")
    if "%" in addr:
        addr = addr.split("%", 1)[0]
    if (
        ":" not in addr
        and addr
        and all(p.isdigit() for p in addr.split("."))
        and addr.count(".") < 3
        and slash
    ):
        addr = ".".join(([*addr.split("."), "0", "0", "0"])[:4])
    try:
        return ipaddress.ip_network(f"{addr}{slash}{plen}", strict=False)
    except ValueError:
        return None


def net_text(nets: Sequence[Net]) -> str:
    if set(nets) >= {ANY4, ANY6}:
        rest = [n for n in nets if n not in (ANY4, ANY6)]
        return ", ".join(["any", *map(str, rest)])
    return ", ".join(map(str, nets))


# --------------------------------------------------------------------------------------------------
# The host's own addresses and connected subnets (BIND's localhost / localnets)
@dataclass(frozen=True)
class LocalNets:
    addresses: tuple[Addr, ...]
    networks: tuple[Net, ...]  # connected subnets, loopback included

    @property
    def own(self) -> tuple[Net, ...]:
        """The host's own addresses as /32 and /128 networks (computed once)."""
        cached: tuple[Net, ...] | None = self.__dict__.get("_own")
        if cached is None:
            cached = tuple(collapse(ipaddress.ip_network(a) for a in self.addresses))
            object.__setattr__(self, "_own", cached)
        return cached


def parse_fib_trie(text: str) -> tuple[list[Addr], list[Net]]:
    """/proc/net/fib_trie: local addresses (``/32 host LOCAL``) and connected subnets (``link UNICAST``)."""
    addrs: list[Addr] = []
    nets: list[Net] = []
    leaf: str | None = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|--"):
            leaf = s[3:].strip()
            continue
        m = re.match(r"/(\d+)\s+(\w+)\s+(\w+)", s)
        if not m or leaf is None:
            continue
        try:
            if m.group(3) == "LOCAL" and m.group(1) == "32":
                addrs.append(ipaddress.ip_address(leaf))
            elif m.group(2) == "link" and m.group(3) == "UNICAST":
                nets.append(ipaddress.ip_network(f"{leaf}/{m.group(1)}", strict=False))
        except ValueError:
            continue
    return sorted(set(addrs), key=str), collapse(nets)


def parse_if_inet6(text: str) -> tuple[list[Addr], list[Net]]:
    """/proc/net/if_inet6: ``addr-hex ifindex prefixlen-hex scope flags name``."""
    addrs: list[Addr] = []
    nets: list[Net] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 6 or len(words[0]) != 32:
            continue
        try:
            addr = ipaddress.IPv6Address(int(words[0], 16))
            plen = int(words[2], 16)
            addrs.append(addr)
            nets.append(ipaddress.ip_network(f"{addr}/{plen}", strict=False))
        except ValueError:
            continue
    return addrs, collapse(nets)


def local_networks(facts: Facts) -> LocalNets | None:
    """The host's addresses and connected subnets (live only; None when they cannot be known)."""
    b = facts.bundle
    if not b.live:
        return None
    try:
        trie = b.text(FIB_TRIE)
        inet6 = b.text(IF_INET6)
    except EvidenceError:
        return None
    if not trie:
        return None
    a4, n4 = parse_fib_trie(trie)
    a6, n6 = parse_if_inet6(inet6 or "")
    if not a4 and not a6:
        return None
    # Link-local subnets reach only the same link, whose hosts the routable subnets already stand for.
    nets = [n for n in (*n4, *n6) if not n.is_link_local]
    return LocalNets(tuple([*a4, *a6]), tuple(collapse([*nets, *LOOPBACK[:2]])))


# --------------------------------------------------------------------------------------------------
# Access grants and their verdict
@dataclass(frozen=True)
class Grant:
    """Who a service answers, from evaluating an access list (BIND ACL, unbound access-control, ...).

    ``networks``: everything allowed, ``localnets`` expanded (or the placeholder when unknown);
    ``explicit``: what is allowed with ``localnets`` taken as empty; ``unknown``: elements that could
    not be evaluated (undefined ACL names, geoip, files not gathered); ``keys``: TSIG keys granted.
    ``items``: (element text, where, networks it granted) of the elements that granted something.
    """

    networks: tuple[Net, ...]
    explicit: tuple[Net, ...]
    localnets: bool = False
    unknown: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    items: tuple[tuple[str, str, tuple[Net, ...]], ...] = ()

    @staticmethod
    def of(nets: Iterable[Net], text: str = "", where: str = "") -> Grant:
        nl = tuple(collapse(nets))
        return Grant(nl, nl, items=((text, where, nl),) if text else ())

    @staticmethod
    def nobody() -> Grant:
        return Grant((), ())


@dataclass(frozen=True)
class Verdict:
    level: str  # none | local | trusted | localnets | untrusted | unknown
    text: str  # human description of who is allowed

    @property
    def rank(self) -> int:
        return ("none", "local", "trusted", "localnets", "unknown", "untrusted").index(self.level)


IntervalSet = dict[int, list[Interval]]


def _minus(nets: Iterable[Net], safe: Iterable[Net]) -> IntervalSet:
    a, b = _intervals(nets), _intervals(safe)
    return {v: _difference(a[v], b[v]) for v in (4, 6)}


def _hits(nets: Iterable[Net], ivs: IntervalSet) -> bool:
    x = _intervals(nets)
    return any(_intersection(x[v], ivs[v]) for v in (4, 6))


def _is_wide(ivs: IntervalSet) -> bool:
    """Covers most of the IPv4 or the IPv6 address space ("any", give or take a few exceptions)."""
    return (sum(hi - lo + 1 for lo, hi in ivs[4]) >= 2**31
            or sum(hi - lo + 1 for lo, hi in ivs[6]) >= 2**127)


def _few(ivs: IntervalSet, limit: int = 16) -> tuple[Net, ...]:
    return tuple(_networks({v: ivs[v][:limit] for v in (4, 6)}))


def judge(grant: Grant, trusted: Sequence[Net], local: LocalNets | None) -> Verdict:
    own = local.own if local else []
    safe = [*LOOPBACK, *trusted, *own]
    rest_explicit = _minus(grant.explicit, safe)
    if any(rest_explicit.values()):
        return Verdict("untrusted", _grant_text(grant, rest_explicit))
    rest_all = _minus(grant.networks, safe)
    if any(rest_all.values()):
        if local is None or _hits([LOCALNETS_PLACEHOLDER], rest_all):
            txt = "localnets (the subnets of this host's interfaces)"
        else:
            shown = [n for n in local.networks if not n.is_loopback and not n.is_link_local
                     and _hits([n], rest_all)]
            kinds = "public" if any(n.is_global for n in shown) else "private"
            label = net_text(shown) if shown else "link-local"
            txt = f"localnets = {label} ({kinds} subnet{'s' if len(shown) > 1 else ''})"
        return Verdict("localnets", txt)
    if grant.unknown:
        return Verdict("unknown", "undecidable: " + ", ".join(grant.unknown))
    if not grant.networks and not grant.keys:
        return Verdict("none", "nobody")
    if any(_minus(grant.networks, [*LOOPBACK, *own]).values()):
        shown_nets = [n for n in subtract(grant.networks, LOOPBACK) if n not in own]
        return Verdict("trusted", f"trusted networks only ({net_text(shown_nets)})")
    return Verdict("local", "this host only (loopback)")


def _grant_text(grant: Grant, rest: IntervalSet) -> str:
    hit = [(t, nets) for t, _, nets in grant.items if _hits(nets, rest)]
    shown = list(dict.fromkeys(t for t, _ in hit))
    items = ", ".join(shown)
    if _is_wide(rest):
        return f"any host ({items})" if items and items != "any" else "any host"
    if shown and all(" " not in t for t in shown):
        return items  # BIND-style elements: networks and ACL names
    nets = collapse(n for _, ns in hit for n in ns) if hit else list(_few(rest))
    return net_text(subtract(nets, LOOPBACK))


# --------------------------------------------------------------------------------------------------
# Listening plans
@dataclass(frozen=True)
class ListenPlan:
    """Where a server will listen per its configuration: ``beyond_loopback`` True/False/None (unknown)."""

    beyond_loopback: bool | None
    text: str
    evidence: tuple[Evidence, ...] = ()



def longest_prefix_grant(rules: list[tuple[Net, bool, str, str]]) -> Grant:
    """Allowed set under longest-prefix-match rules (net, allows, text, where); later duplicates win."""
    by_net: dict[Net, tuple[bool, str, str]] = {}
    for net, allows, text, where in rules:
        by_net[net] = (allows, text, where)
    allowed: list[Net] = []
    items: list[tuple[str, str, tuple[Net, ...]]] = []
    nets = list(by_net)
    for net, (allows, text, where) in by_net.items():
        if not allows:
            continue
        inner = [m for m in nets if m != net and m.version == net.version and m.subnet_of(net)]  # type: ignore[arg-type]
        region = subtract([net], inner)
        # A more specific rule that allows again is handled by its own iteration.
        if region:
            allowed.extend(region)
            items.append((text, where, tuple(region)))
    nl = tuple(collapse(allowed))
    return Grant(nl, nl, items=tuple(items))
