"""The probes' safety rules, enforced in code (issue 6): only named addresses, bounded packets per port,
a rate limit, timeouts, read-only payloads. Traffic goes to loopback only."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import dns.message
import dns.opcode
import pytest

from nectar_audit.probes import DEFAULT_PORTS, LIMITER, RateLimiter
from nectar_audit.probes.dns import probe_dns
from nectar_audit.probes.guard import MAX_DATAGRAMS, MAX_TCP_CONNECTS, Scope, ScopeError, payload_allowed
from nectar_audit.probes.ntp import MODE3_REQUEST, MODE6_READVAR, MONLIST_REQUEST, probe_ntp
from nectar_audit.probes.run import observe
from nectar_audit.probes.tls import probe_plaintext

LOOP = "127.0.0.1"


class CountingLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(per_second=1000.0)
        self.calls = 0

    def wait(self) -> None:
        self.calls += 1
        super().wait()


@contextlib.contextmanager
def tcp_server(handler: Any) -> Iterator[int]:
    """A threaded TCP server on 127.0.0.1 (ephemeral port); `handler(request_socket)` per connection."""

    class H(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with contextlib.suppress(OSError):
                handler(self.request)

    srv = socketserver.ThreadingTCPServer((LOOP, 0), H)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@contextlib.contextmanager
def udp_server(reply: Any) -> Iterator[int]:
    """A UDP server on 127.0.0.1: `reply(datagram)` -> list of datagrams sent back."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOP, 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                continue
            for out in reply(data):
                sock.sendto(out, peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        t.join(2)
        sock.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind((LOOP, 0))
        return int(s.getsockname()[1])


# -- only named addresses ------------------------------------------------------------------------------
def test_scope_refuses_an_address_not_named_before_any_packet() -> None:
    scope = Scope([LOOP])
    with pytest.raises(ScopeError, match=r"refusing to probe 127\.0\.0\.2: not an address the user named"):
        scope.socket("127.0.0.2", "tcp", "connect", 1.0)
    sock = scope.socket(LOOP, "udp", "dns", 1.0)
    with sock, pytest.raises(ScopeError, match="not an address the user named"):
        sock.sendto(dns.message.make_query("x.example.", "A").to_wire(), ("127.0.0.2", 53))
    tcp = scope.socket(LOOP, "tcp", "connect", 1.0)
    with tcp, pytest.raises(ScopeError):
        tcp.connect(("127.0.0.2", 80))
    with pytest.raises(ScopeError, match="not an IP address"):
        Scope([LOOP]).check_address("localhost")
    assert not scope.used  # nothing was counted, so nothing was sent


def test_probe_functions_refuse_names() -> None:
    for call in (lambda: probe_dns("localhost"), lambda: probe_ntp("example.com"), lambda: observe("localhost")):
        with pytest.raises(ValueError):
            call()


class _Hook:
    """sys.addaudithook cannot be removed: one hook for the session, recording only while armed."""

    events: ClassVar[list[tuple[str, tuple[Any, ...]]]] = []
    armed: ClassVar[bool] = False
    installed: ClassVar[bool] = False

    @classmethod
    @contextlib.contextmanager
    def record(cls) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
        if not cls.installed:
            main = threading.main_thread()

            def hook(event: str, args: tuple[Any, ...]) -> None:
                if cls.armed and event.startswith("socket.") and threading.current_thread() is main:
                    cls.events.append((event, args))

            sys.addaudithook(hook)
            cls.installed = True
        cls.events = []
        cls.armed = True
        try:
            yield cls.events
        finally:
            cls.armed = False


def destinations(events: list[tuple[str, tuple[Any, ...]]]) -> set[str]:
    out = set()
    for event, args in events:
        if event in ("socket.connect", "socket.sendto", "socket.sendmsg") and len(args) > 1 and args[1]:
            addr = args[1]
            if isinstance(addr, tuple):
                out.add(str(addr[0]))
        if event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
            out.add(f"resolve:{args[0]}")
    return out


def lure_http(s: socket.socket) -> None:
    s.recv(1024)
    s.sendall(b"HTTP/1.0 301 Moved\r\nLocation: https://127.0.0.2:8443/\r\n\r\n")


def lure_ftp(s: socket.socket) -> None:
    s.sendall(b"220 lure FTP\r\n")
    while data := s.recv(1024):
        if data.startswith(b"FEAT"):
            s.sendall(b"211-Features:\r\n EPSV\r\n211 End\r\n")
        else:
            s.sendall(b"227 Entering Passive Mode (127,0,0,3,4,1)\r\n")


def lure_smtp(s: socket.socket) -> None:
    s.sendall(b"220 lure ESMTP\r\n")
    while data := s.recv(1024):
        s.sendall(b"250-lure\r\n250 STARTTLS\r\n" if data.startswith(b"EHLO") else b"221 bye\r\n")


def lure_ssh(s: socket.socket) -> None:
    s.sendall(b"SSH-2.0-lure\r\n")
    s.recv(1024)  # then hang up: the SSH login attempt fails, it must not go elsewhere


def lure_dns(data: bytes) -> list[bytes]:
    # An answer that names another address (and garbage after it).
    q = dns.message.from_wire(data)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "127.0.0.9"))
    return [r.to_wire(), b"\x00garbage"]


