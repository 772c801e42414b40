"""The firewall rule model shared by the nftables, iptables, ufw and firewalld readers, and its evaluator.

Every reader turns its input into ``Ruleset``s of tables, chains and rules whose matches are small
predicate objects. The evaluator follows one packet, "a new TCP connection (or UDP datagram) from a
non-local source to port P of this host, arriving on an external interface", through the base chains
of the prerouting and input hooks the way the kernel does (all base chains of a hook in priority order;
accept ends one chain, drop/reject end the packet; jump/goto/return; verdict maps; legacy iptables and
nftables hooks both apply). A match it cannot decide (an unknown expression, an interface name it does
not know) is not guessed: the evaluation forks into "matches" and "does not match"; when both worlds
agree the answer stands, otherwise the verdict is undecided and names the rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Union

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

MAX_WORLDS = 512
MAX_DEPTH = 48


class TooComplex(Exception):
    pass


# --------------------------------------------------------------------------------------------------
# The packet
@dataclass(frozen=True)
class Packet:
    family: int  # 4 | 6
    proto: str  # tcp | udp
    dport: int
    saddr: IPAddress
    iif: str | None  # None: some external (non-loopback) interface whose name is unknown
    daddr: IPAddress | None = None  # None: a unicast address of this host
    sport: int = 51234
    ct_state: str = "new"


# --------------------------------------------------------------------------------------------------
# Predicates: eval() -> True / False / None (cannot tell)
@dataclass(frozen=True)
class Pred:
    text: str

    def eval(self, pkt: Packet) -> bool | None:
        return None

    def port_points(self, proto: str) -> Iterable[int]:
        return ()

    def saddr_nets(self, family: int) -> Iterable[IPNetwork]:
        return ()


@dataclass(frozen=True)
class Const(Pred):
    value: bool | None = None

    def eval(self, pkt: Packet) -> bool | None:
        return self.value


@dataclass(frozen=True)
class NfProto(Pred):
    family: int = 4

    def eval(self, pkt: Packet) -> bool | None:
        return pkt.family == self.family


@dataclass(frozen=True)
class L4Proto(Pred):
    protos: frozenset[str] = frozenset()
    neg: bool = False

    def eval(self, pkt: Packet) -> bool | None:
        hit = pkt.proto in self.protos or "all" in self.protos
        return hit != self.neg


@dataclass(frozen=True)
class Port(Pred):
    """A transport port match; ``proto`` None means "th" (any transport with ports)."""

    which: str = "dport"  # dport | sport
    proto: str | None = None
    ranges: tuple[tuple[int, int], ...] = ()
    neg: bool = False
    unknown: bool = False  # e.g. a set whose content is not known

    def eval(self, pkt: Packet) -> bool | None:
        if self.proto is not None and self.proto != pkt.proto:
            return False  # "tcp dport 22" implies the protocol, negated or not
        if pkt.proto not in ("tcp", "udp", "sctp", "dccp", "udplite"):
            return False
        if self.unknown:
            return None
        value = pkt.dport if self.which == "dport" else pkt.sport
        hit = any(lo <= value <= hi for lo, hi in self.ranges)
        return hit != self.neg

    def port_points(self, proto: str) -> Iterable[int]:
        if self.which != "dport" or (self.proto is not None and self.proto != proto):
            return ()
        out: list[int] = []
        for lo, hi in self.ranges:
            out.extend((lo, hi + 1))
        return out


@dataclass(frozen=True)
class Addr(Pred):
    which: str = "saddr"  # saddr | daddr
    family: int = 4
    nets: tuple[IPNetwork, ...] = ()
    neg: bool = False
    unknown: bool = False

    def eval(self, pkt: Packet) -> bool | None:
        if pkt.family != self.family:
            return False  # "ip saddr" implies IPv4, "ip6 saddr" IPv6
        if self.unknown:
            return None
        addr = pkt.saddr if self.which == "saddr" else pkt.daddr
        if addr is None:
            # Destination: a unicast address of this host. Multicast, broadcast and link-local
            # destinations are not it; any other network might be.
            if all(_not_host_unicast(n) for n in self.nets):
                return self.neg
            if any(n.prefixlen == 0 for n in self.nets):
                return not self.neg
            return None
        hit = any(addr in n for n in self.nets)
        return hit != self.neg

    def saddr_nets(self, family: int) -> Iterable[IPNetwork]:
        if self.which == "saddr" and self.family == family:
            return self.nets
        return ()


def address_range(first: str, last: str) -> list[IPNetwork]:
    """Networks covering first..last (ValueError/TypeError when not two addresses of one family)."""
    a, b = ipaddress.ip_address(first), ipaddress.ip_address(last)
    if isinstance(a, ipaddress.IPv4Address) and isinstance(b, ipaddress.IPv4Address):
        return list(ipaddress.summarize_address_range(a, b))
    if isinstance(a, ipaddress.IPv6Address) and isinstance(b, ipaddress.IPv6Address):
        return list(ipaddress.summarize_address_range(a, b))
    raise ValueError(f"{first} and {last} are of different families")


def _not_host_unicast(net: IPNetwork) -> bool:
    if net.prefixlen == 0:
        return False
    if net.is_multicast or net.is_link_local:
        return True
    return (
        isinstance(net, ipaddress.IPv4Network)
        and net.prefixlen == 32
        and net.network_address == ipaddress.IPv4Address("255.255.255.255")
    )


@dataclass(frozen=True)
class Iface(Pred):
    names: tuple[str, ...] = ()  # "eth0", "eth+" / "eth*" wildcards
    neg: bool = False

    def eval(self, pkt: Packet) -> bool | None:
        if pkt.iif is None:
            if all(_iface_match("lo", n) and not _is_wild(n) for n in self.names):
                return self.neg  # only "lo": an external interface is not it
            if any(n in ("+", "*") for n in self.names):
                return not self.neg
            return None
        hit = any(_iface_match(pkt.iif, n) for n in self.names)
        return hit != self.neg


def _is_wild(pattern: str) -> bool:
    return pattern.endswith(("+", "*"))


def _iface_match(name: str, pattern: str) -> bool:
    if _is_wild(pattern):
        return name.startswith(pattern[:-1])
    return name == pattern


@dataclass(frozen=True)
class CtState(Pred):
    states: frozenset[str] = frozenset()
    neg: bool = False

    def eval(self, pkt: Packet) -> bool | None:
        return (pkt.ct_state in self.states) != self.neg


@dataclass(frozen=True)
class TcpFlags(Pred):
    """(flags & mask) == comp for the first packet of a connection (SYN); not TCP -> no match."""

    mask: frozenset[str] = frozenset()
    comp: frozenset[str] = frozenset()
    neg: bool = False
    any_of: bool = False  # nft "tcp flags syn" style: flags & comp != 0

    def eval(self, pkt: Packet) -> bool | None:
        if pkt.proto != "tcp":
            return False
        flags = {"syn"}
        hit = bool(flags & self.comp) if self.any_of else (flags & self.mask) == set(self.comp)
        return hit != self.neg


@dataclass(frozen=True)
class Not(Pred):
    inner: Pred = field(default_factory=lambda: Const("?"))

    def eval(self, pkt: Packet) -> bool | None:
        v = self.inner.eval(pkt)
        return None if v is None else not v


# --------------------------------------------------------------------------------------------------
# Rules and chains
TERMINAL = ("accept", "drop", "reject")


@dataclass(frozen=True)
class Action:
    kind: str  # accept drop reject jump goto return continue undecided
    target: str | None = None
    text: str = ""


@dataclass(frozen=True)
class Rule:
    matches: tuple[Pred, ...]
    action: Action
    text: str
    # verdict map: (entry predicate, action) pairs; the first entry that matches decides
    vmap: tuple[tuple[Pred, Action], ...] = ()


@dataclass
class Chain:
    name: str
    rules: list[Rule] = field(default_factory=list)
    hook: str | None = None  # prerouting | input | forward | output | postrouting
    type: str = "filter"  # filter | nat | route
    priority: int = 0
    policy: str | None = None  # accept | drop (base chains)


@dataclass
class Table:
    family: str  # ip | ip6 | inet | arp | bridge | netdev
    name: str
    chains: dict[str, Chain] = field(default_factory=dict)
    # Set when a table of the same family and name is loaded by another backend too (iptables-legacy
    # beside iptables-nft): names the backend in every label, so verdicts say which one decided.
    tag: str = ""

    @property
    def families(self) -> tuple[int, ...]:
        return {"ip": (4,), "ip6": (6,), "inet": (4, 6)}.get(self.family, ())


@dataclass
class Ruleset:
    source: str  # "command: nft -j list ruleset", "/etc/nftables.conf", …
    backend: str  # nft | iptables-legacy | iptables-nft | ufw | firewalld
    tables: list[Table] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def table(self, family: str, name: str) -> Table | None:
        for t in self.tables:
            if t.family == family and t.name == name:
                return t
        return None

    def base_chains(self, family: int) -> list[tuple[Table, Chain]]:
        """Filter base chains a packet to this host passes, in kernel order."""
        hooks = {"prerouting": 0, "input": 1}
        out = [
            (t, c)
            for t in self.tables
            if family in t.families
            for c in t.chains.values()
            if c.hook in hooks and c.type == "filter"
        ]
        out.sort(key=lambda tc: (hooks[tc[1].hook or "input"], tc[1].priority))
        return out

    @property
    def empty(self) -> bool:
        return not any(t.chains for t in self.tables)

    def all_rules(self) -> Iterable[tuple[Table, Chain, Rule]]:
        for t in self.tables:
            for c in t.chains.values():
                for r in c.rules:
                    yield t, c, r


def chain_label(table: Table, chain: Chain) -> str:
    label = f"{table.family} {table.name} {chain.name}"
    return f"{label} ({table.tag})" if table.tag else label


# --------------------------------------------------------------------------------------------------
# Evaluation
@dataclass(frozen=True)
class Step:
    """Where a world's verdict came from."""

    chain: str
    rule: str | None  # None: the chain policy
    verdict: str


