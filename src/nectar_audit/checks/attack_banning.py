"""Check-Security-11: is an SSH attack banning tool installed?"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nectar_audit.checks import banning_fix
from nectar_audit.checks.base import Check, for_family
from nectar_audit.facts import Facts
from nectar_audit.facts import ssh as ssh_facts
from nectar_audit.facts.ssh import (
    F2B_LOG,
    LOG_FILES,
    TOOL_DIRS,
    UFW_CONF,
    ActionRef,
    Banning,
    Fail2ban,
    Jail,
    JailStatus,
    OtherTool,
    banning,
    parse_ports,
)
from nectar_audit.model import Evidence, Finding, Status


@dataclass
class Problem:
    message: str
    evidence: list[Evidence] = field(default_factory=list)
    fix: str | None = None
    hard: bool = True  # False: a doubt (warn), not a proven hole


@dataclass
class Verdict:
    protects: bool
    summary: str
    evidence: list[Evidence] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _install_fix(facts: Facts) -> str | None:
    return for_family(
        facts,
        {
            "debian": "apt install fail2ban python3-systemd && printf '[sshd]\\nenabled = true\\nbackend = "
            "systemd\\n' "
            "> /etc/fail2ban/jail.d/sshd.local && systemctl enable --now fail2ban",
            "rhel": "dnf install epel-release && dnf install fail2ban fail2ban-firewalld && printf "
            "'[sshd]\\nenabled = true\\n' > /etc/fail2ban/jail.d/sshd.local && systemctl enable --now "
            "fail2ban",
        },
    )


def _banaction_fix(facts: Facts) -> str | None:
    return for_family(
        facts,
        {
            "debian": "Use a firewall ban action: add `banaction = nftables-multiport` (or "
            "iptables-multiport) to the "
            "[DEFAULT] section of /etc/fail2ban/jail.local, then systemctl restart fail2ban",
            "rhel": "Use a firewall ban action: add `banaction = firewallcmd-rich-rules` to the [DEFAULT] "
            "section of "
            "/etc/fail2ban/jail.local (or install fail2ban-firewalld), then systemctl restart fail2ban",
        },
    )


def _jail_ev(jail: Jail, key: str, value: str | None = None) -> Evidence:
    shown = (
        value
        if value is not None
        else {
            "enabled": "true" if jail.enabled else "false",
            "port": jail.port,
            "backend": jail.backend,
            "logpath": " ".join(jail.logpath),
            "banaction": jail.banaction,
            "action": jail.action.replace("\n", " | "),
            "filter": jail.filter_raw,
        }.get(key, "")
    )
    return Evidence(jail.source(key), f"[{jail.name}] {key} = {shown}")


def _jail_problems(facts: Facts, ban: Banning, jail: Jail, status: JailStatus | None) -> list[Problem]:
    """Why a jail that watches sshd would still not stop an attacker."""
    out: list[Problem] = []
    actions = [a for a in jail.actions if a.bans]
    if not actions:
        out.append(
            Problem(
                f"fail2ban jail {jail.name} only notifies ({jail.action or jail.banaction}): it bans nobody",
                [_jail_ev(jail, "action")],
                _banaction_fix(facts),
            )
        )
        return out
    per_action = {a.name: _action_problems(facts, ban, jail, a) for a in actions}
    # fail2ban runs every action of a jail: one that bans is enough, the broken others are doubts.
    banning_one = any(not any(p.hard for p in probs) for probs in per_action.values())
    for probs in per_action.values():
        for p in probs:
            p.hard = p.hard and not banning_one
            out.append(p)
    for a in actions:
        if a.name == "hostsdeny" and ban.libwrap is not True:
            hard = ban.libwrap is False
            out.append(
                Problem(
                    f"fail2ban jail {jail.name} bans through /etc/hosts.deny (banaction hostsdeny), but "
                    + (
                        "sshd is not linked with libwrap and ignores that file"
                        if hard
                        else "it cannot be verified that sshd honours that file"
                    )
                    + f" ({ban.libwrap_source})",
                    [
                        _jail_ev(jail, "banaction", a.name),
                        Evidence(ban.libwrap_source, "libwrap: " + ("no" if hard else "unknown")),
                    ],
                    _banaction_fix(facts),
                    hard=hard,
                )
            )
    if not all(a.all_ports for a in actions):
        ports = parse_ports(jail.port)
        if not ports.unknown:
            missing = [p for p in ban.sshd_ports if not ports.covers(p)]
            if missing:
                out.append(
                    Problem(
                        f"fail2ban jail {jail.name} blocks port {jail.port} ({jail.source('port')}), but "
                        "sshd "
                        f"listens on {', '.join(map(str, missing))}: banned attackers can keep trying",
                        [
                            _jail_ev(jail, "port"),
                            Evidence(
                                ban.sshd_ports_source, "sshd ports: " + ", ".join(map(str, ban.sshd_ports))
                            ),
                        ],
                        f"Set `port = {','.join(map(str, ban.sshd_ports))}` in the [{jail.name}] section of "
                        f"/etc/fail2ban/jail.d/sshd.local, then systemctl restart fail2ban",
                    )
                )
    out.extend(_log_problems(facts, ban, jail, status))
    return out


def _action_problems(facts: Facts, ban: Banning, jail: Jail, action: ActionRef) -> list[Problem]:
    """Whether the commands a ban action runs can ban here: their programs exist, the firewall they
    talk to filters traffic, and (live) fail2ban's own log records no failure of them."""
    f2b = ban.fail2ban
    cmds = f2b.commands(jail, action)
    key = "action" if jail.action else "banaction"
    ev = [_jail_ev(jail, key)]
    if cmds.found and cmds.lines:
        ev.append(Evidence(cmds.source, f"{action.name} runs: " + " | ".join(cmds.lines[:4])[:400]))
    logged = f2b.failed_actions(jail.name, action.name)
    log_ev = [Evidence(F2B_LOG, line) for line in logged[-3:]]
    out: list[Problem] = []
    missing = [p for p in cmds.programs if f2b.tools is not None and p not in f2b.tools]
    if missing:
        found = ", ".join(f"{p} ({w})" for p, w in sorted((f2b.tools or {}).items()) if p != "sh") or "none"
        nft = f2b.tools is not None and "nft" in f2b.tools
        out.append(Problem(
            f"fail2ban jail {jail.name} bans with {action.name}, whose commands run {', '.join(missing)}, which "
            f"is not installed here: every ban fails (command not found)"
            + (f"; fail2ban's log records it ({len(logged)} failed action(s) since it started)" if logged else ""),
            [*ev, Evidence("stat " + " ".join(f"{d}/{missing[0]}" for d in TOOL_DIRS),
                           f"not found; ban programs present: {found}"), *log_ev],
            ("Ban through nftables, which is installed: add `banaction = nftables-multiport` and "
             "`banaction_allports = nftables-allports` to the [DEFAULT] section of /etc/fail2ban/jail.local, "
             "then systemctl restart fail2ban") if nft and "nft" not in missing else
            f"Install {', '.join(missing)} or choose a banaction whose firewall tool is installed, then "
            "systemctl restart fail2ban",
        ))
        return out
    if "ufw" in cmds.programs and f2b.ufw_enabled is False:
        out.append(Problem(
            f"fail2ban jail {jail.name} bans with {action.name}, but ufw is not enabled ({UFW_CONF}: "
            "ENABLED=no): the deny rules it adds are never applied",
            [*ev, Evidence(UFW_CONF, "ENABLED=no"), *log_ev],
            "ufw enable (after allowing ssh: ufw allow OpenSSH), or use banaction = nftables-multiport",
        ))
    if "firewall-cmd" in cmds.programs and f2b.firewalld_up is False:
        state = "does not run" if facts.bundle.live else "is not enabled at boot"
        out.append(Problem(
            f"fail2ban jail {jail.name} bans with {action.name}, but firewalld {state}: firewall-cmd fails "
            "and no address is banned",
            [*ev, Evidence("firewalld", state), *log_ev],
            "systemctl enable --now firewalld, or use a banaction for the firewall in use "
            "(nftables-multiport)",
        ))
    if logged and not out:
        out.append(Problem(
            f"fail2ban's own log says jail {jail.name} could not run its action {action.name} "
            f"({len(logged)} failure(s) since fail2ban started): its bans do not take effect",
            [*ev, *log_ev],
            f"Read {F2B_LOG} for the failing command, fix the banaction, then systemctl restart fail2ban",
        ))
    return out


