"""Plaintext vs TLS probe (check 13): the server's greeting, else a TLS handshake, else HTTP, else Redis.

At most 4 short connections per port (the reachability connect makes 5), all through the Scope; only
read-only commands (EHLO, FEAT, CAPA, CAPABILITY, the RFB version line, HEAD, PING, QUIT, LOGOUT).
The judging is in ``greeting.py``.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from typing import Callable

from cryptography import x509

from nectar_audit.probes import DEFAULT_TIMEOUT, Observation, endpoint, validate_target
from nectar_audit.probes import greeting as g
from nectar_audit.probes.guard import GuardedSocket, Scope

GREETING_WAIT = 1.0  # how long a silent server gets to speak first
MAX_REPLY = 16384


def _connect(scope: Scope, target: str, port: int, timeout: float, kind: str = "text") -> GuardedSocket:
    sock = scope.socket(target, "tcp", kind, timeout)
    try:
        sock.connect((target, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _read(s: socket.socket, wait: float, done: Callable[[bytes], bool] = lambda b: bool(b)) -> bytes:
    """Read until `done(data)`, the peer closes, `wait` passes without data, or MAX_REPLY bytes."""
    s.settimeout(wait)
    data = b""
    while len(data) < MAX_REPLY and not (data and done(data)):
        try:
            chunk = s.recv(4096)
        except (TimeoutError, socket.timeout, OSError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _final_line(prefix: bytes) -> Callable[[bytes], bool]:
    """A multi-line reply is complete when a line starts with `prefix` ("a1 ")."""

    def done(data: bytes) -> bool:
        return data.endswith(b"\n") and any(ln.startswith(prefix) for ln in data.split(b"\n"))

    return done


def _reply_done(data: bytes) -> bool:
    """An SMTP/FTP reply is complete at its final line: three digits and a space."""
    return data.endswith(b"\n") and any(
        len(ln) >= 4 and ln[:3].isdigit() and ln[3:4] == b" " for ln in data.split(b"\n")
    )


def _greeting_done(data: bytes) -> bool:
    """Telnet's option bytes, or a complete line that is not an "NNN-" continuation."""
    if data.startswith(b"\xff"):
        return True
    last = data.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    return data.endswith(b"\n") and not (last[:3].isdigit() and last[3:4] == b"-")


def _pop3_done(data: bytes) -> bool:
    return data.startswith(b"-ERR") or data.endswith(b"\n.\r\n") or data.endswith(b"\n.\n")


def _converse(s: GuardedSocket, kind: str, greeting: bytes, timeout: float) -> g.Judged:
    """Follow a greeting with the protocol's read-only capability command."""
    if kind == "vnc":
        reply = g.vnc_reply(greeting)
        if reply is None:
            return g.judge_vnc(greeting, b"")
        s.sendall(reply)
        return g.judge_vnc(greeting, _read(s, timeout))
    if kind in ("smtp", "220"):
        s.sendall(b"EHLO nectar-audit.invalid\r\n")
        ehlo = _read(s, timeout, _reply_done)
        if kind == "smtp" or any(ln.startswith(b"250") for ln in ehlo.split(b"\n")):
            s.sendall(b"QUIT\r\n")
            return g.judge_smtp(ehlo)
        kind = "ftp"
    if kind == "ftp":
        s.sendall(b"FEAT\r\n")
        feat = _read(s, timeout, _reply_done)
        s.sendall(b"QUIT\r\n")
        return g.judge_ftp(feat)
    if kind == "pop3":
        s.sendall(b"CAPA\r\n")
        capa = _read(s, timeout, _pop3_done)
        s.sendall(b"QUIT\r\n")
        return g.judge_pop3(capa)
    if kind == "imap":
        caps = greeting
        if b"STARTTLS" not in greeting.upper():
            s.sendall(b"a1 CAPABILITY\r\n")
            caps += _read(s, timeout, _final_line(b"a1 "))
        s.sendall(b"a2 LOGOUT\r\n")
        return g.judge_imap(caps)
    judge = {"telnet": g.judge_telnet, "ssh": g.judge_ssh}.get(kind)
    if judge is not None:
        return judge(greeting)
    redis = g.judge_redis(greeting) if kind == "redis" else None
    return redis if redis is not None else g.judge_unknown(greeting)