@dataclass
class World:
    assume: dict[str, bool]
    steps: list[Step] = field(default_factory=list)

    def fork(self) -> World:
        return World(dict(self.assume), list(self.steps))


@dataclass(frozen=True)
class Outcome:
    verdict: str  # accept | drop | reject | undecided
    world: World
    why: str  # the deciding rule / policy text


class _Walker:
    def __init__(self, pkt: Packet) -> None:
        self.pkt = pkt
        self.count = 0

    def _bump(self) -> None:
        self.count += 1
        if self.count > MAX_WORLDS:
            raise TooComplex("too many undecidable matches to follow")

    def chain(self, table: Table, chain: Chain, world: World, depth: int) -> list[tuple[str, World, str]]:
        """(verdict, world, why) with verdict in accept/drop/reject/undecided/return."""
        if depth > MAX_DEPTH:
            raise TooComplex(f"jumps nested deeper than {MAX_DEPTH} (loop?) at {chain.name}")
        results: list[tuple[str, World, str]] = []
        todo: list[tuple[int, World]] = [(0, world)]
        label = chain_label(table, chain)
        while todo:
            i, w = todo.pop()
            if i >= len(chain.rules):
                results.append(("return", w, f"end of {label}"))
                continue
            rule = chain.rules[i]
            for matched, w2 in self._match_all(rule.matches, w):
                if not matched:
                    todo.append((i + 1, w2))
                    continue
                if rule.vmap:
                    self._vmap(table, chain, rule, i, w2, depth, todo, results, label)
                    continue
                self._act(table, rule.action, rule.text, i, w2, depth, todo, results, label)
        return results

    def _match_all(self, preds: Sequence[Pred], world: World) -> list[tuple[bool, World]]:
        # Fork-aware conjunction: each world either passes every predicate or fails one.
        out: list[tuple[bool, World]] = []
        stack: list[tuple[World, int]] = [(world, 0)]
        while stack:
            w, i = stack.pop()
            if i == len(preds):
                out.append((True, w))
                continue
            p = preds[i]
            v = p.eval(self.pkt)
            if v is None:
                if p.text in w.assume:
                    v = w.assume[p.text]
                else:
                    self._bump()
                    wf = w.fork()
                    wf.assume[p.text] = False
                    out.append((False, wf))
                    w.assume[p.text] = True
                    stack.append((w, i + 1))
                    continue
            if v:
                stack.append((w, i + 1))
            else:
                out.append((False, w))
        return out

    def _vmap(
        self,
        table: Table,
        chain: Chain,
        rule: Rule,
        i: int,
        world: World,
        depth: int,
        todo: list[tuple[int, World]],
        results: list[tuple[str, World, str]],
        label: str,
    ) -> None:
        pending = [world]
        for pred, action in rule.vmap:
            nxt: list[World] = []
            for w in pending:
                for matched, w2 in self._match_all((pred,), w):
                    if matched:
                        self._act(
                            table,
                            action,
                            f"{rule.text} ({pred.text}: {action.kind}"
                            f"{' ' + action.target if action.target else ''})",
                            i,
                            w2,
                            depth,
                            todo,
                            results,
                            label,
                        )
                    else:
                        nxt.append(w2)
            pending = nxt
        for w in pending:
            todo.append((i + 1, w))

    def _act(
        self,
        table: Table,
        action: Action,
        text: str,
        i: int,
        w: World,
        depth: int,
        todo: list[tuple[int, World]],
        results: list[tuple[str, World, str]],
        label: str,
    ) -> None:
        kind = action.kind
        if kind == "continue":
            todo.append((i + 1, w))
        elif kind in TERMINAL:
            w.steps.append(Step(label, text, kind))
            results.append((kind, w, f"{label}: {text}"))
        elif kind == "return":
            results.append(("return", w, f"{label}: {text}"))
        elif kind in ("jump", "goto"):
            target = table.chains.get(action.target or "")
            if target is None:
                results.append(("undecided", w, f"{label}: {text} (chain {action.target} not found)"))
                return
            for verdict, w2, why in self.chain(table, target, w, depth + 1):
                if verdict == "return":
                    if kind == "jump":
                        todo.append((i + 1, w2))
                    else:
                        results.append(("return", w2, why))
                else:
                    results.append((verdict, w2, why))
        else:
            results.append(
                ("undecided", w, f"{label}: {text} (verdict {action.text or kind} not understood)")
            )