def test_a_full_probe_run_only_ever_contacts_the_named_address() -> None:
    """Every connect, datagram and name lookup of a whole observe() run, seen by a Python audit hook (which
    also sees sockets the guard does not make: asyncssh, ssl, dnspython): the named address only."""
    import dns.rrset  # noqa: F401  (used by lure_dns)

    with tcp_server(lure_http) as http, tcp_server(lure_ftp) as ftp, tcp_server(lure_smtp) as smtp, \
            tcp_server(lure_ssh) as ssh, udp_server(lure_dns) as dnsport:
        ports = [http, ftp, smtp, ssh, closed_port()]
        with _Hook.record() as events:
            obs = observe(LOOP, ports, timeout=0.5)
            obs += probe_dns(LOOP, dnsport, timeout=0.5)
    seen = destinations(events)
    assert seen == {LOOP}, seen
    assert sum(1 for e, _ in events if e == "socket.connect") >= 10
    verdicts = {(o.port, o.check): o.verdict for o in obs}
    assert verdicts[(http, "13")] == "pass"  # the redirect is judged, never followed
    assert verdicts[(ftp, "13")] == "fail"
    assert verdicts[(smtp, "13")] == "pass"
    assert verdicts[(ssh, "01")] == "manual"  # the login attempt failed; nothing else was tried


# -- bounded packets per port --------------------------------------------------------------------------
def test_budget_per_port_tcp_and_udp() -> None:
    port = closed_port()
    scope = Scope([LOOP], limiter=CountingLimiter())
    for _ in range(MAX_TCP_CONNECTS):
        with scope.socket(LOOP, "tcp", "connect", 0.5) as s, contextlib.suppress(ConnectionRefusedError):
            s.connect((LOOP, port))
    with scope.socket(LOOP, "tcp", "connect", 0.5) as s, pytest.raises(ScopeError, match="budget of 5 connections"):
        s.connect((LOOP, port))
    with udp_server(lambda d: []) as uport:
        for payload in (MODE3_REQUEST, MODE6_READVAR, MONLIST_REQUEST):
            with scope.socket(LOOP, "udp", "ntp", 0.5) as u:
                u.connect((LOOP, uport))
                u.send(payload)
        with scope.socket(LOOP, "udp", "ntp", 0.5) as u, pytest.raises(ScopeError, match="budget of 3 datagrams"):
            u.connect((LOOP, uport))
            u.send(MODE3_REQUEST)
    assert MAX_DATAGRAMS == 3


def test_whole_run_stays_within_budget_and_every_send_waits_for_the_limiter() -> None:
    limiter = CountingLimiter()
    scope = Scope([LOOP], limiter=limiter)
    with tcp_server(lure_smtp) as smtp, udp_server(lambda d: []) as ntp_port:
        observe(LOOP, [smtp, closed_port()], timeout=0.5, scope=scope)
        probe_ntp(LOOP, ntp_port, timeout=0.2, scope=scope)
    assert scope.used[(LOOP, "tcp", smtp)] == 2  # connect, greeting + EHLO
    assert scope.used[(LOOP, "udp", ntp_port)] == 3
    assert all(n <= scope.max[proto] for (_, proto, _), n in scope.used.items())
    assert limiter.calls == sum(scope.used.values())


def test_duplicate_ports_are_probed_once() -> None:
    scope = Scope([LOOP], limiter=CountingLimiter())
    port = closed_port()
    obs = observe(LOOP, [port] * 10, timeout=0.5, scope=scope)
    assert len(obs) == 1 and scope.used[(LOOP, "tcp", port)] == 1


# -- rate limit and timeouts ---------------------------------------------------------------------------
def test_rate_limiter_spaces_sends() -> None:
    limiter = RateLimiter(per_second=20.0)
    t0 = time.monotonic()
    for _ in range(11):
        limiter.wait()
    assert time.monotonic() - t0 >= 0.5 - 0.01
    assert LIMITER.interval == pytest.approx(1 / 20)  # the process-wide default: 20 sends per second


