"""Check-Security-03 (automatic updates): unattended-upgrades, dnf-automatic, dnf5 automatic."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.facts.updates.autoupdate import (
    PatternError,
    Repo,
    automatic_config,
    expand,
    last_success_in_log,
    legacy_to_pattern,
    parse_ini,
    pattern_matches,
    periodic_enabled,
    security_repos,
    unattended_upgrades,
)
from nectar_audit.facts.updates.pending import ReleaseInfo, parse_release
from nectar_audit.model import Evidence, Status
from tests.patching_helpers import NOW_TS, Host, apt_dir, messages, sample

DAY = 86400


def debian_host(os: str = "debian12", apt: str = "debian12", live: bool = False) -> Host:
    h = Host(os, live=live).dpkg().add_files(apt_dir(apt)).systemd()
    h.enabled("apt-daily.timer").enabled("apt-daily-upgrade.timer")
    h.stat("/lib/systemd/system/apt-daily.timer").stat("/lib/systemd/system/apt-daily-upgrade.timer")
    h.stat("/var/lib/apt/periodic/upgrade-stamp", mtime=NOW_TS - DAY)
    return h


# -- Debian / Ubuntu -------------------------------------------------------------------------------


def test_debian12_defaults_pass() -> None:
    r = debian_host().check(3)
    assert r.status is Status.PASS, messages(r)
    assert r.summary == (
        "unattended-upgrades installs security updates automatically every day (last "
        "successful run on 2026-11-30)"
    )
    sources = [e.source for e in r.findings[0].evidence]
    assert "/etc/apt/apt.conf.d/20auto-upgrades:2" in sources
    assert "/etc/apt/apt.conf.d/50unattended-upgrades:33" in sources  # the -security pattern


@pytest.mark.parametrize("os", ["ubuntu2204", "ubuntu2404"])
def test_ubuntu_defaults_pass(os: str) -> None:
    r = debian_host(os, os).check(3)
    assert r.status is Status.PASS, messages(r)
    uu = debian_host(os, os).facts().get(unattended_upgrades)
    covering = [x.expanded for x in uu.rules if x.covers_security]
    codename = "jammy" if os == "ubuntu2204" else "noble"
    assert covering == [f"o=Ubuntu,a={codename}-security"]


def test_not_installed_fails() -> None:
    status = sample("dpkg/debian12-status").replace(
        "Package: unattended-upgrades\n", "Package: unattended-upgradez\n"
    )
    r = debian_host().dpkg(status).check(3)
    assert r.status is Status.FAIL
    assert r.summary == "unattended-upgrades is not installed: no updates are installed automatically"


def test_disabled_by_20auto_upgrades() -> None:
    h = debian_host().file(
        "/etc/apt/apt.conf.d/20auto-upgrades", sample("apt/debian12/20auto-upgrades").replace('"1"', '"0"')
    )
    r = h.check(3)
    assert r.status is Status.FAIL
    assert r.summary.startswith(
        'automatic updates are off: APT::Periodic::Unattended-Upgrade is "0" '
        "(/etc/apt/apt.conf.d/20auto-upgrades:2)"
    )


def test_download_only_fails_clearly() -> None:
    h = debian_host().file(
        "/etc/apt/apt.conf.d/20auto-upgrades",
        'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Download-Upgradeable-Packages '
        '"1";\nAPT::Periodic::Unattended-Upgrade "0";\n',
    )
    r = h.check(3)
    assert r.status is Status.FAIL
    assert r.summary.startswith("apt downloads updates automatically but does not install them")


def test_later_file_overrides() -> None:
    h = debian_host().file("/etc/apt/apt.conf.d/99local", 'APT::Periodic::Unattended-Upgrade "0";\n')
    r = h.check(3)
    assert r.status is Status.FAIL
    assert "/etc/apt/apt.conf.d/99local:1" in r.summary


def test_periodic_enable_zero() -> None:
    h = debian_host().file("/etc/apt/apt.conf.d/02periodic", 'APT::Periodic::Enable "0";\n')
    r = h.check(3)
    assert r.status is Status.FAIL
    assert 'APT::Periodic::Enable "0"' in r.summary


def test_origins_without_security_fail() -> None:
    text = (
        sample("apt/debian12/50unattended-upgrades")
        .replace('        "origin=Debian,codename=${distro_codename},label=Debian-Security";\n', "")
        .replace('        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";\n', "")
    )
    r = debian_host().file("/etc/apt/apt.conf.d/50unattended-upgrades", text).check(3)
    assert r.status is Status.FAIL
    assert r.summary.startswith("unattended-upgrades' origins do not include the security archive")


def test_ubuntu_security_commented_out_fails() -> None:
    text = sample("apt/ubuntu2204/50unattended-upgrades").replace(
        '\t"${distro_id}:${distro_codename}-security";', '//\t"${distro_id}:${distro_codename}-security";'
    )
    h = debian_host("ubuntu2204", "ubuntu2204").file("/etc/apt/apt.conf.d/50unattended-upgrades", text)
    assert h.check(3).status is Status.FAIL


def test_security_decided_by_the_hosts_release_file() -> None:
    # An Origins-Pattern on the archive (suite) name only matches the security archive's real suite.
    rel = sample("apt/lists-debian12-security_InRelease")
    path = "/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_InRelease"
    good = 'Unattended-Upgrade::Origins-Pattern { "a=oldstable-security"; };\n'
    bad = 'Unattended-Upgrade::Origins-Pattern { "a=stable-security"; };\n'
    for text, want in ((good, Status.PASS), (bad, Status.FAIL)):
        h = debian_host().file("/etc/apt/apt.conf.d/50unattended-upgrades", text).file(path, rel)
        assert h.check(3).status is want, text


def test_unknown_variable_is_an_error() -> None:
    text = (
        'Unattended-Upgrade::Origins-Pattern { "origin=Debian,codename=${distro_codename}-security,'
        'label=Debian-Security"; "origin=${vendor}"; };\n'
    )
    r = debian_host().file("/etc/apt/apt.conf.d/50unattended-upgrades", text).check(3)
    assert r.status is Status.FAIL
    assert 'cannot use Origins-Pattern entry "origin=${vendor}": unknown variable ${vendor}' in r.summary


def test_syntax_error_fails() -> None:
    r = (
        debian_host()
        .file("/etc/apt/apt.conf.d/99broken", 'APT::Periodic::Unattended-Upgrade "1" x;\n')
        .check(3)
    )
    assert r.status is Status.FAIL
    assert "Syntax error /etc/apt/apt.conf.d/99broken:1: Extra junk after value" in r.summary


def test_masked_timer_fails() -> None:
    r = debian_host().masked("apt-daily-upgrade.timer").check(3)
    assert r.status is Status.FAIL
    assert r.summary.startswith("apt-daily-upgrade.timer is masked")


def test_timer_not_enabled_fails() -> None:
    h = debian_host()
    del h.stats["/etc/systemd/system/timers.target.wants/apt-daily.timer"]
    r = h.check(3)
    assert r.status is Status.FAIL
    assert r.summary.startswith("apt-daily.timer is not enabled")


def sysv_host() -> Host:
    """Debian without systemd: apt's daily job from /etc/cron.daily, cron started by a SysV S-link."""
    h = Host().dpkg().add_files(apt_dir("debian12")).stat("/etc/cron.daily/apt-compat")
    h.stat("/var/lib/apt/periodic/upgrade-stamp", mtime=NOW_TS - DAY)
    h.stat("/usr/sbin/cron").link("/etc/rc2.d/S01cron", "../init.d/cron").link("/etc/rc2.d/S01ssh")
    return h


