"""What listens, where, and which process owns it (TCP and UDP, IPv4 and IPv6).

Live hosts: ``ss -tulpnHe`` (one process: addresses, socket owner uid, inode, owning processes,
``v6only``). Where ``ss`` is missing or too old (no ``-H``), the same command falls back to reading
``/proc/net/{tcp,tcp6,udp,udp6}`` with shell builtins plus one ``find`` for the socket-inode to process
mapping. An offline image has no live sockets: ``listeners()`` raises EvidenceError and the checks judge
the configuration instead.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs
from nectar_audit.facts.accounts import uid_names
from nectar_audit.facts.system.processes import processes

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

SS_COMMAND = "sockets.ss"

# One ss process normally; the fallback reads /proc/net with `read` (a builtin) and maps inodes with
# one find. The markers let the parser tell the two formats apart.
_SNIPPET = r"""
if out=$(ss -tulpnHe 2>/dev/null) && [ -n "$out" ]; then
  echo '#ss'; printf '%s\n' "$out"
else
  echo '#proc'
  for f in /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6; do
    [ -r "$f" ] || continue
    echo "#file $f"
    while IFS= read -r l; do printf '%s\n' "$l"; done <"$f"
  done
  echo '#fd'
  find /proc/[0-9]*/fd -lname 'socket:*' -printf '%h %l\n' 2>/dev/null
fi
v=; read -r v 2>/dev/null </proc/sys/net/ipv6/bindv6only; echo "#bindv6only $v"
:
"""

NEEDS = Needs(files=("/etc/passwd",), commands={SS_COMMAND: _SNIPPET.strip("\n")})


@dataclass(frozen=True)
class Listener:
    proto: str  # "tcp" | "udp"
    family: int  # 4 | 6
    address: str  # "0.0.0.0", "::", "127.0.0.1", "fe80::1" (no brackets, no %scope)
    port: int
    pid: int | None = None
    process: str | None = None  # comm of the owning process
    user: str | None = None  # owner of the socket (name when known, else uid)
    interface: str | None = None  # bound to a device (SO_BINDTODEVICE / %scope)
    # IPv6 sockets: IPV6_V6ONLY. None: unknown (the /proc/net fallback cannot see it; ss without the
    # v6only field gets the bindv6only default instead). An unknown ``::`` may accept IPv4 too.
    v6only: bool | None = None
    # False when the source cannot show SO_BINDTODEVICE (the /proc/net fallback): ``interface`` None then
    # means "not known", not "no binding", and the listener may be narrower than it looks.
    interface_known: bool = True

    @property
    def loopback(self) -> bool:
        if self.interface == "lo":
            return True
        try:
            return ipaddress.ip_address(self.address).is_loopback or _is_v4mapped_loopback(self.address)
        except ValueError:
            return False

    @property
    def wildcard(self) -> bool:
        return self.address in ("0.0.0.0", "::")

    @property
    def covers_ipv4(self) -> bool:
        """May accept IPv4 connections: an IPv4 socket, ``::`` without IPV6_V6ONLY or with IPV6_V6ONLY
        unknown (``v6only`` None: counted as dual-stack, the cautious side), or a v4-mapped address."""
        if self.family == 4:
            return True
        if self.address == "::":
            return self.v6only is not True
        return _is_v4mapped(self.address)

    @property
    def notes(self) -> tuple[str, ...]:
        """What the source could not tell about this socket, for evidence lines."""
        out: list[str] = []
        if self.family == 6 and self.address == "::" and self.v6only is None:
            out.append("IPV6_V6ONLY unknown without ss: counted as accepting IPv4 too")
        if not self.interface_known and not self.loopback:
            out.append("interface binding (SO_BINDTODEVICE) unknown without ss")
        return tuple(out)

    @property
    def covers_ipv6(self) -> bool:
        return self.family == 6

    @property
    def endpoint(self) -> str:
        addr = f"[{self.address}]" if ":" in self.address else self.address
        if self.interface and self.interface != "lo":
            addr += f"%{self.interface}"
        return f"{addr}:{self.port}/{self.proto}"

    @property
    def owner(self) -> str:
        """ "sshd (pid 812, user root)" or "unknown process"."""
        if self.process is None and self.pid is None:
            return "unknown process (kernel socket, or not visible without root)"
        bits = [f"pid {self.pid}"] if self.pid is not None else []
        if self.user:
            bits.append(f"user {self.user}")
        return f"{self.process or '?'} ({', '.join(bits)})" if bits else (self.process or "?")

    def describe(self) -> str:
        notes = self.notes
        return f"{self.endpoint} by {self.owner}" + (f" ({'; '.join(notes)})" if notes else "")


def _is_v4mapped_loopback(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback


def _is_v4mapped(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None


# --------------------------------------------------------------------------------------------------
# ss -tulpnHe
_USERS_RE = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=\d+\)')


def _split_endpoint(text: str) -> tuple[str, str | None, int]:
    """'[::1]:53' / '127.0.0.53%lo:53' / '*:22' -> (address, interface, port)."""
    host, sep, port_s = text.rpartition(":")
    if not sep or not port_s.isdigit():
        raise ValueError(text)
    iface: str | None = None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if "%" in host:
        host, _, iface = host.partition("%")
        iface = iface or None
    return host, iface, int(port_s)


def parse_ss(text: str, passwd: dict[int, str] | None = None, bindv6only: bool = False) -> list[Listener]:
    """Lines of ``ss -tulpnHe`` (also accepts ``ss -tulpne`` with its header line)."""
    out: list[Listener] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 6 or words[0] not in ("tcp", "udp"):
            continue
        proto, state = words[0], words[1]
        if proto == "tcp" and state != "LISTEN":
            continue
        if proto == "udp" and state not in ("UNCONN",):
            continue
        try:
            address, iface, port = _split_endpoint(words[4])
        except ValueError:
            continue
        rest = " ".join(words[6:])
        v6only: bool | None = None
        m = re.search(r"\bv6only:([01])\b", rest)
        if m:
            v6only = m.group(1) == "1"
        if address == "*":
            # New ss prints "*" for a dual-stack "::"; old ss printed "*" for 0.0.0.0 as well.
            if m is not None:
                address, family = "::", 6
            else:
                address, family = "0.0.0.0", 4
        else:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                continue
            family = ip.version
            address = str(ip)
            if family == 6 and m is None and address == "::":
                v6only = bindv6only
        if family == 6 and v6only is None:
            v6only = bindv6only if address == "::" else True
        pid = process = None
        users = _USERS_RE.findall(rest)
        if users:
            users.sort(key=lambda u: int(u[1]))
            process, pid = users[0][0], int(users[0][1])
        uid_m = re.search(r"\buid:(\d+)\b", rest)
        uid = int(uid_m.group(1)) if uid_m else 0
        user = (passwd or {}).get(uid, str(uid))
        out.append(
            Listener(proto, family, address, port, pid, process, user, iface, v6only if family == 6 else None)
        )
    return _dedupe(out)


# --------------------------------------------------------------------------------------------------
# /proc/net/{tcp,tcp6,udp,udp6}
def _hex_addr(text: str) -> str:
    """Kernel's hex address: host-order 32-bit words (little-endian on x86/arm)."""
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    if len(raw) == 16:
        swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        return str(ipaddress.IPv6Address(swapped))
    raise ValueError(text)


