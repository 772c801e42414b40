"""Active network probes (issue 6): a few harmless, bounded requests to addresses the user named.

Safety rules, enforced on every socket by ``guard.Scope``: only the addresses passed in are contacted,
a bounded number of connections and datagrams per port, a timeout on every socket, a process-wide rate
limit (``RateLimiter``), and only read-only requests. Every observation records the source address it
was sent from; when that source is loopback or one of the target's own addresses the result cannot
prove world-facing behaviour (``vantage_note``).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass

MAX_PACKETS_PER_PORT = 3  # UDP datagrams; see guard.py for all the budgets
DEFAULT_TIMEOUT = 2.0
# Probed when nothing else is known: FTP, SSH, telnet, SMTP, DNS, HTTP, POP3, NTP, IMAP, HTTPS, VNC, Redis.
DEFAULT_PORTS = (21, 22, 23, 25, 53, 80, 110, 123, 143, 443, 5900, 6379)


class RateLimiter:
    """At most `per_second` probe sends, process-wide."""

    def __init__(self, per_second: float = 20.0) -> None:
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                time.sleep(self._next - now)
                now = self._next
            self._next = now + self.interval


LIMITER = RateLimiter()


@dataclass(frozen=True)
class Observation:
    """One probe result: what was sent where, from where, and what came back."""

    check: str  # checklist number, e.g. "06"
    target: str
    port: int
    proto: str
    source: str  # source address the probe was sent from ("" if nothing was sent)
    verdict: str  # "pass" | "fail" | "warn" | "manual"
    message: str


def endpoint(address: str, port: int, proto: str = "") -> str:
    """ "10.0.0.1:22/tcp", "[fd00::2]:22/tcp" (IPv6 in brackets, so the port is unambiguous)."""
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}/{proto}" if proto else f"{host}:{port}"


def validate_target(address: str) -> str:
    """Only literal IP addresses are probed (no name resolution picks a different host)."""
    return str(ipaddress.ip_address(address))


def vantage_note(source: str, target: str, own_addresses: frozenset[str] = frozenset()) -> str | None:
    """Why a result seen from `source` does not prove what the world sees, or None."""
    if not source:
        return None
    try:
        ip = ipaddress.ip_address(source)
    except ValueError:
        return None
    if ip.is_loopback or source == target or source in own_addresses:
        return (
            f"{source} is the target itself, and services trust their own host (BIND's localhost ACL, sshd Match "
            "Address, a firewall's loopback rule): this cannot prove world-facing behaviour; to settle it, run "
            f"`nectar-audit probe {target}` from a machine outside the host (your workstation, or an instance in "
            "another project)"
        )
    return None


def subnet_note(source: str, target: str, network: str | None) -> str | None:
    """Why a result seen from the target's own subnet may not be what the Internet sees, or None."""
    if not source or not network:
        return None
    return (
        f"{source} is on the target's own subnet {network}: servers that trust their local networks (BIND's "
        "default allow-recursion { localnets; localhost; }, an NTP restrict or chrony allow line for the LAN) "
        "answer it, so this shows exposure to that subnet (on a shared network, every instance on it), not yet "
        f"to the Internet; to settle it, run `nectar-audit probe {target}` from outside the subnet"
    )
