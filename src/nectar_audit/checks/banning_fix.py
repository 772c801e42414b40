"""Fix plan for check 11: fail2ban's sshd jail on, on the ports sshd really uses, reading a log sshd writes.

fail2ban reads ``jail.conf``, ``jail.d/*.conf``, ``jail.local``, then ``jail.d/*.local`` (each directory
sorted), a later value winning key by key. Our ``jail.d/nectar-audit.local`` is read after everything but
the ``jail.d/*.local`` files that sort after it; a setting of the sshd jail in one of those is replaced on
its own line. ``fail2ban-client -t`` (fail2ban's own configuration test, which also fails when the jail's
log file does not exist) validates; fail2ban is then reloaded (started when it does not run).
"""

from __future__ import annotations

import contextlib
import re

from nectar_audit.checks.base import family as host_family
from nectar_audit.evidence import EvidenceError
from nectar_audit.facts import Facts
from nectar_audit.facts.ssh import F2B_LOG, Banning, Jail, banning, parse_ports
from nectar_audit.facts.system import services
from nectar_audit.remedy import TAG, FileChange, LineEdit, Remedy, Step, apply_line_edits, drop_in

CHECK = "Check-Security-11"
JAIL_D = "/etc/fail2ban/jail.d"
DROPIN_NAME = "nectar-audit.local"
DROPIN = f"{JAIL_D}/{DROPIN_NAME}"
SUMMARY = "fail2ban bans SSH attackers on the ports sshd listens on"

ACTIVATE = (
    "if [ -d /run/systemd/system ]; then systemctl reload-or-restart fail2ban; "
    "elif fail2ban-client ping >/dev/null 2>&1; then fail2ban-client reload; "
    "else fail2ban-client -x start; fi"
)



def _read_after_ours(path: str) -> bool:
    if not path.startswith(JAIL_D + "/") or not path.endswith(".local"):
        return False
    return path[len(JAIL_D) + 1:] > DROPIN_NAME


def _needs_journal(ban: Banning, jail: Jail | None) -> bool:
    """Whether the jail must read the journal: it reads a log file nothing writes (or that does not exist)."""
    if jail is not None and jail.uses_journal:
        return False
    paths = list(jail.logpath) if jail is not None else ["/var/log/auth.log"]
    exists = any(p in ban.log_files for p in paths)
    return ban.syslog_daemon is False or not exists


def _missing_ban_program(ban: Banning, jail: Jail) -> bool:
    f2b = ban.fail2ban
    if f2b.tools is None:
        return False
    for ref in jail.actions:
        if not ref.bans:
            continue
        programs = f2b.commands(jail, ref).programs
        if any(p not in f2b.tools for p in programs):
            return True
    return False