def _backend_fix(facts: Facts, jail: Jail) -> str | None:
    return for_family(
        facts,
        {
            "debian": f"Read the journal: add `backend = systemd` to the [{jail.name}] section of "
            "/etc/fail2ban/jail.d/sshd.local (apt install python3-systemd), then systemctl restart fail2ban",
            "rhel": f"Read the journal: add `backend = systemd` to the [{jail.name}] section of "
            "/etc/fail2ban/jail.d/sshd.local, then systemctl restart fail2ban",
        },
    )


def _log_problems(facts: Facts, ban: Banning, jail: Jail, status: JailStatus | None) -> list[Problem]:
    out: list[Problem] = []
    f2b = ban.fail2ban
    flt = f2b.sshd_filter
    session_fix = (
        "Teach the filter OpenSSH 9.8's process name: create /etc/fail2ban/filter.d/sshd.local with "
        "`[DEFAULT]` and `_daemon = sshd(?:-session)?` (and, for the journal, `[Definition]` "
        "`journalmatch = _SYSTEMD_UNIT=" + ban.sshd_unit + " + _COMM=sshd + _COMM=sshd-session`), "
        "or upgrade fail2ban to a release whose sshd filter knows sshd-session; then systemctl "
        "restart fail2ban"
    )
    if ban.sshd_session and flt.matches_daemon("sshd-session") is False:
        out.append(
            Problem(
                f"fail2ban's sshd filter only matches log lines of process '{flt.daemon_re}', but this "
                "OpenSSH (9.8 "
                "or later) logs failed logins as 'sshd-session': jail " + jail.name + " never sees an attack",
                [
                    Evidence(
                        flt.sources[0] if flt.sources else "/etc/fail2ban/filter.d/sshd.conf",
                        f"_daemon = {flt.daemon_re}",
                    )
                ],
                session_fix,
            )
        )
    if jail.uses_journal:
        jm = (
            (status.journal_matches if status and status.journal_matches else None)
            or jail.journalmatch
            or flt.journalmatch
            or ""
        )
        if jm.strip():
            unit_ok = f"_SYSTEMD_UNIT={ban.sshd_unit}" in jm
            comm_ok = "_COMM=sshd-session" in jm if ban.sshd_session else bool(re.search(r"_COMM=sshd\b", jm))
            if not unit_ok and not comm_ok:
                out.append(
                    Problem(
                        f"fail2ban jail {jail.name} reads the journal with `{jm}`, which matches none of "
                        "sshd's "
                        f"messages here (sshd runs as {ban.sshd_unit}"
                        + (", its sessions as sshd-session)" if ban.sshd_session else ")"),
                        [
                            Evidence(
                                jail.source("journalmatch")
                                if jail.journalmatch
                                else (flt.sources[-1] if flt.sources else "filter.d/sshd.conf"),
                                f"journalmatch = {jm}",
                            )
                        ],
                        session_fix,
                    )
                )
        if status is None and ban.python_systemd is False and not facts.bundle.live:
            out.append(
                Problem(
                    f"fail2ban jail {jail.name} uses backend = systemd, but python3-systemd was not found",
                    [_jail_ev(jail, "backend")],
                    for_family(
                        facts,
                        {"debian": "apt install python3-systemd", "rhel": "dnf install python3-systemd"},
                    ),
                    hard=False,
                )
            )
        return out
    # A log-file backend: the file must exist and something must write it.
    paths = list(status.files) if status and status.files else list(jail.logpath)
    if not paths:
        out.append(
            Problem(
                f"fail2ban jail {jail.name} has no logpath and does not read the journal",
                [_jail_ev(jail, "logpath")],
                _backend_fix(facts, jail),
            )
        )
        return out
    known = [p for p in paths if not any(c in p for c in "*?[") and p.startswith("/var/log/")]
    present = [p for p in known if p in ban.log_files]
    checkable = [p for p in known if p in LOG_FILES]
    if (
        checkable
        and not present
        and len(checkable) == len(paths)
        and status is None
        and (facts.bundle.live or not ban.syslog_daemon)
    ):
        out.append(
            Problem(
                f"fail2ban jail {jail.name} reads {', '.join(checkable)}, which does not exist"
                + (
                    f" and no syslog daemon {'runs' if facts.bundle.live else 'is installed'} to write it"
                    if not ban.syslog_daemon
                    else ""
                )
                + ": fail2ban cannot start this jail (sshd logs only to the journal here)",
                [_jail_ev(jail, "logpath"), _jail_ev(jail, "backend")],
                _backend_fix(facts, jail),
            )
        )
        return out
    if ban.syslog_daemon is False:
        where = "runs" if facts.bundle.live else "is installed"
        out.append(
            Problem(
                f"fail2ban jail {jail.name} reads {', '.join(paths)}, but no syslog daemon {where} to "
                "write it: "
                "sshd's failures only reach the journal",
                [_jail_ev(jail, "logpath"), _jail_ev(jail, "backend")],
                _backend_fix(facts, jail),
            )
        )
    return out