def test_every_probe_socket_has_a_timeout() -> None:
    scope = Scope([LOOP])
    for bad in (0, 0.0, -1.0):
        with pytest.raises(ScopeError, match="needs a timeout"):
            scope.socket(LOOP, "tcp", "connect", bad)
    with scope.socket(LOOP, "tcp", "connect", 1.5) as s:
        assert s.gettimeout() == 1.5


def test_silent_server_costs_bounded_time() -> None:
    def silent(s: socket.socket) -> None:
        time.sleep(3)

    with tcp_server(silent) as port:
        t0 = time.monotonic()
        o = probe_plaintext(LOOP, port, timeout=0.3)
        elapsed = time.monotonic() - t0
    assert o.verdict == "manual" and "no TLS and no known plaintext protocol answered" in o.message
    assert elapsed < 3.0  # greeting wait, TLS, HEAD, PING: each bounded by the timeout


# -- no state-changing payload -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        b"MAIL FROM:<a@b>\r\n",
        b"AUTH PLAIN AGFkbWluAHNlY3JldA==\r\n",
        b"USER root\r\n",
        b"PASS secret\r\n",
        b"DELE 1\r\n",
        b"a1 LOGIN root secret\r\n",
        b"STOR file\r\n",
        b"PASV\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"POST / HTTP/1.0\r\nHost: x\r\n\r\n",
        b"CONFIG SET protected-mode no\r\n",
        b"FLUSHALL\r\n",
        b"PING\r\nFLUSHALL\r\n",
        b"EHLO x\r\nRCPT TO:<a@b>\r\n",
        b"PING",  # no line end: not one of ours
    ],
)
def test_state_changing_text_is_refused(data: bytes) -> None:
    assert not payload_allowed("text", data, True)
    with tcp_server(lambda s: s.recv(100)) as port:
        scope = Scope([LOOP])
        with scope.socket(LOOP, "tcp", "text", 1.0) as s:
            s.connect((LOOP, port))
            with pytest.raises(ScopeError, match="not a read-only text probe request"):
                s.sendall(data)


def test_read_only_requests_are_allowed() -> None:
    for data in (
        b"EHLO nectar-audit.invalid\r\n",
        b"QUIT\r\n",
        b"CAPA\r\n",
        b"FEAT\r\n",
        b"a1 CAPABILITY\r\n",
        b"a2 LOGOUT\r\n",
        b"PING\r\n",
        b"RFB 003.008\n",
        b"HEAD / HTTP/1.0\r\nHost: [fd00:200:1::2]\r\nUser-Agent: nectar-audit\r\n\r\n",
    ):
        assert payload_allowed("text", data, True), data
    for payload in (MODE3_REQUEST, MODE6_READVAR, MONLIST_REQUEST):
        assert payload_allowed("ntp", payload, False)
    wire = dns.message.make_query("nectar-audit-probe.example.", "A").to_wire()
    assert payload_allowed("dns", wire, False)
    assert payload_allowed("dns", struct.pack("!H", len(wire)) + wire, True)
    assert not payload_allowed("connect", b"x", True)


def test_state_changing_dns_and_ntp_are_refused() -> None:
    update = dns.message.make_query("example.", "SOA")
    update.set_opcode(dns.opcode.UPDATE)
    assert not payload_allowed("dns", update.to_wire(), False)
    notify = dns.message.make_query("example.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert not payload_allowed("dns", notify.to_wire(), False)
    response = dns.message.make_response(dns.message.make_query("example.", "A"))
    assert not payload_allowed("dns", response.to_wire(), False)
    ntp_write = bytes([0x16, 0x03]) + struct.pack("!HHHHH", 1, 0, 0, 0, 0)  # mode 6 op 3 writevar
    ntp_config = bytes([0x16, 0x08]) + struct.pack("!HHHHH", 1, 0, 0, 0, 4) + b"x=1\0"  # op 8 configure
    ntp_reset = bytes([0x17, 0x00, 0x03, 0x2B]) + bytes(44)  # mode 7 request 43 (a write)
    for p in (ntp_write, ntp_config, ntp_reset, bytes([0x25]) + bytes(47)):  # mode 5 broadcast
        assert not payload_allowed("ntp", p, False), p


def test_defaults_are_bounded() -> None:
    assert len(DEFAULT_PORTS) == len(set(DEFAULT_PORTS)) <= 16
