"""TCP reachability probe (check 15): open and served / refused (nothing listening) / filtered."""

from __future__ import annotations

import errno
import socket

from nectar_audit.probes import DEFAULT_TIMEOUT, Observation, endpoint, validate_target
from nectar_audit.probes.guard import Scope

# Errors a firewall produces: an ICMP "administratively prohibited"/"unreachable", or a local EPERM.
_FILTERED = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM)
REFUSED = "refused: open with nothing listening (or a firewall rejects with a reset)"


def probe_tcp(target: str, port: int, timeout: float = DEFAULT_TIMEOUT, scope: Scope | None = None) -> Observation:
    """One TCP connect (a SYN, no payload); closes immediately."""
    target = validate_target(target)
    scope = scope if scope is not None else Scope([target])
    where = endpoint(target, port, "tcp")

    def obs(src: str, verdict: str, what: str) -> Observation:
        return Observation("15", target, port, "tcp", src, verdict, f"{where} {what}")

    with scope.socket(target, "tcp", "connect", timeout) as sock:
        try:
            sock.connect((target, port))
        except ConnectionRefusedError:
            return obs(str(sock.getsockname()[0]), "pass", REFUSED)
        except (TimeoutError, socket.timeout):
            return obs(str(sock.getsockname()[0]), "pass", f"filtered (no answer in {timeout:g}s)")
        except OSError as e:
            if e.errno not in _FILTERED:
                raise
            return obs(str(sock.getsockname()[0]), "pass", f"filtered ({e.strerror})")
        src = str(sock.getsockname()[0])
        return Observation(
            "15", target, port, "tcp", src, "manual", f"{where} open and served to {src}: make sure it is meant to be"
        )