def test_no_systemd_uses_cron() -> None:
    r = sysv_host().check(3)
    assert r.status is Status.PASS, messages(r)
    assert any("runs from cron" in m and "cron.service enabled" in m for _, m in messages(r))


def test_no_systemd_without_cron_daemon_fails() -> None:
    h = sysv_host()
    del h.stats["/usr/sbin/cron"]
    r = h.check(3)
    assert r.status is Status.FAIL
    assert r.summary == (
        "without systemd, apt's daily job runs from cron (/etc/cron.daily/apt-compat) but no cron daemon "
        "installed (/usr/sbin/cron, /usr/sbin/crond absent): it never runs"
    )


def test_no_systemd_cron_not_started_at_boot_fails() -> None:
    h = sysv_host()
    del h.stats["/etc/rc2.d/S01cron"]
    r = h.check(3)
    assert r.status is Status.FAIL
    assert "/usr/sbin/cron is installed but its service (cron.service/crond.service/cronie.service) is " in (
        r.summary
    )


def test_stale_last_run_warns_with_date() -> None:
    h = debian_host()
    h.stat("/var/lib/apt/periodic/upgrade-stamp", mtime=NOW_TS - 20 * DAY)
    r = h.check(3)
    assert r.status is Status.WARN
    assert r.summary == "unattended-upgrades last ran successfully on 2026-11-11, 20 days ago"


