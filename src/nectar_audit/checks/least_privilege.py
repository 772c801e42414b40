"""Check-Security-16: what permissions are granted to user accounts?"""

from __future__ import annotations

import re

from nectar_audit.checks import manual_fix
from nectar_audit.checks.base import Check, for_family
from nectar_audit.evidence import EvidenceError, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts import accounts as accounts_facts
from nectar_audit.facts.accounts import (
    IMAGE_DEFAULT_USERS,
    SUDOERS,
    SUDOERS_D,
    Accounts,
    Grant,
    SudoRights,
    accounts,
    home_stats,
    sudo_rights,
)
from nectar_audit.model import Evidence, Finding, Status
from nectar_audit.remedy import Remedy

# Membership in these groups is root without sudo, a password or an audit trail.
ROOT_GROUPS = {
    "docker": "can start a container with the host's / mounted read-write",
    "lxd": "can start a privileged container with the host's / mounted",
    "incus-admin": "can start a privileged container with the host's / mounted",
    "disk": "can read and write the raw disks (e.g. /etc/shadow, /root)",
    "libvirt": "can start virtual machines that attach the host's disks",
}
# Groups worth listing: they read what others should not.
INFO_GROUPS = {
    "adm": "can read system logs",
    "systemd-journal": "can read the whole journal",
}
SUDO_GROUPS = ("sudo", "wheel", "admin")
NOLOGIN = {"debian": "/usr/sbin/nologin", "rhel": "/sbin/nologin", "fedora": "/usr/sbin/nologin"}
# Commands that are a root shell as such (no escape needed).
DIRECT_SHELLS = re.compile(
    r"(^|/)(sh|bash|dash|zsh|ksh|mksh|csh|tcsh|fish|su|sudo|doas|env|busybox)(\s|$)|\*"
)


def _nice_mode(st: StatRecord) -> str:
    return f"{st.perms:04o} uid={st.uid} gid={st.gid}"


def _default_user(accts: Accounts | None, name: str) -> bool:
    """The image's cloud default user: cloud-init's default_user when configured, else a known image name."""
    if accts is None:
        return name in IMAGE_DEFAULT_USERS
    if accts.cloud_default_user:
        return name == accts.cloud_default_user
    return name in IMAGE_DEFAULT_USERS and accts.user(name) is not None


def _label(accts: Accounts | None, g: Grant) -> str:
    if g.principal.startswith(("%", "+")):
        return f"{g.principal} (not a local group: members come from a directory, if any)"
    if accts is not None and accts.user(g.principal) is None:
        return f"{g.principal} (no such local account)"
    return g.principal + ("" if g.via == g.principal else f" (via {g.via})")


def _grant_ev(g: Grant) -> list[Evidence]:
    ev = [Evidence(g.source, g.rule)]
    if g.nopasswd and g.nopasswd_reason and g.nopasswd_reason != "NOPASSWD tag":
        ev.append(Evidence("sudoers Defaults", g.nopasswd_reason))
    return ev


def _sudo_fix(facts: Facts, g: Grant) -> str | None:
    path = g.source.rsplit(":", 1)[0]
    who = g.principal
    if g.nopasswd and g.nopasswd_reason != "NOPASSWD tag":
        return (
            f"visudo -f {g.nopasswd_reason.rsplit('(', 1)[-1].rsplit(':', 1)[0]} and remove the "
            f"`!authenticate` setting; `passwd {who}` if the account has no password"
        )
    return (
        f"visudo -f {path} and change line {g.source.rsplit(':', 1)[-1]} to require a password "
        f"(drop NOPASSWD:) or to the commands {who} really needs; give {who} a password with "
        f"`passwd {who}` if it has none"
    )


