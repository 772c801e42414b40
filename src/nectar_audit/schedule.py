"""Continuous audit: ``nectar-audit schedule --daily`` / ``--remove``.

A systemd timer + service where systemd runs (system units as root, user units otherwise), else a cron
entry (``/etc/cron.d/nectar-audit`` as root, a marked block in the user's crontab otherwise). The job
runs ``nectar-audit scan --store URL`` with the user's options, so every run lands in the history.

Every file written starts with a header carrying :data:`MARKER`; ``--remove`` deletes only files that
carry it (and refuses, touching nothing, when a file of ours has been replaced by someone else's), so
install + remove leaves the tree as it was. Rendering is pure (``render_*``, ``merge_crontab``,
``strip_crontab``); :func:`plan_install` / :func:`plan_remove` read the current state and return the
list of :class:`Action` that :func:`apply` carries out (``--dry-run`` only describes them).
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

import click

from nectar_audit.config import ConfigError, load_config, parse_config_file
from nectar_audit.targets import TargetError, parse_target
from nectar_audit.targets.rootfs import RootFsTarget

NAME = "nectar-audit"
SERVICE = f"{NAME}.service"
TIMER = f"{NAME}.timer"
MARKER = "# nectar-audit-schedule: owned"
CREATED_DIR = "# nectar-audit-schedule: created-dir "
CRON_BEGIN = "# BEGIN nectar-audit schedule"
CRON_END = "# END nectar-audit schedule"
DEFAULT_TIME = "03:00"
DEFAULT_RANDOM_DELAY = 30  # minutes
TIMEOUT_HOURS = 2
SYSTEM, USER = "system", "user"
SYSTEMD, CRON = "systemd", "cron"


class ScheduleError(Exception):
    """A reason the schedule cannot be installed or removed (shown to the user as is)."""


# ---------------------------------------------------------------------------------------------------
# What is scheduled


@dataclass(frozen=True)
class Job:
    """The scheduled scan: when, and the full argv (absolute executable first)."""

    argv: tuple[str, ...]
    hour: int = 3
    minute: int = 0
    random_delay: int = DEFAULT_RANDOM_DELAY  # minutes
    scope: str = SYSTEM
    version: str = ""


def parse_time(text: str) -> tuple[int, int]:
    """``HH:MM`` (24-hour, local time) -> (hour, minute)."""
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not m:
        raise ScheduleError(f"--time {text!r}: expected HH:MM, 24-hour local time (e.g. 03:17)")
    return int(m.group(1)), int(m.group(2))


def scan_argv(command: Sequence[str], store: str, *, config: str | None = None, fmt: str | None = None,
              output: str | None = None, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The scan command line the job runs."""
    argv = [*command, "scan", "--store", store]
    if config:
        argv += ["--config", config]
    if fmt:
        argv += ["--format", fmt]
    if output:
        argv += ["--output", output, "--quiet"]  # then a good run prints nothing: no daily mail
    return (*argv, *extra)  # options and targets after `--`, checked by check_scan_args


def _check_printable(arg: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in arg):
        raise ScheduleError(f"argument {arg!r} contains a control character (newline, tab, ...): "
                            "it cannot be written into a unit file or a crontab")


_SYSTEMD_SAFE = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


def systemd_quote(arg: str) -> str:
    """One word of an ExecStart= line: ``%`` and ``$`` doubled (specifiers and variables are expanded
    even inside quotes), anything but plain characters double-quoted with ``\\`` and ``"`` escaped."""
    _check_printable(arg)
    if _SYSTEMD_SAFE.fullmatch(arg):
        return arg
    body = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{body}"'


def cron_command(argv: Sequence[str]) -> str:
    """The command field of a crontab line: shell-quoted words, ``%`` escaped (cron turns a bare ``%``
    into a newline and feeds the rest to stdin)."""
    for arg in argv:
        _check_printable(arg)
    return " ".join(shlex.quote(a) for a in argv).replace("%", "\\%")


def cron_time(job: Job, hostname: str) -> tuple[int, int, int]:
    """(hour, minute, offset): cron has no random delay, so a fixed per-host offset inside the window
    spreads a fleet (and its writes to a shared --store) over it, the same offset every day."""
    offset = zlib.crc32(hostname.encode()) % job.random_delay if job.random_delay else 0
    total = (job.hour * 60 + job.minute + offset) % (24 * 60)
    return total // 60, total % 60, offset


def describe_time(job: Job) -> str:
    at = f"{job.hour:02d}:{job.minute:02d}"
    if job.random_delay:
        return f"daily at {at} local time + up to {job.random_delay} min random delay"
    return f"daily at {at} local time"


