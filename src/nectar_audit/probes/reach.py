"""TCP reachability probe (check 15): open and served / refused / filtered (timeout)."""

from __future__ import annotations

import errno
import socket

from nectar_audit.probes import DEFAULT_TIMEOUT, LIMITER, Observation, validate_target


def probe_tcp(target: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> Observation:
    """One TCP connect (a SYN, no payload); closes immediately."""
    target = validate_target(target)
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        LIMITER.wait()
        try:
            sock.connect((target, port))
        except ConnectionRefusedError:
            src = str(sock.getsockname()[0])
            return Observation(
                "15",
                target,
                port,
                "tcp",
                src,
                "pass",
                f"{target}:{port}/tcp refused (reachable, nothing listening) from {src}",
            )
        except (TimeoutError, socket.timeout):
            src = str(sock.getsockname()[0])
            return Observation(
                "15",
                target,
                port,
                "tcp",
                src,
                "pass",
                f"{target}:{port}/tcp filtered (no answer in {timeout:g}s) from {src}",
            )
        except OSError as e:
            src = str(sock.getsockname()[0])
            if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM):
                return Observation(
                    "15", target, port, "tcp", src, "pass", f"{target}:{port}/tcp filtered ({e.strerror}) from {src}"
                )
            raise
        src = str(sock.getsockname()[0])
        return Observation(
            "15",
            target,
            port,
            "tcp",
            src,
            "manual",
            f"{target}:{port}/tcp open and served to {src}: make sure it is meant to be",
        )
