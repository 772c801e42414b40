"""Who the host is: distribution, hostname, running kernel, uptime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nectar_audit.evidence import Needs
from nectar_audit.model import OsInfo

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

NEEDS = Needs(
    files=("/etc/os-release", "/usr/lib/os-release", "/etc/hostname", "/proc/uptime",
           "/proc/sys/kernel/osrelease", "/proc/sys/kernel/hostname"),
)


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): shell-style KEY=value lines, values possibly quoted."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        out[key.strip()] = _first_word(raw.strip())
    return out


def _first_word(raw: str) -> str:
    """The first shell word of ``raw`` (quotes removed, backslash escapes kept out), read in one pass:
    shlex costs microseconds a character, seconds on a hostile megabyte."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n and not raw[i].isspace():
        c = raw[i]
        if c in "\"'":
            close = raw.find(c, i + 1)
            while c == '"' and close > 0 and raw[close - 1] == "\\":
                close = raw.find(c, close + 1)
            if close < 0:  # unbalanced: the rest, without the quote (as before)
                out.append(raw[i + 1:].strip("\"'"))
                break
            part = raw[i + 1:close]
            out.append(part.replace('\\"', '"').replace("\\\\", "\\") if c == '"' else part)
            i = close + 1
        elif c == "\\" and i + 1 < n:
            out.append(raw[i + 1])
            i += 2
        else:
            j = i
            while j < n and not raw[j].isspace() and raw[j] not in "\"'\\":
                j += 1
            out.append(raw[i:j])
            i = j
    return "".join(out)


# Families decide remediation commands; ID_LIKE chains (rocky -> "rhel centos fedora") map onto them.
FAMILIES = ("debian", "rhel", "fedora")


@dataclass(frozen=True)
class HostInfo:
    os: OsInfo
    hostname: str | None
    kernel_release: str | None
    uptime_s: float | None

    @property
    def family(self) -> str:
        ids = (self.os.id, *self.os.id_like)
        if self.os.id == "fedora":
            return "fedora"
        if any(i in ("rhel", "centos", "rocky", "almalinux", "fedora") for i in ids):
            return "rhel"
        if any(i in ("debian", "ubuntu") for i in ids):
            return "debian"
        return "unknown"

    @property
    def major_version(self) -> int | None:
        head = self.os.version_id.split(".")[0]
        return int(head) if head.isdigit() else None


def host(facts: Facts) -> HostInfo:
    b = facts.bundle
    text = b.text("/etc/os-release") or b.text("/usr/lib/os-release") or ""
    rel = parse_os_release(text)
    os_info = OsInfo(
        id=rel.get("ID", "unknown").lower() or "unknown",
        version_id=rel.get("VERSION_ID", ""),
        pretty_name=rel.get("PRETTY_NAME", ""),
        id_like=tuple(rel.get("ID_LIKE", "").lower().split()),
    )
    hostname = None
    for path in ("/proc/sys/kernel/hostname", "/etc/hostname") if b.live else ("/etc/hostname",):
        value = (b.text(path) or "").strip()
        if value:
            hostname = value
            break
    kernel = (b.text("/proc/sys/kernel/osrelease") or "").strip() or None if b.live else None
    uptime = None
    if b.live:
        first = (b.text("/proc/uptime") or "").split()
        try:
            uptime = float(first[0]) if first else None
        except ValueError:
            uptime = None
    return HostInfo(os=os_info, hostname=hostname, kernel_release=kernel, uptime_s=uptime)