def _fail2ban_verdict(facts: Facts, ban: Banning) -> Verdict:
    f2b: Fail2ban = ban.fail2ban
    live = facts.bundle.live
    problems: list[Problem] = []
    ev: list[Evidence] = []
    if live and f2b.running is False:
        why = "fail2ban is installed but not running"
        if f2b.enabled_at_boot is False:
            why += " and not enabled at boot"
        # Explain a failed start from the configuration when it is the cause.
        extra: list[Problem] = []
        for j in f2b.sshd_jails:
            if j.enabled:
                extra.extend(_jail_problems(facts, ban, j, None))
        problems.append(
            Problem(
                why,
                [Evidence("command: /proc/*/comm", "no fail2ban-server process")],
                "systemctl enable --now fail2ban; if it stops again, read `journalctl -u fail2ban` "
                "or /var/log/fail2ban.log",
            )
        )
        problems.extend(extra)
        return Verdict(False, why, ev, problems)
    if not live and f2b.enabled_at_boot is False:
        problems.append(
            Problem(
                "fail2ban is installed but fail2ban.service is not enabled at boot",
                [Evidence("/etc/systemd/system/multi-user.target.wants/", "no fail2ban.service link")],
                "systemctl enable fail2ban",
            )
        )

    if live and f2b.running and f2b.enabled_at_boot is False:
        problems.append(
            Problem(
                "fail2ban runs now but is not enabled at boot: the next reboot leaves sshd unprotected",
                [Evidence("/etc/systemd/system/multi-user.target.wants/", "no fail2ban.service link")],
                "systemctl enable fail2ban",
                hard=False,
            )
        )

    active: list[tuple[Jail, JailStatus | None, str]] = []  # jail, live status, how we know it is on
    st = f2b.live
    use_live = live and st is not None and st.state == "ok"
    if use_live:
        assert st is not None
        ev.append(Evidence("command: fail2ban-client status", "jails: " + (", ".join(st.jails) or "(none)")))
        for name in st.jails:
            jail = f2b.jails.get(name)
            if jail is None:
                if "ssh" not in name:
                    continue
                jail = Jail(
                    name,
                    True,
                    name if name.startswith("sshd") else "sshd",
                    "0:65535",
                    (),
                    "auto",
                    "",
                    "",
                    None,
                    {},
                )
            elif not jail.watches_sshd:
                continue
            active.append((jail, st.jail_status.get(name), "live"))
    else:
        if live and st is not None and st.state == "unreachable":
            ev.append(Evidence("command: fail2ban-client status", st.detail or "not reachable"))
        for jail in f2b.sshd_jails:
            if jail.enabled:
                active.append((jail, None, "config"))
    if not active:
        if use_live:
            msg = "fail2ban runs, but none of its active jails watches sshd"
        else:
            disabled = [j for j in f2b.sshd_jails if not j.enabled]
            msg = "no enabled fail2ban jail watches sshd" + (
                f" ([{disabled[0].name}] enabled = false, {disabled[0].source('enabled')})"
                if disabled
                else ""
            )
            ev.extend(_jail_ev(j, "enabled") for j in disabled[:3])
        problems.append(
            Problem(
                msg,
                list(ev),
                "printf '[sshd]\\nenabled = true\\n' > /etc/fail2ban/jail.d/sshd.local && "
                "systemctl restart fail2ban",
            )
        )
        return Verdict(False, msg, ev, problems)

    good: list[str] = []
    for jail, jstatus, how in active:
        jp = _jail_problems(facts, ban, jail, jstatus)
        problems.extend(jp)
        jev = [_jail_ev(jail, "enabled"), _jail_ev(jail, "port"), _jail_ev(jail, "backend")]
        if jstatus is not None:
            src = ", ".join(jstatus.files) if jstatus.files else (jstatus.journal_matches or "?")
            jev.append(
                Evidence(
                    f"command: fail2ban-client status {jail.name}",
                    f"watching {src}; currently banned {jstatus.currently_banned}, "
                    f"total banned {jstatus.total_banned}",
                )
            )
        ev.extend(jev)
        if not any(p.hard for p in jp):
            acts = ", ".join(a.name for a in jail.actions if a.bans)
            good.append(f"jail {jail.name} ({'active' if how == 'live' else 'enabled'}, bans with {acts})")
    protects = bool(good) and not any(p.hard and "not enabled at boot" in p.message for p in problems)
    summary = "fail2ban protects sshd: " + "; ".join(good) if good else "fail2ban does not protect sshd"
    return Verdict(protects, summary, ev, problems)