def test_last_run_from_log() -> None:
    log = (
        "2026-11-20 06:10:01,123 INFO Starting unattended upgrades script\n"
        "2026-11-20 06:10:05,456 INFO All upgrades installed\n"
        "2026-11-29 06:12:01,001 INFO Starting unattended upgrades script\n"
        "2026-11-29 06:12:03,002 INFO No packages found that can be upgraded unattended and no pending "
        "auto-removals\n"
        "2026-12-01 06:00:00,000 ERROR Cache has broken packages, exiting\n"
    )
    h = debian_host()
    del h.stats["/var/lib/apt/periodic/upgrade-stamp"]
    h.file("/var/log/unattended-upgrades/unattended-upgrades.log", log)
    r = h.check(3)
    assert r.status is Status.PASS
    assert r.summary.endswith("(last successful run on 2026-11-29)")
    assert any(
        e.source == "/var/log/unattended-upgrades/unattended-upgrades.log" for e in r.findings[0].evidence
    )


def test_no_record_warns_live_only() -> None:
    h = debian_host(live=True).systemd(enabled=["apt-daily.timer", "apt-daily-upgrade.timer"])
    del h.stats["/var/lib/apt/periodic/upgrade-stamp"]
    r = h.check(3)
    assert r.status is Status.WARN
    assert r.summary.startswith("no record of a successful unattended-upgrades run")
    # An image that never booted has no record either: expected there, said, not warned.
    h = debian_host()
    del h.stats["/var/lib/apt/periodic/upgrade-stamp"]
    r = h.check(3)
    assert r.status is Status.PASS, messages(r)
    assert r.summary == (
        "unattended-upgrades installs security updates automatically every day (offline image: no run is "
        "recorded yet, as expected before its first boot; apt-daily-upgrade.timer runs it once a host boots "
        "from the image)"
    )
    assert Evidence("/var/lib/apt/periodic/upgrade-stamp", "absent") in r.findings[0].evidence
    # A stale record in an image still warns: the image was captured long after its last run.
    h.stat("/var/lib/apt/periodic/upgrade-stamp", mtime=NOW_TS - 20 * DAY)
    assert h.check(3).status is Status.WARN


def test_live_dump_is_authoritative() -> None:
    h = debian_host(live=True).systemd(enabled=["apt-daily.timer", "apt-daily-upgrade.timer"])
    dump = (
        'APT "";\nAPT::Periodic "";\nAPT::Periodic::Update-Package-Lists "1";\n'
        'APT::Periodic::Unattended-Upgrade "0";\n'
    )
    h.command("apt.config", dump)
    r = h.check(3)
    assert r.status is Status.FAIL
    assert 'APT::Periodic::Unattended-Upgrade is "0" (command: apt-config dump)' in r.summary


def test_unreadable_log_as_non_root() -> None:
    h = debian_host(live=True).systemd(enabled=["apt-daily.timer", "apt-daily-upgrade.timer"])
    h.uid = 1000
    del h.stats["/var/lib/apt/periodic/upgrade-stamp"]
    r = h.check(3)
    assert r.status is Status.WARN
    assert "needs root to read /var/log/unattended-upgrades/unattended-upgrades.log" in r.summary


# -- RHEL family / Fedora ----------------------------------------------------------------------------


def rhel_host(os: str = "rocky9") -> Host:
    h = Host(os).systemd()
    h.stat("/usr/lib/systemd/system/dnf-automatic.timer").stat(
        "/usr/lib/systemd/system/dnf-automatic-install.timer"
    )
    return h


def test_rhel_default_config_downloads_only() -> None:
    h = (
        rhel_host()
        .file("/etc/dnf/automatic.conf", sample("dnf/el9-automatic.conf"))
        .enabled("dnf-automatic.timer")
    )
    r = h.check(3)
    assert r.status is Status.FAIL
    assert r.summary == (
        "dnf-automatic.timer downloads updates but does not install them (apply_updates = no in "
        "/etc/dnf/automatic.conf)"
    )


