"""SSH probe (check 01): banner and the auth methods the server offers (asyncssh, no credentials sent)."""

from __future__ import annotations

import asyncio
import socket

import asyncssh

from nectar_audit.probes import DEFAULT_TIMEOUT, LIMITER, Observation, validate_target

NONEXISTENT_USER = "nectar-audit-no-such-user"


class _Recorder(asyncssh.SSHClient):
    """Declines every method the server offers (so nothing secret is ever sent) and records them."""

    def __init__(self) -> None:
        self.offered: list[str] = []
        self.source = ""

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        sock = conn.get_extra_info("sockname")
        self.source = str(sock[0]) if sock else ""

    def public_key_auth_requested(self) -> None:
        self.offered.append("publickey")

    def password_auth_requested(self) -> None:
        self.offered.append("password")

    def kbdint_auth_requested(self) -> None:
        self.offered.append("keyboard-interactive")


async def _methods(target: str, port: int, user: str, timeout: float) -> tuple[str, list[str]]:
    rec = _Recorder()
    LIMITER.wait()
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                target,
                port,
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
    return rec.source, rec.offered


def banner(target: str, port: int = 22, timeout: float = DEFAULT_TIMEOUT) -> tuple[str, str]:
    """(source address, the server's identification line)."""
    with socket.create_connection((target, port), timeout=timeout) as s:
        src = str(s.getsockname()[0])
        data = b""
        while b"\n" not in data and len(data) < 512:
            chunk = s.recv(512)
            if not chunk:
                break
            data += chunk
    return src, data.split(b"\n", 1)[0].decode("ascii", "replace").strip()


def probe_ssh(target: str, port: int = 22, timeout: float = DEFAULT_TIMEOUT) -> list[Observation]:
    """Banner, then a credential-less login attempt for a nonexistent user and for root."""
    target = validate_target(target)
    src, ident = banner(target, port, timeout)
    out = [Observation("01", target, port, "tcp", src, "pass", f"SSH on {target}:{port} identifies as {ident!r}")]
    for user in (NONEXISTENT_USER, "root"):
        src, offered = asyncio.run(_methods(target, port, user, timeout))
        listed = ", ".join(offered) or "nothing"
        weak = [m for m in offered if m in ("password", "keyboard-interactive", "none")]
        if weak:
            out.append(
                Observation(
                    "01",
                    target,
                    port,
                    "tcp",
                    src,
                    "fail",
                    f"SSH on {target}:{port} offers {', '.join(weak)} authentication to {src} for user "
                    f"{user!r} (offered: {listed})",
                )
            )
        else:
            out.append(
                Observation(
                    "01",
                    target,
                    port,
                    "tcp",
                    src,
                    "pass",
                    f"SSH on {target}:{port} offers only {listed} authentication to {src} for user {user!r}",
                )
            )
    return out