def parse_proc_net(text: str, proto: str, family: int) -> list[tuple[str, int, int, int]]:
    """(address, port, uid, inode) of listening TCP / unconnected UDP sockets of one /proc/net file."""
    out: list[tuple[str, int, int, int]] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 10 or not words[0].rstrip(":").isdigit():
            continue
        try:
            addr_hex, port_hex = words[1].split(":")
            _, rport_hex = words[2].split(":")
            state = words[3].upper()
            address = _hex_addr(addr_hex)
            port = int(port_hex, 16)
            uid, inode = int(words[7]), int(words[9])
            rport = int(rport_hex, 16)
        except ValueError:
            continue
        if proto == "tcp" and state != "0A":
            continue
        if proto == "udp" and (state != "07" or rport != 0):
            continue
        if family == 6 and address == "::ffff:0:0":
            continue
        out.append((address, port, uid, inode))
    return out


def parse_fd_map(text: str) -> dict[int, int]:
    """``find … -printf '%h %l'`` lines ("/proc/812/fd socket:[1234]") -> inode -> lowest pid."""
    out: dict[int, int] = {}
    for line in text.splitlines():
        m = re.match(r"/proc/(\d+)/fd socket:\[(\d+)\]$", line.strip())
        if not m:
            continue
        pid, inode = int(m.group(1)), int(m.group(2))
        if inode not in out or pid < out[inode]:
            out[inode] = pid
    return out