def evaluate_packet(rulesets: Sequence[Ruleset], pkt: Packet) -> list[Outcome]:
    """Every world's final verdict for ``pkt`` through all base chains of all rulesets."""
    walker = _Walker(pkt)
    worlds: list[World] = [World({})]
    finals: list[Outcome] = []
    chains = [(t, c) for rs in rulesets for t, c in rs.base_chains(pkt.family)]
    # Legacy iptables and nftables hooks interleave by priority; order within a hook by priority.
    chains.sort(key=lambda tc: ({"prerouting": 0, "input": 1}.get(tc[1].hook or "input", 1), tc[1].priority))
    last_accept: dict[int, str] = {}
    for table, chain in chains:
        nxt: list[World] = []
        for w in worlds:
            for verdict, w2, why in walker.chain(table, chain, w, 0):
                if verdict == "return":
                    policy = chain.policy or "accept"
                    label = chain_label(table, chain)
                    why = f"policy {policy} of {label}"
                    w2.steps.append(Step(label, None, policy))
                    verdict = policy
                if verdict == "accept":
                    nxt.append(w2)
                    last_accept[id(w2)] = why
                elif verdict in ("drop", "reject"):
                    finals.append(Outcome(verdict, w2, why))
                else:
                    finals.append(Outcome("undecided", w2, why))
        worlds = nxt
    for w in worlds:
        finals.append(Outcome("accept", w, _accept_why(w) if chains else "no filter chain on the input path"))
    return finals


