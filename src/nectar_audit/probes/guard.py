"""The safety rules of the probes, enforced on every socket they use.

Every probe socket is a ``GuardedSocket`` made by a ``Scope``. The scope holds the addresses the user
named; ``connect``/``sendto`` to any other address raise ``ScopeError`` before a packet leaves. Each
(address, protocol, port) has a budget (``MAX_TCP_CONNECTS`` connections, ``MAX_DATAGRAMS`` datagrams);
every connection or datagram waits for the process-wide rate limiter; sockets start with a finite
timeout; and what is sent must be one of the read-only requests the probes know (``payload_allowed``):
an NTP/DNS query, a capability command, a HEAD request.

A scope refuses addresses that are no single host (``special_address``: multicast, broadcast,
unspecified, reserved), wherever they come from (the command line, an ssh_config HostName, the cloud
API's addresses), unless it is made with ``allow_special`` (``probe --allow-special-address``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from nectar_audit.probes import LIMITER, MAX_PACKETS_PER_PORT, RateLimiter, validate_target
from nectar_audit.probes.onlink import local_on_link

MAX_TCP_CONNECTS = 5  # a connect, then greeting, TLS, HTTP and Redis attempts
MAX_DATAGRAMS = MAX_PACKETS_PER_PORT  # NTP: mode 3, mode 6, mode 7

# What each kind of socket may send. "connect": nothing at all.
KINDS = ("connect", "text", "dns", "ntp", "ssh", "tls")

# Read-only commands of the line-based protocols (SMTP, FTP, POP3, IMAP, HTTP, Redis, VNC version).
_TEXT_LINES = re.compile(
    rb"(EHLO [A-Za-z0-9.-]+|QUIT|CAPA|FEAT|PING|a[0-9] (CAPABILITY|LOGOUT)|HEAD / HTTP/1\.[01]|"
    rb"Host: [A-Za-z0-9.:\[\]-]+|User-Agent: nectar-audit|Connection: close|)"
)
_RFB_VERSIONS = frozenset({b"RFB 003.003\n", b"RFB 003.007\n", b"RFB 003.008\n"})
_NTP_MODE6_READVAR = 2
_NTP_MON_GETLIST_1 = 0x2A


class ScopeError(ValueError):
    """A probe tried to leave its bounds (another address, too many packets, a payload not allowed)."""


class ProbeInterrupted(Exception):
    """The probes were stopped (Ctrl-C): raised instead of opening the next socket. Not an OSError or
    ValueError, so that no probe mistakes it for an answer of the target."""


def _text_allowed(data: bytes) -> bool:
    if data in _RFB_VERSIONS:
        return True
    if not data.endswith(b"\r\n"):
        return False
    return all(_TEXT_LINES.fullmatch(line) for line in data[:-2].split(b"\r\n"))


def _dns_allowed(wire: bytes) -> bool:
    """A standard query (QR 0, opcode QUERY), one question, nothing in the other sections."""
    if len(wire) < 12:
        return False
    flags, qd, an, ns, _ar = struct.unpack("!HHHHH", wire[2:12])
    return not flags & 0x8000 and (flags >> 11) & 0xF == 0 and qd == 1 and an == 0 and ns == 0


def _ntp_allowed(data: bytes) -> bool:
    if len(data) < 2:
        return False
    mode = data[0] & 0x07
    if mode == 3:  # client request for the time
        return len(data) == 48
    if mode == 6:  # control message: only READVAR, no data
        return len(data) == 12 and data[1] & 0x1F == _NTP_MODE6_READVAR and data[10:12] == b"\0\0"
    if mode == 7:  # private: only the monlist read request
        return len(data) >= 4 and data[3] == _NTP_MON_GETLIST_1
    return False


def payload_allowed(kind: str, data: bytes, stream: bool) -> bool:
    """Is `data` a read-only request a probe of this kind may send?"""
    if kind in ("ssh", "tls"):
        # SSH: the client holds no password and no key, so nothing secret or state-changing can go out.
        # TLS: the ssl module sends its handshake; nothing is sent after it.
        return True
    if kind == "text":
        return _text_allowed(data)
    if kind == "dns":
        if stream:
            return len(data) >= 2 and struct.unpack("!H", data[:2])[0] == len(data) - 2 and _dns_allowed(data[2:])
        return _dns_allowed(data)
    if kind == "ntp":
        return not stream and _ntp_allowed(data)
    return False


def special_address(address: str, on_link: str | None = None) -> str | None:
    """Why ``address`` is not one host a probe may talk to, or None. A datagram to a multicast or broadcast
    address reaches every listener of the group or network; the unspecified address means "this host";
    reserved addresses are no one's. ``on_link``: the attached subnet holding the address (default: from
    this machine's routes), whose broadcast address is refused too."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "the unspecified address (this host, not a target)"
    if ip.is_multicast:
        return "a multicast address (every member of the group would receive the probes)"
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address (every host of the network would receive the probes)"
    if ip.is_reserved and not ip.is_loopback:  # ::1 lies in the reserved ::/8
        return "a reserved address"
    network = on_link if on_link is not None else local_on_link(str(ip))
    if isinstance(ip, ipaddress.IPv4Address) and network:
        net = ipaddress.ip_network(network, strict=False)
        if net.prefixlen < 31 and ip == net.broadcast_address:
            return (f"the broadcast address of the attached network {network} (every host on it would "
                    "receive the probes)")
    return None