def _sudo_findings(facts: Facts, accts: Accounts | None, rights: SudoRights) -> list[Finding]:
    out: list[Finding] = []
    policy = rights.policy
    for problem in policy.problems:
        if problem.kind == "missing":
            out.append(
                Finding(
                    Status.ERROR,
                    f"sudo policy incomplete: {problem.message}",
                    [Evidence(problem.source, problem.message)],
                )
            )
        elif problem.kind == "loop":
            out.append(
                Finding(
                    Status.WARN,
                    f"sudoers {problem.message}",
                    [Evidence(problem.source, problem.message)],
                    f"visudo -c; remove the include at {problem.source}",
                )
            )
        else:
            out.append(
                Finding(
                    Status.WARN,
                    f"sudo skips or rejects a line: {problem.message}",
                    [Evidence(problem.source, problem.message)],
                    f"visudo -c -f {problem.source.rsplit(':', 1)[0]}",
                )
            )
    if rights.nsswitch_sources:
        out.append(
            Finding(
                Status.MANUAL,
                f"sudo rules also come from {', '.join(rights.nsswitch_sources)} (nsswitch.conf): review them "
                "there",
                [Evidence("/etc/nsswitch.conf", "sudoers: " + " ".join(rights.nsswitch_sources))],
            )
        )

    with_password: list[Grant] = []
    for g in rights.all_grants:
        if g.principal == "root":
            continue
        where = " (on some hosts only)" if g.host_restricted else ""
        via = "" if g.via == g.principal else f" via {g.via}"
        if g.nopasswd:
            how = "NOPASSWD" if g.nopasswd_reason == "NOPASSWD tag" else "!authenticate"
            if _default_user(accts, g.principal):
                out.append(
                    Finding(
                        Status.WARN,
                        f"{g.principal} (the cloud image's default user) can run any command as root without a "
                        f"password ({how}:ALL at {g.source}): the platform default, but a stolen key for "
                        f"{g.principal} is then root{where}",
                        _grant_ev(g),
                        _sudo_fix(facts, g),
                    )
                )
            else:
                out.append(
                    Finding(
                        Status.FAIL,
                        f"{g.principal} can run any command as root without a password ({how}:ALL{via} at "
                        f"{g.source}){where}",
                        _grant_ev(g),
                        _sudo_fix(facts, g),
                    )
                )
        else:
            with_password.append(g)
    for g in rights.shell_grants:
        if g.principal == "root":
            continue
        direct = bool(DIRECT_SHELLS.search(g.command))
        if g.nopasswd and direct:
            status = Status.WARN if _default_user(accts, g.principal) else Status.FAIL
            out.append(
                Finding(
                    status,
                    f"{g.principal} can get a root shell without a password: sudo {g.command} (NOPASSWD at "
                    f"{g.source}) is the same as NOPASSWD:ALL",
                    _grant_ev(g),
                    _sudo_fix(facts, g),
                )
            )
        else:
            out.append(
                Finding(
                    Status.WARN,
                    f"{g.principal} may run {g.command} as root{' without a password' if g.nopasswd else ''} "
                    f"({g.source}): it can start a root shell, so this is as much as ALL",
                    _grant_ev(g),
                    f"visudo -f {g.source.rsplit(':', 1)[0]}: replace {g.command} with the specific commands "
                    f"needed (for editing files use sudoedit)",
                )
            )
    if with_password:
        names = ", ".join(_label(accts, g) for g in with_password)
        out.append(
            Finding(
                Status.PASS,
                f"can run any command as root with their password: {names}",
                [e for g in with_password for e in _grant_ev(g)],
            )
        )
    elif not any(f.status in (Status.FAIL, Status.WARN) for f in out) and not _other_uid0(accts):
        out.append(
            Finding(
                Status.PASS,
                "no account other than root can run every command through sudo",
                [Evidence(", ".join(policy.files) or SUDOERS, "parsed")],
            )
        )
    return out


def _other_uid0(accts: Accounts | None) -> bool:
    return accts is not None and any(a.uid == 0 and a.name != "root" for a in accts.users)


