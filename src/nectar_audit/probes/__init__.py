"""Active network probes (issue 6): a few harmless, bounded requests to addresses the user named.

Safety rules (enforced here): only the addresses passed in are contacted, a bounded number of
packets per port (``MAX_PACKETS_PER_PORT``), a timeout on every socket, a global rate limit
(``RateLimiter``), and no payload that changes state. Every observation records the source
address it was sent from; when that source is loopback or one of the target's own addresses the
result cannot prove world-facing behaviour (``vantage_note``).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass

MAX_PACKETS_PER_PORT = 3
DEFAULT_TIMEOUT = 2.0


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
            f"observed from {source}, an address of the target itself: services trust their own host, "
            "so this cannot prove world-facing behaviour; probe again from a machine outside it"
        )
    return None
