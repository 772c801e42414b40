"""Plaintext vs TLS probe (check 13): TLS handshake, else the protocol's greeting.

At most 4 short connections per port; only read-only commands (EHLO, CAPA, CAPABILITY, HEAD, PING).
"""

from __future__ import annotations

import socket
import ssl

from cryptography import x509

from nectar_audit.probes import DEFAULT_TIMEOUT, LIMITER, Observation, validate_target


def _connect(target: str, port: int, timeout: float) -> socket.socket:
    LIMITER.wait()
    return socket.create_connection((target, port), timeout=timeout)


def _recv(s: socket.socket, wait: float) -> bytes:
    s.settimeout(wait)
    try:
        return s.recv(4096)
    except (TimeoutError, socket.timeout, ConnectionError):
        return b""


def _tls(target: str, port: int, timeout: float) -> tuple[str, str] | None:
    """(source, description) if a TLS handshake succeeds, else None."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with _connect(target, port, timeout) as raw, ctx.wrap_socket(raw) as s:
            src = str(s.getsockname()[0])
            der = s.getpeercert(binary_form=True)
            version = s.version() or "TLS"
    except (ssl.SSLError, OSError):
        return None
    if der is None:
        return src, f"{version}, no certificate"
    cert = x509.load_der_x509_certificate(der)
    self_signed = cert.issuer == cert.subject
    return src, (
        f"{version}, certificate {cert.subject.rfc4514_string()}, expires "
        f"{cert.not_valid_after_utc:%Y-%m-%d}{', self-signed' if self_signed else ''}"
    )


def probe_plaintext(target: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> Observation:
    target = validate_target(target)
    where = f"{target}:{port}/tcp"

    def obs(src: str, verdict: str, msg: str) -> Observation:
        return Observation("13", target, port, "tcp", src, verdict, f"{where}: {msg} (observed from {src})")

    # Server-speaks-first protocols.
    with _connect(target, port, timeout) as s:
        src = str(s.getsockname()[0])
        greeting = _recv(s, min(timeout, 1.0))
        if greeting.startswith(b"\xff"):
            return obs(src, "fail", "telnet (IAC negotiation): plaintext logins")
        if greeting.startswith(b"RFB "):
            return obs(src, "fail", f"VNC {greeting[:12].decode('ascii', 'replace').strip()} without TLS")
        if greeting.startswith(b"220") and b"FTP" in greeting.upper():
            return obs(src, "fail", "FTP: plaintext logins")
        if greeting.startswith(b"220"):
            s.sendall(b"EHLO nectar-audit.invalid\r\n")
            ehlo = b""
            while b"\r\n250 " not in b"\r\n" + ehlo and len(ehlo) < 8192:
                chunk = _recv(s, timeout)
                if not chunk:
                    break
                ehlo += chunk
            s.sendall(b"QUIT\r\n")
            if b"STARTTLS" in ehlo.upper():
                return obs(src, "pass", "SMTP offers STARTTLS")
            return obs(src, "fail", "SMTP without STARTTLS: mail and logins travel in clear text")
        if greeting.startswith(b"+OK"):
            s.sendall(b"CAPA\r\n")
            capa = _recv(s, timeout)
            s.sendall(b"QUIT\r\n")
            if b"STLS" in capa.upper():
                return obs(src, "pass", "POP3 offers STLS")
            return obs(src, "fail", "POP3 without STLS: plaintext logins")
        if greeting.startswith(b"* OK"):
            if b"STARTTLS" not in greeting.upper():
                s.sendall(b"a1 CAPABILITY\r\n")
                greeting += _recv(s, timeout)
            s.sendall(b"a2 LOGOUT\r\n")
            if b"STARTTLS" in greeting.upper():
                return obs(src, "pass", "IMAP offers STARTTLS")
            return obs(src, "fail", "IMAP without STARTTLS: plaintext logins")
        if greeting:
            return obs(src, "manual", f"unknown service greeting {greeting[:40]!r}")

    tls = _tls(target, port, timeout)
    if tls is not None:
        return obs(tls[0], "pass", f"TLS: {tls[1]}")

    with _connect(target, port, timeout) as s:
        src = str(s.getsockname()[0])
        s.sendall(f"HEAD / HTTP/1.0\r\nHost: {target}\r\n\r\n".encode())
        head = _recv(s, timeout)
    if head.startswith(b"HTTP/"):
        status = head.split(b"\r\n", 1)[0].decode("ascii", "replace")
        location = next(
            (ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n") if ln.lower().startswith(b"location:")), b""
        )
        if status.split(" ")[1:2] and status.split(" ")[1].startswith("3") and location.startswith(b"https://"):
            return obs(src, "pass", f"HTTP redirects to {location.decode('ascii', 'replace')}")
        return obs(src, "fail", f"plain HTTP ({status}) without redirect to https")

    with _connect(target, port, timeout) as s:
        src = str(s.getsockname()[0])
        s.sendall(b"PING\r\n")
        pong = _recv(s, timeout)
    if pong.startswith((b"+PONG", b"-NOAUTH", b"-ERR")):
        return obs(src, "fail", "Redis protocol without TLS")
    return obs(src, "manual", "no TLS and no known plaintext protocol answered")