def _other_verdict(facts: Facts, ban: Banning, tool: OtherTool) -> Verdict:
    live = facts.bundle.live
    problems: list[Problem] = []
    ev = [Evidence(tool.name, f"installed; running: {tool.running}; enabled at boot: {tool.enabled_at_boot}")]
    if live and tool.running is False:
        problems.append(
            Problem(
                f"{tool.name} is installed but not running",
                list(ev),
                f"systemctl enable --now {tool.name.lower()}",
            )
        )
    elif not live and tool.enabled_at_boot is False:
        problems.append(
            Problem(
                f"{tool.name} is installed but not enabled at boot",
                list(ev),
                f"systemctl enable {tool.name.lower()}",
            )
        )
    if tool.name == "DenyHosts" and tool.detail == "hosts.deny" and ban.libwrap is not True:
        hard = ban.libwrap is False
        problems.append(
            Problem(
                "DenyHosts bans through /etc/hosts.deny, but "
                + (
                    "sshd is not linked with libwrap and ignores it"
                    if hard
                    else "it cannot be verified that sshd honours it"
                )
                + f" ({ban.libwrap_source})",
                [Evidence(ban.libwrap_source, "libwrap")],
                "Replace DenyHosts with fail2ban (firewall ban actions)",
                hard=hard,
            )
        )
    for p in tool.problems:
        problems.append(Problem(f"{tool.name}: {p}", list(ev)))
    protects = not any(p.hard for p in problems)
    return Verdict(
        protects,
        f"{tool.name} protects sshd" if protects else f"{tool.name} does not protect sshd",
        ev,
        problems,
    )