def _header(job: Job, created: Sequence[str], what: str) -> list[str]:
    """The first lines of every file we write. ``created``: directories (paths of the target system)
    the install created, which --remove deletes again when they are empty."""
    lines = [
        f"# {what}",
        "# Written by `nectar-audit schedule`" + (f" (nectar-audit {job.version})." if job.version else "."),
        "# `nectar-audit schedule --remove` deletes it; running `nectar-audit schedule` again rewrites it.",
        MARKER,
    ]
    lines += [f"{CREATED_DIR}{d}" for d in created]
    return lines


# ---------------------------------------------------------------------------------------------------
# Rendering (pure)


def render_service(job: Job, created: Sequence[str] = ()) -> str:
    lines = _header(job, created, "Runs the nectar-audit security audit; started by nectar-audit.timer.")
    lines += ["# Local changes belong in a drop-in: systemctl" + (" --user" if job.scope == USER else "")
              + f" edit {SERVICE}", ""]
    lines += ["[Unit]", "Description=nectar-audit security audit (Nectar Security Administration Checklist)"]
    if job.scope == SYSTEM:
        lines += ["Wants=network-online.target", "After=network-online.target"]
    lines += [
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=" + " ".join(systemd_quote(a) for a in job.argv),
        "# Exit status 1 means the audit ran and some checks fail: a result, not a failure of the service.",
        "SuccessExitStatus=1",
        f"TimeoutStartSec={TIMEOUT_HOURS}h",
        "Nice=10",
        "IOSchedulingClass=idle",
        "# No sandboxing on purpose: the audit must see the real system (homes, /tmp, /etc, keys).",
    ]
    return "\n".join(lines) + "\n"


def render_timer(job: Job) -> str:
    lines = _header(job, (), f"Starts {SERVICE} {describe_time(job)}.")
    lines += [
        "",
        "[Unit]",
        "Description=Daily nectar-audit security audit",
        "",
        "[Timer]",
        f"OnCalendar=*-*-* {job.hour:02d}:{job.minute:02d}:00",
    ]
    if job.random_delay:
        lines.append(f"RandomizedDelaySec={job.random_delay}min")
    lines += [
        "# A run missed while the machine was off happens at the next boot.",
        "Persistent=true",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]
    return "\n".join(lines) + "\n"


def render_cron_d(job: Job, hostname: str, user: str = "root") -> str:
    hour, minute, offset = cron_time(job, hostname)
    lines = _header(job, (), "Daily nectar-audit security audit.")
    lines.append(_cron_when(job, hour, minute, offset))
    lines.append(f"{minute} {hour} * * * {user} {cron_command(job.argv)}")
    return "\n".join(lines) + "\n"


def _cron_when(job: Job, hour: int, minute: int, offset: int) -> str:
    when = f"# Runs daily at {hour:02d}:{minute:02d} local time"
    if job.random_delay:
        when += (f" ({job.hour:02d}:{job.minute:02d} + a fixed offset of {offset} min for this host, "
                 f"within the {job.random_delay} min window).")
    return when


def render_crontab_block(job: Job, hostname: str) -> str:
    hour, minute, offset = cron_time(job, hostname)
    return "\n".join([
        f"{CRON_BEGIN} (managed by `nectar-audit schedule`; `nectar-audit schedule --remove` deletes it)",
        _cron_when(job, hour, minute, offset),
        f"{minute} {hour} * * * {cron_command(job.argv)}",
        CRON_END,
    ]) + "\n"


def _block_span(lines: list[str]) -> tuple[int, int] | None:
    """(first, last) index of our block in a crontab's lines, None if absent; a half block is an error."""
    begins = [i for i, line in enumerate(lines) if line.startswith(CRON_BEGIN)]
    ends = [i for i, line in enumerate(lines) if line.rstrip() == CRON_END]
    if not begins and not ends:
        return None
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise ScheduleError("the crontab holds a damaged nectar-audit block (its BEGIN/END marker lines do not "
                            "pair up); fix it with `crontab -e` and run again")
    return begins[0], ends[0]


def merge_crontab(existing: str, block: str) -> str:
    """The crontab with our block replaced in place, or appended; every other line kept byte for byte."""
    lines = existing.splitlines(keepends=True)
    span = _block_span(lines)
    if span is not None:
        return "".join(lines[:span[0]]) + block + "".join(lines[span[1] + 1:])
    if existing and not existing.endswith("\n"):
        existing += "\n"
    return existing + block


def strip_crontab(existing: str) -> tuple[str, bool]:
    """(the crontab without our block, whether there was one)."""
    lines = existing.splitlines(keepends=True)
    span = _block_span(lines)
    if span is None:
        return existing, False
    return "".join(lines[:span[0]]) + "".join(lines[span[1] + 1:]), True


