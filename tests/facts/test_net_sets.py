"""Network sets: the remembered ranges and blocks give exactly what ipaddress gives, and memory stays
bounded whatever ranges a host's ACLs make."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.facts import net


def _cls(version: int) -> type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]:
    return ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from([4, 6]), st.integers(0, 2**128 - 1), st.integers(0, 2**20))
def test_a_range_summarizes_as_ipaddress_does(version: int, lo: int, span: int) -> None:
    top = 2**32 - 1 if version == 4 else 2**128 - 1
    lo %= top + 1
    hi = min(top, lo + span)
    assert list(net._summarize(version, lo, hi)) == list(
        ipaddress.summarize_address_range(_cls(version)(lo), _cls(version)(hi)))


@settings(max_examples=800, deadline=None)
@given(st.sampled_from([4, 6]), st.integers(0, 2**128 - 1), st.integers(0, 128))
def test_an_aligned_block_is_one_network(version: int, lo: int, prefixlen: int) -> None:
    bits = 32 if version == 4 else 128
    prefixlen %= bits + 1
    size = 1 << (bits - prefixlen)
    lo = (lo % (1 << bits)) & ~(size - 1)
    n = ipaddress.IPv4Network((lo, prefixlen)) if version == 4 else ipaddress.IPv6Network((lo, prefixlen))
    assert list(net._summarize(version, lo, lo + size - 1)) == [n]
    assert net._span(n) == (version, int(n.network_address), int(n.broadcast_address))


def test_ranges_of_many_blocks_are_not_remembered() -> None:
    """Only single blocks are cached: a hostile ACL's ragged ranges (up to 254 networks each) would
    otherwise pile up in the cache."""
    net._block.cache_clear()
    ragged = list(net._summarize(6, 1, 2**128 - 2))
    assert len(ragged) == 254 and net._block.cache_info().currsize == 0
    assert net._block.cache_info().maxsize == net._span.cache_info().maxsize == 4096
    ends = [ipaddress.ip_network("::/128"), ipaddress.ip_network("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")]
    assert net.subtract([ipaddress.ip_network("::/0")], ends) == ragged
    assert net._block.cache_info().currsize == 0