def parse_proc_output(
    text: str, comms: dict[int, str], passwd: dict[int, str] | None = None, bindv6only: bool = False
) -> list[Listener]:
    """The fallback section of the sockets command: '#file PATH' blocks then '#fd' inode map.

    /proc/net shows neither IPV6_V6ONLY nor SO_BINDTODEVICE: a ``::`` socket gets ``v6only`` None (the
    bindv6only sysctl is only the default; sshd and others set the option themselves) and every
    listener ``interface_known`` False. ``bindv6only`` is kept for the signature and not used.
    """
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    fd_lines: list[str] = []
    in_fd = False
    for line in text.splitlines():
        if line.startswith("#file "):
            current, in_fd = line[6:].strip(), False
            blocks[current] = []
        elif line.startswith("#fd"):
            current, in_fd = None, True
        elif line.startswith("#"):
            current, in_fd = None, False
        elif in_fd:
            fd_lines.append(line)
        elif current is not None:
            blocks[current].append(line)
    inode_pid = parse_fd_map("\n".join(fd_lines))
    out: list[Listener] = []
    for path, lines in blocks.items():
        name = path.rsplit("/", 1)[-1]
        proto = "tcp" if name.startswith("tcp") else "udp"
        family = 6 if name.endswith("6") else 4
        for address, port, uid, inode in parse_proc_net("\n".join(lines), proto, family):
            pid = inode_pid.get(inode)
            v6only: bool | None = None
            if family == 6 and address != "::":
                v6only = True
            out.append(
                Listener(
                    proto,
                    family,
                    address,
                    port,
                    pid,
                    comms.get(pid) if pid else None,
                    (passwd or {}).get(uid, str(uid)),
                    None,
                    v6only,
                    interface_known=False,
                )
            )
    return _dedupe(out)


def _dedupe(items: list[Listener]) -> list[Listener]:
    seen: dict[tuple[object, ...], Listener] = {}
    for item in items:
        key = (item.proto, item.family, item.address, item.port, item.interface, item.pid)
        seen.setdefault(key, item)
    return sorted(seen.values(), key=lambda x: (x.proto, x.port, x.family, x.address, x.pid or 0))


def split_sections(stdout: str) -> tuple[str, str, bool]:
    """(format "ss"|"proc"|"", body, bindv6only) of the sockets command's output."""
    fmt = ""
    body: list[str] = []
    bindv6only = False
    for line in stdout.splitlines():
        if line == "#ss" and not fmt:
            fmt = "ss"
            continue
        if line == "#proc" and not fmt:
            fmt = "proc"
            continue
        if line.startswith("#bindv6only"):
            bindv6only = line.split()[-1:] == ["1"]
            continue
        body.append(line)
    return fmt, "\n".join(body), bindv6only


def listeners(facts: Facts) -> list[Listener]:
    """Every listening TCP socket and unconnected UDP socket of the live host."""
    b = facts.bundle
    if not b.live:
        raise EvidenceError("no live sockets in an offline image")
    rec = b.command(SS_COMMAND)
    if rec is None:
        raise EvidenceError("the listening sockets were not gathered")
    fmt, body, bindv6only = split_sections(rec.stdout)
    try:
        passwd = uid_names(b.text("/etc/passwd") or "")
    except EvidenceError:
        passwd = {}
    if fmt == "ss":
        return parse_ss(body, passwd, bindv6only)
    if fmt == "proc":
        if "#file " not in rec.stdout:
            raise EvidenceError("cannot list listening sockets: neither ss nor /proc/net is available")
        comms: dict[int, str] = {}
        try:
            comms = {p.pid: p.comm for p in facts.get(processes)}
        except EvidenceError:
            comms = {}
        return parse_proc_output(body, comms, passwd, bindv6only)
    raise EvidenceError(
        "cannot list listening sockets: the sockets command printed nothing "
        f"(rc {rec.rc}{': ' + rec.stderr.strip()[:200] if rec.stderr.strip() else ''})"
    )


def exposed(items: list[Listener]) -> list[Listener]:
    """Listeners reachable from other hosts (not loopback-only)."""
    return [item for item in items if not item.loopback]


def sockets_source(facts: Facts) -> str:
    """How the listeners were read, for evidence lines."""
    rec = facts.bundle.command(SS_COMMAND)
    if rec is not None and rec.stdout.startswith("#ss"):
        return "command: ss -tulpnHe"
    return "/proc/net/{tcp,tcp6,udp,udp6}"
