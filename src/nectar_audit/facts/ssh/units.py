"""systemd socket activation of sshd: ``ListenStream`` of ssh.socket/sshd.socket and their drop-ins."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


# --------------------------------------------------------------------------------------------------
# systemd socket units
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListenPort:
    port: int
    where: str  # "path:line", "command: …", "OpenSSH default"
    detail: str


def parse_unit_listen_streams(units: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """ListenStream= values of a unit and its drop-ins, in order; an empty assignment resets the list.
    Returns (value, where, line text)."""
    values: list[tuple[str, str, str]] = []
    for path, text in units:
        section = ""
        pending = ""
        start = 0
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if pending:
                line = pending + line
                pending = ""
            else:
                start = lineno
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if section != "Socket" or "=" not in line:
                continue
            key, _, value = line.partition("=")
            if key.strip() != "ListenStream":
                continue
            value = value.strip()
            if not value:
                values = []
                continue
            values.append((value, f"{path}:{start}", line))
    return values


def listen_stream_port(value: str) -> int | None:
    """'22' / '0.0.0.0:22' / '[::]:2222' -> port; unix, vsock and abstract sockets -> None."""
    if value.startswith(("/", "@", "vsock:")):
        return None
    if value.isdigit():
        port = int(value)
    else:
        m = re.fullmatch(r"(?:\[[^\]]*\]|[^:\[\]]+):(\d+)", value)
        if not m:
            return None
        port = int(m.group(1))
    return port if 0 < port < 65536 else None


def listenaddress_port(value: str) -> int | None:
    """ListenAddress host[:port]; a bare IPv6 address (2+ colons, no brackets) has no port."""
    if "[" not in value and value.count(":") >= 2:
        return None
    m = re.fullmatch(r"(?:\[([^\]]*)\]|([^:]*))(?::(\d+))?", value)
    if not m or m.group(3) is None:
        return None
    port = int(m.group(3))
    return port if 0 < port < 65536 else None


def port_of(endpoint: str) -> int | None:
    m = re.search(r":(\d+)$", endpoint)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class SocketUnit:
    name: str  # ssh.socket
    enabled: bool
    masked: bool
    enabled_source: str
    ports: tuple[ListenPort, ...]
    generator: bool  # Ubuntu's sshd-socket-generator derives ListenStream from sshd_config at boot
    synthesized: bool  # ports computed as the generator would (offline image)


@dataclass(frozen=True)
class ListenInfo:
    ports: tuple[ListenPort, ...]  # where sshd accepts connections per configuration
    socket: SocketUnit | None  # the socket unit that decides, when socket activation is on
    config_ports: tuple[ListenPort, ...]  # what sshd's own configuration says
    running: tuple[int, ...] | None  # ports the running sshd (or its socket) holds; None unknown
    running_source: str = ""
    notes: tuple[str, ...] = ()

    @property
    def all_ports(self) -> list[int]:
        return sorted({p.port for p in self.ports} | set(self.running or ()))