@pytest.mark.parametrize("conf", ["dnf/el8-automatic.conf", "dnf/el9-automatic.conf"])
def test_rhel_apply_updates_yes_passes(conf: str) -> None:
    text = sample(conf).replace("apply_updates = no", "apply_updates = yes")
    h = rhel_host().file("/etc/dnf/automatic.conf", text).enabled("dnf-automatic.timer")
    r = h.check(3)
    assert r.status is Status.PASS
    assert r.summary.startswith(
        "updates are installed automatically by dnf-automatic.timer (/etc/dnf/automatic.conf:"
    )


def test_rhel_install_timer_passes() -> None:
    h = rhel_host().file("/etc/dnf/automatic.conf", sample("dnf/el9-automatic.conf"))
    h.enabled("dnf-automatic-install.timer")
    assert h.check(3).status is Status.PASS


def test_rhel_download_timer_fails() -> None:
    h = rhel_host().file("/etc/dnf/automatic.conf", sample("dnf/el9-automatic.conf"))
    h.enabled("dnf-automatic-download.timer")
    r = h.check(3)
    assert r.status is Status.FAIL
    assert r.summary == "dnf-automatic-download.timer downloads updates but does not install them"


def test_rhel_installed_but_no_timer() -> None:
    r = rhel_host().file("/etc/dnf/automatic.conf", sample("dnf/el9-automatic.conf")).check(3)
    assert r.status is Status.FAIL
    assert r.summary.startswith("dnf-automatic is installed but none of its timers is enabled")


def test_rhel_nothing_installed() -> None:
    r = Host("alma9").systemd().check(3)
    assert r.status is Status.FAIL
    assert r.summary.startswith("no automatic update tool is installed")


def test_fedora_dnf5() -> None:
    h = Host("fedora41").systemd().stat("/usr/lib/systemd/system/dnf5-automatic.timer")
    h.file("/usr/share/dnf5/dnf5-plugins/automatic.conf", sample("dnf/dnf5-automatic.conf"))
    h.enabled("dnf5-automatic.timer")
    r = h.check(3)
    assert r.status is Status.FAIL
    assert "/usr/share/dnf5/dnf5-plugins/automatic.conf" in r.summary
    # dnf5 reads the first existing file: /etc/dnf/dnf5-plugins/automatic.conf replaces the packaged one.
    h.file("/etc/dnf/dnf5-plugins/automatic.conf", "[commands]\napply_updates = yes\n")
    r = h.check(3)
    assert r.status is Status.PASS
    assert "/etc/dnf/dnf5-plugins/automatic.conf:2: apply_updates = yes" in r.summary


DNF5_DEFAULTS = "/usr/share/dnf5/dnf5-plugins/automatic.conf"
DNF5_OLD = "/etc/dnf/dnf5-plugins/automatic.conf"


def dnf5_host(version: str | None) -> Host:
    """Fedora with dnf5-plugin-automatic at ``version`` (rpm -qa evidence), its packaged defaults
    (tests/samples/dnf/dnf5-automatic.conf, verbatim upstream) and dnf5-automatic.timer enabled."""
    h = Host("fedora41").systemd().stat("/usr/lib/systemd/system/dnf5-automatic.timer")
    h.file(DNF5_DEFAULTS, sample("dnf/dnf5-automatic.conf")).enabled("dnf5-automatic.timer")
    if version is not None:
        rows = [("dnf5", version), ("dnf5-plugin-automatic", version), ("bash", "5.2.32-1.fc41")]
        qa = "".join(f"{n}\t0\t{v.split('-')[0]}\t{v.split('-')[1]}\tx86_64\t1730000000\n" for n, v in rows)
        h.stat("/usr/lib/sysimage/rpm/rpmdb.sqlite").command("packages.rpm", qa)
    return h


