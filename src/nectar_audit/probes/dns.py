"""DNS probe (check 05): does the server recurse for us? RD query over UDP and TCP (dnspython)."""

from __future__ import annotations

import socket

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from nectar_audit.probes import DEFAULT_TIMEOUT, LIMITER, Observation, validate_target

# A name outside any zone a server under audit is authoritative for (RFC 2606 reserved, never delegated).
PROBE_NAME = "nectar-audit-probe.example."


def _verdict(target: str, port: int, proto: str, source: str, resp: dns.message.Message | None) -> Observation:
    where = f"DNS on {target}:{port}/{proto}"
    if resp is None:
        return Observation("05", target, port, proto, source, "pass", f"{where}: no answer to {source}")
    rcode = dns.rcode.to_text(resp.rcode())
    ra = bool(resp.flags & dns.flags.RA)
    if ra and resp.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL):
        return Observation(
            "05",
            target,
            port,
            proto,
            source,
            "fail",
            f"{where} recurses for {source} (recursive query for {PROBE_NAME} got {rcode} with ra set): open resolver",
        )
    if resp.rcode() == dns.rcode.REFUSED and not ra:
        return Observation(
            "05", target, port, proto, source, "pass", f"{where} refuses recursion to {source} (REFUSED, no ra)"
        )
    return Observation(
        "05",
        target,
        port,
        proto,
        source,
        "warn",
        f"{where} answered {rcode} with ra={'set' if ra else 'unset'} to {source}: unclear whether it recurses",
    )


def probe_dns(target: str, port: int = 53, timeout: float = DEFAULT_TIMEOUT) -> list[Observation]:
    """One query over UDP, one over TCP (2 packets of payload per port), no state change."""
    target = validate_target(target)
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    out: list[Observation] = []
    query = dns.message.make_query(PROBE_NAME, "A")  # RD is set by default
    with socket.socket(family, socket.SOCK_DGRAM) as udp:
        udp.connect((target, port))
        src = str(udp.getsockname()[0])
        LIMITER.wait()
        try:
            resp: dns.message.Message | None = dns.query.udp(query, target, timeout=timeout, port=port, sock=udp)
        except (dns.exception.Timeout, ConnectionRefusedError):
            resp = None
        out.append(_verdict(target, port, "udp", src, resp))
    with socket.socket(family, socket.SOCK_STREAM) as tcp:
        tcp.settimeout(timeout)
        LIMITER.wait()
        try:
            tcp.connect((target, port))
        except OSError:
            src = str(tcp.getsockname()[0])
            out.append(_verdict(target, port, "tcp", src, None))
            return out
        src = str(tcp.getsockname()[0])
        try:
            resp = dns.query.tcp(query, target, timeout=timeout, port=port, sock=tcp)
        except (dns.exception.Timeout, EOFError, ConnectionError):
            resp = None
        out.append(_verdict(target, port, "tcp", src, resp))
    return out