def _uid0_findings(facts: Facts, accts: Accounts) -> list[Finding]:
    """An account other than root with UID 0: every permission there is, without sudo or a log."""
    out: list[Finding] = []
    for acct in accts.users:
        if acct.uid != 0 or acct.name == "root":
            continue
        out.append(
            Finding(
                Status.FAIL,
                f"account {acct.name} has UID 0: it holds every permission root has, the most extreme "
                "extra permission there is (no sudo rule, password prompt or log stands in the way)",
                [Evidence(f"/etc/passwd:{acct.line}",
                          f"{acct.name}:x:{acct.uid}:{acct.gid}:{acct.gecos}:{acct.home}:{acct.shell}")],
                f"usermod -L -e 1 -s {for_family(facts, NOLOGIN) or '/usr/sbin/nologin'} {acct.name}, then "
                "delete its lines with `vipw` and `vipw -s`",
            )
        )
    return out


def _group_findings(facts: Facts, accts: Accounts) -> list[Finding]:
    out: list[Finding] = []
    for name, why in ROOT_GROUPS.items():
        group = accts.groups.get(name)
        if group is None:
            continue
        for member in group.members:
            if member == "root":
                continue
            line = f"{group.name}:x:{group.gid}:{','.join(group.explicit_members)}"
            ev = [Evidence(f"/etc/group:{group.line}", line)]
            if member not in group.explicit_members:
                acct = accts.user(member)
                ev.append(
                    Evidence(f"/etc/passwd:{acct.line if acct else '?'}", f"{member}: primary group {name}")
                )
            fix = f"gpasswd -d {member} {name}"
            if _default_user(accts, member):
                out.append(
                    Finding(
                        Status.WARN,
                        f"{member} (the cloud image's default user) is in group {name}, which {why}: root "
                        "without a password (the image's default)",
                        ev,
                        fix,
                    )
                )
            else:
                out.append(
                    Finding(
                        Status.FAIL,
                        f"{member} is in group {name}, which {why}: that is root without a password or sudo log",
                        ev,
                        fix,
                    )
                )
        if group.password_state in ("hash", "empty") and name in ROOT_GROUPS:
            out.append(
                Finding(
                    Status.WARN,
                    f"group {name} has a password: anyone who knows it can `newgrp {name}` and be root",
                    [Evidence("/etc/gshadow", f"{name}: password set")],
                    f"gpasswd -r {name}",
                )
            )
    shadow_group = accts.groups.get("shadow")
    if shadow_group is not None:
        for member in shadow_group.members:
            acct = accts.user(member)
            if acct is not None and accts.is_human(acct):
                out.append(
                    Finding(
                        Status.WARN,
                        f"{member} is in group shadow and can read every password hash",
                        [
                            Evidence(
                                f"/etc/group:{shadow_group.line}",
                                f"shadow:x:{shadow_group.gid}:" + ",".join(shadow_group.explicit_members),
                            )
                        ],
                        f"gpasswd -d {member} shadow",
                    )
                )
    info = []
    listed = {**INFO_GROUPS, **dict.fromkeys(SUDO_GROUPS, "may run commands as root through sudo")}
    for name, why in listed.items():
        group = accts.groups.get(name)
        members = [m for m in group.members if m != "root"] if group else []
        if group is not None and members:
            info.append((name, why, members, group.line))
    if info:
        out.append(
            Finding(
                Status.PASS,
                "privileged group members: " + "; ".join(f"{n}: {', '.join(m)}" for n, _, m, _ in info),
                [Evidence(f"/etc/group:{line}", f"{n} ({why}): {', '.join(m)}") for n, why, m, line in info],
            )
        )
    return out