def test_dnf5_current_reads_etc_dnf_automatic_conf_over_defaults() -> None:
    h = dnf5_host("5.2.8.1-3.fc41").file("/etc/dnf/automatic.conf", "[commands]\napply_updates = yes\n")
    r = h.check(3)
    assert r.status is Status.PASS, messages(r)
    assert r.summary == (
        "updates are installed automatically by dnf5-automatic.timer (/etc/dnf/automatic.conf:2: "
        "apply_updates = yes, upgrade_type = default)"
    )
    # Key by key: upgrade_type from the host file, apply_updates still from the packaged defaults.
    h.file("/etc/dnf/automatic.conf", "[commands]\nupgrade_type = security\n")
    r = h.check(3)
    assert r.status is Status.FAIL
    assert r.summary == (
        f"dnf5-automatic.timer downloads updates but does not install them (apply_updates = no in {DNF5_DEFAULTS})"
    )
    assert r.findings[0].remediation is not None
    assert "Set apply_updates = yes in the [commands] section of /etc/dnf/automatic.conf" in (
        r.findings[0].remediation
    )


def test_dnf5_current_deprecated_location_used_with_a_note() -> None:
    h = dnf5_host("5.2.8.1-3.fc41").file(DNF5_OLD, "[commands]\napply_updates = yes\n")
    r = h.check(3)
    assert r.status is Status.PASS
    assert f"{DNF5_OLD}:2: apply_updates = yes" in r.summary
    notes = [e.detail for e in r.findings[0].evidence if e.source == "note"]
    assert notes == [
        f"{DNF5_OLD} is deprecated: dnf5 5.2.8.1-3.fc41 reads host overrides from /etc/dnf/automatic.conf"
    ]
    # With /etc/dnf/automatic.conf present the deprecated file no longer counts (dnf5 issue #1770).
    h.file("/etc/dnf/automatic.conf", "[commands]\nupgrade_type = security\n")
    r = h.check(3)
    assert r.status is Status.FAIL
    assert f"ignores the deprecated {DNF5_OLD} because /etc/dnf/automatic.conf exists" in str(r.to_json())


def test_dnf5_52_layers_plugin_location_and_ignores_etc_automatic_conf() -> None:
    h = dnf5_host("5.2.3.0-1.fc40").file("/etc/dnf/automatic.conf", "[commands]\napply_updates = yes\n")
    r = h.check(3)
    assert r.status is Status.FAIL
    assert "apply_updates = no in /usr/share/dnf5/dnf5-plugins/automatic.conf" in r.summary
    assert "dnf5 5.2.3.0-1.fc40 does not read /etc/dnf/automatic.conf" in str(r.to_json())
    assert r.findings[0].remediation is not None and DNF5_OLD in r.findings[0].remediation
    h = dnf5_host("5.2.3.0-1.fc40").file(DNF5_OLD, "[commands]\napply_updates = yes\n")
    r = h.check(3)
    assert r.status is Status.PASS
    assert f"({DNF5_OLD}:2: apply_updates = yes, upgrade_type = default)" in r.summary


def test_dnf5_51_reads_the_first_existing_file_only() -> None:
    # Before 5.2 an /etc/dnf/dnf5-plugins/automatic.conf replaces the packaged file entirely.
    h = dnf5_host("5.1.17-1.fc40").file(DNF5_OLD, "[commands]\nupgrade_type = security\napply_updates = yes\n")
    r = h.check(3)
    assert r.status is Status.PASS
    assert f"({DNF5_OLD}:3: apply_updates = yes, upgrade_type = security)" in r.summary
    h.file(DNF5_DEFAULTS, sample("dnf/dnf5-automatic.conf").replace("apply_updates = no", "apply_updates = yes"))
    h.file(DNF5_OLD, "[commands]\nupgrade_type = security\n")
    r = h.check(3)
    assert r.status is Status.FAIL  # the packaged "yes" is not read when the /etc file exists
    assert f"apply_updates = no in {DNF5_OLD}" in r.summary


def test_dnf5_dnf_automatic_timer_alias_uses_dnf5_config() -> None:
    # dnf5-automatic.timer is also reachable as dnf-automatic.timer (Alias=): dnf5's configuration applies.
    h = dnf5_host("5.2.8.1-3.fc41").file("/etc/dnf/automatic.conf", "[commands]\napply_updates = yes\n")
    del h.stats["/etc/systemd/system/timers.target.wants/dnf5-automatic.timer"]
    h.enabled("dnf-automatic.timer")
    r = h.check(3)
    assert r.status is Status.PASS
    assert "dnf-automatic.timer (/etc/dnf/automatic.conf:2: apply_updates = yes" in r.summary