def run(facts: Facts) -> list[Finding]:
    ban = facts.get(banning)
    if not ban.sshd_installed:
        return [Finding(Status.NOT_APPLICABLE, "no SSH server (sshd) is installed")]
    verdicts: list[Verdict] = []
    if ban.fail2ban.installed:
        verdicts.append(_fail2ban_verdict(facts, ban))
    for tool in ban.others:
        verdicts.append(_other_verdict(facts, ban, tool))
    failed_ev: list[Evidence] = []
    if ban.failed_logins is not None:
        fl = ban.failed_logins
        src = "journalctl -t sshd -t sshd-session --since -7d" if fl.source == "journal" else fl.source
        failed_ev.append(
            Evidence(f"command: {src}", f"{fl.count} failed SSH logins in the last {fl.days} days")
        )
    attempts = (
        f" ({ban.failed_logins.count} failed SSH logins in the last {ban.failed_logins.days} days)"
        if ban.failed_logins is not None
        else ""
    )

    findings: list[Finding] = []
    protecting = [v for v in verdicts if v.protects]
    for v in verdicts:
        for p in v.problems:
            status = Status.FAIL if p.hard and not protecting else Status.WARN
            findings.append(Finding(status, p.message, p.evidence, p.fix))
    if protecting:
        findings.insert(
            0,
            Finding(
                Status.PASS,
                "; ".join(v.summary for v in protecting) + attempts,
                [e for v in protecting for e in v.evidence] + failed_ev,
            ),
        )
    elif not verdicts:
        findings.append(
            Finding(
                Status.FAIL,
                "no SSH attack banning tool (fail2ban, sshguard, CrowdSec, DenyHosts) "
                "is installed" + attempts,
                failed_ev,
                _install_fix(facts),
            )
        )
    else:
        if not any(f.status is Status.FAIL for f in findings):
            findings.append(
                Finding(
                    Status.FAIL,
                    "no SSH attack banning tool protects sshd" + attempts,
                    failed_ev,
                    _install_fix(facts),
                )
            )
        elif failed_ev:
            findings[0].evidence.extend(failed_ev)
    return findings