# ---------------------------------------------------------------------------------------------------
# Actions


@dataclass(frozen=True)
class WriteFile:
    path: Path
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class MakeDir:
    path: Path


@dataclass(frozen=True)
class Symlink:
    path: Path
    target: str


@dataclass(frozen=True)
class RemoveFile:
    path: Path


@dataclass(frozen=True)
class RemoveDirIfEmpty:
    path: Path


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    required: bool = True  # a failure stops the rest; else it is reported and the rest goes on


@dataclass(frozen=True)
class SetCrontab:
    crontab: tuple[str, ...]  # the crontab command, e.g. ("crontab",)
    content: str | None  # None: remove the crontab (crontab -r)


Action = Union[WriteFile, MakeDir, Symlink, RemoveFile, RemoveDirIfEmpty, Run, SetCrontab]


def describe(action: Action, done: bool = False) -> str:
    """One line for the user: what will be done (``would ...``) or what was (``done``)."""
    def verb(now: str, past: str) -> str:
        return past if done else now

    if isinstance(action, WriteFile):
        return f"{verb('write', 'wrote')} {action.path} (mode {action.mode:04o})"
    if isinstance(action, MakeDir):
        return f"{verb('create', 'created')} directory {action.path}"
    if isinstance(action, Symlink):
        return f"{verb('link', 'linked')} {action.path} -> {action.target}"
    if isinstance(action, RemoveFile):
        return f"{verb('remove', 'removed')} {action.path}"
    if isinstance(action, RemoveDirIfEmpty):
        return f"{verb('remove', 'removed')} directory {action.path}" + ("" if done else " (if empty)")
    if isinstance(action, Run):
        return f"{verb('run', 'ran')} {shlex.join(action.argv)}"
    if action.content is None:
        return f"{verb('remove', 'removed')} the crontab ({shlex.join(action.crontab)} -r)"
    return f"{verb('install', 'installed')} the new crontab ({shlex.join(action.crontab)} -)"


def content_of(action: Action) -> str | None:
    if isinstance(action, WriteFile):
        return action.content
    if isinstance(action, SetCrontab):
        return action.content
    return None