def test_dnf5_install_timer_passes() -> None:
    # The unit is upstream's dnf5-automatic-install.timer (--installupdates in its service).
    h = dnf5_host("5.2.16.0-1.fc43")
    del h.stats["/etc/systemd/system/timers.target.wants/dnf5-automatic.timer"]
    h.stat("/usr/lib/systemd/system/dnf5-automatic-install.timer").enabled("dnf5-automatic-install.timer")
    assert "--installupdates" in sample("dnf/dnf5-automatic-install.service")
    assert "WantedBy=timers.target" in sample("dnf/dnf5-automatic-install.timer")
    r = h.check(3)
    assert r.status is Status.PASS
    assert r.summary.startswith("updates are installed automatically by dnf5-automatic-install.timer")


def test_dnf5_unknown_version_assumes_newest() -> None:
    h = dnf5_host(None).file("/etc/dnf/automatic.conf", "[commands]\napply_updates = yes\n")
    assert h.check(3).status is Status.PASS


def test_masked_dnf_timer_does_not_count() -> None:
    text = sample("dnf/el9-automatic.conf").replace("apply_updates = no", "apply_updates = yes")
    h = rhel_host().file("/etc/dnf/automatic.conf", text).enabled("dnf-automatic.timer")
    h.masked("dnf-automatic.timer")
    assert h.check(3).status is Status.FAIL


def test_unknown_distribution_is_manual() -> None:
    h = Host().file("/etc/os-release", 'ID=gentoo\nPRETTY_NAME="Gentoo"\n')
    assert h.check(3).status is Status.MANUAL


# -- parsers -------------------------------------------------------------------------------------------


def test_periodic_values() -> None:
    assert periodic_enabled("1") and periodic_enabled("always") and periodic_enabled("12h")
    assert periodic_enabled("00")  # apt.systemd.daily only treats exactly "0" as off
    assert not periodic_enabled("0") and not periodic_enabled(None) and not periodic_enabled("")


def test_legacy_allowed_origins() -> None:
    assert (
        legacy_to_pattern("${distro_id}:${distro_codename}-security")
        == "o=${distro_id},a=${distro_codename}-security"
    )
    assert legacy_to_pattern("Debian stable") == "o=Debian,a=stable"
    assert legacy_to_pattern(r"Foo\:Bar:jammy") == "o=Foo:Bar,a=jammy"
    with pytest.raises(PatternError):
        legacy_to_pattern("one two three")
    assert (
        expand("${distro_id}:$distro_codename", {"distro_id": "Ubuntu", "distro_codename": "noble"})
        == "Ubuntu:noble"
    )


def test_pattern_matching() -> None:
    repo = Repo(
        {
            "origin": ("Debian",),
            "label": ("Debian-Security",),
            "archive": ("oldstable-security",),
            "codename": ("bookworm-security",),
            "site": ("deb.debian.org",),
        },
        "t",
    )
    assert pattern_matches("origin=Debian,codename=bookworm-security,label=Debian-Security", repo)
    assert pattern_matches("o=Debian,n=*-security", repo)
    assert pattern_matches("origin=Debian,component=main", repo)  # unknown attributes match anything
    assert not pattern_matches("origin=Debian,codename=bookworm,label=Debian-Security", repo)
    assert pattern_matches(
        r"site=deb.debian.org,l=Debian\,Security", Repo({"label": ("Debian,Security",)}, "t")
    )
    with pytest.raises(PatternError):
        pattern_matches("frob=1", repo)


def test_security_repos_from_release_and_defaults() -> None:
    path = "/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_InRelease"
    rel = ReleaseInfo(path, parse_release(sample("apt/lists-debian12-security_InRelease")))
    repos = security_repos("debian", "12", "bookworm", [rel])
    assert repos[0].attrs["archive"] == ("oldstable-security",) and repos[0].attrs["site"] == (
        "deb.debian.org",
    )
    old = security_repos("debian", "10", "buster", [])
    assert old[0].attrs["codename"] == ("buster",)
    assert security_repos("ubuntu", "22.04", "jammy", [])[0].attrs["archive"] == ("jammy-security",)
    assert security_repos("gentoo", "", "", []) == []


def test_log_parser() -> None:
    assert last_success_in_log("garbage\n2026-13-99 00:00:00,1 INFO All upgrades installed\n") is None