def _accept_why(w: World) -> str:
    rules = [s for s in w.steps if s.rule is not None]
    if rules:
        return "; ".join(f"{s.chain}: {s.rule}" for s in rules)
    pols = [f"policy {s.verdict} of {s.chain}" for s in w.steps]
    return "; ".join(pols) or "no filter chain on the input path"


# --------------------------------------------------------------------------------------------------
# Verdicts for the checks
@dataclass(frozen=True)
class Verdict:
    allowed: bool | None  # True: reachable from any non-local source; False: not; None: undecided
    rule: str  # evidence: the deciding rule(s) or policy
    undecided_reason: str | None = None
    sources: tuple[str, ...] = ()  # allowed only from these networks (allowed is False then)

    @property
    def restricted(self) -> bool:
        return bool(self.sources)

    def describe(self) -> str:
        if self.allowed is None:
            return f"undecided: {self.undecided_reason}"
        if self.allowed:
            return f"open ({self.rule})"
        if self.sources:
            return f"only from {', '.join(self.sources)} ({self.rule})"
        return f"closed ({self.rule})"


def summarise(outcomes: Sequence[Outcome]) -> Verdict:
    if not outcomes:
        return Verdict(None, "", "no verdict")
    kinds = {o.verdict for o in outcomes}
    if kinds == {"accept"}:
        best = min(outcomes, key=lambda o: len(o.world.assume))
        return Verdict(True, best.why)
    if kinds <= {"drop", "reject"}:
        best = min(outcomes, key=lambda o: len(o.world.assume))
        return Verdict(False, best.why)
    unknown = [o for o in outcomes if o.verdict == "undecided"]
    if unknown:
        return Verdict(None, unknown[0].why, unknown[0].why)
    assumed = sorted({k for o in outcomes for k in o.world.assume})
    accepting = next(o for o in outcomes if o.verdict == "accept")
    reason = "depends on match(es) the evaluator cannot decide: " + "; ".join(assumed[:4])
    return Verdict(None, accepting.why, reason)


