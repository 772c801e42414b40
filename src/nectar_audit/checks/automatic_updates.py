"""Check-Security-03: are automatic updates enabled?"""

from __future__ import annotations

import datetime as dt

from nectar_audit.checks.base import Check
from nectar_audit.checks.updates_fix import plan_03
from nectar_audit.facts import Facts
from nectar_audit.facts import host as host_facts
from nectar_audit.facts import updates as updates_facts
from nectar_audit.facts.host import host
from nectar_audit.facts.updates import (
    APT_CRON,
    UPGRADE_STAMP,
    UU_LOG,
    YUM_CRON_JOB,
    AutoConfig,
    CronDaemon,
    DnfAutomatic,
    Setting,
    TimerState,
    UnattendedUpgrades,
    cron_daemon,
    dnf_automatic,
    periodic_enabled,
    unattended_upgrades,
)
from nectar_audit.model import Evidence, Finding, Status

MAX_AGE_DAYS = 7

DEBIAN_ENABLE = (
    "apt-get install unattended-upgrades && dpkg-reconfigure -plow unattended-upgrades  "
    '(writes /etc/apt/apt.conf.d/20auto-upgrades with APT::Periodic::Update-Package-Lists "1"; '
    'and APT::Periodic::Unattended-Upgrade "1";)'
)
RHEL_ENABLE = (
    "dnf install dnf-automatic && systemctl enable --now dnf-automatic-install.timer  "
    "(or set apply_updates = yes in /etc/dnf/automatic.conf and enable dnf-automatic.timer)"
)
FEDORA_ENABLE = (
    "dnf install dnf5-plugin-automatic && set apply_updates = yes in the [commands] section of "
    "/etc/dnf/automatic.conf (dnf5 before 5.2.6: /etc/dnf/dnf5-plugins/automatic.conf) && "
    "systemctl enable --now dnf5-automatic.timer"
)
CRON_FIX = {
    "debian": "apt-get install cron && systemctl enable --now cron (without systemd: update-rc.d cron defaults)",
    "rhel": "yum install cronie cronie-anacron && systemctl enable --now crond",
}


def _ev(name: str, setting: Setting | None, default: str) -> Evidence:
    if setting is None:
        return Evidence("apt configuration", f"{name} is not set (default {default})")
    return Evidence(setting.origin or "apt configuration", f'{name} "{setting.value}"')