def test_ini_and_automatic_config() -> None:
    sections = parse_ini(sample("dnf/el9-automatic.conf"))
    assert sections["commands"]["apply_updates"][0] == "no"
    assert (
        sections["commands"]["reboot_command"][0]
        == "shutdown -r +5 'Rebooting after applying package updates'"
    )
    cfg = automatic_config("[commands]\napply_updates = maybe\n", "/x")
    assert cfg.error == "/x:2: apply_updates = maybe is not a boolean"
    assert automatic_config(None, "/x").apply_updates is False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), st.text(max_size=200))
def test_garbage_never_crashes(apt_text: str, dnf_text: str) -> None:
    r = debian_host().file("/etc/apt/apt.conf.d/50unattended-upgrades", apt_text).check(3)
    assert r.status in (Status.PASS, Status.FAIL, Status.WARN), messages(r)
    r = rhel_host().file("/etc/dnf/automatic.conf", dnf_text).enabled("dnf-automatic.timer").check(3)
    assert r.status in (Status.PASS, Status.FAIL), messages(r)


YUM_CRON_CONF = (
    "[commands]\nupdate_cmd = security\nupdate_messages = yes\ndownload_updates = yes\napply_updates = no\n"
)


def yum_cron_host(conf: str = YUM_CRON_CONF) -> Host:
    h = Host("centos9").systemd().stat("/usr/lib/systemd/system/yum-cron.service")
    h.file("/etc/yum/yum-cron.conf", conf)
    h.enabled("yum-cron.service", "multi-user.target")
    h.stat("/etc/cron.daily/0yum-daily.cron").stat("/usr/sbin/crond").enabled("crond.service", "multi-user.target")
    return h


def test_yum_cron_without_cron_daemon_fails() -> None:
    h = yum_cron_host(YUM_CRON_CONF.replace("apply_updates = no", "apply_updates = yes"))
    assert h.check(3).status is Status.PASS
    del h.stats["/usr/sbin/crond"]
    del h.stats["/etc/systemd/system/multi-user.target.wants/crond.service"]
    r = h.check(3)
    assert r.status is Status.FAIL
    assert r.summary == (
        "yum-cron runs from cron (/etc/cron.daily/0yum-daily.cron) but no cron daemon installed "
        "(/usr/sbin/cron, /usr/sbin/crond absent): it never runs"
    )
    assert r.findings[0].remediation == "yum install cronie cronie-anacron && systemctl enable --now crond"


def test_yum_cron_with_crond_disabled_fails() -> None:
    h = yum_cron_host(YUM_CRON_CONF.replace("apply_updates = no", "apply_updates = yes"))
    del h.stats["/etc/systemd/system/multi-user.target.wants/crond.service"]
    r = h.check(3)
    assert r.status is Status.FAIL
    assert r.summary.startswith("yum-cron runs from cron (/etc/cron.daily/0yum-daily.cron) but /usr/sbin/crond")
    h = yum_cron_host(YUM_CRON_CONF.replace("apply_updates = no", "apply_updates = yes")).masked("crond.service")
    r = h.check(3)  # the enablement link is still there, but a masked unit never starts
    assert r.status is Status.FAIL
    assert "but the cron daemon is masked (crond.service): it never runs" in r.summary


def test_yum_cron_job_missing_fails() -> None:
    h = yum_cron_host(YUM_CRON_CONF.replace("apply_updates = no", "apply_updates = yes"))
    del h.stats["/etc/cron.daily/0yum-daily.cron"]
    r = h.check(3)
    assert r.status is Status.FAIL
    assert r.summary == (
        "yum-cron.service is enabled but /etc/cron.daily/0yum-daily.cron is missing: nothing runs yum-cron"
    )


def test_el7_yum_cron() -> None:
    conf = YUM_CRON_CONF
    h = yum_cron_host()
    r = h.check(3)
    assert r.status is Status.FAIL
    assert r.summary == (
        "yum-cron.service downloads updates but does not install them "
        "(apply_updates = no in /etc/yum/yum-cron.conf)"
    )
    h.file("/etc/yum/yum-cron.conf", conf.replace("apply_updates = no", "apply_updates = yes"))
    r = h.check(3)
    assert r.status is Status.PASS
    assert "upgrade_type = security" in r.summary
