"""`nectar-audit schedule`: rendering of the systemd units and cron entries, install/remove round trips
under --root, the real crontab of a throwaway user, the real cron daemon running the entry, and the
generated command lines actually running a scan that lands in the history."""

from __future__ import annotations

import configparser
import contextlib
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nectar_audit import __version__
from nectar_audit import schedule as sch
from nectar_audit.cli import main, scan
from nectar_audit.store import history
from tests import REPO
from tests.lab import require, require_binary, require_root

SRC = REPO / "src"
# Arguments that need every kind of escaping on their way through a unit file or a crontab.
NASTY = ["plain", "two words", 'dq"uote', "sq'uote", "100%", "%h%n", "$HOME", "${X}", "back\\slash", ";", "&&",
         "|", "`id`", "*", "ünïcode", "a\\nb", "--"]


# ---------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def wrapper(tmp_path: Path) -> Path:
    """An executable `nectar-audit` (in a directory with a space in its name) that runs this checkout's
    code with this Python, whatever is installed on the machine."""
    d = tmp_path / "bin dir"
    d.mkdir()
    exe = d / "nectar-audit"
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(SRC))} exec {shlex.quote(sys.executable)} "
                   '-m nectar_audit "$@"\n')
    exe.chmod(0o755)
    return exe


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under root: (kind, mode, content or link target)."""
    tree: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_symlink():
                tree[rel] = ("link", 0, os.readlink(p))
            elif p.is_dir():
                tree[rel] = ("dir", st.st_mode & 0o7777, "")
            else:
                tree[rel] = ("file", st.st_mode & 0o7777, p.read_text(encoding="utf-8", errors="replace"))
    return tree


def image(tmp_path: Path, systemd: bool = True) -> Path:
    """A small target tree like a Debian image: systemd installed (or not), cron.d with an unrelated
    file, a timers.target.wants with another timer, an unrelated unit."""
    root = tmp_path / "image"
    (root / "etc/cron.d").mkdir(parents=True)
    (root / "etc/cron.d/e2scrub_all").write_text("30 3 * * 0 root test -e /run/systemd/system || true\n")
    (root / "etc/hostname").write_text("img1\n")
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / "local-thing.service").write_text("[Service]\nExecStart=/bin/true\n")
    if systemd:
        (root / "usr/lib/systemd").mkdir(parents=True)
        (root / "usr/lib/systemd/systemd").write_text("")
    return root


def cli(*args: str) -> Result:
    result = CliRunner().invoke(main, ["schedule", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def exec_start_argv(value: str) -> list[str]:
    """systemd's reading of the ExecStart= forms `schedule` writes: %% and $$ are a literal % and $
    (specifiers and variables are expanded inside quotes too), then C-style double quotes."""
    words = shlex.split(value)
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


def cron_command_field(line: str, with_user: bool) -> str:
    """The command of a crontab line, as cron hands it to /bin/sh: `\\%` becomes `%` (a bare `%` would
    start stdin, and `schedule` never writes one)."""
    fields = line.split(None, 6 if with_user else 5)
    command = fields[-1]
    assert "%" not in command.replace("\\%", "")
    return command.replace("\\%", "%")


def job(argv: list[str], **kw: object) -> sch.Job:
    return sch.Job(argv=tuple(argv), version=__version__, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# rendering


def test_service_and_timer_render_and_parse(wrapper: Path) -> None:
    j = job([str(wrapper), "scan", "--store", "sqlite:////var/x.sqlite", *NASTY], hour=3, minute=17,
            random_delay=45)
    service, timer = sch.render_service(j), sch.render_timer(j)
    for text in (service, timer):
        assert sch.MARKER in text.splitlines()[:5]
    parsed = configparser.ConfigParser(interpolation=None, strict=True)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]
    parsed.read_string(service)
    svc = parsed["Service"]
    assert svc["Type"] == "oneshot" and svc["SuccessExitStatus"] == "1"
    assert exec_start_argv(svc["ExecStart"]) == list(j.argv)
    assert parsed["Unit"]["After"] == "network-online.target"
    parsed = configparser.ConfigParser(interpolation=None, strict=True)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]
    parsed.read_string(timer)
    assert dict(parsed["Timer"]) == {"OnCalendar": "*-*-* 03:17:00", "RandomizedDelaySec": "45min",
                                     "Persistent": "true"}
    assert parsed["Install"]["WantedBy"] == "timers.target"
    no_delay = sch.render_timer(replace(j, random_delay=0))
    assert "RandomizedDelaySec" not in no_delay
    user = sch.render_service(replace(j, scope=sch.USER))
    assert "network-online" not in user and "systemctl --user edit" in user


@pytest.mark.lab
def test_units_pass_systemd_analyze_verify(tmp_path: Path, wrapper: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    require(analyze is not None, "systemd-analyze not found (Debian package systemd)")
    assert analyze is not None
    j = job([str(wrapper), "scan", "--store", "sqlite:////var/x.sqlite", *NASTY], hour=23, minute=59)
    for scope in (sch.SYSTEM, sch.USER):
        d = tmp_path / scope
        d.mkdir()
        (d / sch.SERVICE).write_text(sch.render_service(replace(j, scope=scope)))
        (d / sch.TIMER).write_text(sch.render_timer(replace(j, scope=scope)))
        runtime = tmp_path / f"run-{scope}"
        runtime.mkdir(mode=0o700)
        argv = [analyze, *(["--user"] if scope == sch.USER else []), "verify", str(d / sch.SERVICE),
                str(d / sch.TIMER)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
        # verify warns (exit 0) about unknown keys, bad values and quoting: no output at all is required.
        assert (proc.returncode, proc.stdout + proc.stderr) == (0, ""), (scope, proc.stdout, proc.stderr)
    # ... and verify is no rubber stamp: a command that is not there fails it.
    (tmp_path / "bad.service").write_text(sch.render_service(replace(j, argv=("/nonexistent/nectar-audit",))))
    proc = subprocess.run([analyze, "verify", str(tmp_path / "bad.service")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and "not executable" in proc.stdout + proc.stderr


def test_cron_command_survives_cron_and_sh() -> None:
    line = f"0 3 * * * {sch.cron_command(['/usr/bin/printf', '%s|', *NASTY])}"
    out = subprocess.run(["/bin/sh", "-c", cron_command_field(line, with_user=False)], capture_output=True,
                         text=True, timeout=10, env={"PATH": "/usr/bin:/bin"}, check=True).stdout
    assert out == "".join(f"{a}|" for a in NASTY)


def test_control_characters_are_refused() -> None:
    for bad in ("new\nline", "tab\there", "cr\r"):
        with pytest.raises(sch.ScheduleError, match="control character"):
            sch.systemd_quote(bad)
        with pytest.raises(sch.ScheduleError, match="control character"):
            sch.cron_command(["/x", bad])


def test_times() -> None:
    assert sch.parse_time("03:17") == (3, 17) and sch.parse_time("0:05") == (0, 5)
    for bad in ("24:00", "3:7", "03:60", "3pm", "", "03:17:00"):
        with pytest.raises(sch.ScheduleError, match="HH:MM"):
            sch.parse_time(bad)
    j = job(["/x"], hour=23, minute=50, random_delay=30)
    hour, minute, offset = sch.cron_time(j, "vm1")
    assert sch.cron_time(j, "vm1") == (hour, minute, offset)  # the same every day
    assert 0 <= offset < 30 and (hour * 60 + minute) % 1440 == (23 * 60 + 50 + offset) % 1440
    assert len({sch.cron_time(j, f"vm{i}")[2] for i in range(50)}) > 10  # a fleet is spread out
    assert sch.cron_time(replace(j, random_delay=0), "vm1") == (23, 50, 0)


CRONTAB = "# my jobs\nMAILTO=ops@example.org\n*/5 * * * * /usr/local/bin/poll\n\n@reboot /usr/local/bin/hello\n"


def test_crontab_merge_and_strip() -> None:
    j = job(["/opt/na/bin/nectar-audit", "scan", "--store", "sqlite:////h.sqlite"], hour=4)
    block = sch.render_crontab_block(j, "vm1")
    merged = sch.merge_crontab(CRONTAB, block)
    assert merged == CRONTAB + block
    assert sch.strip_crontab(merged) == (CRONTAB, True)
    # updated in place, other lines (before and after) untouched
    later = merged + "0 1 * * * /usr/local/bin/after\n"
    block2 = sch.render_crontab_block(replace(j, hour=5), "vm1")
    assert sch.merge_crontab(later, block2) == CRONTAB + block2 + "0 1 * * * /usr/local/bin/after\n"
    assert sch.strip_crontab(later) == (CRONTAB + "0 1 * * * /usr/local/bin/after\n", True)
    assert sch.merge_crontab("", block) == block
    assert sch.merge_crontab("0 1 * * * x", block) == "0 1 * * * x\n" + block
    assert sch.strip_crontab(CRONTAB) == (CRONTAB, False)
    for damaged in (CRONTAB + block.splitlines(keepends=True)[0], CRONTAB + sch.CRON_END + "\n",
                    merged + block):
        with pytest.raises(sch.ScheduleError, match="damaged"):
            sch.merge_crontab(damaged, block)


def test_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = sch.probe_host(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert sch.resolve_store("sqlite:///rel/h.sqlite", sch.SYSTEM, host) == f"sqlite:///{tmp_path}/rel/h.sqlite"
    assert sch.resolve_store("sqlite:////abs/h.sqlite", sch.SYSTEM, host) == "sqlite:////abs/h.sqlite"
    assert sch.resolve_store(None, sch.SYSTEM, host) == "sqlite:////root/.local/share/nectar-audit/history.sqlite"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert sch.resolve_store(None, sch.USER, host) == history.default_url()
    with pytest.raises(sch.ScheduleError, match="password"):
        sch.resolve_store("postgresql+psycopg://audit:s3cret@db.example.org/audit", sch.SYSTEM, host)
    with pytest.raises(sch.ScheduleError, match="in-memory"):
        sch.resolve_store("sqlite://", sch.SYSTEM, host)
    with pytest.raises(sch.ScheduleError, match="not an SQLAlchemy URL"):
        sch.resolve_store("db.example.org/audit", sch.SYSTEM, host)
    with pytest.raises(sch.ScheduleError, match="nodriver"):
        sch.resolve_store("postgresql+nodriver://db/audit", sch.SYSTEM, host)
    # no password, credentials from ~/.pgpass: fine, and nothing is connected to
    assert sch.resolve_store("postgresql+psycopg://audit@192.0.2.1/audit", sch.SYSTEM, host).startswith("postgresql")


def test_scan_args_are_checked_now(tmp_path: Path) -> None:
    assert sch.check_scan_args(scan, ["--checks", "01,17", "local", f"root:{tmp_path}", "--inventory", __file__])
    assert sch.check_scan_args(scan, ["--checks", "01"])  # no target: this machine
    assert not sch.check_scan_args(scan, [f"root:{tmp_path}", "ubuntu@192.0.2.5"])
    assert not sch.check_scan_args(scan, ["--inventory", __file__])
    cases = {
        ("--no-such-option",): "No such option",
        ("--checks",): "requires an argument",
        ("--store", "sqlite:////x"): "give --store to `nectar-audit schedule` itself",
        ("-o", "/tmp/x"): "give --output",
        ("--format", "json"): "give --format",
        ("--config", "/etc/x.toml"): "give --config",
        ("root:relative/dir",): "relative path",
        ("--known-hosts", "kh"): "--known-hosts kh: a relative path",
        ("-F", "ssh_config"): "--ssh-config ssh_config: a relative path",
        ("--help",): "--help",
        ("ssh://",): "target ssh://",
    }
    for args, message in cases.items():
        with pytest.raises(sch.ScheduleError, match=None) as err:
            sch.check_scan_args(scan, list(args))
        assert message in str(err.value), (args, str(err.value))
    assert sch.check_scan_args(scan, ["-F", "none"])


def _host(tmp_path: Path, **kw: object) -> sch.Host:
    base = sch.Host(root=Path("/"), euid=1000, user="alice", home=tmp_path / "home", systemd_booted=True,
                    user_manager=True, systemd_installed=True, cron_d=True, crontab="/usr/bin/crontab",
                    hostname="vm1")
    return replace(base, **kw)  # type: ignore[arg-type]


def test_scope_and_backend_choice(tmp_path: Path) -> None:
    root = _host(tmp_path, euid=0)
    user = _host(tmp_path)
    assert sch.choose_scope(root, None) == sch.SYSTEM and sch.choose_scope(user, None) == sch.USER
    assert sch.choose_backend(root, sch.SYSTEM, "auto") == sch.SYSTEMD
    assert sch.choose_backend(user, sch.USER, "auto") == sch.SYSTEMD
    assert sch.choose_backend(replace(user, user_manager=False), sch.USER, "auto") == sch.CRON
    assert sch.choose_backend(replace(root, systemd_booted=False), sch.SYSTEM, "auto") == sch.CRON
    assert sch.choose_backend(replace(root, systemd_booted=False), sch.SYSTEM, "systemd") == sch.SYSTEMD
    image_host = replace(root, root=tmp_path, euid=1000)
    assert sch.choose_scope(image_host, None) == sch.SYSTEM
    assert sch.choose_backend(replace(image_host, systemd_installed=False), sch.SYSTEM, "auto") == sch.CRON
    with pytest.raises(sch.ScheduleError, match="--root"):
        sch.choose_scope(image_host, sch.USER)
    j = job(["/x", "scan"])
    with pytest.raises(sch.ScheduleError, match="only root may change"):
        sch.plan_install(user, sch.SYSTEM, sch.SYSTEMD, j)
    with pytest.raises(sch.ScheduleError, match="crontab not found: install cron"):
        sch.plan_install(replace(user, crontab=None), sch.USER, sch.CRON, j)
    with pytest.raises(sch.ScheduleError, match="no cron daemon"):
        sch.plan_install(replace(root, cron_d=False, root=tmp_path), sch.SYSTEM, sch.CRON, j)
    with pytest.raises(sch.ScheduleError, match="PID 1 is not systemd"):
        sch.plan_install(replace(root, systemd_booted=False), sch.SYSTEM, sch.SYSTEMD, j)


def test_user_units_plan_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """User units under a systemd user manager (not running on this machine: the systemctl steps are
    checked in the plan, the file steps carried out)."""
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    host = _host(tmp_path, crontab=None)
    (tmp_path / "home/.config").mkdir(parents=True)
    (tmp_path / "home/.config/other.conf").write_text("x\n")
    before = snapshot(tmp_path)
    j = job(["/opt/na/bin/nectar-audit", "scan", "--store", "sqlite:////h.sqlite"], scope=sch.USER)
    plan = sch.plan_install(host, sch.USER, sch.SYSTEMD, j)
    units = tmp_path / "home/.config/systemd/user"
    assert [sch.describe(a) for a in plan.actions] == [
        f"create directory {units.parent}", f"create directory {units}",
        f"write {units / sch.SERVICE} (mode 0644)", f"write {units / sch.TIMER} (mode 0644)",
        "run systemctl --user daemon-reload", "run systemctl --user enable --now nectar-audit.timer"]
    assert any("enable-linger alice" in w for w in plan.warnings)
    sch.apply([a for a in plan.actions if not isinstance(a, sch.Run)], lambda _: None)
    assert exec_start_argv(unit(units / sch.SERVICE)["Service"]["ExecStart"]) == list(j.argv)
    again = sch.plan_install(replace(host, linger=True), sch.USER, sch.SYSTEMD, j)
    assert [sch.describe(a) for a in again.actions] == ["run systemctl --user enable --now nectar-audit.timer"]
    assert not again.warnings
    updated = sch.plan_install(host, sch.USER, sch.SYSTEMD, replace(j, hour=5))
    assert [sch.describe(a) for a in updated.actions][-2:] == [
        "run systemctl --user enable nectar-audit.timer", "run systemctl --user restart nectar-audit.timer"]
    removal = sch.plan_remove(host, sch.USER)
    assert [sch.describe(a) for a in removal.actions] == [
        "run systemctl --user disable --now nectar-audit.timer",
        f"remove {units / sch.TIMER}", f"remove {units / sch.SERVICE}",
        f"remove directory {units} (if empty)", f"remove directory {units.parent} (if empty)",
        "run systemctl --user daemon-reload",
        "run systemctl --user reset-failed nectar-audit.service nectar-audit.timer"]
    sch.apply([a for a in removal.actions if not isinstance(a, sch.Run)], lambda _: None)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------------
# install / remove under --root


def test_systemd_round_trip_in_an_image(tmp_path: Path, wrapper: Path) -> None:
    root = image(tmp_path)
    wants = root / "etc/systemd/system/timers.target.wants"
    wants.mkdir()
    (wants / "apt-daily.timer").symlink_to("/lib/systemd/system/apt-daily.timer")
    before = snapshot(root)
    args = ["--root", str(root), "--executable", str(wrapper)]
    result = cli("--daily", "--time", "03:17", "--random-delay", "10", *args, "--", "--checks", "01,17")
    assert result.exit_code == 0, result.output
    units = root / "etc/systemd/system"
    svc = unit(units / sch.SERVICE)["Service"]
    assert exec_start_argv(svc["ExecStart"]) == [
        str(wrapper), "scan", "--store", "sqlite:////root/.local/share/nectar-audit/history.sqlite",
        "--checks", "01,17"]
    assert unit(units / sch.TIMER)["Timer"]["OnCalendar"] == "*-*-* 03:17:00"
    assert os.readlink(wants / sch.TIMER) == "/etc/systemd/system/nectar-audit.timer"
    assert (units / sch.SERVICE).stat().st_mode & 0o777 == 0o644
    systemctl = shutil.which("systemctl")
    if systemctl:  # systemd's own offline view of the image agrees: the timer is enabled
        proc = subprocess.run([systemctl, f"--root={root}", "is-enabled", sch.TIMER], capture_output=True,
                              text=True, timeout=30)
        assert proc.stdout.strip() == "enabled", proc.stdout + proc.stderr
    assert "not an executable in" in result.output  # the wrapper is not inside the image
    again = cli("--daily", "--time", "03:17", "--random-delay", "10", *args, "--", "--checks", "01,17")
    assert again.exit_code == 0 and "nothing to change" in again.output
    result = cli("--remove", "--root", str(root))
    assert result.exit_code == 0, result.output
    assert snapshot(root) == before
    assert "nothing to remove" in cli("--remove", "--root", str(root)).output


def test_systemd_in_a_bare_image_creates_and_removes_its_directories(tmp_path: Path, wrapper: Path) -> None:
    root = tmp_path / "bare"
    (root / "lib/systemd").mkdir(parents=True)
    (root / "lib/systemd/systemd").write_text("")
    before = snapshot(root)
    assert cli("--daily", "--root", str(root), "--executable", str(wrapper)).exit_code == 0
    assert (root / "etc/systemd/system/timers.target.wants" / sch.TIMER).is_symlink()
    header = (root / "etc/systemd/system" / sch.SERVICE).read_text()
    assert f"{sch.CREATED_DIR}/etc\n" in header and str(tmp_path) not in header.split("[Unit]")[0]
    assert cli("--remove", "--root", str(root)).exit_code == 0
    assert snapshot(root) == before


def test_cron_d_round_trip_and_backend_switch(tmp_path: Path, wrapper: Path) -> None:
    root = image(tmp_path, systemd=False)
    before = snapshot(root)
    args = ["--root", str(root), "--executable", str(wrapper)]
    result = cli("--daily", "--time", "23:50", *args, "--", "--checks", "01")
    assert result.exit_code == 0, result.output
    cron_file = root / "etc/cron.d/nectar-audit"
    assert cron_file.stat().st_mode & 0o777 == 0o644
    lines = cron_file.read_text().splitlines()
    assert lines[3] == sch.MARKER
    job_line = lines[-1]
    hour, minute, _ = sch.cron_time(job(["/x"], hour=23, minute=50), "img1")
    assert job_line.split()[:6] == [str(minute), str(hour), "*", "*", "*", "root"]
    assert shlex.split(cron_command_field(job_line, with_user=True))[0] == str(wrapper)
    # the image gains systemd: the same command now writes units and drops the cron entry
    (root / "lib/systemd").mkdir(parents=True)
    (root / "lib/systemd/systemd").write_text("")
    assert cli("--daily", *args).exit_code == 0
    assert not cron_file.exists() and (root / "etc/systemd/system" / sch.SERVICE).exists()
    assert cli("--daily", "--backend", "cron", *args).exit_code == 0
    assert cron_file.exists() and not (root / "etc/systemd/system" / sch.SERVICE).exists()
    result = cli("--remove", "--root", str(root))
    assert result.exit_code == 0, result.output
    (root / "lib/systemd/systemd").unlink()
    (root / "lib/systemd").rmdir()
    (root / "lib").rmdir()
    assert snapshot(root) == before


def test_refuses_files_it_did_not_write(tmp_path: Path, wrapper: Path) -> None:
    root = image(tmp_path)
    assert cli("--daily", "--backend", "cron", "--root", str(root), "--executable", str(wrapper)).exit_code == 0
    foreign = root / "etc/systemd/system" / sch.SERVICE
    foreign.write_text("[Service]\nExecStart=/usr/local/bin/our-own-audit\n")
    before = snapshot(root)
    for args in (["--daily", "--executable", str(wrapper)], ["--remove"]):
        result = cli(*args, "--root", str(root))
        assert result.exit_code == 2, result.output
        assert f"{foreign} exists and was not written by `nectar-audit schedule`" in result.output
        assert snapshot(root) == before  # not even our own cron entry went
    foreign.unlink()
    link = root / "etc/systemd/system/timers.target.wants" / sch.TIMER
    link.parent.mkdir()
    link.symlink_to("/usr/lib/systemd/system/someone-else.timer")
    result = cli("--daily", "--executable", str(wrapper), "--root", str(root))
    assert result.exit_code == 2 and "not to our timer" in result.output


def test_dry_run_touches_nothing(tmp_path: Path, wrapper: Path) -> None:
    root = image(tmp_path)
    before = snapshot(root)
    result = cli("--daily", "--dry-run", "--root", str(root), "--executable", str(wrapper))
    assert result.exit_code == 0, result.output
    assert f"would write {root}/etc/systemd/system/nectar-audit.service" in result.output
    assert "    Type=oneshot" in result.output and "would link" in result.output
    assert snapshot(root) == before
    cli("--daily", "--root", str(root), "--executable", str(wrapper))
    installed = snapshot(root)
    result = cli("--remove", "--dry-run", "--root", str(root))
    assert f"would remove {root}/etc/systemd/system/nectar-audit.timer" in result.output
    assert snapshot(root) == installed


@pytest.mark.lab
def test_dry_run_on_this_machine(wrapper: Path) -> None:
    """Nothing written on the real machine: as root without systemd as PID 1 the plan is /etc/cron.d."""
    require_root()
    require(Path("/etc/cron.d").is_dir(), "/etc/cron.d missing: apt-get install cron")
    booted = Path("/run/systemd/system").is_dir()
    before = snapshot(Path("/etc/cron.d"))
    result = cli("--daily", "--dry-run", "--executable", str(wrapper), "--", "--checks", "01")
    assert result.exit_code == 0, result.output
    where = "/etc/systemd/system/nectar-audit.service" if booted else "/etc/cron.d/nectar-audit"
    assert f"would write {where}" in result.output
    assert snapshot(Path("/etc/cron.d")) == before


def test_usage_errors_are_clear(tmp_path: Path, wrapper: Path) -> None:
    root = image(tmp_path)
    before = snapshot(root)
    base = ["--root", str(root), "--executable", str(wrapper)]
    cases = [
        ([], "say --daily to install the daily audit, or --remove"),
        (["--daily", "--remove"], "say --daily"),
        (["--daily", "--time", "25:00", *base], "expected HH:MM"),
        (["--remove", "--time", "03:00", "--root", str(root)], "--time: only with --daily"),
        (["--remove", "--root", str(root), "--", "--checks", "01"], "scan arguments: only with --daily"),
        (["--daily", "--random-delay", "-1", *base], "--random-delay"),
        (["--daily", "--backend", "anacron", *base], "'anacron' is not one of"),
        (["--daily", "--user", *base], "--user cannot be combined with --root"),
        (["--daily", "--store", "postgresql://a:pw@db/x", *base], "holds a password"),
        (["--daily", *base, "--", "--store", "sqlite:////x"], "give --store to `nectar-audit schedule` itself"),
        (["--daily", *base, "--", "--inventory", "hosts.ini"], "does not exist"),
        (["--daily", *base, "--checks", "01"], "No such option '--checks' (options of `scan` go after --"),
        (["--daily", "--config", str(tmp_path / "none.toml"), *base], "cannot read config"),
        (["--daily", "-o", "/no/such/dir/r.html", *base], "the directory"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    (root / "etc/bad.toml").write_text("[ports]\nallowd = [22]\n")  # --config is a path in the image
    result = cli("--daily", "--config", "/etc/bad.toml", *base)
    assert result.exit_code == 2 and "unknown key ports.allowd" in result.output
    (root / "etc/bad.toml").unlink()
    # a live install asks for systemd where there is none
    if not Path("/run/systemd/system").is_dir():
        result = cli("--daily", "--backend", "systemd", "--executable", str(wrapper))
        assert result.exit_code == 2 and "PID 1 is not systemd" in result.output
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: nectar_audit' >&2\nexit 1\n")
    broken.chmod(0o755)
    result = cli("--daily", "--dry-run", "--executable", str(broken))
    assert result.exit_code == 2 and "does not run here (ModuleNotFoundError: nectar_audit)" in result.output
    assert snapshot(root) == before


def test_config_and_output_are_absolute(tmp_path: Path, wrapper: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = image(tmp_path)
    (root / "etc/nectar-audit.toml").write_text('[services]\nallowed = ["nginx"]\n')
    (root / "var/lib/node-exporter").mkdir(parents=True)
    monkeypatch.chdir(root)
    result = cli("--daily", "--root", str(root), "--executable", str(wrapper), "--config", "/etc/nectar-audit.toml",
                 "--format", "prometheus", "-o", "/var/lib/node-exporter/nectar_audit.prom",
                 "--store", "sqlite:///relative.sqlite")
    assert result.exit_code == 0, result.output
    argv = exec_start_argv(unit(root / "etc/systemd/system" / sch.SERVICE)["Service"]["ExecStart"])
    assert argv[1:] == ["scan", "--store", f"sqlite:///{root}/relative.sqlite", "--config", "/etc/nectar-audit.toml",
                        "--format", "prometheus", "--output", "/var/lib/node-exporter/nectar_audit.prom", "--quiet"]


# ---------------------------------------------------------------------------------------------------
# the generated command lines run a scan that is kept in the history


def _runs(url: str) -> int:
    return len(history.list_runs(url))


def test_generated_exec_start_runs_and_records_history(tmp_path: Path, wrapper: Path) -> None:
    root = image(tmp_path)
    store_dir = tmp_path / "store %d $HOME dir"
    store_dir.mkdir()
    url = f"sqlite:///{store_dir}/history.sqlite"
    report = tmp_path / "report 100%.json"
    (root / str(tmp_path).lstrip("/")).mkdir(parents=True)  # --output is a path in the image: there too
    result = cli("--daily", "--root", str(root), "--executable", str(wrapper), "--store", url, "--format", "json",
                 "-o", str(report), "--", "--checks", "01,17", f"root:{root}")
    assert result.exit_code == 0, result.output
    argv = exec_start_argv(unit(root / "etc/systemd/system" / sch.SERVICE)["Service"]["ExecStart"])
    # As systemd runs a system service: cwd /, its default PATH, no HOME, no terminal.
    proc = subprocess.run(argv, cwd="/", capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin", "LANG": "C.UTF-8"})
    assert proc.returncode in (0, 1), proc.stderr  # 1 = checks fail = SuccessExitStatus=1
    assert proc.stderr == "" and proc.stdout == ""  # --output: --quiet, nothing for cron to mail
    assert [r.hosts for r in history.list_runs(url)] == [1]
    assert '"Check-Security-01"' in report.read_text()


def test_generated_cron_line_runs_and_records_history(tmp_path: Path, wrapper: Path) -> None:
    root = image(tmp_path, systemd=False)
    url = f"sqlite:///{tmp_path}/cron history.sqlite"
    result = cli("--daily", "--root", str(root), "--executable", str(wrapper), "--store", url, "--",
                 "--checks", "01", f"root:{root}")
    assert result.exit_code == 0, result.output
    line = (root / "etc/cron.d/nectar-audit").read_text().splitlines()[-1]
    # As cron runs it: /bin/sh -c, its minimal environment.
    proc = subprocess.run(["/bin/sh", "-c", cron_command_field(line, with_user=True)], cwd="/",
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "HOME": str(tmp_path),
                               "LOGNAME": "root"})
    assert proc.returncode in (0, 1), proc.stderr
    assert _runs(url) == 1


@contextlib.contextmanager
def _cron_daemon(tmp_path: Path, cron_d: Path, clock: str) -> Iterator[Path]:
    """The real cron daemon, in its own mount namespace, seeing only cron_d as /etc/cron.d (an empty
    /etc/crontab and spool, so none of this machine's jobs run); mail goes to a file. Yields the mail.
    Its clock (libfaketime) starts at ``clock`` and runs: cron's one-minute resolution costs seconds, not
    a minute. The jobs it starts get cron's own environment, not its clock."""
    cron = require_binary("cron")
    faketime = require_binary("faketime")
    require_binary("unshare")
    spool, crontab, mail = tmp_path / "spool", tmp_path / "crontab", tmp_path / "mail.txt"
    spool.mkdir()
    crontab.write_text("")
    sendmail = tmp_path / "sendmail"
    sendmail.write_text(f"#!/bin/sh\ncat >> {shlex.quote(str(mail))}\n")
    sendmail.chmod(0o755)
    mounts = [f"mount --bind {shlex.quote(str(cron_d))} /etc/cron.d", "mount -t tmpfs tmpfs /run"]
    for src, dst in ((crontab, "/etc/crontab"), (spool, "/var/spool/cron/crontabs"),
                     (sendmail, "/usr/sbin/sendmail")):
        if os.path.exists(dst):
            mounts.append(f"mount --bind {shlex.quote(str(src))} {dst}")
    start = f"exec {shlex.quote(faketime)} -f {shlex.quote('@' + clock)} {shlex.quote(cron)} -f"
    script = " && ".join([*mounts, start])
    with open(tmp_path / "cron.log", "wb") as log:
        proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--mount", "--propagation",
                                 "private", "sh", "-c", script], stdout=subprocess.DEVNULL, stderr=log)
    try:
        yield mail
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.lab
@pytest.mark.slow
def test_real_cron_daemon_runs_the_entry(tmp_path: Path, wrapper: Path) -> None:
    """The cron.d file as written, read and run by Debian's cron, whose clock starts three seconds before
    the entry's minute."""
    require_root()
    root = image(tmp_path, systemd=False)
    url = f"sqlite:///{tmp_path}/h.sqlite"
    result = cli("--daily", "--root", str(root), "--executable", str(wrapper), "--store", url,
                 "--time", "03:17", "--random-delay", "0", "--", "--checks", "01", f"root:{root}")
    assert result.exit_code == 0, result.output
    with _cron_daemon(tmp_path, root / "etc/cron.d", time.strftime("%Y-%m-%d 03:16:57")) as mail:
        deadline = time.time() + 120
        while time.time() < deadline and not (mail.exists() and "stored as run" in mail.read_text()):
            time.sleep(1)
    log = (tmp_path / "cron.log").read_text(errors="replace")
    assert mail.exists(), f"cron did not run the entry; cron said: {log}"
    text = mail.read_text()
    assert "stored as run 1" in text and "Traceback" not in text, text
    assert _runs(url) == 1