def _not_after(cert: x509.Certificate) -> dt.datetime:
    after = getattr(cert, "not_valid_after_utc", None)
    if isinstance(after, dt.datetime):
        return after
    return cert.not_valid_after.replace(tzinfo=dt.timezone.utc)


def _tls(scope: Scope, target: str, port: int, timeout: float) -> tuple[str, g.Judged] | None:
    """(source, judged) if a TLS handshake succeeds, else None."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with _connect(scope, target, port, timeout, "tls") as raw, ctx.wrap_socket(raw) as s:
            src = str(s.getsockname()[0])
            der = s.getpeercert(binary_form=True)
            version = s.version() or "TLS"
    except (ssl.SSLError, OSError):
        return None
    now = dt.datetime.now(dt.timezone.utc)
    if der is None:
        return src, g.judge_tls(version, None, None, False, now)
    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        return src, g.judge_tls(version, subject, _not_after(cert), cert.issuer == cert.subject, now)
    except ValueError as exc:
        return src, ("pass", f"TLS: {version}, certificate not readable ({exc})")


def probe_service(
    target: str, port: int, timeout: float = DEFAULT_TIMEOUT, scope: Scope | None = None
) -> tuple[Observation, str, bytes]:
    """(observation for check 13, protocol identified: "ssh", "smtp", "tls", "http", ... or "", the greeting)."""
    target = validate_target(target)
    scope = scope if scope is not None else Scope([target])
    where = endpoint(target, port, "tcp")

    def obs(src: str, judged: g.Judged) -> Observation:
        verdict, msg = judged
        return Observation("13", target, port, "tcp", src, verdict, f"{where}: {msg} (observed from {src})")

    with _connect(scope, target, port, timeout) as s:
        src = str(s.getsockname()[0])
        first = _read(s, min(timeout, GREETING_WAIT), _greeting_done)
        kind = g.identify(first, port)
        if kind:
            try:
                judged = _converse(s, kind, first, timeout)
            except OSError as exc:  # the server hung up mid-conversation
                judged = "manual", f"{kind} greeting {first[:40]!r}, then the connection failed ({exc})"
            return obs(src, judged), kind, first

    tls = _tls(scope, target, port, timeout)
    if tls is not None:
        return obs(*tls), "tls", b""

    host = f"[{target}]" if ":" in target else target
    head = f"HEAD / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: nectar-audit\r\n\r\n".encode()
    src, answer = _ask(scope, target, port, timeout, head, lambda b: b"\r\n\r\n" in b)
    http = g.judge_http(answer)
    if http is not None:
        return obs(src, http), "http", b""
    src, answer = _ask(scope, target, port, timeout, b"PING\r\n", lambda b: b.endswith(b"\n"))
    redis = g.judge_redis(answer)
    if redis is not None:
        return obs(src, redis), "redis", b""
    return obs(src, ("manual", "no TLS and no known plaintext protocol answered")), "", b""


def _ask(
    scope: Scope, target: str, port: int, timeout: float, request: bytes, done: Callable[[bytes], bool]
) -> tuple[str, bytes]:
    """(source, answer) of one request on a fresh connection; a connection that fails answers b""."""
    with _connect(scope, target, port, timeout) as s:
        src = str(s.getsockname()[0])
        try:
            s.sendall(request)
        except OSError:
            return src, b""
        return src, _read(s, timeout, done)


def probe_plaintext(
    target: str, port: int, timeout: float = DEFAULT_TIMEOUT, scope: Scope | None = None
) -> Observation:
    return probe_service(target, port, timeout, scope)[0]