OUTSIDE_V4 = ("198.51.100.77", "203.0.113.9", "192.0.2.33", "100.64.7.7", "8.8.4.4", "45.33.32.156")
OUTSIDE_V6 = ("2001:db8:77::7", "2001:db8:ffff::9", "2600::77", "2a00:1450::77", "3fff::7")


def _inside_rep(net: IPNetwork, children: Sequence[IPNetwork]) -> IPAddress | None:
    cands: list[IPAddress] = []
    size = net.num_addresses
    for off in (1, size - 2, size // 2 + 1, 0, size - 1, size // 4 + 3, 3 * size // 4 + 5):
        if 0 <= off < size:
            cands.append(net.network_address + off)
    for c in cands:
        if not any(c in ch for ch in children):
            return c
    return None


def source_representatives(
    nets: Iterable[IPNetwork], family: int
) -> list[tuple[IPNetwork | None, IPAddress]]:
    """One address per region of the source space the rules tell apart: (network or None=outside, addr)."""
    uniq = sorted(
        {
            n
            for n in nets
            if n.version == family and n.prefixlen > 0 and not n.is_loopback and not n.is_multicast
        },
        key=lambda n: (n.prefixlen, int(n.network_address)),
    )
    pool = OUTSIDE_V4 if family == 4 else OUTSIDE_V6
    outside: IPAddress | None = None
    for text in pool:
        a = ipaddress.ip_address(text)
        if not any(a in n for n in uniq):
            outside = a
            break
    reps: list[tuple[IPNetwork | None, IPAddress]] = []
    if outside is not None:
        reps.append((None, outside))
    for n in uniq[:64]:
        children = [c for c in uniq if c != n and c.subnet_of(n)]  # type: ignore[arg-type]
        rep = _inside_rep(n, children)
        if rep is not None:
            reps.append((n, rep))
    return reps


def evaluate(
    rulesets: Sequence[Ruleset],
    proto: str,
    port: int,
    family: int,
    saddr: str | None = None,
    iifs: Sequence[str | None] = (None,),
    daddr: str | None = None,
) -> Verdict:
    """Is a new ``proto`` connection to ``port`` over IPv``family`` let in?

    saddr None: from an arbitrary non-local source (networks the rules single out are tried too and
    reported as ``sources`` when only they get in); iifs: the external interfaces it may arrive on.
    """
    try:
        return _evaluate(rulesets, proto, port, family, saddr, iifs, daddr)
    except TooComplex as exc:
        return Verdict(None, "", str(exc))


def _evaluate(
    rulesets: Sequence[Ruleset],
    proto: str,
    port: int,
    family: int,
    saddr: str | None,
    iifs: Sequence[str | None],
    daddr: str | None,
) -> Verdict:
    d = ipaddress.ip_address(daddr) if daddr else None
    per_iif: list[Verdict] = []
    for iif in iifs or (None,):
        if saddr is not None:
            pkt = Packet(family, proto, port, ipaddress.ip_address(saddr), iif, d)
            per_iif.append(summarise(evaluate_packet(rulesets, pkt)))
            continue
        nets = [
            n
            for rs in rulesets
            for _, _, r in rs.all_rules()
            for p in _preds(r)
            for n in p.saddr_nets(family)
        ]
        reps = source_representatives(nets, family)
        outside_v: Verdict | None = None
        allowed_from: list[str] = []
        undecided_from: Verdict | None = None
        for net, addr in reps:
            v = summarise(evaluate_packet(rulesets, Packet(family, proto, port, addr, iif, d)))
            if net is None:
                outside_v = v
            elif v.allowed:
                allowed_from.append(str(net))
            elif v.allowed is None and undecided_from is None:
                undecided_from = v
        if outside_v is None:
            outside_v = Verdict(None, "", "no address outside the networks the rules name")
        if outside_v.allowed is False and allowed_from:
            outside_v = replace(outside_v, sources=tuple(_collapse(allowed_from)))
        per_iif.append(outside_v)
    return _merge_iifs(per_iif)


def _collapse(nets: list[str]) -> list[str]:
    parsed = [ipaddress.ip_network(n) for n in nets]
    keep = [n for n in parsed if not any(o != n and n.subnet_of(o) for o in parsed)]  # type: ignore[arg-type]
    return [str(n) for n in sorted(set(keep), key=lambda n: (n.version, int(n.network_address)))]


def _merge_iifs(vs: list[Verdict]) -> Verdict:
    if len(vs) == 1:
        return vs[0]
    for v in vs:
        if v.allowed:
            return v
    for v in vs:
        if v.allowed is None:
            return v
    srcs = sorted({s for v in vs for s in v.sources})
    return replace(vs[0], sources=tuple(srcs)) if srcs else vs[0]


def _preds(rule: Rule) -> Iterable[Pred]:
    yield from rule.matches
    for p, _ in rule.vmap:
        yield p


def port_boundaries(rulesets: Sequence[Ruleset], proto: str) -> list[int]:
    pts = {1, 65536}
    for rs in rulesets:
        for _, _, r in rs.all_rules():
            for p in _preds(r):
                pts.update(x for x in p.port_points(proto) if 1 <= x <= 65536)
    return sorted(pts)


@dataclass(frozen=True)
class PortRange:
    proto: str
    family: int
    lo: int
    hi: int
    verdict: Verdict

    def label(self) -> str:
        ports = str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"
        return f"{ports}/{self.proto}"


def open_ranges(
    rulesets: Sequence[Ruleset],
    family: int,
    protos: Sequence[str] = ("tcp", "udp"),
    iifs: Sequence[str | None] = (None,),
    max_segments: int = 4000,
) -> list[PortRange]:
    """Every port range whose verdict differs from its neighbours', with that verdict (all of 1-65535)."""
    out: list[PortRange] = []
    for proto in protos:
        pts = port_boundaries(rulesets, proto)
        if len(pts) > max_segments:
            raise TooComplex(f"{len(pts)} port boundaries in the rules")
        prev: PortRange | None = None
        for lo, nxt in zip(pts, pts[1:]):
            v = evaluate(rulesets, proto, lo, family, iifs=iifs)
            hi = nxt - 1
            if prev is not None and _same(prev.verdict, v):
                prev = PortRange(proto, family, prev.lo, hi, prev.verdict)
                out[-1] = prev
            else:
                prev = PortRange(proto, family, lo, hi, v)
                out.append(prev)
    return out


def _same(a: Verdict, b: Verdict) -> bool:
    return (a.allowed, a.sources, a.rule, a.undecided_reason) == (
        b.allowed,
        b.sources,
        b.rule,
        b.undecided_reason,
    )


# IP protocol numbers as the rule dumps print them (nft JSON and iptables-save alike).
PROTO_NUMBERS = {
    "6": "tcp",
    "17": "udp",
    "1": "icmp",
    "58": "ipv6-icmp",
    "132": "sctp",
    "33": "dccp",
    "136": "udplite",
    "2": "igmp",
    "50": "esp",
    "51": "ah",
    "47": "gre",
}