def plan(facts: Facts) -> Remedy | None:
    """The sshd jail of fail2ban on and on sshd's ports (fail2ban installed first on Debian/Ubuntu)."""
    ban = facts.get(banning)
    if not ban.sshd_installed:
        return None
    family = host_family(facts)
    f2b = ban.fail2ban
    manual: list[str] = []
    notes: list[str] = []
    commands: list[Step] = []
    systemd = False
    with contextlib.suppress(EvidenceError):
        systemd = facts.get(services).systemd
    if not f2b.installed:
        if family != "debian":
            return Remedy(CHECK, SUMMARY, manual=(
                "install fail2ban from EPEL (dnf install epel-release && dnf install fail2ban "
                "fail2ban-firewalld), then run fix again",))
        commands.append(Step("DEBIAN_FRONTEND=noninteractive apt-get install -y fail2ban",
                             "the banning tool (from the host's configured archive)"))
        notes.append("undo restores the files, it does not remove fail2ban")
    jail = f2b.jails.get("sshd")
    settings: list[tuple[str, str]] = [("enabled", "true")]
    ports = sorted(set(ban.sshd_ports))
    if ports:
        current = parse_ports(jail.port) if jail is not None else None
        if current is None or current.unknown or not all(current.covers(p) for p in ports):
            settings.append(("port", ",".join(map(str, ports))))
    else:
        manual.append("the ports sshd listens on are not known: check `port =` of the sshd jail")
    if _needs_journal(ban, jail):
        if systemd or family in ("rhel", "fedora"):
            settings.append(("backend", "systemd"))
            if ban.python_systemd is False or not f2b.installed:
                pkg = "python3-systemd"
                commands.append(Step(("DEBIAN_FRONTEND=noninteractive apt-get install -y " if family == "debian"
                                      else "dnf install -y ") + pkg,
                                     "fail2ban reads the journal through python3-systemd"))
        else:
            manual.append("sshd's failures reach no log fail2ban can read: install rsyslog (auth.log) "
                          "or run journald")
    if jail is not None and not jail.action and _missing_ban_program(ban, jail) and "nft" in (f2b.tools or {}):
        settings.append(("banaction", "nftables-multiport"))
        settings.append(("banaction_allports", "nftables-allports"))
    if ban.sshd_session and f2b.sshd_filter.matches_daemon("sshd-session") is False:
        manual.append("fail2ban's sshd filter does not know OpenSSH 9.8's sshd-session: upgrade fail2ban, or "
                      "add `[DEFAULT]` `_daemon = sshd(?:-session)?` to /etc/fail2ban/filter.d/sshd.local")
    for tool in ban.others:
        manual.append(f"{tool.name} is also installed: keep one banning tool (fail2ban is configured here)")
    # Settings whose value comes from a file read after ours are replaced there, on their line.
    dropin_lines = ["[sshd]"]
    edits: dict[str, list[LineEdit]] = {}
    texts: dict[str, str] = {}
    for key, value in settings:
        src = jail.sources.get(key) if jail is not None else None
        path, _, line = (src or "").rpartition(":")
        if src and path and _read_after_ours(path) and line.isdigit():
            text = texts.get(path) or facts.bundle.text(path)
            lines = (text or "").split("\n")
            n = int(line)
            if text is None or not 0 < n <= len(lines) or not re.match(rf"\s*{re.escape(key)}\s*[=:]", lines[n - 1]):
                manual.append(f"set `{key} = {value}` at {src} (read after {DROPIN})")
                continue
            texts[path] = text
            raw = lines[n - 1]
            edits.setdefault(path, []).append(
                LineEdit(raw, (f"# {raw}  # replaced by {TAG}", f"{key} = {value}"), lines[:n].count(raw)))
            continue
        dropin_lines.append(f"{key} = {value}")
    changes: list[FileChange] = []
    before = facts.bundle.text(DROPIN)
    change = drop_in(DROPIN, dropin_lines, before, f"{CHECK}: {SUMMARY}")
    if change.after != before:
        changes.append(change)
    for path, path_edits in edits.items():
        after = apply_line_edits(texts[path], path_edits)
        if after is not None:
            changes.append(FileChange(path, texts[path], after, tuple(path_edits),
                                      why=f"{CHECK}: fail2ban reads this file after {DROPIN}"))
    if systemd and f2b.enabled_at_boot is False:
        commands.append(Step("systemctl enable fail2ban", "fail2ban starts at boot"))
        notes.append("undo does not disable fail2ban at boot again")
    if not changes and not commands:
        return Remedy(CHECK, SUMMARY, manual=tuple(manual)) if manual else None
    validate = (Step("fail2ban-client -t", "fail2ban's own configuration test (filters, actions, log files)"),)
    activate = (Step(ACTIVATE, f"fail2ban reads its configuration again (its log: {F2B_LOG})"),)
    pre = (f"sshd listens on {', '.join(map(str, ports))} ({ban.sshd_ports_source})",) if ports else ()
    return Remedy(CHECK, SUMMARY, pre, tuple(changes), tuple(commands), validate, activate, tuple(manual),
                  notes=tuple(notes))
