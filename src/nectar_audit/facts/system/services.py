"""Which services run now and which start at boot.

Live with systemd as PID 1: ``systemctl list-unit-files --state=enabled`` and ``systemctl list-units``
(running services, listening sockets, waiting timers), both in one command record. Otherwise (no systemd,
or an offline image) the enablement symlinks under ``/etc/systemd/system/*.wants/`` and SysV
``/etc/rc[2-5].d/S*`` links, read as file metadata, and (live) the process list for what runs. A unit
masked by a symlink to ``/dev/null`` is recognised by the link's length (9 bytes) in its metadata.
inetd/xinetd services are parsed from their configuration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs
from nectar_audit.facts.system.processes import processes

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

SYSTEMCTL_COMMAND = "services.systemctl"

_SNIPPET = r"""
if [ -d /run/systemd/system ]; then
  echo '#enabled'
  with_timeout 10 systemctl list-unit-files --state=enabled --no-legend --no-pager 2>&1 || echo "#rc $?"
  echo '#running'
  with_timeout 10 systemctl list-units --type=service,socket,timer --state=running,listening,waiting \
    --no-legend --no-pager --plain 2>&1 || echo "#rc $?"
else
  echo '#nosystemd'
fi
"""

UNIT_DIRS_STATS = (
    "/etc/systemd/system",
    "/etc/systemd/system/*",
    "/etc/systemd/system/*.wants/*",
    "/etc/systemd/system/*.requires/*",
    "/etc/rc[2345].d/S*",
    "/lib/systemd/systemd",
    "/usr/lib/systemd/systemd",
)

NEEDS = Needs(
    files=("/etc/inetd.conf", "/etc/xinetd.conf", "/etc/xinetd.d/*"),
    stats=UNIT_DIRS_STATS,
    commands={SYSTEMCTL_COMMAND: _SNIPPET.strip("\n")},
)

_UNIT_SUFFIXES = (
    ".service",
    ".socket",
    ".timer",
    ".path",
    ".target",
    ".mount",
    ".automount",
    ".swap",
    ".slice",
    ".scope",
    ".device",
)
# Length of the symlink target "/dev/null": how a masked unit looks in lstat metadata.
_DEV_NULL_LEN = len("/dev/null")


@dataclass(frozen=True)
class InetdService:
    name: str  # service name (telnet, tftp, …)
    server: str  # the program run
    source: str  # "path:line"
    text: str


@dataclass(frozen=True)
class Services:
    systemd: bool
    enabled: frozenset[str]  # unit names ("ssh.service", "cups.socket"); SysV S-links as "<name>.service"
    running: frozenset[str]  # unit names (systemd) or process names (no systemd); empty when unknown
    running_known: bool
    masked: frozenset[str] = frozenset()
    enabled_source: str = ""
    running_source: str = ""
    running_units: bool = True  # running holds unit names (False: process names)
    inetd: tuple[InetdService, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @staticmethod
    def _candidates(name: str) -> tuple[str, ...]:
        if name.endswith(_UNIT_SUFFIXES):
            return (name,)
        return tuple(name + s for s in (".service", ".socket", ".timer", ".path"))

    def is_enabled(self, name: str) -> bool:
        """``name`` (a unit, or a bare name meaning .service/.socket/.timer/.path) starts at boot."""
        return any(c in self.enabled for c in self._candidates(name)) and not self.is_masked(name)

    def is_masked(self, name: str) -> bool:
        cands = self._candidates(name)
        if not name.endswith(_UNIT_SUFFIXES):
            cands = (name + ".service",)
        return any(c in self.masked for c in cands)

    def is_running(self, name: str) -> bool:
        if self.running_units:
            return any(c in self.running for c in self._candidates(name))
        bare = name.rsplit(".", 1)[0] if name.endswith(_UNIT_SUFFIXES) else name
        return bare in self.running or bare[:15] in self.running

    def enabled_matching(self, names: Iterable[str]) -> list[str]:
        return sorted({u for n in names for u in self._candidates(n) if u in self.enabled} - self.masked)


def unit_base(unit: str) -> str:
    """ "cups.socket" -> "cups", "getty@tty1.service" -> "getty"."""
    base = unit.rsplit(".", 1)[0] if unit.endswith(_UNIT_SUFFIXES) else unit
    return base.split("@", 1)[0]


def parse_list_unit_files(text: str) -> set[str]:
    out: set[str] = set()
    for line in text.splitlines():
        words = line.split()
        if (
            len(words) >= 2
            and words[1] in ("enabled", "enabled-runtime")
            and words[0].endswith(_UNIT_SUFFIXES)
        ):
            out.add(words[0])
    return out


def parse_list_units(text: str) -> set[str]:
    out: set[str] = set()
    for line in text.splitlines():
        words = line.replace("●", " ").split()
        if len(words) >= 4 and words[0].endswith(_UNIT_SUFFIXES) and words[2] == "active":
            out.add(words[0])
    return out


def split_systemctl(stdout: str) -> tuple[str | None, str | None, bool]:
    """(enabled section, running section, systemd running) of the systemctl command record.

    A section is None when its systemctl call failed.
    """
    if stdout.startswith("#nosystemd") or "#enabled" not in stdout:
        return None, None, False
    sections: dict[str, list[str]] = {}
    current = ""
    failed: set[str] = set()
    for line in stdout.splitlines():
        if line in ("#enabled", "#running"):
            current = line[1:]
            sections[current] = []
        elif line.startswith("#rc "):
            failed.add(current)
        elif current:
            sections[current].append(line)
    enabled = None if "enabled" in failed or "enabled" not in sections else "\n".join(sections["enabled"])
    running = None if "running" in failed or "running" not in sections else "\n".join(sections["running"])
    return enabled, running, True


def enabled_from_stats(paths: Iterable[str], sizes: dict[str, tuple[bool, int]]) -> tuple[set[str], set[str]]:
    """(enabled units, masked units) from the link metadata of unit directories and rc.d."""
    enabled: set[str] = set()
    masked: set[str] = set()
    for path in paths:
        is_link, size = sizes.get(path, (False, 0))
        m = re.match(r"^/etc/systemd/system/[^/]+\.(?:wants|requires)/([^/]+)$", path)
        if m and m.group(1).endswith(_UNIT_SUFFIXES):
            enabled.add(m.group(1))
            continue
        m = re.match(r"^/etc/systemd/system/([^/]+)$", path)
        if m and m.group(1).endswith(_UNIT_SUFFIXES) and is_link and size == _DEV_NULL_LEN:
            masked.add(m.group(1))
            continue
        m = re.match(r"^/etc/rc[2345]\.d/S\d*(.+)$", path)
        if m:
            enabled.add(m.group(1) + ".service")
    return enabled, masked


def parse_inetd(text: str, path: str) -> list[InetdService]:
    """Active lines of inetd.conf: ``service socktype proto wait user server args``."""
    out: list[InetdService] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        words = stripped.split()
        if len(words) < 6:
            continue
        out.append(InetdService(words[0].split(":")[-1], words[5], f"{path}:{lineno}", stripped))
    return out


def parse_xinetd(text: str, path: str) -> list[InetdService]:
    """``service NAME { … disable = no … }`` blocks; xinetd services are enabled unless disable = yes."""
    out: list[InetdService] = []
    for m in re.finditer(r"^[ \t]*service[ \t]+(\S+)\s*\{(.*?)\}", text, re.M | re.S):
        body = m.group(2)
        attrs: dict[str, str] = {}
        for line in body.splitlines():
            line = line.split("#", 1)[0]
            if "=" in line:
                key, _, value = line.partition("=")
                attrs[key.strip().rstrip("+-").strip()] = value.strip()
        if attrs.get("disable", "no").lower() == "yes":
            continue
        lineno = text.count("\n", 0, m.start()) + 1
        out.append(
            InetdService(
                m.group(1),
                attrs.get("server", ""),
                f"{path}:{lineno}",
                f"service {m.group(1)} (disable = {attrs.get('disable', 'no')})",
            )
        )
    return out


def services(facts: Facts) -> Services:
    b = facts.bundle
    inetd: list[InetdService] = []
    text = b.text("/etc/inetd.conf")
    if text:
        inetd.extend(parse_inetd(text, "/etc/inetd.conf"))
    for path in ["/etc/xinetd.conf", *b.glob("/etc/xinetd.d/*")]:
        try:
            text = b.text(path)
        except EvidenceError:
            continue
        if text:
            inetd.extend(parse_xinetd(text, path))

    sizes = {p: (s.is_link, s.size) for p, s in b.stats.items()}
    stat_enabled, masked = enabled_from_stats(sorted(b.stats), sizes)
    notes: list[str] = []
    systemd_live = False
    enabled_text = running_text = None
    if b.live:
        rec = b.command(SYSTEMCTL_COMMAND)
        if rec is not None:
            enabled_text, running_text, systemd_live = split_systemctl(rec.stdout)
    if enabled_text is not None:
        enabled = parse_list_unit_files(enabled_text) | {u for u in stat_enabled if u not in masked}
        enabled_source = "command: systemctl list-unit-files --state=enabled"
    else:
        enabled = stat_enabled
        enabled_source = "/etc/systemd/system/*.wants/ and /etc/rc?.d/ links"
        if systemd_live:
            notes.append("systemctl list-unit-files failed; enablement read from the unit symlinks")

    running: set[str] = set()
    running_known = False
    running_units = True
    running_source = ""
    if running_text is not None:
        running = parse_list_units(running_text)
        running_known = True
        running_source = "command: systemctl list-units --state=running,listening,waiting"
    elif b.live:
        try:
            procs = facts.get(processes)
        except EvidenceError as exc:
            notes.append(f"what runs is unknown: {exc}")
        else:
            running = {p.comm for p in procs if not p.kernel_thread} | {
                p.exe_name for p in procs if not p.kernel_thread
            }
            running_known = True
            running_units = False
            running_source = "process list (systemd is not PID 1)"
    else:
        notes.append("what runs cannot be known from an offline image")

    if b.live:
        systemd = systemd_live
    else:
        etc = b.stats.get("/etc/systemd/system")
        systemd = bool(etc and etc.is_dir) and (
            "/lib/systemd/systemd" in b.stats or "/usr/lib/systemd/systemd" in b.stats
        )
    return Services(
        systemd=systemd,
        enabled=frozenset(enabled),
        running=frozenset(running),
        running_known=running_known,
        masked=frozenset(masked),
        enabled_source=enabled_source,
        running_source=running_source,
        running_units=running_units,
        inetd=tuple(inetd),
        notes=tuple(notes),
    )
