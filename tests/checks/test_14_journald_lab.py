"""Lab: check 14 against a real systemd-journald (no rsyslog) in a chroot host, volatile vs persistent.

The lab root has the `systemd` package (binaries, units, journald.conf) but systemd is not PID 1 in the
hosts: the test starts /lib/systemd/systemd-journald by hand, the way systemd would (its sockets are
its own, /dev/log is the symlink systemd-journald-dev-log.socket makes, `journalctl --flush` is what
systemd-journal-flush.service runs). Messages are sent with `logger` (syslog socket) and `systemd-cat`
(stream socket) and read back from the journal files of the expected directory, proving where the
journal really is before the audit judges it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from nectar_audit.model import HostResult, Status
from tests import lab
from tests.lab.patching import audit_chroot

pytestmark = pytest.mark.lab

JOURNALD = "/lib/systemd/systemd-journald"
DROPIN = "etc/systemd/journald.conf.d/50-lab.conf"


def _prepare(root: Path, storage: str) -> str:
    """Storage= drop-in, a machine-id of this host's own; the machine-id."""
    lab.require((root / JOURNALD.lstrip("/")).exists(), f"{JOURNALD} in the lab root (systemd in ROOT_PACKAGES)")
    dropin = root / DROPIN
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(f"[Journal]\nStorage={storage}\n")
    machine_id = uuid.uuid4().hex
    (root / "etc/machine-id").write_text(machine_id + "\n")
    return machine_id


def _start_journald(host: lab.ChrootHost) -> None:
    # journald refuses to run without a cgroup hierarchy (it looks up its own cgroup): mount the unified
    # one read-only at /sys/fs/cgroup in the host's mount namespace, as systemd would have done.
    host.exec(["mount", "-t", "cgroup2", "-o", "ro,nosuid,nodev,noexec", "cgroup2", "/sys/fs/cgroup"], check=True)
    proc = host.start([JOURNALD], env={"SYSTEMD_LOG_TARGET": "console"})
    lab.wait_until(
        lambda: host.exec(["test", "-S", "/run/systemd/journal/stdout"]).returncode == 0 or proc.poll() is not None,
        15,
        "systemd-journald's sockets",
    )
    assert proc.poll() is None, f"systemd-journald exited:\n{host.log(proc)}"
    host.exec(["ln", "-sf", "/run/systemd/journal/dev-log", "/dev/log"], check=True)
    host.exec(["journalctl", "--flush"], check=True)  # systemd-journal-flush.service: /run -> /var


def _log(host: lab.ChrootHost) -> tuple[str, str]:
    via_syslog = f"nectar-audit-{uuid.uuid4().hex}"
    via_stream = f"nectar-audit-{uuid.uuid4().hex}"
    host.exec(["logger", "-t", "natest", via_syslog], check=True)
    host.exec(["sh", "-c", f"echo {via_stream} | systemd-cat -t natest"], check=True)
    return via_syslog, via_stream


def _journal_text(host: lab.ChrootHost, directory: str, *tokens: str) -> str:
    def found() -> bool:
        out = host.exec(["journalctl", "--no-pager", "-D", directory, "-t", "natest", "-o", "cat"], text=True)
        return all(t in str(out.stdout) for t in tokens)

    lab.wait_until(found, 15, f"the messages in the journal under {directory}")
    return str(host.exec(["find", "/run/log/journal", "/var/log/journal", "-name", "*.journal"], text=True).stdout)


def _findings(result: HostResult) -> list[tuple[Status, str]]:
    return [(f.status, f.message) for f in result.checks[0].findings]


def test_volatile_journal_without_syslog_fails(lab_root: Path, tmp_path: Path) -> None:
    machine_id = _prepare(lab_root, "volatile")
    with lab.chroot_host(lab_root, hostname="jvolatile", workdir=tmp_path) as host:
        _start_journald(host)
        tokens = _log(host)
        files = _journal_text(host, "/run/log/journal", *tokens).split()
        assert files == [f"/run/log/journal/{machine_id}/system.journal"], files
        assert host.exec(["pgrep", "-x", "rsyslogd"]).returncode == 1
        result = audit_chroot(host, "Check-Security-14")
    check = result.checks[0]
    assert check.status is Status.FAIL, _findings(result)
    assert check.summary == (
        "no syslog daemon runs and the journal is not kept on disk: logs are lost at reboot (or not kept at all)"
    )
    fail = check.findings[0]
    details = [(e.source, e.detail) for e in fail.evidence]
    assert ("process list", "rsyslog is installed but not running") in details, details
    assert (f"/{DROPIN}:2", "journald Storage=volatile (not persistent)") in details, details
    assert not any(e.startswith("/var/log/journal") for e in files)


# auto is Debian 12's default: persistent because the systemd package creates /var/log/journal.
@pytest.mark.parametrize("storage", ["persistent", "auto"])
def test_persistent_journal_is_local_only_logging(lab_root: Path, tmp_path: Path, storage: str) -> None:
    machine_id = _prepare(lab_root, storage)
    with lab.chroot_host(lab_root, hostname="jpersist", workdir=tmp_path) as host:
        _start_journald(host)
        tokens = _log(host)
        files = _journal_text(host, "/var/log/journal", *tokens).split()
        assert f"/var/log/journal/{machine_id}/system.journal" in files, files
        assert host.exec(["test", "-s", f"/var/log/journal/{machine_id}/system.journal"]).returncode == 0
        result = audit_chroot(host, "Check-Security-14")
    check = result.checks[0]
    # A journal on disk keeps the logs (no "nothing keeps logs" failure), but only on this host.
    assert check.status is Status.WARN, _findings(result)
    assert check.summary == (
        "logs are only kept on this host: whoever takes over the host can erase them "
        "(forward them to a log server over TLS)"
    )
    assert _findings(result) == [(Status.WARN, check.summary)]
