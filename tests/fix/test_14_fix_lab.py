"""`nectar-audit fix` for check 14 on a chroot host running a real systemd-journald (no rsyslog).

The journal is volatile (a drop-in says so, and /var/log/journal does not exist): nothing keeps the logs.
After the fix journald has been restarted by the fix script itself (no systemd as PID 1 here), writes a
new message into /var/log/journal/MACHINE-ID/system.journal, and the audit no longer fails; the second
plan changes nothing, undo restores the configuration byte for byte, and a drop-in that sorts after ours
(so our Storage= would not take effect) makes the fix roll back with `error`. The remote part stays a
manual step that names the exact configuration for the server given with --log-server.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from nectar_audit.config import Config
from tests import lab
from tests.fix import upd_lab

pytestmark = pytest.mark.lab

C14 = "Check-Security-14"
JOURNALD = "/lib/systemd/systemd-journald"
DROPIN = "/etc/systemd/journald.conf.d/nectar-audit.conf"


def _prepare(root: Path) -> str:
    lab.require((root / JOURNALD.lstrip("/")).exists(), f"{JOURNALD} in the lab root")
    (root / "etc/systemd/journald.conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/systemd/journald.conf.d/50-lab.conf").write_text("[Journal]\nStorage=auto\n")
    journal = root / "var/log/journal"
    if journal.exists():
        journal.rmdir()  # auto without this directory: volatile
    machine_id = uuid.uuid4().hex
    (root / "etc/machine-id").write_text(machine_id + "\n")
    return machine_id


def _start_journald(host: lab.ChrootHost) -> None:
    host.exec(["mount", "-t", "cgroup2", "-o", "ro,nosuid,nodev,noexec", "cgroup2", "/sys/fs/cgroup"], check=True)
    proc = host.start([JOURNALD], env={"SYSTEMD_LOG_TARGET": "console"})
    lab.wait_until(lambda: host.exec(["test", "-S", "/run/systemd/journal/stdout"]).returncode == 0
                   or proc.poll() is not None, 15, "systemd-journald's sockets")
    assert proc.poll() is None, host.log(proc)
    host.exec(["ln", "-sf", "/run/systemd/journal/dev-log", "/dev/log"], check=True)
    host.exec(["journalctl", "--flush"], check=True)


def _logged_under(host: lab.ChrootHost, directory: str) -> bool:
    token = f"nectar-audit-{uuid.uuid4().hex}"
    host.exec(["logger", "-t", "natest", token], check=True)

    def found() -> bool:
        out = host.exec(["journalctl", "--no-pager", "-D", directory, "-t", "natest", "-o", "cat"], text=True)
        return token in str(out.stdout)

    try:
        lab.wait_until(found, 15, f"the message in the journal under {directory}")
    except lab.LabError:
        return False
    return True


def test_14_persistent_journal_restarted_idempotent_undone(lab_root: Path, tmp_path: Path) -> None:
    lab.require_netns()
    machine_id = _prepare(lab_root)
    with lab.chroot_host(lab_root, hostname="fix14", workdir=tmp_path) as host:
        _start_journald(host)
        assert _logged_under(host, "/run/log/journal")
        before = upd_lab.snapshot(host, "/etc/systemd")
        config = replace(Config(), extra={"log_server": "logs.example.org:6514"})
        fix = upd_lab.plan(host, ["14"], config)
        assert fix.before is not None and fix.before.checks[0].status.value == "fail", fix.before.checks[0]
        r = upd_lab.remedy(fix, C14)
        assert [c.path for c in r.changes] == [DROPIN]
        assert r.changes[0].after.splitlines()[1:] == ["[Journal]", "Storage=persistent"]
        # The remote part is left to a human, with the exact configuration for the named server.
        [remote] = r.manual
        assert 'action(type="omfwd" target="logs.example.org" port="6514"' in remote
        assert 'StreamDriver="gtls"' in remote and 'StreamDriverAuthMode="x509/name"' in remote
        old_pid = str(host.exec(["pidof", "systemd-journald"], text=True, check=True).stdout).strip()
        upd_lab.apply(fix, ["14"], config=config)
        [outcome] = fix.outcomes
        assert outcome.status == "applied", outcome
        # Nothing fails any more; only "logs are kept on this host only" remains (a server is needed).
        assert outcome.after == "warn"
        assert fix.after is not None
        assert fix.after.checks[0].summary.startswith("logs are only kept on this host")
        # journald was restarted by the fix and now writes to /var/log/journal.
        new_pid = str(host.exec(["pidof", "systemd-journald"], text=True, check=True).stdout).strip()
        assert new_pid and new_pid != old_pid
        assert _logged_under(host, "/var/log/journal")
        assert host.exec(["test", "-s", f"/var/log/journal/{machine_id}/system.journal"]).returncode == 0
        header = host.exec(["journalctl", "--header", "-D", "/var/log/journal"], text=True, check=True)
        assert f"/var/log/journal/{machine_id}/system.journal" in str(header.stdout)
        # Idempotent: nothing to change, only the manual remote step.
        again = upd_lab.remedy(upd_lab.plan(host, ["14"], config), C14)
        assert not again.applicable and again.manual == r.manual
        # Undo: the configuration as it was.
        records = upd_lab.undo(host, fix.run_id)
        assert (C14, "undone", "") in records
        assert upd_lab.snapshot(host, "/etc/systemd") == before


def test_14_storage_overridden_after_ours_rolls_back(lab_root: Path, tmp_path: Path) -> None:
    lab.require_netns()
    _prepare(lab_root)
    with lab.chroot_host(lab_root, hostname="fix14err", workdir=tmp_path) as host:
        _start_journald(host)
        fix = upd_lab.plan(host, ["14"])
        # After the audit, a drop-in that sorts after ours keeps the journal volatile.
        host.path("/etc/systemd/journald.conf.d/zz-volatile.conf").write_text("[Journal]\nStorage=volatile\n")
        before = upd_lab.snapshot(host, "/etc/systemd")
        upd_lab.apply(fix, ["14"])
        [outcome] = fix.outcomes
        assert outcome.status == "error", outcome
        assert "Storage=volatile is what journald would use" in outcome.message, outcome.message
        assert upd_lab.snapshot(host, "/etc/systemd") == before
        assert not host.path(DROPIN).exists()
