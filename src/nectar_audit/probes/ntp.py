"""NTP probe (check 06): mode 3 (time served?), mode 6 readvar (warn), mode 7 monlist (fail)."""

from __future__ import annotations

import socket
import struct

from nectar_audit.probes import DEFAULT_TIMEOUT, LIMITER, MAX_PACKETS_PER_PORT, Observation, validate_target

MODE3_REQUEST = bytes([0x23]) + bytes(47)  # LI 0, VN 4, mode 3 client
MODE6_READVAR = bytes([0x16, 0x02]) + struct.pack("!HHHH", 1, 0, 0, 0)  # VN 2, mode 6, op 2 readvar
MONLIST_REQUEST = bytes([0x17, 0x00, 0x03, 0x2A]) + bytes(44)  # VN 2 mode 7, impl 3, MON_GETLIST_1


def _exchange(
    target: str, port: int, payload: bytes, timeout: float, max_replies: int = 100
) -> tuple[str, list[bytes]]:
    """Send one datagram, collect replies until timeout. Returns (source address, replies)."""
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((target, port))
        LIMITER.wait()
        sock.send(payload)
        source = str(sock.getsockname()[0])
        replies: list[bytes] = []
        while len(replies) < max_replies:
            try:
                data = sock.recv(65535)
            except (TimeoutError, socket.timeout):
                break
            except ConnectionRefusedError:
                break
            replies.append(data)
            sock.settimeout(0.3)  # further fragments of a multi-packet answer come quickly
        return source, replies


def probe_ntp(target: str, port: int = 123, timeout: float = DEFAULT_TIMEOUT) -> list[Observation]:
    """Three datagrams (<= MAX_PACKETS_PER_PORT), read-only NTP queries."""
    target = validate_target(target)
    assert MAX_PACKETS_PER_PORT >= 3
    obs: list[Observation] = []

    src, replies = _exchange(target, port, MODE3_REQUEST, timeout, max_replies=1)
    served = any(len(r) >= 48 and (r[0] & 0x07) == 4 for r in replies)
    obs.append(
        Observation(
            "06",
            target,
            port,
            "udp",
            src,
            "manual" if served else "pass",
            f"NTP on {target}:{port}/udp serves time to {src}"
            if served
            else f"NTP on {target}:{port}/udp did not serve time to {src}",
        )
    )

    src, replies = _exchange(target, port, MODE6_READVAR, timeout)
    data6 = [r for r in replies if len(r) >= 12 and (r[0] & 0x07) == 6 and r[1] & 0x80 and not r[1] & 0x40]
    if data6:
        obs.append(
            Observation(
                "06",
                target,
                port,
                "udp",
                src,
                "warn",
                f"NTP on {target}:{port}/udp answers mode-6 readvar to {src} "
                f"({sum(len(r) for r in data6)} bytes: version and system variables leak)",
            )
        )
    else:
        obs.append(
            Observation(
                "06", target, port, "udp", src, "pass", f"NTP on {target}:{port}/udp refuses mode-6 readvar from {src}"
            )
        )

    src, replies = _exchange(target, port, MONLIST_REQUEST, timeout)
    data7 = [r for r in replies if len(r) >= 8 and (r[0] & 0x07) == 7 and r[0] & 0x80 and r[3] == 0x2A]
    if data7:
        out = sum(len(r) for r in data7)
        factor = out / len(MONLIST_REQUEST)
        obs.append(
            Observation(
                "06",
                target,
                port,
                "udp",
                src,
                "fail",
                f"NTP on {target}:{port}/udp answers monlist (mode 7) to {src}: {len(data7)} packets, "
                f"{out} bytes out for {len(MONLIST_REQUEST)} in (amplification x{factor:.1f})",
            )
        )
    else:
        obs.append(
            Observation(
                "06",
                target,
                port,
                "udp",
                src,
                "pass",
                f"NTP on {target}:{port}/udp does not answer monlist (mode 7) from {src}",
            )
        )
    return obs
