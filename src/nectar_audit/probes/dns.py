"""DNS probe (check 05): does the server recurse for us? One RD query over UDP, one over TCP."""

from __future__ import annotations

import socket
import struct

import dns.message

from nectar_audit.probes import DEFAULT_TIMEOUT, Observation, endpoint, validate_target
from nectar_audit.probes.guard import Scope

# A name outside any zone a server under audit is authoritative for (RFC 2606 reserved, never delegated).
PROBE_NAME = "nectar-audit-probe.example."
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_QR, _RA = 0x8000, 0x0080


def judge(wire: bytes | None, query_id: int, source: str) -> tuple[str, str]:
    """(verdict, what the server did) from the raw answer (None: no answer). Never raises."""
    if wire is None:
        return "pass", f"gave no answer to {source}"
    if len(wire) < 12:
        return "warn", f"answered {source} with {len(wire)} bytes that are not a DNS message"
    qid, flags = struct.unpack("!HH", wire[:4])
    if not flags & _QR or qid != query_id:
        return "warn", f"answered {source} with something that is not a response to our query ({len(wire)} bytes)"
    rcode = flags & 0x000F
    name = _RCODES.get(rcode, f"rcode {rcode}")
    ra = bool(flags & _RA)
    if ra and rcode in (0, 2, 3):
        return "fail", (
            f"recurses for {source} (recursive query for {PROBE_NAME} got {name} with ra set): open resolver"
        )
    if rcode == 5 and not ra:
        return "pass", f"refuses recursion to {source} (REFUSED, no ra)"
    return "warn", f"answered {name} with ra={'set' if ra else 'unset'} to {source}: unclear whether it recurses"


def _observation(target: str, port: int, proto: str, source: str, wire: bytes | None, qid: int) -> Observation:
    verdict, what = judge(wire, qid, source)
    return Observation("05", target, port, proto, source, verdict, f"DNS on {endpoint(target, port, proto)} {what}")


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def probe_dns(
    target: str, port: int = 53, timeout: float = DEFAULT_TIMEOUT, scope: Scope | None = None
) -> list[Observation]:
    """One query over UDP, one over TCP (one datagram, one connection), no state change."""
    target = validate_target(target)
    scope = scope if scope is not None else Scope([target])
    query = dns.message.make_query(PROBE_NAME, "A")  # RD is set by default
    wire = query.to_wire()
    out: list[Observation] = []
    with scope.socket(target, "udp", "dns", timeout) as udp:
        udp.connect((target, port))
        src = str(udp.getsockname()[0])
        answer: bytes | None
        try:
            udp.send(wire)
            answer = udp.recv(65535)
        except OSError:  # timeout, ICMP port unreachable, ...
            answer = None
        out.append(_observation(target, port, "udp", src, answer, query.id))
    with scope.socket(target, "tcp", "dns", timeout) as tcp:
        try:
            tcp.connect((target, port))
        except OSError:
            out.append(_observation(target, port, "tcp", str(tcp.getsockname()[0]), None, query.id))
            return out
        src = str(tcp.getsockname()[0])
        try:
            tcp.sendall(struct.pack("!H", len(wire)) + wire)
            head = _recv_exact(tcp, 2)
            answer = _recv_exact(tcp, struct.unpack("!H", head)[0]) if head else None
        except OSError:
            answer = None
        out.append(_observation(target, port, "tcp", src, answer, query.id))
    return out
