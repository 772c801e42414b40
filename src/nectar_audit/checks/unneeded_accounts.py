"""Check-Security-09: are there any unneeded accounts in the system?"""

from __future__ import annotations

from datetime import datetime, timezone

from nectar_audit.checks import manual_fix
from nectar_audit.checks.base import Check, for_family
from nectar_audit.facts import Facts
from nectar_audit.facts import accounts as accounts_facts
from nectar_audit.facts.accounts import Account, Accounts, accounts
from nectar_audit.model import Evidence, Finding, Status
from nectar_audit.remedy import Remedy

NOLOGIN = {"debian": "/usr/sbin/nologin", "rhel": "/sbin/nologin", "fedora": "/usr/sbin/nologin"}


def _describe(acct: Account, accts: Accounts) -> str:
    """One line about an account, never a secret (the hash algorithm only)."""
    parts = [f"uid={acct.uid}", f"shell={acct.shell or '(none)'}"]
    pw = acct.password_state
    if pw in ("hash", "locked") and acct.algorithm:
        pw = f"{pw} ({acct.algorithm})"
    parts.append(f"password={pw}")
    if acct.authorized_keys:
        parts.append("keys=" + ",".join(acct.authorized_keys))
    elif not acct.keys_known:
        parts.append("keys=not checked")
    if accts.login_known(acct.name):
        last = accts.last_login(acct.name)
        parts.append(f"last login={last.strftime('%Y-%m-%d') if last else 'never'}")
    if acct.expired():
        parts.append("account expired")
    return " ".join(parts)


def _passwd_ev(acct: Account, accts: Accounts) -> Evidence:
    return Evidence(f"/etc/passwd:{acct.line}", f"{acct.name}: {_describe(acct, accts)}")


def _remove_fix(facts: Facts, name: str) -> str | None:
    return for_family(facts, {
        "debian": f"If {name} is not needed: deluser --remove-home {name}  (or lock it: usermod -L -e 1 "
                  f"{name})",
        "rhel": f"If {name} is not needed: userdel -r {name}  (or lock it: usermod -L -e 1 {name})",
    })


def _how_capable(acct: Account) -> str:
    ways = []
    if acct.password_state == "hash":
        ways.append("password")
    elif acct.password_state == "empty":
        ways.append("EMPTY password")
    elif acct.password_state == "unknown":
        ways.append("password unknown")
    if acct.authorized_keys:
        ways.append("SSH key")
    return "+".join(ways) or "?"


