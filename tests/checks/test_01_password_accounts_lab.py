"""Lab tests of Check-Security-01 against logins the real sshd accepts or refuses.

A chroot host on the cached Debian root runs the real sshd (with Debian's PAM); asyncssh, the project's
own SSH client, logs in from the machine. sshd decides what is true: the check must agree with it,
live (the gather script inside the host, real ``sshd -T``) and offline (``root:`` of the same tree).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncssh
import pytest

from nectar_audit.catalog import entries
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.model import CheckResult
from nectar_audit.targets.rootfs import RootFsTarget
from nectar_audit.targets.script_runner import ScriptTarget
from tests import lab

pytestmark = pytest.mark.lab

ID = "Check-Security-01"
DROPIN = "etc/ssh/sshd_config.d/10-lab.conf"
PASSWORD = "Lab-only-sftp-pw-7"


def chroot(root: Path, *argv: str, input: str | None = None) -> None:
    lab.run(["chroot", str(root), *argv], input=input, timeout=60, env={**lab.HOST_ENV})


async def _login(addr: str, user: str, password: str, sftp: bool) -> str:
    async with asyncssh.connect(addr, username=user, password=password, known_hosts=None, client_keys=None,
                                agent_path=None, preferred_auth="password,keyboard-interactive",
                                login_timeout=20) as conn:
        if sftp:
            async with conn.start_sftp_client() as client:
                return " ".join(sorted(n for n in await client.listdir("/") if n not in (".", "..")))
        return "logged in"


def login(addr: str, user: str, password: str, sftp: bool = False) -> str:
    """What sshd says to a password login: the SFTP listing, "logged in", or the refusal."""
    try:
        return asyncio.run(_login(addr, user, password, sftp))
    except asyncssh.PermissionDenied as exc:
        return f"Permission denied: {exc.reason}"


def judge_live(host: lab.ChrootHost) -> CheckResult:
    result, _ = audit(ScriptTarget(f"lab:{host.name}", host.sh_argv(), timeout=120),
                      [e for e in entries() if e.id == ID], Config())
    assert result.error is None, result.error
    return result.checks[0]


def judge_offline(root: Path) -> CheckResult:
    result, _ = audit(RootFsTarget(str(root)), [e for e in entries() if e.id == ID], Config())
    assert result.error is None, result.error
    return result.checks[0]


def test_sftp_only_nologin_account_logs_in_with_a_password(lab_root: Path) -> None:
    lab.require_netns()
    chroot(lab_root, "groupadd", "sftponly")
    chroot(lab_root, "useradd", "-M", "-d", "/uploads", "-s", "/usr/sbin/nologin", "-G", "sftponly",
           "uploader")
    chroot(lab_root, "chpasswd", input=f"uploader:{PASSWORD}\n")
    jail = lab_root / "srv/sftp"
    (jail / "uploads").mkdir(parents=True)
    os.chown(jail, 0, 0)
    jail.chmod(0o755)
    (lab_root / DROPIN).write_text("PasswordAuthentication no\nKbdInteractiveAuthentication no\n")
    with (lab_root / "etc/ssh/sshd_config").open("a") as fh:
        fh.write("\nMatch Group sftponly\n    PasswordAuthentication yes\n    ForceCommand internal-sftp\n"
                 "    ChrootDirectory /srv/sftp\n")
    offline = judge_offline(lab_root)
    with lab.chroot_host(lab_root, hostname="sftp-lab") as host:
        sshd = host.start(["/usr/sbin/sshd", "-D", "-e"])
        lab.wait_for_tcp(host.addr, 22)
        # sshd decides: the nologin account's password is accepted and SFTP serves its chroot.
        assert login(host.addr, "uploader", PASSWORD, sftp=True) == "uploads"
        lab.wait_until(lambda: "Accepted password for uploader" in host.log(sshd), 10, "sshd's log line")
        # ... while an account outside the group is refused a password login.
        assert login(host.addr, "root", "anything").startswith("Permission denied")
        live = judge_live(host)
        assert sshd.poll() is None, host.log(sshd)
    note = ("— the only affected accounts are SFTP-only (ForceCommand internal-sftp, no login shell): sshd "
            "still accepts their passwords, so they can be guessed and give access to their files")
    for c01 in (live, offline):
        assert c01.status.value == "fail", c01.findings
        assert c01.summary.startswith("Match Group sftponly (/etc/ssh/sshd_config:")
        assert "turns on password login for uploader: PasswordAuthentication yes" in c01.summary
        assert c01.summary.endswith(note)
    assert any(e.source == "command: sshd -T -C user=uploader,host=198.51.100.7,addr=198.51.100.7"
               for e in live.findings[0].evidence)
    assert PASSWORD not in repr(live) + repr(offline)


@pytest.mark.parametrize("methods, expected", [
    ("PasswordAuthentication no\nKbdInteractiveAuthentication no\n", "pass"),
    ("PasswordAuthentication yes\nKbdInteractiveAuthentication no\n", "fail"),
])
def test_permit_empty_passwords_only_through_password_methods(lab_root: Path, methods: str,
                                                               expected: str) -> None:
    lab.require_netns()
    chroot(lab_root, "useradd", "-m", "-s", "/bin/bash", "guest")
    chroot(lab_root, "passwd", "-d", "guest")
    (lab_root / DROPIN).write_text(methods + "PermitEmptyPasswords yes\n")
    offline = judge_offline(lab_root)
    with lab.chroot_host(lab_root, hostname="empty-lab") as host:
        sshd = host.start(["/usr/sbin/sshd", "-D", "-e"])
        lab.wait_for_tcp(host.addr, 22)
        answer = login(host.addr, "guest", "")
        live = judge_live(host)
        assert sshd.poll() is None, host.log(sshd)
    # sshd decides: with both methods off the empty password is refused (only publickey is offered).
    if expected == "fail":
        assert answer == "logged in"
    else:
        assert answer.startswith("Permission denied"), answer
    for c01 in (live, offline):
        assert c01.status.value == expected, c01.findings
        empty = [f for f in c01.findings if "empty password" in f.message]
        assert bool(empty) == (expected == "fail")
