"""NTP probe (check 06): mode 3 (time served?), mode 6 readvar (warn), mode 7 monlist (fail)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from nectar_audit.probes import DEFAULT_TIMEOUT, Observation, endpoint, validate_target
from nectar_audit.probes.guard import MAX_DATAGRAMS, Scope

MODE3_REQUEST = bytes([0x23]) + bytes(47)  # LI 0, VN 4, mode 3 client
MODE6_READVAR = bytes([0x16, 0x02]) + struct.pack("!HHHHH", 1, 0, 0, 0, 0)  # VN 2, mode 6, op 2 readvar, seq 1
MONLIST_REQUEST = bytes([0x17, 0x00, 0x03, 0x2A]) + bytes(44)  # VN 2 mode 7, impl 3, MON_GETLIST_1
MAX_REPLIES = 100  # a monlist answer is at most 100 packets (600 entries of 6 per packet)


Judged = tuple[str, str, str]  # (verdict, what it did "to"/"from", details after the source address)


def judge_mode3(replies: Sequence[bytes]) -> Judged:
    served = any(len(r) >= 48 and (r[0] & 0x07) == 4 for r in replies)
    return ("manual", "serves time to", "") if served else ("pass", "did not serve time to", "")


def judge_mode6(replies: Sequence[bytes]) -> Judged:
    data = [r for r in replies if len(r) >= 12 and (r[0] & 0x07) == 6 and r[1] & 0x80 and not r[1] & 0x40]
    if not data:
        return "pass", "refuses mode-6 readvar from", ""
    size = sum(len(r) for r in data)
    return "warn", "answers mode-6 readvar to", f" ({size} bytes: version and system variables leak)"


def judge_monlist(replies: Sequence[bytes]) -> Judged:
    """Any mode-7 response to MON_GETLIST_1 carrying items (error 0, nitems > 0) fails."""
    answers = [r for r in replies if len(r) >= 8 and (r[0] & 0x07) == 7 and r[0] & 0x80 and r[3] == 0x2A]
    data = [r for r in answers if r[4] >> 4 == 0 and ((r[4] & 0x0F) << 8 | r[5]) > 0]
    if data:
        out = sum(len(r) for r in data)
        factor = out / len(MONLIST_REQUEST)
        return (
            "fail",
            "answers monlist (mode 7) to",
            (f": {len(data)} packets, {out} bytes out for {len(MONLIST_REQUEST)} in (amplification x{factor:.1f})"),
        )
    if answers:
        return "pass", "answers monlist (mode 7) only with an error to", f" (error code {answers[0][4] >> 4}, no data)"
    return "pass", "does not answer monlist (mode 7) from", ""


def _exchange(scope: Scope, target: str, port: int, payload: bytes, timeout: float) -> tuple[str, list[bytes]]:
    """Send one datagram, collect replies until a quiet spell. Returns (source address, replies)."""
    with scope.socket(target, "udp", "ntp", timeout) as sock:
        sock.connect((target, port))
        source = str(sock.getsockname()[0])
        sock.send(payload)
        replies: list[bytes] = []
        while len(replies) < MAX_REPLIES:
            try:
                data = sock.recv(65535)
            except OSError:  # timeout, ICMP port unreachable
                break
            replies.append(data)
            sock.settimeout(min(timeout, 0.3))  # further packets of a multi-packet answer come quickly
        return source, replies


def probe_ntp(
    target: str, port: int = 123, timeout: float = DEFAULT_TIMEOUT, scope: Scope | None = None
) -> list[Observation]:
    """Three datagrams (the per-port budget), read-only NTP queries."""
    target = validate_target(target)
    scope = scope if scope is not None else Scope([target])
    assert MAX_DATAGRAMS >= 3
    obs: list[Observation] = []
    steps = ((MODE3_REQUEST, judge_mode3), (MODE6_READVAR, judge_mode6), (MONLIST_REQUEST, judge_monlist))
    for payload, judge in steps:
        src, replies = _exchange(scope, target, port, payload, timeout)
        verdict, what, detail = judge(replies)
        message = f"NTP on {endpoint(target, port, 'udp')} {what} {src}{detail}"
        obs.append(Observation("06", target, port, "udp", src, verdict, message))
    return obs
