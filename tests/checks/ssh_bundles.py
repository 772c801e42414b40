"""Evidence bundles for the SSH checks (01, 17, 18): real configs from tests/samples/sshd, sshd -T answers."""

from __future__ import annotations

from nectar_audit.catalog import Entry
from nectar_audit.config import Config
from nectar_audit.engine import run_check
from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.model import CheckResult
from tests import SAMPLES

SAMPLES = SAMPLES / "sshd"
MAIN = "/etc/ssh/sshd_config"
D = "/etc/ssh/sshd_config.d"
UBUNTU = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'
ROCKY = (
    'PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\nNAME="Rocky Linux"\nVERSION_ID="9.4"\nID="rocky"\n'
    'ID_LIKE="rhel centos fedora"\n'
)
PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/bash\n"
    "svc:x:998:998::/var/lib/svc:/usr/sbin/nologin\n"
)
GROUP = "root:x:0:\nsudo:x:27:ubuntu\nubuntu:x:1000:\nalice:x:1001:\nsftponly:x:1002:alice\n"
REG = 0o100644


def debian12() -> dict[str, str]:
    return {MAIN: (SAMPLES / "debian-12" / "sshd_config").read_text()}


def distro_files(distro: str) -> dict[str, str]:
    base = SAMPLES / distro
    files = {MAIN: (base / "sshd_config").read_text()}
    if (base / "sshd_config.d").is_dir():
        for f in sorted((base / "sshd_config.d").iterdir()):
            files[f"{D}/{f.name}"] = f.read_text()
    return files


def bundle(
    files: dict[str, str],
    *,
    live: bool = False,
    uid: int | None = 0,
    os_release: str = UBUNTU,
    installed: bool = True,
    commands: dict[str, CommandRecord] | None = None,
    stats: dict[str, StatRecord] | None = None,
    unreadable: dict[str, str] | None = None,
    passwd: str = PASSWD,
    group: str = GROUP,
) -> Bundle:
    b = Bundle("test", "local" if live else "rootfs", live, uid=uid if live else None)
    b.add_file("/etc/os-release", os_release.encode())
    b.add_file("/etc/passwd", passwd.encode())
    b.add_file("/etc/group", group.encode())
    for path, text in files.items():
        b.add_file(path, text.encode())
    for path, reason in (unreadable or {}).items():
        b.add_unreadable(path, reason)
    if installed:
        b.stats["/usr/sbin/sshd"] = StatRecord(0o100755, 0, 0, 900000, 0)
    b.stats["/etc/ssh"] = StatRecord(0o40755, 0, 0, 4096, 0)
    for path in files:
        if path.startswith("/etc/ssh/"):
            b.stats[path] = StatRecord(REG, 0, 0, len(files[path]), 0)
    b.stats.update(stats or {})
    b.commands.update(commands or {})
    return b


def judge(module: object, b: Bundle, config: Config | None = None) -> CheckResult:
    check = module.CHECK  # type: ignore[attr-defined]
    return run_check(Entry(check.id, "q", "m", check), Facts(b, config or Config()))


def statuses(result: CheckResult) -> list[str]:
    return [f.status.value for f in result.findings]


def runtime(per_user: dict[str, str]) -> CommandRecord:
    """The sshd.T command output: sshd -T lines per user (given as one text each)."""
    parts = [f"@@user {u}\n{text.strip()}\n@@rc 0" for u, text in per_user.items()]
    return CommandRecord("\n".join(parts) + "\n")


SSHD_T_BASE = """port 22
addressfamily any
listenaddress [::]:22
listenaddress 0.0.0.0:22
usepam yes
permitrootlogin without-password
pubkeyauthentication yes
passwordauthentication {pa}
kbdinteractiveauthentication no
permitemptypasswords no
authorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2
authenticationmethods any
"""