def _now(facts: Facts) -> dt.datetime:
    try:
        now = dt.datetime.fromisoformat(facts.bundle.gathered_at)
    except ValueError:
        return dt.datetime.now(dt.timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


def _timer_problems(timers: tuple[TimerState, ...]) -> list[tuple[TimerState, str]]:
    out = []
    for t in timers:
        if t.masked:
            out.append((t, "masked"))
        elif not t.enabled:
            out.append((t, "not enabled" if t.present else "not installed"))
    return out


def _debian(facts: Facts) -> list[Finding]:
    uu = facts.get(unattended_upgrades)
    findings: list[Finding] = []
    fix_periodic = (
        'Put APT::Periodic::Update-Package-Lists "1"; and APT::Periodic::Unattended-Upgrade "1"; in '
        "/etc/apt/apt.conf.d/20auto-upgrades (dpkg-reconfigure -plow unattended-upgrades)"
    )
    for err in uu.config.errors:
        findings.append(
            Finding(
                Status.FAIL,
                f"apt refuses to run with this configuration error: {err}",
                [Evidence(err.split(": ", 1)[0].replace("Syntax error ", ""), err)],
                "Fix the syntax error (apt-config dump shows the first error).",
            )
        )
    if uu.installed is False:
        findings.append(
            Finding(
                Status.FAIL,
                "unattended-upgrades is not installed: no updates are installed automatically",
                [Evidence("/var/lib/dpkg/status", "package unattended-upgrades is not installed")],
                DEBIAN_ENABLE,
            )
        )
        return findings
    ev_all = [
        _ev("APT::Periodic::Update-Package-Lists", uu.update_lists, "0"),
        _ev("APT::Periodic::Unattended-Upgrade", uu.unattended, "0"),
        _ev("APT::Periodic::Download-Upgradeable-Packages", uu.download, "0"),
    ]
    enable = uu.enable
    if enable is not None and enable.value.strip() == "0":
        findings.append(
            Finding(
                Status.FAIL,
                f'APT::Periodic::Enable "0" ({enable.origin}) switches off apt\'s daily job entirely',
                [_ev("APT::Periodic::Enable", enable, "1"), *ev_all],
                f"Remove APT::Periodic::Enable from {(enable.origin or '').rsplit(':', 1)[0]} "
                '(or set it to "1")',
            )
        )
    installs = periodic_enabled(uu.unattended.value if uu.unattended else None)
    downloads = periodic_enabled(uu.download.value if uu.download else None)
    updates = periodic_enabled(uu.update_lists.value if uu.update_lists else None)
    if not installs and (downloads or updates):
        what = (
            "downloads updates automatically but does not install them"
            if downloads
            else "refreshes the package lists automatically but installs no updates"
        )
        findings.append(
            Finding(
                Status.FAIL,
                f"apt {what} (APT::Periodic::Unattended-Upgrade is {_show(uu.unattended)})",
                ev_all,
                fix_periodic,
            )
        )
    elif not installs:
        findings.append(
            Finding(
                Status.FAIL,
                f"automatic updates are off: APT::Periodic::Unattended-Upgrade is {_show(uu.unattended)}",
                ev_all,
                fix_periodic,
            )
        )
    elif not updates:
        findings.append(
            Finding(
                Status.FAIL,
                "unattended-upgrades runs but the package lists are never refreshed "
                f"(APT::Periodic::Update-Package-Lists is {_show(uu.update_lists)}), "
                "so it never sees new updates",
                ev_all,
                fix_periodic,
            )
        )
    # Origins: do they include the security archive?
    rule_ev = [
        Evidence(
            r.origin or "apt configuration",
            f"{r.kind}: {r.raw}"
            + (f" -> {r.expanded}" if r.expanded != r.raw else "")
            + (f" (error: {r.error})" if r.error else ""),
        )
        for r in uu.rules
    ]
    for r in uu.rules:
        if r.error:
            findings.append(
                Finding(
                    Status.FAIL,
                    f'unattended-upgrades cannot use {r.kind} entry "{r.raw}": {r.error}',
                    [Evidence(r.origin or "apt configuration", r.raw)],
                    "Correct the entry in /etc/apt/apt.conf.d/50unattended-upgrades",
                )
            )
    if not uu.rules:
        findings.append(
            Finding(
                Status.FAIL,
                "unattended-upgrades has no allowed origins: it upgrades nothing",
                [
                    Evidence(
                        "apt configuration",
                        "Unattended-Upgrade::Allowed-Origins and ::Origins-Pattern are empty",
                    )
                ],
                "Restore /etc/apt/apt.conf.d/50unattended-upgrades from the package "
                "(apt-get install --reinstall -o Dpkg::Options::=--force-confmiss unattended-upgrades)",
            )
        )
    elif not uu.covers_security and uu.repos:
        repo_ev = [
            Evidence(r.source, ", ".join(f"{k}={'|'.join(v)}" for k, v in r.attrs.items())) for r in uu.repos
        ]
        findings.append(
            Finding(
                Status.FAIL,
                "unattended-upgrades' origins do not include the security archive: security updates "
                "are not installed automatically",
                rule_ev + repo_ev,
                'Add "origin=Debian,codename=${distro_codename}-security,label=Debian-Security"; to '
                'Unattended-Upgrade::Origins-Pattern (Ubuntu: "${distro_id}:${distro_codename}-security"; to '
                "Unattended-Upgrade::Allowed-Origins) in /etc/apt/apt.conf.d/50unattended-upgrades",
            )
        )
    elif not uu.repos:
        findings.append(
            Finding(
                Status.WARN,
                f"cannot tell whether unattended-upgrades' origins cover the security archive of "
                f"{uu.distro_id} {uu.codename or ''}".rstrip(),
                rule_ev,
            )
        )
    # Scheduling.
    sched = _schedule(uu, facts.get(cron_daemon))
    if sched is not None:
        findings.append(sched)
    # Freshness.
    fresh = _freshness(facts, uu) if installs and not any(f.status is Status.FAIL for f in findings) else None
    if fresh is not None and fresh.status is not Status.PASS:
        findings.append(fresh)
    if not any(f.status in (Status.FAIL, Status.ERROR) for f in findings):
        what = "security updates" if uu.covers_security else "updates"
        last = (
            f" (last successful run on {uu.last_run.when:%Y-%m-%d})"
            if fresh and uu.last_run and fresh.status is Status.PASS
            else f" ({fresh.message})"
            if fresh and fresh.status is Status.PASS
            else ""
        )
        findings.insert(
            0,
            Finding(
                Status.PASS,
                f"unattended-upgrades installs {what} automatically every day{last}",
                ev_all
                + [e for r, e in zip(uu.rules, rule_ev) if r.covers_security]
                + (fresh.evidence if fresh is not None and fresh.status is Status.PASS else []),
            ),
        )
    return findings


def _show(setting: Setting | None) -> str:
    return "unset" if setting is None else f'"{setting.value}" ({setting.origin})'


def _cron_finding(cron: CronDaemon, job: str, what: str, family: str) -> Finding | None:
    """FAIL when the cron daemon that would run ``job`` cannot run; None when it can (or may)."""
    if cron.runs is not False:
        return None
    return Finding(
        Status.FAIL,
        f"{what} runs from cron ({job}) but {cron.describe()}: it never runs",
        [Evidence(job, "present"), Evidence("cron daemon", cron.describe())],
        CRON_FIX[family],
    )


def _schedule(uu: UnattendedUpgrades, cron: CronDaemon) -> Finding | None:
    bad = _timer_problems(uu.timers)
    ev = [
        Evidence(
            f"systemd unit {t.name}", ("masked" if t.masked else "enabled" if t.enabled else "not enabled")
        )
        for t in uu.timers
    ]
    if not bad:
        return None
    masked = [t for t, why in bad if why == "masked"]
    if masked:
        names = ", ".join(t.name for t in masked)
        return Finding(
            Status.FAIL,
            f"{names} is masked: apt's daily update/upgrade job never runs",
            ev,
            f"systemctl unmask {' '.join(t.name for t in masked)} && systemctl enable --now "
            f"{' '.join(t.name for t in masked)}",
        )
    if not uu.systemd and uu.cron_job:
        bad_cron = _cron_finding(cron, APT_CRON, "without systemd, apt's daily job", "debian")
        if bad_cron is not None:
            return bad_cron
        return Finding(
            Status.PASS,
            f"no systemd here: apt's daily job runs from cron ({APT_CRON}; {cron.describe()})",
            [*ev, Evidence(APT_CRON, "present"), Evidence("cron daemon", cron.describe())],
        )
    if all(not t.present for t, _ in bad) and not uu.systemd and not uu.cron_job:
        return Finding(
            Status.FAIL,
            f"nothing schedules apt's daily job (no apt-daily timers, no {APT_CRON})",
            ev,
            "apt-get install --reinstall apt && systemctl enable --now apt-daily.timer "
            "apt-daily-upgrade.timer",
        )
    names = " ".join(t.name for t, _ in bad)
    return Finding(
        Status.FAIL,
        f"{', '.join(t.name + ' is ' + why for t, why in bad)}: apt's daily update/upgrade job does not run",
        ev,
        f"systemctl enable --now {names}",
    )


def _freshness(facts: Facts, uu: UnattendedUpgrades) -> Finding:
    now = _now(facts)
    last = uu.last_run
    if last is None and not facts.bundle.live:
        # An image that never booted has never run its timers: nothing is wrong yet.
        return Finding(
            Status.PASS,
            "offline image: no run is recorded yet, as expected before its first boot; "
            "apt-daily-upgrade.timer runs it once a host boots from the image",
            [
                Evidence(UPGRADE_STAMP, "absent"),
                Evidence(UU_LOG, "no successful run"),
            ],
        )
    if last is None:
        why = uu.log_unreadable or "no upgrade stamp and no successful run in the unattended-upgrades log"
        return Finding(
            Status.WARN,
            f"no record of a successful unattended-upgrades run ({why})",
            [Evidence(UPGRADE_STAMP, "absent")],
            "Check `systemctl list-timers apt-daily-upgrade.timer` and "
            "/var/log/unattended-upgrades/unattended-upgrades.log",
        )
    age = now - last.when
    ev = [Evidence(last.source, last.detail + f" ({last.when:%Y-%m-%d %H:%M} UTC)")]
    if age > dt.timedelta(days=MAX_AGE_DAYS):
        return Finding(
            Status.WARN,
            f"unattended-upgrades last ran successfully on {last.when:%Y-%m-%d}, {age.days} days ago",
            ev,
            "Look for errors in /var/log/unattended-upgrades/unattended-upgrades.log and "
            "`journalctl -u apt-daily-upgrade.service`",
        )
    return Finding(Status.PASS, f"unattended-upgrades last ran successfully on {last.when:%Y-%m-%d}", ev)


# -- RHEL family ---------------------------------------------------------------------------------


def _rhel(facts: Facts) -> list[Finding]:
    da = facts.get(dnf_automatic)
    family = facts.get(host).family
    fix = FEDORA_ENABLE if family == "fedora" and da.tool.startswith("dnf5") else RHEL_ENABLE
    ev = [
        Evidence(
            f"systemd unit {t.name}",
            "masked"
            if t.masked
            else "enabled"
            if t.enabled
            else ("not enabled" if t.present else "not installed"),
        )
        for t in da.timers
    ]
    enabled = [t for t in da.timers if t.enabled and not t.masked]
    notes = [
        Evidence("note", note)
        for cfg in {id(c): c for c in da.configs.values()}.values()
        for note in cfg.notes
    ]
    if any(t.name == "yum-cron.service" for t in enabled) and da.cron is not None:
        if not da.yum_cron_job:
            return [
                Finding(
                    Status.FAIL,
                    f"yum-cron.service is enabled but {YUM_CRON_JOB} is missing: nothing runs yum-cron",
                    [*ev, Evidence(YUM_CRON_JOB, "absent")],
                    "yum reinstall yum-cron",
                )
            ]
        bad_cron = _cron_finding(da.cron, YUM_CRON_JOB, "yum-cron", "rhel")
        if bad_cron is not None:
            bad_cron.evidence[:0] = ev
            return [bad_cron]
    if not enabled:
        if da.tool == "none":
            return [
                Finding(
                    Status.FAIL,
                    "no automatic update tool is installed (dnf-automatic, dnf5 automatic or yum-cron)",
                    ev,
                    fix,
                )
            ]
        return [
            Finding(
                Status.FAIL,
                f"{da.tool} is installed but none of its timers is enabled: nothing installs "
                "updates automatically",
                ev,
                fix,
            )
        ]
    findings: list[Finding] = []
    installing: list[str] = []
    for t in enabled:
        cfg = _config_for(da, t.name)
        if t.name in ("dnf-automatic-install.timer", "dnf5-automatic-install.timer"):
            installing.append(f"{t.name} (installs updates whatever apply_updates says)")
        elif t.name in ("dnf-automatic-download.timer", "dnf-automatic-notifyonly.timer"):
            what = "downloads" if "download" in t.name else "only reports"
            findings.append(
                Finding(
                    Status.FAIL,
                    f"{t.name} {what} updates but does not install them",
                    ev,
                    "systemctl disable --now " + t.name + " && systemctl enable --now "
                    "dnf-automatic-install.timer",
                )
            )
        elif cfg is not None:
            cfg_ev = Evidence(
                cfg.apply_source,
                f"apply_updates = {'yes' if cfg.apply_updates else 'no'}; upgrade_type = {cfg.upgrade_type}",
            )
            if cfg.error:
                findings.append(Finding(Status.FAIL, cfg.error, [cfg_ev], "Use apply_updates = yes"))
            elif cfg.apply_updates:
                installing.append(
                    f"{t.name} ({cfg.apply_source}: apply_updates = yes, upgrade_type = {cfg.upgrade_type})"
                )
            else:
                what = "downloads updates" if cfg.download_updates else "checks for updates"
                findings.append(
                    Finding(
                        Status.FAIL,
                        f"{t.name} {what} but does not install them (apply_updates = no in "
                        f"{cfg.path or 'the built-in defaults'})",
                        [*ev, cfg_ev],
                        "Set apply_updates = yes in the [commands] section of "
                        f"{cfg.edit or _conf_path(t.name)} "
                        f"(or systemctl enable --now dnf-automatic-install.timer)",
                    )
                )
    if installing:
        return [
            Finding(Status.PASS, "updates are installed automatically by " + "; ".join(installing), ev + notes)
        ] + [f for f in findings if f.status is not Status.FAIL]
    if findings:
        findings[0].evidence.extend(notes)
    return findings


def _conf_path(timer: str) -> str:
    return "/etc/dnf/automatic.conf"


def _config_for(da: DnfAutomatic, unit: str) -> AutoConfig | None:
    if unit.startswith("dnf5"):
        return da.configs.get("dnf5-automatic.timer")
    if unit == "dnf-automatic.timer":
        return da.configs.get("dnf-automatic.timer")
    if unit.startswith("yum-cron"):
        return da.configs.get("yum-cron")
    return da.configs.get("dnf-automatic.timer")


def run(facts: Facts) -> list[Finding]:
    family = facts.get(host).family
    if family == "debian":
        return _debian(facts)
    if family in ("rhel", "fedora"):
        return _rhel(facts)
    return [
        Finding(
            Status.MANUAL,
            f"automatic updates are not checked on this distribution "
            f"({facts.get(host).os.pretty_name or facts.get(host).os.id}); check them by hand",
        )
    ]


CHECK = Check(
    id="Check-Security-03",
    severity="high",
    run=run,
    needs=host_facts.NEEDS | updates_facts.NEEDS,
    plan=plan_03,
    why="Most compromises exploit known, already-fixed vulnerabilities; updates that wait for a human are "
    "installed late or never.",
    how="Debian/Ubuntu: unattended-upgrades installed; APT::Periodic::Update-Package-Lists and "
    "::Unattended-Upgrade non-zero after merging apt.conf.d in apt's order (apt-config dump on live "
    "hosts); Allowed-Origins/Origins-Pattern (with ${distro_id}/${distro_codename} expanded) matching the "
    "host's security archive; apt-daily(.upgrade).timer enabled and not masked; the last successful run "
    f"(upgrade stamp, unattended-upgrades log) not older than {MAX_AGE_DAYS} days (warn). RHEL/Fedora: an "
    "enabled dnf-automatic(-install).timer or dnf5-automatic.timer whose configuration installs "
    "(apply_updates = yes), or yum-cron. Downloading without installing fails.",
    fix={
        "debian": DEBIAN_ENABLE,
        "rhel": RHEL_ENABLE,
        "fedora": FEDORA_ENABLE,
    },
)