def _write_atomic(path: Path, content: str, mode: int) -> None:
    # A temporary name starting with "." in the same directory: cron ignores it, and the rename makes
    # the new file appear whole.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), mode)
            out.write(content)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _run(argv: Sequence[str], stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except FileNotFoundError as exc:
        raise ScheduleError(f"{argv[0]} not found") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ScheduleError(f"cannot run {shlex.join(argv)}: {exc}") from exc


def _failure(argv: Sequence[str], proc: subprocess.CompletedProcess[str]) -> str:
    said = (proc.stderr or proc.stdout).strip()
    return f"`{shlex.join(argv)}` failed (exit {proc.returncode})" + (f": {said}" if said else "")


def apply(actions: Sequence[Action], echo: Callable[[str], None]) -> list[str]:
    """Carry out the actions in order; return the problems of best-effort steps. A required step that
    fails raises ScheduleError naming what was done before it."""
    problems: list[str] = []
    done: list[str] = []

    def fail(reason: str) -> ScheduleError:
        so_far = ("; done before that: " + ", ".join(done)) if done else ""
        return ScheduleError(reason + so_far)

    for action in actions:
        try:
            if isinstance(action, WriteFile):
                _write_atomic(action.path, action.content, action.mode)
            elif isinstance(action, MakeDir):
                action.path.mkdir()
            elif isinstance(action, Symlink):
                os.symlink(action.target, action.path)
            elif isinstance(action, RemoveFile):
                action.path.unlink()
            elif isinstance(action, RemoveDirIfEmpty):
                if not action.path.is_dir():
                    continue
                if any(action.path.iterdir()):
                    problems.append(f"left {action.path} in place: it is not empty")
                    continue
                action.path.rmdir()
            elif isinstance(action, Run):
                proc = _run(action.argv)
                if proc.returncode != 0:
                    if action.required:
                        raise fail(_failure(action.argv, proc))
                    problems.append(_failure(action.argv, proc))
                    continue
            else:
                argv = [*action.crontab, "-"] if action.content is not None else [*action.crontab, "-r"]
                proc = _run(argv, stdin=action.content)
                if proc.returncode != 0:
                    raise fail(_failure(argv, proc))
        except OSError as exc:
            raise fail(f"cannot {describe(action)}: {exc.strerror or exc}") from exc
        echo(describe(action, done=True))
        done.append(describe(action, done=True))
    return problems


# ---------------------------------------------------------------------------------------------------
# The machine


@dataclass(frozen=True)
class Host:
    """Facts about where the schedule goes. ``root`` is "/" for this machine, or an image (--root)."""

    root: Path
    euid: int
    user: str
    home: Path
    systemd_booted: bool  # systemd is PID 1 here (sd_booted: /run/systemd/system exists)
    user_manager: bool  # a systemd --user manager of this user is running
    systemd_installed: bool  # for --root: the image has systemd
    cron_d: bool  # /etc/cron.d exists (a cron daemon is installed)
    crontab: str | None  # the crontab command, when installed
    hostname: str
    linger: bool = False

    @property
    def live(self) -> bool:
        return self.root == Path("/")

    def path(self, absolute: str | Path, follow_last: bool = False) -> Path:
        """A path of the target system, under --root when given. In an image its symlinks are resolved
        as ``root:`` resolves them (an absolute link points into the image, ``..`` stops at its top), so
        nothing the image holds can send a read or write outside it; the last component is followed only
        with ``follow_last`` (a directory we write in), else a link there is itself the file."""
        if self.live:
            return self.root / str(absolute).lstrip("/")
        return inside_root(self.root, str(absolute), follow_last)


def inside_root(root: Path, absolute: str, follow_last: bool = False) -> Path:
    """``absolute`` of the image at ``root``, resolved inside it (``RootFsTarget.resolve``)."""
    try:
        return RootFsTarget(str(root)).resolve(absolute, follow_last=follow_last)
    except OSError as exc:
        raise ScheduleError(f"{absolute} in {root}: {exc.strerror or exc}") from exc


def probe_host(root: str | None = None) -> Host:
    rootp = Path(root).resolve() if root else Path("/")
    euid = os.geteuid()
    try:
        entry = pwd.getpwuid(euid)
        user, pw_home = entry.pw_name, entry.pw_dir
    except KeyError:
        user, pw_home = str(euid), ""
    home = Path(os.environ.get("HOME") or pw_home or "/")
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{euid}")
    def image(path: str) -> Path:
        return rootp / path if rootp == Path("/") else inside_root(rootp, path, follow_last=True)

    if rootp == Path("/"):
        hostname = socket.gethostname()
    else:
        try:
            hostname = image("/etc/hostname").read_text(encoding="utf-8").strip() or socket.gethostname()
        except OSError:
            hostname = socket.gethostname()
    return Host(
        root=rootp,
        euid=euid,
        user=user,
        home=home,
        systemd_booted=Path("/run/systemd/system").is_dir(),
        user_manager=(runtime / "systemd" / "private").exists(),
        systemd_installed=any(image(p).exists() for p in ("/usr/lib/systemd/systemd", "/lib/systemd/systemd")),
        cron_d=image("/etc/cron.d").is_dir(),
        crontab=shutil.which("crontab"),
        hostname=hostname,
        linger=Path("/var/lib/systemd/linger", user).exists(),
    )


def choose_scope(host: Host, want: str | None) -> str:
    if want is None:
        return SYSTEM if host.euid == 0 or not host.live else USER
    if want == USER and not host.live:
        raise ScheduleError("--user cannot be combined with --root (an image gets system units or /etc/cron.d)")
    return want


def choose_backend(host: Host, scope: str, want: str) -> str:
    if want != "auto":
        return want
    if not host.live:
        return SYSTEMD if host.systemd_installed else CRON
    if host.systemd_booted and (scope == SYSTEM or host.user_manager):
        return SYSTEMD
    return CRON


@dataclass(frozen=True)
class Paths:
    service: Path
    timer: Path
    unit_dir: Path
    wants: Path  # timers.target.wants in unit_dir
    cron_d: Path

    @staticmethod
    def of(host: Host, scope: str) -> Paths:
        if scope == SYSTEM:
            # Directories written in are resolved whole (in an image: inside it), the files themselves not.
            unit_dir = host.path("/etc/systemd/system", follow_last=True)
            wants = host.path("/etc/systemd/system/timers.target.wants", follow_last=True)
        else:
            config = os.environ.get("XDG_CONFIG_HOME")
            base = Path(config) if config and os.path.isabs(config) else host.home / ".config"
            unit_dir = base / "systemd" / "user"
            wants = unit_dir / "timers.target.wants"
        return Paths(service=unit_dir / SERVICE, timer=unit_dir / TIMER, unit_dir=unit_dir,
                     wants=wants, cron_d=host.path("/etc/cron.d", follow_last=True) / NAME)


def is_ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = [fh.readline() for _ in range(5)]
    except OSError as exc:
        raise ScheduleError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return any(line.rstrip("\n") == MARKER for line in head)


def created_dirs(host: Host, path: Path) -> list[Path]:
    """Directories the install recorded (in ``path``'s header) as created by it, in creation order."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [host.path(line[len(CREATED_DIR):]) for line in text.splitlines() if line.startswith(CREATED_DIR)]


def _inside(host: Host, path: Path) -> str:
    """``path`` (under --root) as a path of the target system."""
    return "/" + str(path.relative_to(host.root))


def _refuse_foreign(paths: Sequence[Path]) -> None:
    foreign = [p for p in paths if (p.exists() or p.is_symlink()) and (p.is_symlink() or not is_ours(p))]
    if foreign:
        names = ", ".join(str(p) for p in foreign)
        raise ScheduleError(f"{names} exists and was not written by `nectar-audit schedule` (no "
                            f"'{MARKER}' line in its header): leaving it alone and changing nothing; "
                            "move it away first if it should be replaced")


def _missing_dirs(directory: Path) -> list[Path]:
    """The directories mkdir -p would create, outermost first."""
    missing: list[Path] = []
    d = directory
    while not d.exists():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    return list(reversed(missing))


def _systemctl(scope: str, *args: str) -> Run:
    base = ("systemctl", "--user") if scope == USER else ("systemctl",)
    return Run((*base, *args))


def _crontab_argv(host: Host) -> tuple[str, ...]:
    if host.crontab is None:
        raise ScheduleError("crontab not found: install cron (Debian/Ubuntu: apt-get install cron; "
                            "Rocky/Alma/Fedora: dnf install cronie) or use systemd")
    return ("crontab",)


def read_crontab(crontab: Sequence[str]) -> str | None:
    """The user's crontab (None when there is none)."""
    proc = _run([*crontab, "-l"])
    if proc.returncode == 0:
        return proc.stdout
    if re.search(r"no crontab for", proc.stderr, re.IGNORECASE):
        return None
    raise ScheduleError(_failure([*crontab, "-l"], proc))


# ---------------------------------------------------------------------------------------------------
# Plans


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown after the actions
    warnings: list[str] = field(default_factory=list)


def _link_target(host: Host, paths: Paths) -> str:
    """What the timers.target.wants link points to, as systemctl enable writes it (a path of the target)."""
    return _inside(host, paths.timer)


def _managed(host: Host, scope: str) -> bool:
    """Whether a running systemd (system manager, or this user's manager) takes the units here."""
    return host.live and host.systemd_booted and (scope == SYSTEM or host.user_manager)


def _remove_systemd(host: Host, scope: str, paths: Paths, plan: Plan) -> None:
    """Undo a systemd install of ours (the files were checked to be ours beforehand)."""
    present = [p for p in (paths.timer, paths.service) if p.exists()]
    if not present:
        return
    link = paths.wants / TIMER
    dirs = created_dirs(host, paths.service)
    if _managed(host, scope):
        if paths.timer.exists():
            plan.actions.append(_systemctl(scope, "disable", "--now", TIMER))
    elif link.is_symlink() and os.readlink(link) == _link_target(host, paths):
        # No systemd to ask (an image, or systemd not running): the enable link is ours too.
        plan.actions.append(RemoveFile(link))
        if paths.wants in dirs:
            plan.actions.append(RemoveDirIfEmpty(paths.wants))
    plan.actions += [RemoveFile(p) for p in present]
    plan.actions += [RemoveDirIfEmpty(d) for d in reversed(dirs) if d != paths.wants]
    if _managed(host, scope):
        plan.actions.append(_systemctl(scope, "daemon-reload"))
        plan.actions.append(Run(_systemctl(scope, "reset-failed", SERVICE, TIMER).argv, required=False))
    dropins = [d for d in (paths.unit_dir / f"{SERVICE}.d", paths.unit_dir / f"{TIMER}.d") if d.exists()]
    if dropins:
        plan.notes.append("left alone (not written by nectar-audit schedule): "
                          + ", ".join(str(d) for d in dropins))


def _remove_user_crontab(host: Host, plan: Plan) -> None:
    if host.crontab is None:
        return
    crontab = _crontab_argv(host)
    current = read_crontab(crontab)
    if current is not None:
        rest, found = strip_crontab(current)
        if found:
            plan.actions.append(SetCrontab(crontab, rest if rest.strip() else None))


def _need_root(host: Host, scope: str, what: Path) -> None:
    if host.live and scope == SYSTEM and host.euid != 0:
        raise ScheduleError(f"the system-wide schedule lives in {what}, which only root may change: run it "
                            "as root (sudo nectar-audit schedule ...), or pass --user for your own account")


def plan_remove(host: Host, scope: str) -> Plan:
    plan = Plan()
    paths = Paths.of(host, scope)
    _refuse_foreign([paths.service, paths.timer] + ([paths.cron_d] if scope == SYSTEM else []))
    _remove_systemd(host, scope, paths, plan)
    if scope == SYSTEM and paths.cron_d.exists():
        plan.actions.append(RemoveFile(paths.cron_d))
    if scope == USER:
        _remove_user_crontab(host, plan)
    if plan.actions:
        _need_root(host, scope, paths.unit_dir if paths.service.exists() else paths.cron_d.parent)
    return plan


def plan_install(host: Host, scope: str, backend: str, job: Job) -> Plan:
    plan = Plan()
    paths = Paths.of(host, scope)
    _need_root(host, scope, paths.unit_dir if backend == SYSTEMD else paths.cron_d.parent)
    _refuse_foreign([paths.service, paths.timer] + ([paths.cron_d] if scope == SYSTEM else []))
    if backend == SYSTEMD:
        _plan_systemd(host, scope, paths, job, plan)
    elif scope == SYSTEM:
        _plan_cron_d(host, paths, job, plan)
    else:
        _plan_user_crontab(host, job, plan)
    return plan


def _unchanged(path: Path, content: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == content
    except (OSError, UnicodeDecodeError):
        return False


def _plan_systemd(host: Host, scope: str, paths: Paths, job: Job, plan: Plan) -> None:
    managed = _managed(host, scope)
    if host.live and not managed:
        if scope == USER and host.systemd_booted:
            raise ScheduleError("no systemd user manager is running for this session (`systemctl --user` "
                                "cannot reach it): log in normally, or use --backend cron")
        raise ScheduleError("systemd is not running on this machine (PID 1 is not systemd): use "
                            "--backend cron, or --backend auto")
    new_dirs = _missing_dirs(paths.unit_dir)
    created = created_dirs(host, paths.service)
    created += [d for d in new_dirs if d not in created]
    link = paths.wants / TIMER
    link_needed = False
    if not managed:
        # An image (--root): enabled the way `systemctl enable` does it, so it starts at the first boot.
        if link.is_symlink():
            if os.readlink(link) != _link_target(host, paths):
                raise ScheduleError(f"{link} exists and points to {os.readlink(link)}, not to our timer: "
                                    "leaving it alone and changing nothing")
        else:
            link_needed = True
            if not paths.wants.exists() and paths.wants not in created:
                created.append(paths.wants)
    service, timer = render_service(job, [_inside(host, d) for d in created]), render_timer(job)
    updating = paths.timer.exists()
    changed = not (_unchanged(paths.service, service) and _unchanged(paths.timer, timer))
    plan.actions += [MakeDir(d) for d in new_dirs]
    if changed:
        plan.actions += [WriteFile(paths.service, service), WriteFile(paths.timer, timer)]
    else:
        plan.notes.append(f"{paths.service} and {paths.timer} are already up to date")
    if managed:
        if changed:
            plan.actions.append(_systemctl(scope, "daemon-reload"))
        if updating and changed:
            plan.actions += [_systemctl(scope, "enable", TIMER), _systemctl(scope, "restart", TIMER)]
        else:
            plan.actions.append(_systemctl(scope, "enable", "--now", TIMER))
    elif link_needed:
        if not paths.wants.exists():
            plan.actions.append(MakeDir(paths.wants))
        plan.actions.append(Symlink(link, _link_target(host, paths)))
    # Switching from cron: our cron entry goes, so the audit does not run twice a day.
    if scope == SYSTEM and paths.cron_d.exists():
        plan.actions.append(RemoveFile(paths.cron_d))
    elif scope == USER:
        _remove_user_crontab(host, plan)
    if scope == USER and not host.linger:
        plan.warnings.append(f"user timers run only while {host.user} is logged in; to audit every day "
                             f"regardless: sudo loginctl enable-linger {host.user}")
    user = " --user" if scope == USER else ""
    plan.notes.append(f"{describe_time(job)}; a run missed while the machine was off happens at the next boot"
                      + (f". Next run: systemctl{user} list-timers {TIMER}; logs: journalctl{user} -u {SERVICE}"
                         if managed else "; enabled in the image, it starts at its first boot"))


def _plan_cron_d(host: Host, paths: Paths, job: Job, plan: Plan) -> None:
    if not host.cron_d:
        raise ScheduleError(f"{paths.cron_d.parent} does not exist: no cron daemon is installed (Debian/Ubuntu: "
                            "apt-get install cron; Rocky/Alma/Fedora: dnf install cronie), and systemd is not "
                            "running")
    _remove_systemd(host, SYSTEM, paths, plan)  # switching backend: only ours, checked above
    content = render_cron_d(job, host.hostname)
    if _unchanged(paths.cron_d, content):
        plan.notes.append(f"{paths.cron_d} is already up to date")
    else:
        plan.actions.append(WriteFile(paths.cron_d, content))
    hour, minute, _ = cron_time(job, host.hostname)
    plan.notes.append(f"cron runs it daily at {hour:02d}:{minute:02d} local time and mails what the scan prints "
                      "to root, or to MAILTO: the report and a `stored as run N` line, or with --output nothing "
                      "unless something goes wrong")


def _plan_user_crontab(host: Host, job: Job, plan: Plan) -> None:
    crontab = _crontab_argv(host)
    paths = Paths.of(host, USER)
    _remove_systemd(host, USER, paths, plan)
    current = read_crontab(crontab) or ""
    block = render_crontab_block(job, host.hostname)
    new = merge_crontab(current, block)
    if new != current:
        plan.actions.append(SetCrontab(crontab, new))
    hour, minute, _ = cron_time(job, host.hostname)
    plan.notes.append(f"cron runs it daily at {hour:02d}:{minute:02d} local time from {host.user}'s crontab "
                      "(`crontab -l` shows it) and mails what the scan prints to you, or to MAILTO: the report and "
                      "a `stored as run N` line, or with --output nothing unless something goes wrong")


# ---------------------------------------------------------------------------------------------------
# The command the job runs


def default_command() -> list[str]:
    """How this nectar-audit is started, as an absolute command: the script the user ran, else the one
    installed beside this Python, else the one on PATH, else ``python -m nectar_audit``."""
    argv0 = sys.argv[0] if sys.argv else ""
    candidates = []
    if Path(argv0).name == NAME:
        candidates.append(os.path.abspath(argv0))
    candidates.append(str(Path(sys.executable).parent / NAME))
    found = shutil.which(NAME)
    if found:
        candidates.append(os.path.abspath(found))
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return [c]
    return [os.path.abspath(sys.executable), "-m", "nectar_audit"]


def check_command(command: Sequence[str], version: str) -> str | None:
    """Run ``COMMAND --version``: an error when it does not run, a warning (returned) when it is another
    version than this one."""
    proc = _run([*command, "--version"], timeout=60)
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        raise ScheduleError(f"the scheduled command `{shlex.join(command)}` does not run here"
                            + (f" ({said[-1]})" if said else f" (exit {proc.returncode})")
                            + "; point --executable at a working nectar-audit")
    if version and version not in proc.stdout:
        return (f"`{shlex.join(command)}` is {proc.stdout.strip()!r}, not version {version}: the schedule "
                "runs that one")
    return None


def resolve_store(url: str | None, scope: str, host: Host) -> str:
    """The store URL baked into the job: absolute, no password (units, cron.d and `systemctl show` are
    readable by every user), its database driver importable."""
    import sqlalchemy as sa

    if url is None:
        if scope == SYSTEM:
            home = Path(pwd.getpwuid(0).pw_dir) if host.live else Path("/root")
            return f"sqlite:///{home / '.local/share/nectar-audit/history.sqlite'}"
        from nectar_audit.store.db import default_url

        url = default_url()
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ScheduleError(f"--store {url!r} is not an SQLAlchemy URL (e.g. sqlite:////var/lib/x.sqlite, "
                            "postgresql+psycopg://audit@db.example.org/audit)") from exc
    if parsed.password is not None:
        raise ScheduleError("--store: the URL holds a password, which the schedule would make readable to every "
                            "user of this machine; give the URL without it and put the password in the "
                            "database client's own file (PostgreSQL: ~/.pgpass of the user the job runs as)")
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db in ("", ":memory:") or db.startswith("file::memory:"):
            raise ScheduleError("--store: an in-memory SQLite database keeps no history; give a file")
        if not os.path.isabs(db):
            url = parsed.set(database=os.path.abspath(db)).render_as_string(hide_password=False)
    try:
        sa.create_engine(url).dispose()  # imports the dialect and driver; connects to nothing
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        raise ScheduleError(f"--store {url}: {exc}") from exc
    return url


def check_store(url: str) -> str | None:
    """A team store reachable and set up now, or why not (a warning: runs wait in the outbox until it is)."""
    from nectar_audit.store.db import StoreError, open_store

    try:
        open_store(url).dispose()
    except StoreError as exc:
        return f"{exc}; until then each run waits in the outbox of the user the job runs as"
    return None


# ---------------------------------------------------------------------------------------------------
# Checking the user's input now rather than at 3 am

_OWNED_SCAN_OPTIONS = {"store": "--store", "fmt": "--format", "output": "--output", "config_path": "--config"}


def check_scan_args(scan: click.Command, extra: Sequence[str]) -> bool:
    """Parse the scan arguments given after ``--`` the way the scheduled scan will, and refuse what
    would fail or surprise later: a bad option, an option ``schedule`` sets itself, a relative path (the
    job does not run in this directory), a malformed target. Returns whether this machine is audited."""
    from click.core import ParameterSource


    try:
        ctx = scan.make_context("scan", list(extra))
    except click.exceptions.Exit as exc:
        raise ScheduleError("scan arguments after --: --help is not something to schedule") from exc
    except click.ClickException as exc:
        raise ScheduleError(f"scan arguments after --: {exc.format_message()}") from exc
    for name, flag in _OWNED_SCAN_OPTIONS.items():
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            raise ScheduleError(f"give {flag} to `nectar-audit schedule` itself, not after --")
    for param in scan.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        if not (isinstance(param.type, click.Path) or param.name == "ssh_config"):
            continue
        value = ctx.params.get(param.name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, str) and v and v.lower() != "none" and not os.path.isabs(v):
                raise ScheduleError(f"{param.opts[-1]} {v}: a relative path, and the scheduled scan does not run "
                                    "in this directory; give an absolute path")
    targets = list(ctx.params.get("targets") or ())
    for target in targets:
        kind, _, rest = target.partition(":")
        if kind in ("root", "evidence") and not os.path.isabs(rest):
            raise ScheduleError(f"target {target}: a relative path, and the scheduled scan does not run in this "
                                "directory; give an absolute path")
        try:
            parse_target(target)
        except TargetError as exc:
            raise ScheduleError(f"target {target}: {exc}") from exc
    return (not targets and not ctx.params.get("inventory_path")) or bool({"local", "localhost"} & set(targets))


def check_config(path: str | None, host: Host) -> tuple[str | None, str]:
    """(the absolute --config path, a note on the config the job will use); a config that does not
    parse now is an error now."""
    try:
        if path is None:
            if not host.live:
                return None, "config: the job uses the image's /etc/nectar-audit.toml when it has one"
            source = load_config(None).source
            return None, ("config: " + (source or "none (built-in defaults)") + "; the job looks it up the same "
                          "way at each run (/etc/nectar-audit.toml, then ~/.config/nectar-audit.toml)")
        absolute = os.path.abspath(path)
        parse_config_file(host.path(absolute, follow_last=True))
        return absolute, f"config: {absolute}"
    except ConfigError as exc:
        raise ScheduleError(str(exc)) from exc


def check_output(path: str | None, host: Host) -> str | None:
    if path is None:
        return None
    absolute = os.path.abspath(path)
    parent = host.path(os.path.dirname(absolute), follow_last=True)
    if not parent.is_dir():
        raise ScheduleError(f"--output {absolute}: the directory {parent} does not exist")
    return absolute


def prepare_install(host: Host, scope: str, backend: str, scan: click.Command, scan_args: Sequence[str], *,
                    at: str | None, random_delay: int | None, config: str | None, store: str | None,
                    fmt: str | None, output: str | None, executable: str | None, version: str) -> Plan:
    """Everything ``schedule --daily`` checks and decides, as a plan (nothing is changed yet)."""
    hour, minute = parse_time(at or DEFAULT_TIME)
    chosen = choose_backend(host, scope, backend)
    audits_here = check_scan_args(scan, scan_args)
    config_abs, config_note = check_config(config, host)
    warnings = []
    command = [os.path.abspath(executable)] if executable else default_command()
    if host.live:
        warning = check_command(command, version)
        if warning:
            warnings.append(warning)
    elif not os.access(host.path(command[0], follow_last=True), os.X_OK):
        warnings.append(f"{command[0]} is not an executable in {host.root}: pass --executable with the path "
                        "nectar-audit has in the image")
    url = resolve_store(store, scope, host)
    if host.live and not url.startswith("sqlite"):
        warning = check_store(url)
        if warning:
            warnings.append(warning)
    argv = scan_argv(command, url, config=config_abs, fmt=fmt, output=check_output(output, host), extra=scan_args)
    job = Job(argv=argv, hour=hour, minute=minute, scope=scope, version=version,
              random_delay=DEFAULT_RANDOM_DELAY if random_delay is None else random_delay)
    plan = plan_install(host, scope, chosen, job)
    plan.notes += [config_note, f"history: nectar-audit history --store {url}"]
    if scope == USER and host.euid != 0 and audits_here:
        warnings.append("as a non-root user the scan cannot read /etc/shadow, sudoers and other root-only files: "
                        "those checks will report `error`; schedule it as root for a full audit")
    plan.warnings += warnings
    return plan
