"""The dead-man timer of a fix run on a host whose PID 1 is the real systemd (tests/lab/systemd.py).

Where systemd runs the host, the fix script arms the timer with ``systemd-run --on-active`` and the
confirmation stops it with ``systemctl``: that path is only taken under a real systemd, so these tests
boot one. systemd itself says whether the timer exists; the file on disk says whether the run was undone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nectar_audit.fix import script as fix_script
from nectar_audit.fix.run import now_id, parse_records
from nectar_audit.remedy import RUN_BASE, FileChange, Remedy, Step
from tests import lab
from tests.lab import systemd

pytestmark = pytest.mark.lab

CONF = "/etc/nalab-deadman/access.conf"
BEFORE = "Port 22\n# kept byte for byte: tab\there, no newline at the end \u2014 ü"
AFTER = "Port 2222\n"
MODE = 0o640


@pytest.fixture
def sd_host(lab_root: Path, tmp_path: Path) -> Iterator[systemd.SystemdHost]:
    problem = systemd.problem()
    lab.require(problem is None, problem or "")
    conf = lab_root / CONF.lstrip("/")
    conf.parent.mkdir(parents=True)
    conf.write_bytes(BEFORE.encode())
    conf.chmod(MODE)
    # A boot that does not reach "running" raises: the test errors, locally as under CI.
    with systemd.systemd_host(lab_root, workdir=tmp_path) as host:
        yield host


def _apply(host: systemd.SystemdHost, timeout: int) -> tuple[str, str]:
    """Apply a dead-man remedy rewriting CONF; return the run's id and its timer unit."""
    remedy = Remedy("Check-Security-18", "lab: move sshd", changes=(FileChange(CONF, BEFORE, AFTER, mode=MODE),),
                    validate=(Step("true"),), activate=(Step("true"),), deadman=True)
    run_id = fix_script.new_run_id(now_id())
    script = fix_script.build([remedy], run_id, confirm_timeout=timeout)
    res = host.exec(["sh", "-s"], input=script.text.encode(), timeout=60)
    records = parse_records(res.stdout, script.tag)
    assert res.returncode == 0 and records[0] == ("run", "armed", f"systemd {timeout}"), (res, host.log())
    assert ("Check-Security-18", "applied", "") in records, records
    assert host.path(CONF).read_text() == AFTER
    unit = fix_script.deadman_unit(run_id)
    # (1) The run chose systemd, and systemd holds the timer.
    assert host.path(f"{RUN_BASE}/{run_id}/deadman").read_text() == "systemd\n"
    assert not host.path(f"{RUN_BASE}/{run_id}/deadman.pid").exists()
    assert f"{unit}.timer" in host.systemctl("list-timers", "--all", "--no-legend")
    assert host.systemctl("show", "-p", "ActiveState", "--value", f"{unit}.timer").strip() == "active"
    assert f"OnActiveUSec={timeout}s " in host.systemctl("show", "-p", "TimersMonotonic", "--value", f"{unit}.timer")
    return run_id, unit


def _confirm(host: systemd.SystemdHost, run_id: str) -> list[tuple[str, str, str]]:
    res = host.exec(["sh", "-s"], input=fix_script.confirm_command(run_id).encode(), timeout=60)
    assert res.returncode == 0, res
    return parse_records(res.stdout)


def test_unconfirmed_run_is_undone_by_the_systemd_timer_and_a_late_confirmation_expires(
        sd_host: systemd.SystemdHost) -> None:
    host = sd_host
    run_id, unit = _apply(host, timeout=3)
    run = f"{RUN_BASE}/{run_id}"
    # (2) Nobody confirms: systemd fires the timer, whose service runs undo.sh.
    lab.wait_until(lambda: host.path(f"{run}/undone").exists(), 60, "the dead-man timer's undo")
    assert host.path(CONF).read_bytes() == BEFORE.encode()
    assert host.path(CONF).stat().st_mode & 0o7777 == MODE
    assert "Check-Security-18 undone" in host.path(f"{run}/deadman.log").read_text()
    lab.wait_until(lambda: f"{unit}.service" in host.exec(
        ["journalctl", "--no-pager", "-u", f"{unit}.service"], text=True).stdout, 30,
        "systemd's journal record of the dead-man service")
    # Transient and collected: a fired run leaves no unit behind.
    assert host.systemctl("show", "-p", "LoadState", "--value", f"{unit}.timer").strip() == "not-found"
    # (4) The controller's confirmation arrives too late: it is told so and changes nothing.
    records = _confirm(host, run_id)
    assert [r[:2] for r in records] == [("run", "expired")], records
    assert not host.path(f"{run}/confirmed").exists()
    assert host.path(CONF).read_bytes() == BEFORE.encode()


def test_confirmed_run_stops_the_systemd_timer_and_the_change_stays(sd_host: systemd.SystemdHost) -> None:
    host = sd_host
    timeout = 8  # the confirmation must come first even on a busy machine
    armed = time.monotonic()
    run_id, unit = _apply(host, timeout=timeout)
    run = f"{RUN_BASE}/{run_id}"
    records = _confirm(host, run_id)
    # (3) Confirmed: systemd no longer knows the timer.
    assert [r[:2] for r in records] == [("run", "confirmed")], records
    assert f"{unit}.timer" not in host.systemctl("list-timers", "--all", "--no-legend")
    assert host.systemctl("show", "-p", "LoadState", "--value", f"{unit}.timer").strip() == "not-found"
    # Past the moment the timer would have fired, the change is still there and nothing was undone.
    time.sleep(max(0.0, armed + timeout + 2 - time.monotonic()))
    assert host.path(CONF).read_text() == AFTER
    assert not host.path(f"{run}/undone").exists() and not host.path(f"{run}/deadman.log").exists()
    journal = host.exec(["journalctl", "--no-pager", "-u", f"{unit}.service"], text=True).stdout
    assert "Started" not in journal, journal
