"""Who the host firewall lets reach a service's port, and an access grant cut down to that."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError
from nectar_audit.facts.firewall import firewall

if TYPE_CHECKING:
    from nectar_audit.facts import Facts
from nectar_audit.facts.net import ANY4, ANY6, LOOPBACK, Grant, Net, collapse, intersect, parse_net


# --------------------------------------------------------------------------------------------------
# Host firewall limits (facts/firewall.py, when present)
@dataclass(frozen=True)
class Reach:
    """Who the host firewall lets reach a port: ``networks`` (ANY4/ANY6 when open), ``text``, ``known``."""

    networks: tuple[Net, ...]
    text: str
    known: bool


def firewall_reach(facts: Facts, proto: str, port: int) -> Reach:
    """Sources the host firewall admits to ``proto``/``port`` (IPv4 and IPv6); open when it cannot tell."""
    try:
        fw = facts.get(firewall)
    except EvidenceError:
        return Reach((ANY4, ANY6), "host firewall not evaluated", False)
    nets: list[Net] = []
    texts: list[str] = []
    known = True
    for family, anynet in ((4, ANY4), (6, ANY6)):
        try:
            v = fw.evaluate(proto, port, family)
        except (EvidenceError, ValueError, TypeError, AttributeError):
            return Reach((ANY4, ANY6), "host firewall not evaluated", False)
        allowed = getattr(v, "allowed", None)
        sources = tuple(getattr(v, "sources", ()) or ())
        describe = v.describe() if hasattr(v, "describe") else str(v)
        texts.append(f"IPv{family} {proto}/{port}: {describe}")
        if allowed is False and sources:
            nets.extend(n for n in (parse_net(s) for s in sources) if n is not None)
        elif allowed is False:
            continue
        else:
            nets.append(anynet)
            known = known and allowed is True
    return Reach(tuple(collapse(nets)), "; ".join(texts), known)


def merge_reach(reaches: Sequence[Reach]) -> Reach:
    """Sources the host firewall admits over any of several protocols (DNS: UDP and TCP port 53)."""
    nets = collapse(n for r in reaches for n in r.networks)
    texts = [r.text for r in reaches if r.text != "host firewall not evaluated"]
    if not texts:
        return Reach(tuple(nets), "host firewall not evaluated", False)
    return Reach(tuple(nets), "; ".join(texts), all(r.known for r in reaches))


def limit(grant: Grant, reach: Reach) -> Grant:
    """A grant cut down to the sources the firewall admits."""
    nets = tuple(intersect(grant.networks, [*reach.networks, *LOOPBACK]))
    explicit = tuple(intersect(grant.explicit, [*reach.networks, *LOOPBACK]))
    items = tuple((t, w, tuple(intersect(n, [*reach.networks, *LOOPBACK]))) for t, w, n in grant.items)
    return Grant(nets, explicit, grant.localnets, grant.unknown, grant.keys, items)