def _mode_findings(facts: Facts, accts: Accounts | None, rights: SudoRights | None) -> list[Finding]:
    out: list[Finding] = []
    bundle = facts.bundle
    stats = home_stats(bundle)
    shadow_gid = accts.groups["shadow"].gid if accts and "shadow" in accts.groups else None
    checked: list[str] = []

    for path in ("/etc/shadow", "/etc/gshadow"):
        st = stats.get(path)
        if st is None or st.is_link:
            continue
        checked.append(path)
        problems = []
        if st.uid != 0:
            problems.append(f"owned by uid {st.uid}, not root")
        if st.perms & 0o007:
            problems.append("readable or writable by every user")
        if st.perms & 0o020:
            problems.append("group-writable")
        if st.perms & 0o040 and st.gid not in (0, shadow_gid):
            problems.append(f"readable by group {st.gid}")
        if problems:
            out.append(
                Finding(
                    Status.FAIL,
                    f"{path} (password hashes) is {', '.join(problems)}: mode {st.perms:04o}",
                    [Evidence(path, _nice_mode(st))],
                    for_family(
                        facts,
                        {
                            "debian": f"chown root:shadow {path} && chmod 0640 {path}",
                            "rhel": f"chown root:root {path} && chmod 0000 {path}",
                        },
                    ),
                )
            )
    for path in ("/etc/passwd", "/etc/group"):
        st = stats.get(path)
        if st is None or st.is_link:
            continue
        checked.append(path)
        if st.uid != 0 or st.perms & 0o022:
            out.append(
                Finding(
                    Status.FAIL,
                    f"{path} can be changed by someone other than root: mode {st.perms:04o} uid {st.uid}",
                    [Evidence(path, _nice_mode(st))],
                    f"chown root:root {path} && chmod 0644 {path}",
                )
            )

    sudo_paths = [SUDOERS, SUDOERS_D, *bundle.stat_glob(f"{SUDOERS_D}/*")]
    if rights is not None:
        sudo_paths += [p for p in rights.policy.files if p not in sudo_paths]
    for path in sudo_paths:
        st = stats.get(path)
        if st is None or st.is_link:
            continue
        name = path.rsplit("/", 1)[-1]
        if path.startswith(SUDOERS_D + "/") and ("." in name or name.endswith("~")):
            continue  # sudo never reads it
        checked.append(path)
        if st.is_dir:
            if st.uid != 0 or st.perms & 0o022:
                out.append(
                    Finding(
                        Status.FAIL,
                        f"{path} can be written by someone other than root (mode {st.perms:04o}, "
                        "uid "
                        f"{st.uid}): anyone who can add a file there is root",
                        [Evidence(path, _nice_mode(st))],
                        f"chown root:root {path} && chmod 0750 {path}",
                    )
                )
            continue
        fix = f"chown root:root {path} && chmod 0440 {path}"
        if st.uid != 0 or st.perms & 0o022:
            out.append(
                Finding(
                    Status.FAIL,
                    f"{path} can be changed by someone other than root (mode {st.perms:04o}, uid "
                    f"{st.uid}); "
                    "sudo also refuses to use it",
                    [Evidence(path, _nice_mode(st))],
                    fix,
                )
            )
        elif st.perms & 0o004:
            out.append(
                Finding(
                    Status.WARN,
                    f"{path} is world-readable (mode {st.perms:04o}): every user can read the sudo policy",
                    [Evidence(path, _nice_mode(st))],
                    fix,
                )
            )

    if accts is not None:
        for acct in accts.users:
            if not (accts.is_human(acct) or acct.uid == 0) or acct.name == "nobody":
                continue
            home = acct.home.rstrip("/") or "/"
            if home in ("/", "/nonexistent") or home.startswith(("/dev", "/proc", "/sys")):
                continue
            st = stats.get(home)
            if st is None or not st.is_dir:
                continue
            checked.append(home)
            fix = f"chmod 0750 {home}"
            if st.perms & 0o002:
                out.append(
                    Finding(
                        Status.FAIL,
                        f"home directory {home} of {acct.name} is world-writable (mode {st.perms:04o})",
                        [Evidence(home, _nice_mode(st))],
                        fix,
                    )
                )
            elif st.perms & 0o004:
                out.append(
                    Finding(
                        Status.WARN,
                        f"home directory {home} of {acct.name} is readable by every user (mode {st.perms:04o})",
                        [Evidence(home, _nice_mode(st))],
                        fix
                        + (
                            for_family(
                                facts,
                                {
                                    "debian": "; for new accounts set DIR_MODE=0750 in /etc/adduser.conf and HOME_MODE "
                                    "0750 "
                                    "in /etc/login.defs",
                                    "rhel": "; for new accounts set HOME_MODE 0700 in /etc/login.defs",
                                },
                            )
                            or ""
                        ),
                    )
                )
            if st.uid != acct.uid and acct.uid != 0:
                out.append(
                    Finding(
                        Status.WARN,
                        f"home directory {home} of {acct.name} is owned by uid {st.uid}, not {acct.name}",
                        [Evidence(home, _nice_mode(st))],
                        f"chown {acct.name} {home}",
                    )
                )
    if checked and not any(f.status in (Status.FAIL, Status.WARN) for f in out):
        out.append(
            Finding(
                Status.PASS,
                "permissions of shadow, sudoers and home directories are tight",
                [Evidence(p, _nice_mode(stats[p])) for p in checked],
            )
        )
    return out


