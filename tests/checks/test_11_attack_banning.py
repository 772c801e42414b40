"""Check-Security-11 on evidence bundles shaped like Debian 12, Ubuntu 24.04 and Rocky 9 hosts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import all_needs
from nectar_audit.checks import attack_banning
from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.ssh.fail2ban import F2B_LOG_COMMAND, FAILED_COMMAND, LIBWRAP_COMMAND, STATUS_COMMAND
from nectar_audit.model import Finding, Status, worst
from tests import SAMPLES

SAMPLES = SAMPLES / "fail2ban"
DEBIAN12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
UBUNTU24 = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'
ROCKY9 = (
    'PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
)
T = 1_735_000_000
STATUS_OK = (
    "#status 0\nStatus\n|- Number of jail:\t1\n`- Jail list:\tsshd\n#jail sshd 0\n"
    "Status for the jail: sshd\n|- Filter\n|  |- Currently failed:\t0\n|  |- Total failed:\t12\n"
    "|  `- File list:\t/var/log/auth.log\n`- Actions\n   |- Currently banned:\t1\n"
    "   |- Total banned:\t2\n   `- Banned IP list:\t192.0.2.7\n"
)


def ps(*names: str) -> str:
    rows = ["#ps"]
    for i, n in enumerate(("systemd", "sshd", *names), 1):
        rows.append(f"{i:>10} {0:>10} {0:>10} {'root':<32} {n[:15]:<16} /usr/sbin/{n}")
    return "\n".join(rows) + "\n"


def make_bundle(
    sample: str | None = "debian12-1.0.2",
    *,
    os_release: str = DEBIAN12,
    live: bool = True,
    uid: int = 0,
    extra: Mapping[str, str] = {},
    stats: Iterable[str] = ("/usr/sbin/sshd", "/usr/bin/fail2ban-server", "/lib/systemd/system/ssh.service"),
    links: Iterable[str] = ("/etc/systemd/system/multi-user.target.wants/fail2ban.service",),
    commands: Mapping[str, str] = {},
    procs: Iterable[str] | None = ("fail2ban-server", "rsyslogd"),
) -> Bundle:
    b = Bundle(
        "t",
        "local" if live else "rootfs",
        live,
        uid=uid if live else None,
        gathered_at="2025-01-03T12:00:00+00:00",
        sanitizers=all_needs().sanitize,
    )
    b.add_file("/etc/os-release", os_release.encode())
    if sample is not None:
        base = SAMPLES / sample
        for p in sorted(base.rglob("*")):
            if p.is_file() and p.name != "README.md":
                b.add_file(f"/etc/fail2ban/{p.relative_to(base)}", p.read_bytes())
    for path, text in extra.items():
        b.add_file(path, text.encode())
    for path in stats:
        b.stats[path] = StatRecord(0o100644, 0, 0, 100, T)
    for path in links:
        b.stats[path] = StatRecord(0o120777, 0, 0, 40, T)
    if live and procs is not None:
        b.commands["processes.ps"] = CommandRecord(ps(*procs))
    for name, out in commands.items():
        b.commands[name] = CommandRecord(out)
    return b


def run(b: Bundle) -> tuple[Status, list[Finding]]:
    findings = attack_banning.run(Facts(b))
    return worst([f.status for f in findings]), findings


def messages(findings: list[Finding], status: Status | None = None) -> list[str]:
    return [f.message for f in findings if status is None or f.status is status]


def test_debian12_running_with_live_status_passes_and_counts_failures() -> None:
    b = make_bundle(
        stats=("/usr/sbin/sshd", "/var/log/auth.log", "/lib/systemd/system/ssh.service"),
        commands={
            STATUS_COMMAND: STATUS_OK,
            FAILED_COMMAND: "#files /var/log/auth.log\n40 2025-01-02\n2 2024-12-01\n",
        },
    )
    status, findings = run(b)
    assert status is Status.PASS
    msg = findings[0].message
    assert msg == (
        "fail2ban protects sshd: jail sshd (active, bans with iptables-multiport) "
        "(40 failed SSH logins in the last 7 days)"
    )
    details = [e.detail for e in findings[0].evidence]
    assert "watching /var/log/auth.log; currently banned 1, total banned 2" in details
    assert "40 failed SSH logins in the last 7 days" in details


def test_debian12_default_without_rsyslog_cannot_start() -> None:
    # Debian 12 cloud images: journald only, no /var/log/auth.log; the stock jail reads that file.
    b = make_bundle(
        procs=(), commands={STATUS_COMMAND: "#not-running\n", FAILED_COMMAND: "#journal\n3 2025-01-03\n"}
    )
    status, findings = run(b)
    assert status is Status.FAIL
    fails = messages(findings, Status.FAIL)
    assert fails[0] == "fail2ban is installed but not running"
    assert fails[1] == (
        "fail2ban jail sshd reads /var/log/auth.log, which does not exist and no syslog daemon runs "
        "to write it: fail2ban cannot start this jail (sshd logs only to the journal here)"
    )
    assert findings[1].evidence[0].source == "/etc/fail2ban/jail.conf:281"
    assert "backend = systemd" in (findings[1].remediation or "")


def test_port_mismatch_fails_unless_allports() -> None:
    extra = {"/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nPort 2222\n"}
    base = dict(stats=("/usr/sbin/sshd", "/var/log/auth.log"), commands={STATUS_COMMAND: STATUS_OK})
    status, findings = run(make_bundle(extra=extra, **base))  # type: ignore[arg-type]
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL) == [
        "fail2ban jail sshd blocks port ssh (/etc/fail2ban/jail.conf:280), but sshd listens on 2222: banned "
        "attackers can keep trying"
    ]
    assert "port = 2222" in (findings[0].remediation or "")
    allports = {**extra, "/etc/fail2ban/jail.local": "[DEFAULT]\nbanaction = iptables-allports\n"}
    status, findings = run(make_bundle(extra=allports, **base))  # type: ignore[arg-type]
    assert status is Status.PASS, messages(findings)
    fixed = {**extra, "/etc/fail2ban/jail.d/sshd.local": "[sshd]\nport = ssh,2222\n"}
    assert run(make_bundle(extra=fixed, **base))[0] is Status.PASS  # type: ignore[arg-type]


def test_hostsdeny_needs_libwrap() -> None:
    hd = {"/etc/fail2ban/jail.local": "[DEFAULT]\nbanaction = hostsdeny\n[sshd]\nenabled = true\n"}
    rocky = make_bundle(
        "rocky9-epel-1.0.2",
        os_release=ROCKY9,
        extra=hd,
        stats=("/usr/sbin/sshd", "/usr/lib/systemd/system/sshd.service"),
        commands={LIBWRAP_COMMAND: "/usr/sbin/sshd:0\n/dev/null:0\n"},
    )
    status, findings = run(rocky)
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL) == [
        "fail2ban jail sshd bans through /etc/hosts.deny (banaction hostsdeny), but sshd is not linked "
        "with libwrap "
        "and ignores that file (command: grep -c libwrap /usr/sbin/sshd /dev/null)"
    ]
    assert "firewallcmd-rich-rules" in (findings[0].remediation or "")
    debian = make_bundle(
        extra=hd,
        stats=("/usr/sbin/sshd", "/var/log/auth.log"),
        commands={LIBWRAP_COMMAND: "/usr/sbin/sshd:2\n/dev/null:0\n"},
    )
    assert run(debian)[0] is Status.PASS
    # Offline, RHEL 8+ is known to have no TCP wrappers at all.
    offline = make_bundle(
        "rocky9-epel-1.0.2", os_release=ROCKY9, extra=hd, live=False, stats=("/usr/sbin/sshd",)
    )
    status, findings = run(offline)
    assert status is Status.FAIL
    assert "RHEL 8 and later and Fedora ship no TCP wrappers" in messages(findings, Status.FAIL)[0]


def test_rocky9_epel_enables_no_jail_then_journal_jail_passes() -> None:
    common = dict(
        os_release=ROCKY9,
        stats=("/usr/sbin/sshd", "/usr/lib/systemd/system/sshd.service"),
        procs=("fail2ban-server",),
        commands={STATUS_COMMAND: "#status 0\nStatus\n|- Number of jail:\t0\n`- Jail list:\t\n"},
    )
    status, findings = run(make_bundle("rocky9-epel-1.0.2", **common))  # type: ignore[arg-type]
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL)[0] == "fail2ban runs, but none of its active jails watches sshd"
    # Configured but the server was not asked (not root): the configuration is judged.
    enabled = {"/etc/fail2ban/jail.d/sshd.local": "[sshd]\nenabled = true\n"}
    b = make_bundle(
        "rocky9-epel-1.0.2",
        extra=enabled,
        uid=1000,
        **{**common, "commands": {STATUS_COMMAND: "#status 255\nPermission denied\n"}},
    )  # type: ignore[arg-type]
    status, findings = run(b)
    assert status is Status.PASS, messages(findings)
    assert findings[0].message == (
        "fail2ban protects sshd: jail sshd (enabled, bans with firewallcmd-rich-rules)"
    )


def test_openssh_98_sshd_session_needs_filter_support() -> None:
    stats = (
        "/usr/sbin/sshd",
        "/usr/lib/openssh/sshd-session",
        "/var/log/auth.log",
        "/lib/systemd/system/ssh.service",
    )
    b = make_bundle(os_release=UBUNTU24, stats=stats, commands={STATUS_COMMAND: STATUS_OK})
    status, findings = run(b)
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL) == [
        "fail2ban's sshd filter only matches log lines of process 'sshd', but this OpenSSH (9.8 or later) "
        "logs "
        "failed logins as 'sshd-session': jail sshd never sees an attack"
    ]
    assert findings[0].evidence[0].source == "/etc/fail2ban/filter.d/sshd.conf:19"
    fixed = {"/etc/fail2ban/filter.d/sshd.local": "[DEFAULT]\n_daemon = sshd(?:-session)?\n"}
    assert (
        run(make_bundle(os_release=UBUNTU24, stats=stats, extra=fixed, commands={STATUS_COMMAND: STATUS_OK}))[
            0
        ]
        is Status.PASS
    )


def test_journal_backend_with_journalmatch_of_other_unit() -> None:
    # Debian runs ssh.service; with OpenSSH 9.8+ the messages come from sshd-session processes, which the
    # stock journalmatch (_SYSTEMD_UNIT=sshd.service + _COMM=sshd) does not select.
    extra = {
        "/etc/fail2ban/jail.d/sshd.local": "[sshd]\nbackend = systemd\n",
        "/etc/fail2ban/filter.d/sshd.local": "[DEFAULT]\n_daemon = sshd(?:-session)?\n",
    }
    stats = ("/usr/sbin/sshd", "/usr/lib/openssh/sshd-session", "/lib/systemd/system/ssh.service")
    status, findings = run(make_bundle(extra=extra, stats=stats, procs=("fail2ban-server",)))
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL) == [
        "fail2ban jail sshd reads the journal with `_SYSTEMD_UNIT=sshd.service + _COMM=sshd`, which "
        "matches none "
        "of sshd's messages here (sshd runs as ssh.service, its sessions as sshd-session)"
    ]
    # Without sshd-session, _COMM=sshd matches Debian's sshd: fine.
    ok = run(
        make_bundle(
            extra=extra,
            stats=("/usr/sbin/sshd", "/lib/systemd/system/ssh.service"),
            procs=("fail2ban-server",),
        )
    )
    assert ok[0] is Status.PASS, messages(ok[1])


def test_file_backend_without_syslog_daemon() -> None:
    b = make_bundle(
        stats=("/usr/sbin/sshd", "/var/log/auth.log"),
        procs=("fail2ban-server",),
        commands={STATUS_COMMAND: STATUS_OK},
    )
    status, findings = run(b)
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL) == [
        "fail2ban jail sshd reads /var/log/auth.log, but no syslog daemon runs to write it: sshd's "
        "failures only "
        "reach the journal"
    ]


def test_notify_only_action() -> None:
    extra = {"/etc/fail2ban/jail.local": "[sshd]\naction = sendmail-whois[name=sshd, dest=root]\n"}
    status, findings = run(make_bundle(extra=extra, stats=("/usr/sbin/sshd", "/var/log/auth.log")))
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL)[0] == (
        "fail2ban jail sshd only notifies (sendmail-whois[name=sshd, dest=root]): it bans nobody"
    )


def test_disabled_jail_and_not_enabled_at_boot_offline() -> None:
    off = {"/etc/fail2ban/jail.local": "[sshd]\nenabled = false\n"}
    status, findings = run(make_bundle(extra=off, live=False, stats=("/usr/sbin/sshd", "/usr/sbin/rsyslogd")))
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL) == [
        "no enabled fail2ban jail watches sshd ([sshd] enabled = false, /etc/fail2ban/jail.local:2)"
    ]
    status, findings = run(make_bundle(live=False, links=(), stats=("/usr/sbin/sshd", "/usr/sbin/rsyslogd")))
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL) == [
        "fail2ban is installed but fail2ban.service is not enabled at boot"
    ]
    status, findings = run(make_bundle(live=False, stats=("/usr/sbin/sshd", "/usr/sbin/rsyslogd")))
    assert status is Status.PASS, messages(findings)


def test_no_tool_and_no_sshd() -> None:
    status, findings = run(
        make_bundle(
            None,
            stats=("/usr/sbin/sshd",),
            links=(),
            procs=(),
            commands={FAILED_COMMAND: "#journal\n17 2025-01-01\n"},
        )
    )
    assert status is Status.FAIL
    assert findings[0].message == (
        "no SSH attack banning tool (fail2ban, sshguard, CrowdSec, DenyHosts) is installed "
        "(17 failed SSH logins in the last 7 days)"
    )
    assert "apt install fail2ban" in (findings[0].remediation or "")
    status, findings = run(make_bundle(None, stats=(), links=()))
    assert status is Status.NOT_APPLICABLE
    assert findings[0].message == "no SSH server (sshd) is installed"


def test_crowdsec_needs_a_bouncer_and_the_sshd_collection() -> None:
    stats = (
        "/usr/sbin/sshd",
        "/usr/bin/crowdsec",
        "/etc/crowdsec/collections/sshd.yaml",
        "/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml",
    )
    status, findings = run(
        make_bundle(None, stats=stats, links=(), procs=("crowdsec", "crowdsec-firewall-bouncer"))
    )
    assert status is Status.PASS, messages(findings)
    assert findings[0].message == "CrowdSec protects sshd"
    status, findings = run(make_bundle(None, stats=stats[:3], links=(), procs=("crowdsec",)))
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL)[0].startswith("CrowdSec: no bouncer is installed")


def test_sshguard_running_passes_and_broken_fail2ban_only_warns_then() -> None:
    b = make_bundle(
        stats=("/usr/sbin/sshd", "/usr/sbin/sshguard"),
        procs=("sshguard",),
        commands={STATUS_COMMAND: "#not-running\n"},
    )
    status, findings = run(b)
    assert status is Status.WARN
    assert findings[0].status is Status.PASS and findings[0].message == "sshguard protects sshd"
    assert "fail2ban is installed but not running" in messages(findings, Status.WARN)


def test_non_root_live_failed_logins_not_counted() -> None:
    b = make_bundle(
        uid=1000,
        stats=("/usr/sbin/sshd", "/var/log/auth.log"),
        commands={STATUS_COMMAND: "#status 255\nPermission denied\n", FAILED_COMMAND: "#journal\n"},
    )
    status, findings = run(b)
    assert status is Status.PASS
    assert "failed SSH logins" not in findings[0].message


def test_running_but_not_enabled_at_boot_warns() -> None:
    b = make_bundle(
        links=(), stats=("/usr/sbin/sshd", "/var/log/auth.log"), commands={STATUS_COMMAND: STATUS_OK}
    )
    status, findings = run(b)
    assert status is Status.WARN
    assert messages(findings, Status.WARN) == [
        "fail2ban runs now but is not enabled at boot: the next reboot leaves sshd unprotected"
    ]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300), st.text(max_size=200), st.text(max_size=200))
def test_garbage_config_never_crashes(jail_local: str, filt: str, status_out: str) -> None:
    b = make_bundle(
        extra={"/etc/fail2ban/jail.local": jail_local, "/etc/fail2ban/filter.d/sshd.local": filt},
        stats=("/usr/sbin/sshd", "/usr/lib/openssh/sshd-session", "/var/log/auth.log"),
        commands={STATUS_COMMAND: status_out, FAILED_COMMAND: status_out, LIBWRAP_COMMAND: status_out},
    )
    findings = attack_banning.run(Facts(b))
    assert findings and all(f.message for f in findings)


# -- whether the ban actions can ban at all -----------------------------------------------------------
TOOLS_NFT_ONLY = ("/usr/bin/sh", "/usr/sbin/nft")
F2B_LOG_LINES = (
    "2025-01-03 11:00:01,100 fail2ban.utils [88]: ERROR 7f3c -- stderr: '/bin/sh: 1: iptables: not found'\n"
    "2025-01-03 11:00:01,100 fail2ban.utils [88]: ERROR 7f3c -- returned 127\n"
    "2025-01-03 11:00:01,101 fail2ban.actions [88]: ERROR Failed to execute ban jail 'sshd' action "
    "'iptables-multiport' info 'ActionInfo({'ip': '192.0.2.50'})': Error starting action Jail('sshd')/"
    "iptables-multiport\n"
)


def _with_tools(*tools: str, **kw: object) -> Bundle:
    stats = ("/usr/sbin/sshd", "/usr/bin/fail2ban-server", "/lib/systemd/system/ssh.service", *tools)
    return make_bundle(stats=stats, **kw)  # type: ignore[arg-type]


def test_iptables_action_on_a_host_without_iptables_fails_and_cites_fail2bans_log() -> None:
    b = _with_tools(*TOOLS_NFT_ONLY, commands={STATUS_COMMAND: STATUS_OK, F2B_LOG_COMMAND: F2B_LOG_LINES},
                    extra={"/var/log/auth.log": ""})
    status, findings = run(b)
    assert status is Status.FAIL
    fail = next(f for f in findings if f.status is Status.FAIL)
    assert fail.message == (
        "fail2ban jail sshd bans with iptables-multiport, whose commands run iptables, which is not installed "
        "here: every ban fails (command not found); fail2ban's log records it (1 failed action(s) since it "
        "started)")
    sources = [e.source for e in fail.evidence]
    assert "/etc/fail2ban/action.d/iptables.conf:48" in sources and "/var/log/fail2ban.log" in sources
    assert "banaction = nftables-multiport" in (fail.remediation or "")
    # Offline the programs decide alone.
    status, findings = run(_with_tools(*TOOLS_NFT_ONLY, live=False))
    assert status is Status.FAIL and "iptables, which is not installed" in findings[0].message


def test_nftables_action_with_nft_installed_passes() -> None:
    b = _with_tools(*TOOLS_NFT_ONLY, commands={STATUS_COMMAND: STATUS_OK},
                    extra={"/etc/fail2ban/jail.local": "[DEFAULT]\nbanaction = nftables-multiport\n"})
    status, findings = run(b)
    assert status is Status.PASS, messages(findings)
    assert findings[0].message.startswith("fail2ban protects sshd: jail sshd (active, bans with nftables-multiport)")


def test_tools_not_looked_for_are_not_judged() -> None:
    # Evidence without the PATH's stat (saved by an older version): no claim either way.
    status, _ = run(make_bundle(commands={STATUS_COMMAND: STATUS_OK}))
    assert status is Status.PASS


def test_ufw_action_with_ufw_disabled_and_firewalld_action_without_firewalld() -> None:
    ufw = _with_tools("/usr/bin/sh", "/usr/sbin/ufw", "/usr/sbin/iptables", commands={STATUS_COMMAND: STATUS_OK},
                      extra={"/etc/fail2ban/jail.local": "[DEFAULT]\nbanaction = ufw\n",
                             "/etc/ufw/ufw.conf": "ENABLED=no\nLOGLEVEL=low\n"})
    status, findings = run(ufw)
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL)[0].startswith(
        "fail2ban jail sshd bans with ufw, but ufw is not enabled (/etc/ufw/ufw.conf: ENABLED=no)")
    fwd = _with_tools("/usr/bin/sh", "/usr/bin/firewall-cmd", commands={STATUS_COMMAND: STATUS_OK},
                      extra={"/etc/fail2ban/jail.local": "[DEFAULT]\nbanaction = firewallcmd-rich-rules\n"})
    status, findings = run(fwd)
    assert status is Status.FAIL
    assert messages(findings, Status.FAIL)[0] == (
        "fail2ban jail sshd bans with firewallcmd-rich-rules, but firewalld does not run: firewall-cmd fails "
        "and no address is banned")


def test_one_working_ban_action_of_several_is_enough() -> None:
    both = "[DEFAULT]\naction = iptables-multiport[port=ssh]\n         nftables-multiport[port=ssh]\n"
    status, findings = run(_with_tools(*TOOLS_NFT_ONLY, commands={STATUS_COMMAND: STATUS_OK},
                                       extra={"/etc/fail2ban/jail.local": both}))
    assert status is Status.WARN, messages(findings)
    assert findings[0].message.startswith(
        "fail2ban protects sshd: jail sshd (active, bans with iptables-multiport, nftables-multiport)")
    assert messages(findings, Status.WARN)[0].startswith("fail2ban jail sshd bans with iptables-multiport, whose")