def run(facts: Facts) -> list[Finding]:
    accts = facts.get(accounts)
    findings: list[Finding] = []
    now = datetime.now(timezone.utc)
    max_days = facts.config.max_days_since_login

    # 1. A second UID 0 is a hidden root.
    for acct in accts.users:
        if acct.uid == 0 and acct.name != "root":
            findings.append(Finding(
                Status.FAIL,
                f"account {acct.name} has UID 0: it is a second root account ({acct.shell})",
                [_passwd_ev(acct, accts)],
                f"Lock it now: usermod -L -e 1 -s {for_family(facts, NOLOGIN) or '/usr/sbin/nologin'} "
                f"{acct.name}; "
                f"then delete its lines with `vipw` and `vipw -s` (userdel refuses: UID 0 always has running "
                f"processes).",
            ))

    # 2. Empty password fields let anyone in (pam_unix nullok, su, console).
    for acct in accts.users:
        if acct.password_state == "empty":
            findings.append(Finding(
                Status.FAIL,
                f"account {acct.name} has an empty password: anyone can log in as {acct.name} without one",
                [Evidence(acct.password_source, f"{acct.name}: password field is empty")],
                f"passwd -l {acct.name}   (locks it; set a real password with `passwd {acct.name}` if it "
                f"must log in)",
            ))

    if accts.shadow_error:
        findings.append(Finding(
            Status.ERROR,
            f"{accts.shadow_error}: cannot tell which accounts have a usable or empty password",
            [Evidence("/etc/shadow", accts.shadow_error)],
        ))

    # 3. System accounts with a login shell.
    nologin = for_family(facts, NOLOGIN) or "/usr/sbin/nologin"
    for acct in accts.users:
        if acct.uid == 0 or not accts.is_system(acct) or not acct.has_login_shell or acct.special_shell:
            continue
        how = {True: f"and can log in ({_how_capable(acct)})", False: "(no usable password or key yet)",
               None: "(whether it can log in is unknown)"}[acct.login_capable]
        findings.append(Finding(
            Status.WARN,
            f"system account {acct.name} (UID {acct.uid}) has login shell {acct.shell} {how}",
            [_passwd_ev(acct, accts)],
            f"usermod -s {nologin} {acct.name}",
        ))

    # 4. Human accounts that have not logged in for too long.
    for acct in accts.users:
        if not accts.is_human(acct) or acct.login_capable is False or accts.expected(acct.name):
            continue
        if not accts.login_known(acct.name):
            why = "no lastlog, lastlog2, wtmp or wtmpdb records were found" if not accts.login_sources \
                else f"{acct.name}'s UID lies beyond the part of /var/log/lastlog that was read"
            findings.append(Finding(
                Status.MANUAL,
                f"cannot tell when {acct.name} last logged in ({why}); check that the account is still "
                "needed",
                [_passwd_ev(acct, accts), *[Evidence(e, "unreadable") for e in accts.login_errors]],
                _remove_fix(facts, acct.name),
            ))
            continue
        last = accts.last_login(acct.name)
        if last is None:
            findings.append(Finding(
                Status.WARN,
                f"account {acct.name} can log in ({_how_capable(acct)}) but has never logged in",
                [_passwd_ev(acct, accts),
                 Evidence(", ".join(accts.login_sources), f"no login of {acct.name}")],
                _remove_fix(facts, acct.name),
            ))
            continue
        days = (now - last).days
        if days > max_days:
            findings.append(Finding(
                Status.WARN,
                f"account {acct.name} has not logged in for {days} days (last login {last:%Y-%m-%d}, "
                f"limit {max_days})",
                [_passwd_ev(acct, accts), Evidence(", ".join(accts.login_sources),
                                                   f"{acct.name} last login {last.isoformat()}")],
                _remove_fix(facts, acct.name),
            ))

    # 5. Inventory: every account that can log in.
    capable = [a for a in accts.users if a.login_capable]
    unknown = [a for a in accts.users if a.login_capable is None]
    labels = []
    for a in capable:
        tag = " (cloud default user)" if a.name in accts.default_users else \
            " (expected)" if accts.expected(a.name) else ""
        labels.append(f"{a.name} [{_how_capable(a)}]{tag}")
    msg = f"{len(capable)} account(s) can log in: {', '.join(labels) if labels else 'none'}"
    if unknown:
        msg += f"; {len(unknown)} more might ({', '.join(a.name for a in unknown)})"
    findings.append(Finding(Status.PASS, msg, [_passwd_ev(a, accts) for a in capable + unknown]))
    return findings


def plan(facts: Facts) -> Remedy | None:
    """Never automatic: each account to lock, remove or give nologin, with the command."""
    family = for_family(facts, {"debian": "debian", "rhel": "rhel"}) or "debian"
    nologin = for_family(facts, NOLOGIN) or "/usr/sbin/nologin"
    return manual_fix.remedy("Check-Security-09", "decide which accounts are needed",
                             manual_fix.account_entries(facts.get(run), family, nologin))


CHECK = Check(
    id="Check-Security-09",
    severity="high",
    run=run,
    needs=accounts_facts.NEEDS,
    plan=plan,
    why=("Every account that can log in is a way in. Default, temporary and forgotten accounts are rarely "
         "watched: a second UID 0 account or an empty password is a back door, and a service account with a "
         "shell turns a compromised service into an interactive login."),
    how=("Reads /etc/passwd, /etc/shadow (hashes reduced to their algorithm), /etc/group, login.defs "
         "(UID_MIN), authorized_keys files, and last logins from /var/log/lastlog, lastlog2.db, wtmp and "
         "wtmpdb. An account can log in when its shell is not nologin/false and it has a usable password or "
         "an authorized_keys file. Fails on extra UID 0 accounts and empty passwords; warns on system "
         "accounts (UID < UID_MIN) with a login shell and on people's accounts not used for "
         "max_days_since_login days (90 by default). The image's default cloud user (cloud-init "
         "default_user) and accounts listed in [accounts] expected are expected."),
    fix={
        "debian": "Remove unneeded accounts with `deluser --remove-home NAME` (or lock: `usermod -L -e 1 "
                  "NAME`); "
                  "give service accounts `usermod -s /usr/sbin/nologin NAME`; lock empty passwords with "
                  "`passwd -l NAME`.",
        "rhel": "Remove unneeded accounts with `userdel -r NAME` (or lock: `usermod -L -e 1 NAME`); give "
                "service accounts `usermod -s /sbin/nologin NAME`; lock empty passwords with `passwd -l "
                "NAME`.",
    },
)