class Scope:
    """The addresses the user named, with the per-port budgets and the shared rate limit."""

    def __init__(
        self,
        addresses: Iterable[str],
        limiter: RateLimiter = LIMITER,
        max_tcp: int = MAX_TCP_CONNECTS,
        max_datagrams: int = MAX_DATAGRAMS,
        allow_special: bool = False,
    ) -> None:
        self.addresses = frozenset(validate_target(a) for a in addresses)
        if not allow_special:
            for address in sorted(self.addresses):
                reason = special_address(address)
                if reason is not None:
                    raise ScopeError(f"refusing to probe {address}: {reason}; if that is really meant, "
                                     f"run `nectar-audit probe --allow-special-address {address}`")
        self.limiter = limiter
        self.max = {"tcp": max_tcp, "udp": max_datagrams}
        self.used: Counter[tuple[str, str, int]] = Counter()
        self.stop: threading.Event | None = None  # set: no further socket is opened (ProbeInterrupted)

    def socket(self, target: str, proto: str, kind: str, timeout: float) -> GuardedSocket:
        """A socket for talking to `target` only; `proto` is "tcp" or "udp"."""
        if self.stop is not None and self.stop.is_set():
            raise ProbeInterrupted("probes interrupted")
        if kind not in KINDS:
            raise ScopeError(f"unknown probe kind {kind!r}")
        if not timeout or timeout <= 0:
            raise ScopeError("every probe socket needs a timeout")
        address = self.check_address(target)
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        kind_type = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        sock = GuardedSocket(family, kind_type)
        sock.setup(self, proto, kind)
        sock.settimeout(timeout)
        return sock

    def check_address(self, address: str) -> str:
        try:
            normal = validate_target(address)
        except ValueError:
            raise ScopeError(f"refusing to probe {address!r}: not an IP address") from None
        if normal not in self.addresses:
            named = ", ".join(sorted(self.addresses)) or "none"
            raise ScopeError(f"refusing to probe {normal}: not an address the user named ({named})")
        return normal

    def admit(self, address: str, proto: str, port: int) -> None:
        """Count one connection (TCP) or datagram (UDP) to address:port, then wait for the rate limit."""
        normal = self.check_address(address)
        key = (normal, proto, port)
        if self.used[key] >= self.max[proto]:
            raise ScopeError(
                f"refusing to send more to {normal}:{port}/{proto}: the budget of {self.max[proto]} "
                f"{'connections' if proto == 'tcp' else 'datagrams'} per port is spent"
            )
        self.used[key] += 1
        self.limiter.wait()


class GuardedSocket(socket.socket):
    """A socket whose connects, destinations and payloads are checked against its Scope."""

    _scope: Scope
    _proto: str
    _kind: str
    _peer: tuple[str, int] | None = None

    def setup(self, scope: Scope, proto: str, kind: str) -> None:
        self._scope, self._proto, self._kind = scope, proto, kind

    def connect(self, address: Any) -> None:
        host, port = str(address[0]), int(address[1])
        if self._proto == "tcp":
            self._scope.admit(host, "tcp", port)
        else:
            self._scope.check_address(host)
        self._peer = (host, port)
        super().connect(address)

    def connect_ex(self, address: Any) -> int:
        raise ScopeError("connect_ex is not used by the probes")

    def _payload(self, data: Any) -> None:
        if self._peer is None:
            raise ScopeError("probe sockets send only after connect")
        if not payload_allowed(self._kind, bytes(data), self._proto == "tcp"):
            raise ScopeError(f"refusing to send {bytes(data)[:40]!r}: not a read-only {self._kind} probe request")
        if self._proto == "udp":
            self._scope.admit(self._peer[0], "udp", self._peer[1])

    def send(self, data: Any, flags: int = 0) -> int:
        self._payload(data)
        return super().send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._payload(data)
        super().sendall(data, flags)

    def sendto(self, data: Any, *args: Any) -> int:
        address = args[-1]
        if self._proto == "udp":
            self._peer = (str(address[0]), int(address[1]))
        elif self._peer is None or str(address[0]) != self._peer[0]:
            raise ScopeError("TCP probe sockets send only to the peer they connected to")
        self._payload(data)
        return super().sendto(data, *args)

    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None) -> int:
        # asyncio transports (the SSH probe) may send with sendmsg; only on connected stream sockets.
        if address is not None or self._proto != "tcp":
            raise ScopeError("probe sockets send with sendmsg only on a connected TCP stream")
        self._payload(b"".join(bytes(b) for b in buffers))
        return super().sendmsg(buffers, ancdata, flags)
