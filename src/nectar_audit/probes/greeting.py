"""Check 13, the pure part: what a service's first bytes and its answers to read-only commands say.

Every function takes raw bytes as received (anything at all) and returns a verdict and a message; none
of them raises. The socket side is ``tls.py``.
"""

from __future__ import annotations

import datetime as dt
import re

Judged = tuple[str, str]  # (verdict, message)

FTP_PORTS = frozenset({21, 2121})
SMTP_PORTS = frozenset({25, 465, 587, 2525})
_VNC_TYPES = {1: "None", 2: "VNC password", 16: "Tight", 18: "TLS", 19: "VeNCrypt"}
_RFB_RE = re.compile(rb"RFB (\d{3})\.(\d{3})\n")


def _text(data: bytes, limit: int = 60) -> str:
    return data[:limit].decode("ascii", "replace").strip()


def _lines(data: bytes) -> list[bytes]:
    return [ln.strip() for ln in data.replace(b"\r\n", b"\n").split(b"\n") if ln.strip()]


def identify(greeting: bytes, port: int) -> str:
    """The protocol a server-speaks-first greeting belongs to ("" when the server said nothing)."""
    if not greeting:
        return ""
    if greeting.startswith(b"\xff"):
        return "telnet"
    if greeting.startswith(b"RFB "):
        return "vnc"
    if greeting.startswith(b"SSH-"):
        return "ssh"
    if greeting.startswith((b"-DENIED", b"-NOAUTH")) or (greeting.startswith(b"-ERR") and b"redis" in greeting.lower()):
        return "redis"
    if greeting.startswith(b"220"):
        upper = greeting.upper()
        if b"SMTP" in upper:
            return "smtp"
        if b"FTP" in upper or port in FTP_PORTS:
            return "ftp"
        return "smtp" if port in SMTP_PORTS else "220"
    if greeting.startswith(b"+OK"):
        return "pop3"
    if greeting.startswith((b"* OK", b"* PREAUTH")):
        return "imap"
    return "unknown"


def judge_unknown(greeting: bytes) -> Judged:
    return "manual", f"unknown service greeting {greeting[:40]!r}: check by hand whether it is encrypted"


def judge_telnet(greeting: bytes) -> Judged:
    return "fail", "telnet (IAC option negotiation): logins and sessions travel in clear text"


def judge_ssh(greeting: bytes) -> Judged:
    ident = _text(greeting.split(b"\n", 1)[0], 80)
    return "pass", f"SSH ({ident}): encrypted"


def judge_smtp(ehlo: bytes) -> Judged:
    replies = [ln for ln in _lines(ehlo) if ln[:3] == b"250"]
    if not replies:
        return "manual", f"SMTP greeting, but EHLO was not answered ({_text(ehlo, 40)!r})"
    keywords = {ln[4:].split(b" ")[0].upper() for ln in replies}
    if b"STARTTLS" in keywords:
        return "pass", "SMTP offers STARTTLS"
    return "fail", "SMTP without STARTTLS: mail and logins travel in clear text"


def judge_pop3(capa: bytes) -> Judged:
    lines = _lines(capa)
    if not lines or not lines[0].startswith(b"+OK"):
        # No CAPA (RFC 1939 servers): USER/PASS is all there is.
        return "fail", "POP3 without STLS: plaintext logins"
    caps = [ln.upper().split(b" ") for ln in lines[1:] if ln != b"."]
    if any(c[0] == b"STLS" for c in caps):
        return "pass", "POP3 offers STLS"
    if any(c[0] == b"USER" or (c[0] == b"SASL" and len(c) > 1) for c in caps):
        return "fail", "POP3 without STLS: plaintext logins"
    return "warn", "POP3 without STLS; it offers no login over plaintext (USER and SASL disabled)"


def judge_imap(caps: bytes) -> Judged:
    words = set(re.split(rb"[\s\[\]]+", caps.upper()))
    if b"STARTTLS" in words:
        return "pass", "IMAP offers STARTTLS"
    if b"LOGINDISABLED" in words and not any(w.startswith(b"AUTH=") for w in words):
        return "warn", "IMAP without STARTTLS; plaintext logins are disabled (LOGINDISABLED)"
    return "fail", "IMAP without STARTTLS: plaintext logins"


def judge_ftp(feat: bytes) -> Judged:
    features = {ln.upper() for ln in _lines(feat)}
    if features & {b"AUTH TLS", b"AUTH SSL", b"AUTH TLS-C"}:
        return "pass", "FTP offers AUTH TLS"
    return "fail", "FTP without AUTH TLS: plaintext logins"


def vnc_version(greeting: bytes) -> tuple[int, int] | None:
    m = _RFB_RE.match(greeting)
    return (int(m.group(1)), int(m.group(2))) if m else None


def vnc_reply(greeting: bytes) -> bytes | None:
    """The client version line to answer with (the highest we know that the server accepts)."""
    version = vnc_version(greeting)
    if version is None:
        return None
    if version >= (3, 8):
        return b"RFB 003.008\n"
    return b"RFB 003.007\n" if version >= (3, 7) else b"RFB 003.003\n"


def judge_vnc(greeting: bytes, security: bytes) -> Judged:
    version = vnc_version(greeting)
    label = f"VNC {_text(greeting, 12)}"
    if version is None:
        return "fail", f"{label} without TLS"
    if version < (3, 7):
        types = [int.from_bytes(security[:4], "big")] if len(security) >= 4 else []
    else:
        count = security[0] if security else 0
        types = list(security[1 : 1 + count])
    if not types or types == [0]:
        return "fail", f"{label} without TLS (no security types offered)"
    names = ", ".join(_VNC_TYPES.get(t, str(t)) for t in types)
    if set(types) <= {18, 19}:
        return "pass", f"{label} offers only TLS security types ({names})"
    if 1 in types:
        return "fail", f"{label} without TLS and without authentication (security types: {names})"
    return "fail", f"{label} without TLS (security types: {names})"


def judge_http(head: bytes) -> Judged | None:
    """None when the answer is not HTTP."""
    if not head.startswith(b"HTTP/"):
        return None
    lines = head.split(b"\r\n")
    status = lines[0].decode("ascii", "replace").strip()
    code = status.split(" ")[1] if len(status.split(" ")) > 1 else ""
    location = next((ln.split(b":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith(b"location:")), b"")
    if code.startswith("3") and location.lower().startswith(b"https://"):
        return "pass", f"HTTP redirects to {location.decode('ascii', 'replace')}"
    return "fail", f"plain HTTP ({status}) without redirect to https"


def judge_redis(reply: bytes) -> Judged | None:
    """None when the answer is not Redis."""
    if reply.startswith(b"+PONG"):
        return "fail", "Redis without TLS, answering PING without a password"
    if reply.startswith(b"-NOAUTH"):
        return "fail", "Redis without TLS: its password travels in clear text"
    if reply.startswith(b"-DENIED"):
        return "warn", "Redis without TLS, in protected mode (it refuses clients that are not on loopback)"
    if reply.startswith(b"-ERR") and b"redis" in reply.lower():
        return "fail", "Redis protocol without TLS"
    return None


def judge_tls(
    version: str, subject: str | None, not_after: dt.datetime | None, self_signed: bool, now: dt.datetime
) -> Judged:
    if subject is None or not_after is None:
        return "pass", f"TLS: {version}, no certificate"
    signed = ", self-signed" if self_signed else ""
    text = f"TLS: {version}, certificate {subject}, expires {not_after:%Y-%m-%d}{signed}"
    if not_after < now:
        return "warn", f"{text}: EXPIRED"
    return "pass", text