CHECK = Check(
    id="Check-Security-11",
    severity="medium",
    run=run,
    needs=ssh_facts.NEEDS,
    plan=banning_fix.plan,
    why=(
        "Every VM with SSH open to the Internet receives thousands of password guesses a day. A banning tool "
        "reads the log of failed logins and blocks the addresses that keep trying, which stops brute force "
        "and cuts the noise that hides a real attack."
    ),
    how=(
        "Looks for fail2ban, sshguard, CrowdSec (with a bouncer and the sshd collection) and DenyHosts. For "
        "fail2ban, reads the configuration with fail2ban's precedence (`jail.conf`, `jail.d/*.conf`, "
        "`jail.local`, "
        "`jail.d/*.local`, [INCLUDES], .local over .conf, [DEFAULT], %(interpolation)s; Debian's "
        "defaults-debian.conf) and, when it runs and root can ask, `fail2ban-client status`, which wins. A "
        "jail for sshd protects only if it bans (hostsdeny needs an sshd linked with libwrap, absent on RHEL "
        "8+), its actions can run (actionstart/actionban of action.d with fail2ban's precedence, [Init] and "
        "<tag> resolution: their iptables/nft/ipset/firewall-cmd/ufw must exist on the host, ufw must be "
        "enabled and firewalld running; live, fail2ban.log's failed actions since it started are cited), "
        "covers every port sshd listens on, and reads a log sshd writes (an existing log file written "
        "by a syslog daemon, or the journal with a matching journalmatch; OpenSSH 9.8+ logs as "
        "sshd-session). "
        "Shows the failed SSH logins of the last 7 days from auth.log/secure or the journal."
    ),
    fix={
        "debian": "apt install fail2ban python3-systemd; create /etc/fail2ban/jail.d/sshd.local with "
        "`[sshd]`, "
        "`enabled = true`, `backend = systemd` and `port =` every port sshd listens on; "
        "systemctl enable --now fail2ban.",
        "rhel": "dnf install epel-release && dnf install fail2ban fail2ban-firewalld; create "
        "/etc/fail2ban/jail.d/sshd.local with `[sshd]`, `enabled = true` and `port =` every port sshd "
        "listens on; systemctl enable --now fail2ban.",
    },
)
