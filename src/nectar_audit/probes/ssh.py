"""SSH probe (check 01): banner and the auth methods the server offers (asyncssh, no credentials sent)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

import asyncssh

from nectar_audit.probes import DEFAULT_TIMEOUT, Observation, endpoint, validate_target
from nectar_audit.probes.guard import GuardedSocket, Scope

NONEXISTENT_USER = "nectar-audit-no-such-user"
WEAK_METHODS = ("password", "keyboard-interactive", "none")


def parse_banner(data: bytes) -> str:
    """The identification line from the first bytes a server sent (servers may send lines before it)."""
    for raw in data.split(b"\n"):
        line = raw.rstrip(b"\r")
        if line.startswith(b"SSH-"):
            return line[:255].decode("ascii", "replace")
    return data.split(b"\n", 1)[0][:255].decode("ascii", "replace").strip()


def judge_banner(ident: str) -> tuple[str, str]:
    if not ident.startswith("SSH-"):
        return "manual", f"does not identify as SSH ({ident[:60]!r})"
    if not ident.startswith(("SSH-2.0-", "SSH-1.99-")):
        return "fail", f"identifies as {ident!r}: SSH protocol 1 only"
    return "pass", f"identifies as {ident!r}"


def judge_methods(offered: Sequence[str], user: str, source: str) -> tuple[str, str]:
    listed = ", ".join(offered) or "nothing"
    weak = [m for m in offered if m in WEAK_METHODS]
    if weak:
        return "fail", f"offers {', '.join(weak)} authentication to {source} for user {user!r} (offered: {listed})"
    return "pass", f"offers only {listed} authentication to {source} for user {user!r}"


class _Recorder(asyncssh.SSHClient):
    """Declines every method the server offers (so nothing secret is ever sent) and records them."""

    def __init__(self) -> None:
        self.offered: list[str] = []

    def public_key_auth_requested(self) -> None:
        self.offered.append("publickey")

    def password_auth_requested(self) -> None:
        self.offered.append("password")

    def kbdint_auth_requested(self) -> None:
        self.offered.append("keyboard-interactive")


async def _methods(sock: GuardedSocket, target: str, port: int, user: str, timeout: float) -> list[str]:
    rec = _Recorder()
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                target,
                port,
                sock=sock,
                config=None,  # never the user's ~/.ssh/config: no ProxyJump, no keys, no other host
                username=user,
                known_hosts=None,
                client_keys=None,
                agent_path=None,
                password=None,
                gss_host=None,
                client_factory=lambda: rec,
                preferred_auth="publickey,keyboard-interactive,password",
                connect_timeout=timeout,
            ),
            timeout,
        )
        conn.close()  # the server let us in without credentials
        rec.offered.append("none")
    except asyncssh.PermissionDenied:
        pass
    return rec.offered


def banner(
    target: str, port: int = 22, timeout: float = DEFAULT_TIMEOUT, scope: Scope | None = None
) -> tuple[str, str]:
    """(source address, the server's identification line)."""
    scope = scope if scope is not None else Scope([target])
    with scope.socket(target, "tcp", "ssh", timeout) as s:
        s.connect((target, port))
        src = str(s.getsockname()[0])
        data = b""
        while len(data) <= 8192:
            start = data.find(b"SSH-")
            if start >= 0 and b"\n" in data[start:]:
                break
            try:
                chunk = s.recv(512)
            except (TimeoutError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
    return src, parse_banner(data)


def probe_ssh(
    target: str,
    port: int = 22,
    timeout: float = DEFAULT_TIMEOUT,
    scope: Scope | None = None,
    ident: tuple[str, str] | None = None,
) -> list[Observation]:
    """Banner (unless `ident` = (source, line) was read already), then a credential-less login attempt for a
    nonexistent user and for root: at most 3 connections."""
    target = validate_target(target)
    scope = scope if scope is not None else Scope([target])
    src, line = ident if ident is not None else banner(target, port, timeout, scope)
    verdict, what = judge_banner(line)
    out = [Observation("01", target, port, "tcp", src, verdict, f"SSH on {endpoint(target, port)} {what}")]
    if verdict == "manual":
        return out
    for user in (NONEXISTENT_USER, "root"):
        sock = scope.socket(target, "tcp", "ssh", timeout)
        try:
            sock.connect((target, port))
            src = str(sock.getsockname()[0])
            offered = asyncio.run(_methods(sock, target, port, user, timeout))
            verdict, what = judge_methods(offered, user, src)
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
            verdict, what = "manual", f"login attempt for user {user!r} from {src} failed: {exc or type(exc).__name__}"
        finally:
            sock.close()
        out.append(Observation("01", target, port, "tcp", src, verdict, f"SSH on {endpoint(target, port)} {what}"))
    return out