def run(facts: Facts) -> list[Finding]:
    findings: list[Finding] = []
    accts: Accounts | None
    try:
        accts = facts.get(accounts)
    except EvidenceError as exc:
        accts = None
        findings.append(Finding(Status.ERROR, f"cannot read the accounts: {exc}"))
    rights: SudoRights | None = None
    try:
        rights = facts.get(sudo_rights)
    except EvidenceError as exc:
        findings.append(
            Finding(Status.ERROR, f"{exc}: cannot tell who may use sudo", [Evidence(SUDOERS, str(exc))])
        )
    if rights is not None:
        if rights.installed is False and not rights.policy.files:
            findings.append(Finding(Status.PASS, "sudo is not installed"))
        elif not rights.policy.files:
            findings.append(Finding(Status.PASS, f"no {SUDOERS}: nobody can use sudo"))
        else:
            findings.extend(_sudo_findings(facts, accts, rights))
    if accts is not None:
        findings.extend(_uid0_findings(facts, accts))
        findings.extend(_group_findings(facts, accts))
    findings.extend(_mode_findings(facts, accts, rights))
    return findings


def plan(facts: Facts) -> Remedy | None:
    """Never automatic: each sudo rule or privileged group to narrow (visudo -f FILE), by a human."""
    return manual_fix.remedy("Check-Security-16", "decide which privileges are needed",
                             manual_fix.decisions(facts.get(run)))


CHECK = Check(
    id="Check-Security-16",
    severity="high",
    run=run,
    needs=accounts_facts.NEEDS,
    plan=plan,
    why=(
        "An account should hold only the rights its job needs. Passwordless sudo to everything, membership "
        "in "
        "groups that are root in disguise (docker, lxd, disk) and loose permissions on /etc/shadow, "
        "sudoers or "
        "home directories turn one stolen login into the whole machine."
    ),
    how=(
        "An account other than root with UID 0 fails. "
        "Parses /etc/sudoers and every file it includes, at whatever path (#include/@include, "
        "#includedir/@includedir, relative paths, %h; followed by the gatherer itself, live and offline), "
        "aliases, %group/%#gid/#uid, negation, tags, Defaults !authenticate) and resolves who "
        "can run ALL as root, and whether without a password, using the account and group lists. "
        "NOPASSWD:ALL "
        "for the cloud image's default user is the platform default (warn); for anyone else it fails, as "
        "does "
        "membership of docker, lxd, incus-admin, disk or libvirt. Single commands that give a root shell "
        "(sh, "
        "su, vim, python …) are flagged. File modes come from stat: /etc/shadow and /etc/gshadow "
        "(root-owned, "
        "no world access, group root or shadow), /etc/sudoers* (root-owned, not group/world-writable; "
        "world-readable warns), home directories (world-writable fails, world-readable warns)."
    ),
    fix={
        "debian": "Edit sudo rules with `visudo -f FILE` (require passwords, name the needed commands); "
        "remove group members with `gpasswd -d USER GROUP`; `chmod 0640 /etc/shadow`, "
        "`chmod 0440 /etc/sudoers /etc/sudoers.d/*`, `chmod 0750 /home/USER`.",
        "rhel": "Edit sudo rules with `visudo -f FILE` (require passwords, name the needed commands); remove "
        "group members with `gpasswd -d USER GROUP`; `chmod 0000 /etc/shadow`, "
        "`chmod 0440 /etc/sudoers /etc/sudoers.d/*`, `chmod 0700 /home/USER`.",
    },
)