# ---------------------------------------------------------------------------------------------------
# a real user's crontab, through the real crontab binary


@pytest.fixture
def throwaway_user(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A user created for this test (removed after it, with its crontab), and its home."""
    require_root()
    for name in ("useradd", "userdel", "setpriv"):
        require_binary(name)
    require(shutil.which("crontab") is not None, "crontab not found (Debian package cron)")
    user = f"na-sched-{uuid.uuid4().hex[:8]}"
    home = Path(f"/tmp/{user}")
    subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", user],
                   check=True, timeout=30)
    try:
        home.mkdir(mode=0o700)
        pw = pwd.getpwnam(user)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        yield user, home
    finally:
        subprocess.run(["crontab", "-u", user, "-r"], capture_output=True, timeout=30)
        subprocess.run(["userdel", user], capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def _as(user: str, home: Path, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv as user (real uid, so crontab edits that user's crontab). This checkout's Python lives
    under /root (mode 0700), so the process keeps CAP_DAC_READ_SEARCH to read it and nothing else."""
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--inh-caps=+dac_read_search",
         "--ambient-caps=+dac_read_search", "--", *argv],
        input=stdin, capture_output=True, text=True, timeout=120, cwd=str(home),
        env={"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(SRC), "LANG": "C.UTF-8"})


@pytest.mark.lab
def test_user_crontab_round_trip(throwaway_user: tuple[str, Path], wrapper: Path) -> None:
    user, home = throwaway_user
    assert _as(user, home, ["crontab", "-"], stdin=CRONTAB).returncode == 0
    schedule = [sys.executable, "-m", "nectar_audit", "schedule"]
    proc = _as(user, home, [*schedule, "--daily", "--time", "04:30", "--executable", str(wrapper), "--", "--checks",
                            "01"])
    assert proc.returncode == 0, proc.stderr
    assert "installed the new crontab" in proc.stdout and "cannot read /etc/shadow" in proc.stderr
    listed = _as(user, home, ["crontab", "-l"]).stdout
    assert listed.startswith(CRONTAB) and listed.count(sch.CRON_BEGIN) == 1
    line = next(x for x in listed.splitlines() if x and not x.startswith("#") and str(wrapper) in x)
    assert shlex.split(cron_command_field(line, with_user=False)) == [
        str(wrapper), "scan", "--store", f"sqlite:///{home}/.local/share/nectar-audit/history.sqlite", "--checks", "01"]
    # again with another time: the block is replaced in place, not added
    proc = _as(user, home, [*schedule, "--daily", "--time", "05:30", "--executable", str(wrapper)])
    assert proc.returncode == 0, proc.stderr
    listed = _as(user, home, ["crontab", "-l"]).stdout
    assert listed.count(sch.CRON_BEGIN) == 1 and " 5 * * * " in listed and " 4 * * * " not in listed
    # a line the user adds after the block stays too
    assert _as(user, home, ["crontab", "-"], stdin=listed + "0 0 * * * /bin/true\n").returncode == 0
    proc = _as(user, home, [*schedule, "--remove"])
    assert proc.returncode == 0, proc.stderr
    assert _as(user, home, ["crontab", "-l"]).stdout == CRONTAB + "0 0 * * * /bin/true\n"
    # no crontab before: none after
    assert _as(user, home, ["crontab", "-r"]).returncode == 0
    assert _as(user, home, [*schedule, "--daily", "--executable", str(wrapper)]).returncode == 0
    assert _as(user, home, [*schedule, "--remove"]).returncode == 0
    listed_proc = _as(user, home, ["crontab", "-l"])
    assert listed_proc.returncode == 1 and "no crontab for" in listed_proc.stderr
    # the system-wide schedule is root's business
    proc = _as(user, home, [*schedule, "--daily", "--system", "--executable", str(wrapper)])
    assert proc.returncode == 2 and "only root may change" in proc.stderr and "Traceback" not in proc.stderr
    assert not home.joinpath(".local").exists()  # installing created no history file; only the scan would
