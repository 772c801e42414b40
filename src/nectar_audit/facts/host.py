"""Who the host is: distribution, hostname, running kernel, uptime, machine id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nectar_audit.evidence import Needs, fields_only
from nectar_audit.model import OsInfo

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

MACHINE_ID = "/etc/machine-id"
# cloud-init's id of this instance (the OpenStack server id): part of who the host is, for every scan.
INSTANCE_ID = "/var/lib/cloud/data/instance-id"
# The application id of nectar-audit's machine-specific ids (as sd_id128_get_machine_app_specific).
APP_ID = bytes.fromhex("8b3c6d2e51f04a1f9f3e2c7a4d6b1e90")


def app_specific_id(machine_id: str) -> str | None:
    """HMAC-SHA256 of the application id keyed by the machine id, as a UUID v4 in hex (systemd's
    ``sd_id128_get_machine_app_specific``): stable per machine, useless to learn the machine id itself.
    None for an empty or uninitialised machine-id (an image not booted yet)."""
    import hashlib
    import hmac

    text = machine_id.strip()
    if len(text) != 32 or text.strip("0") == "":
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        return None
    digest = bytearray(hmac.new(key, APP_ID, hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest.hex()


@fields_only
def sanitize_machine_id(data: bytes) -> str:
    """/etc/machine-id as kept in evidence: the application-specific id derived from it (empty if none)."""
    return (app_specific_id(data.decode("ascii", "replace")) or "") + "\n"


NEEDS = Needs(
    files=("/etc/os-release", "/usr/lib/os-release", "/etc/hostname", "/proc/uptime",
           "/proc/sys/kernel/osrelease", "/proc/sys/kernel/hostname", MACHINE_ID, INSTANCE_ID),
    # machine-id(5) is confidential: only an application-specific id derived from it is kept.
    sanitize={MACHINE_ID: sanitize_machine_id},
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
    machine_id: str | None = None  # application-specific (see app_specific_id), never the raw one

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
    machine = (b.text(MACHINE_ID) or "").strip()
    return HostInfo(os=os_info, hostname=hostname, kernel_release=kernel, uptime_s=uptime,
                    machine_id=machine if len(machine) == 32 and machine.isalnum() else None)


def instance_id(facts: Facts) -> str | None:
    """cloud-init's instance id (first line of its data file), bounded; None when there is none."""
    text = facts.bundle.text(INSTANCE_ID) or ""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    return first[:64] or None
