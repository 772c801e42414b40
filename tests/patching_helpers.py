"""Shared builders for the patching and logging tests (checks 03, 04, 07, 14): hosts as evidence bundles."""

from __future__ import annotations

import stat
from collections.abc import Iterable, Mapping

from nectar_audit.catalog import entries
from nectar_audit.engine import run_check
from nectar_audit.evidence.bundle import Bundle, CommandRecord, FileRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.model import CheckResult
from tests import SAMPLES

NOW = "2026-12-01T12:00:00+00:00"
NOW_TS = 1796126400  # NOW as a Unix time

OS_RELEASE = {
    "debian12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
    'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
    "ubuntu2204": 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
    'VERSION="22.04.4 LTS (Jammy Jellyfish)"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\n'
    "UBUNTU_CODENAME=jammy\n",
    "ubuntu2404": 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
    'VERSION="24.04.1 LTS (Noble Numbat)"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n'
    "UBUNTU_CODENAME=noble\n",
    "rocky9": 'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
    'VERSION_ID="9.3"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n',
    "alma9": 'NAME="AlmaLinux"\nVERSION="9.4 (Seafoam Ocelot)"\nID="almalinux"\n'
    'ID_LIKE="rhel centos fedora"\n'
    'VERSION_ID="9.4"\nPRETTY_NAME="AlmaLinux 9.4 (Seafoam Ocelot)"\n',
    "fedora41": 'NAME="Fedora Linux"\nVERSION="41 (Cloud Edition)"\nID=fedora\nVERSION_ID=41\n'
    'PRETTY_NAME="Fedora Linux 41 (Cloud Edition)"\n',
    "centos9": 'NAME="CentOS Stream"\nVERSION="9"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="9"\n'
    'PRETTY_NAME="CentOS Stream 9"\n',
}

REG = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755
LINK = stat.S_IFLNK | 0o777


def sample(rel: str) -> str:
    return (SAMPLES / rel).read_text()


def apt_dir(name: str) -> dict[str, str]:
    return {
        f"/etc/apt/apt.conf.d/{p.name}": p.read_text() for p in sorted((SAMPLES / "apt" / name).iterdir())
    }


def ps_line(pid: int, comm: str, args: str = "", user: str = "root", ppid: int = 1, uid: int = 0) -> str:
    return f"{pid:>10} {ppid:>10} {uid:>10} {user:<32} {comm:<16} {args or comm}"


class Host:
    """A host under construction: files, file metadata, command outputs."""

    def __init__(
        self,
        os: str = "debian12",
        live: bool = False,
        kernel: str | None = None,
        uptime: float = 86400.0,
        uid: int | None = 0,
    ) -> None:
        self.live = live
        self.files: dict[str, FileRecord] = {"/etc/os-release": FileRecord(OS_RELEASE[os])}
        self.stats: dict[str, StatRecord] = {}
        self.commands: dict[str, CommandRecord] = {}
        self.uid = uid if live else None
        if live:
            self.files["/proc/sys/kernel/osrelease"] = FileRecord((kernel or "6.1.0-18-cloud-amd64") + "\n")
            self.files["/proc/uptime"] = FileRecord(f"{uptime:.2f} 100.00\n")
            self.processes([])

    # -- building ----------------------------------------------------------------------------------
    def file(self, path: str, text: str) -> Host:
        self.files[path] = FileRecord(text)
        return self

    def unreadable(self, path: str, reason: str = "Permission denied") -> Host:
        self.files[path] = FileRecord(error=reason)
        return self

    def add_files(self, files: Mapping[str, str]) -> Host:
        for p, t in files.items():
            self.file(p, t)
        return self

    def stat(
        self, path: str, mode: int = REG, uid: int = 0, gid: int = 0, size: int = 100, mtime: int = NOW_TS
    ) -> Host:
        self.stats[path] = StatRecord(mode, uid, gid, size, mtime)
        return self

    def link(self, path: str, target: str = "/lib/systemd/system/x") -> Host:
        return self.stat(path, LINK, size=len(target))

    def masked(self, unit: str) -> Host:
        return self.link(f"/etc/systemd/system/{unit}", "/dev/null")

    def enabled(self, unit: str, target: str = "timers.target") -> Host:
        return self.link(f"/etc/systemd/system/{target}.wants/{unit}", f"/lib/systemd/system/{unit}")

    def systemd(self, enabled: Iterable[str] = (), running: Iterable[str] = ()) -> Host:
        """systemd as init: offline its binary; live systemctl's answers."""
        self.stat("/etc/systemd/system", DIR).stat("/lib/systemd/systemd", stat.S_IFREG | 0o755)
        if self.live:
            en = "\n".join(f"{u} enabled enabled" for u in enabled)
            ru = "\n".join(f"{u} loaded active running {u}" for u in running)
            self.command("services.systemctl", f"#enabled\n{en}\n#running\n{ru}\n")
        return self

    def command(self, name: str, stdout: str, rc: int = 0, stderr: str = "") -> Host:
        self.commands[name] = CommandRecord(stdout, stderr, rc)
        return self

    def processes(self, lines: list[str]) -> Host:
        base = [ps_line(1, "init", "/sbin/init")]
        return self.command("processes.ps", "#ps\n" + "\n".join(base + lines) + "\n")

    def dpkg(self, text: str | None = None) -> Host:
        return self.file("/var/lib/dpkg/status", text if text is not None else sample("dpkg/debian12-status"))

    # -- judging -----------------------------------------------------------------------------------
    def bundle(self) -> Bundle:
        return Bundle(
            "test",
            "local" if self.live else "rootfs",
            self.live,
            gathered_at=NOW,
            uid=self.uid,
            files=dict(self.files),
            stats=dict(self.stats),
            commands=dict(self.commands),
        )

    def facts(self) -> Facts:
        return Facts(self.bundle())

    def check(self, number: int) -> CheckResult:
        entry = next(e for e in entries() if e.id == f"Check-Security-{number:02d}")
        return run_check(entry, self.facts(), debug=True)


def messages(result: CheckResult) -> list[tuple[str, str]]:
    return [(f.status.value, f.message) for f in result.findings]
