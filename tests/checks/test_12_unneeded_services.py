"""Services fact (systemctl, unit symlinks, inetd/xinetd) and Check-Security-12 (unneeded services)."""

from __future__ import annotations

import stat

from nectar_audit.checks.unneeded_services import run
from nectar_audit.config import Config
from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.system.processes import PS_COMMAND
from nectar_audit.facts.system.services import (
    SYSTEMCTL_COMMAND,
    parse_inetd,
    parse_list_unit_files,
    parse_list_units,
    parse_xinetd,
    services,
)
from nectar_audit.facts.system.sockets import SS_COMMAND
from nectar_audit.model import Status

# `systemctl list-unit-files --state=enabled --no-legend --no-pager` / `systemctl list-units --type=…
# --state=running,listening,waiting --no-legend --no-pager --plain`, systemd 255 (Ubuntu 24.04) format.
UNIT_FILES = """\
apparmor.service                   enabled enabled
cron.service                       enabled enabled
cups.service                       enabled enabled
ssh.service                        enabled enabled
cups.socket                        enabled enabled
getty@.service                     enabled enabled
apt-daily.timer                    enabled enabled
remote-fs.target                   enabled enabled
"""
UNITS = """\
cron.service                loaded active running   Regular background program processing daemon
cups.service                loaded active running   CUPS Scheduler
ssh.service                 loaded active running   OpenBSD Secure Shell server
redis-server.service        loaded active running   Advanced key-value store
cups.socket                 loaded active listening CUPS Scheduler
apt-daily.timer             loaded active waiting   Daily apt download activities
"""
OS = b'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'
LINK = stat.S_IFLNK | 0o777


def _ps(*rows: tuple[int, int, str, str, str]) -> str:
    return "#ps\n" + "".join(
        f"{pid:>10} {ppid:>10} {0:>10} {user:<32} {comm:<16} {args}\n" for pid, ppid, user, comm, args in rows
    )


def _systemd_bundle(ss: str = "") -> Bundle:
    b = Bundle("t", "local", True, uid=0)
    b.add_file("/etc/os-release", OS)
    b.commands[SYSTEMCTL_COMMAND] = CommandRecord(f"#enabled\n{UNIT_FILES}#running\n{UNITS}")
    b.commands[PS_COMMAND] = CommandRecord(
        _ps(
            (1, 0, "root", "systemd", "/sbin/init"),
            (700, 1, "redis", "redis-server", "/usr/bin/redis-server *:6379"),
            (710, 1, "root", "cupsd", "/usr/sbin/cupsd -l"),
        )
    )
    b.commands[SS_COMMAND] = CommandRecord("#ss\n" + ss + "#bindv6only 0\n")
    return b


def test_parsers() -> None:
    assert parse_list_unit_files(UNIT_FILES) == {
        "apparmor.service",
        "cron.service",
        "cups.service",
        "ssh.service",
        "cups.socket",
        "getty@.service",
        "apt-daily.timer",
        "remote-fs.target",
    }
    assert parse_list_units(UNITS) == {
        "cron.service",
        "cups.service",
        "ssh.service",
        "redis-server.service",
        "cups.socket",
        "apt-daily.timer",
    }
    assert parse_list_units("● foo.service loaded failed failed Foo\n") == set()


def test_services_live_systemd() -> None:
    svc = Facts(_systemd_bundle()).get(services)
    assert svc.systemd and svc.running_known and svc.running_units
    assert svc.is_enabled("cups") and svc.is_enabled("cups.socket") and svc.is_enabled("apt-daily.timer")
    assert not svc.is_enabled("avahi-daemon")
    assert svc.is_running("redis-server") and not svc.is_running("avahi-daemon")


def test_services_offline_from_symlinks() -> None:
    b = Bundle("root:/img", "rootfs", False)
    b.add_file("/etc/os-release", OS)
    for path, size in (
        ("/etc/systemd/system", 4096),
        ("/etc/systemd/system/multi-user.target.wants/ssh.service", 31),
        ("/etc/systemd/system/sockets.target.wants/avahi-daemon.socket", 40),
        ("/etc/systemd/system/multi-user.target.wants/avahi-daemon.service", 41),
        ("/etc/systemd/system/cups.service", 9),  # masked: -> /dev/null
        ("/etc/systemd/system/sshd.service", 31),  # alias
        ("/etc/rc2.d/S01tftpd-hpa", 20),
        ("/usr/lib/systemd/systemd", 100),
    ):
        mode = (
            (stat.S_IFDIR | 0o755)
            if size == 4096
            else LINK
            if "/usr/lib" not in path
            else stat.S_IFREG | 0o755
        )
        b.stats[path] = StatRecord(mode, 0, 0, size, 0)
    svc = Facts(b).get(services)
    assert svc.systemd and not svc.running_known
    assert svc.enabled >= {"ssh.service", "avahi-daemon.socket", "avahi-daemon.service", "tftpd-hpa.service"}
    assert svc.is_masked("cups") and not svc.is_enabled("cups")
    assert svc.notes == ("what runs cannot be known from an offline image",)
    findings = run(Facts(b))
    by = {f.message: f.status for f in findings}
    assert by["tftp is enabled at boot: serves files without any authentication"] is Status.FAIL
    assert by["avahi is enabled at boot: announces the host and its services by multicast DNS"] is Status.WARN
    assert not any("cups" in m for m in by)


def test_check12_live_systemd() -> None:
    ss = (
        'tcp LISTEN 0 511 0.0.0.0:6379 0.0.0.0:* users:(("redis-server",pid=700,fd=6)) '
        "uid:109 ino:1 sk:1 <->\n"
        'tcp LISTEN 0 4096 127.0.0.1:631 0.0.0.0:* users:(("cupsd",pid=710,fd=7)) ino:2 sk:2 <->\n'
    )
    findings = run(Facts(_systemd_bundle(ss)))
    statuses = {f.message: f.status for f in findings}
    redis = next(f for f in findings if f.message.startswith("Redis"))
    assert redis.status is Status.FAIL
    assert redis.message == "Redis listens beyond loopback on 0.0.0.0:6379/tcp"
    assert "Bind redis to 127.0.0.1" in (redis.remediation or "")
    cups = next(f for f in findings if f.message.startswith("cups"))
    assert cups.status is Status.WARN and cups.message.startswith("cups is running: a print server")
    assert "systemctl disable --now cups.service cups.socket" in (cups.remediation or "")
    assert "apt purge cups" in (cups.remediation or "")
    inv = findings[-1]
    assert inv.message.startswith("Inventory: 5 running unit(s)") and inv.status is Status.PASS
    assert Status.FAIL in statuses.values()


def test_check12_allowlist_and_loopback_datastore() -> None:
    ss = 'tcp LISTEN 0 511 127.0.0.1:6379 0.0.0.0:* users:(("redis-server",pid=700,fd=6)) ino:1 sk:1 <->\n'
    facts = Facts(_systemd_bundle(ss), Config(allowed_services=("cups",)))
    findings = run(facts)
    msgs = {f.message: f.status for f in findings}
    assert msgs["cups is running and allowed by services.allowed in the config"] is Status.PASS
    assert msgs["Redis runs and listens on loopback only"] is Status.PASS
    assert all(f.status is Status.PASS for f in findings)


def test_check12_no_systemd_uses_processes_and_inetd() -> None:
    b = Bundle("t", "local", True, uid=0)
    b.add_file("/etc/os-release", b'ID=rocky\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n')
    b.commands[SYSTEMCTL_COMMAND] = CommandRecord("#nosystemd\n")
    b.commands[PS_COMMAND] = CommandRecord(
        _ps((1, 0, "root", "tini", "/tini -- sh"), (9, 1, "root", "xinetd", "/usr/sbin/xinetd -stayalive"))
    )
    b.commands[SS_COMMAND] = CommandRecord("#ss\n#bindv6only 0\n")
    b.add_file(
        "/etc/xinetd.d/telnet", b"service telnet\n{\n\tdisable = no\n\tserver = /usr/sbin/in.telnetd\n}\n"
    )
    b.add_file("/etc/xinetd.d/tftp", b"service tftp\n{\n\tdisable\t= yes\n\tserver = /usr/sbin/in.tftpd\n}\n")
    b.add_file(
        "/etc/inetd.conf",
        b"#discard stream tcp nowait root internal\ndaytime stream tcp nowait root internal\n",
    )
    svc = Facts(b).get(services)
    assert not svc.systemd and svc.running_known and not svc.running_units and svc.is_running("xinetd")
    findings = run(Facts(b))
    msgs = {f.message: f.status for f in findings}
    assert msgs["telnet is enabled at boot: sends passwords in clear text"] is Status.FAIL
    assert (
        msgs["xinetd is running: a super-server that starts legacy network services on demand"] is Status.WARN
    )
    assert msgs["inetd service daytime is enabled (internal)"] is Status.WARN
    assert not any("tftp" in m for m in msgs)
    telnet = next(f for f in findings if f.message.startswith("telnet"))
    assert telnet.evidence[0].source == "/etc/xinetd.d/telnet:1"
    assert "dnf remove telnet-server" in (telnet.remediation or "")


def test_inetd_parsers() -> None:
    (s,) = parse_inetd(
        "telnet stream tcp nowait root /usr/sbin/tcpd /usr/sbin/in.telnetd\n# x\n", "/etc/inetd.conf"
    )
    assert (s.name, s.server, s.source) == ("telnet", "/usr/sbin/tcpd", "/etc/inetd.conf:1")
    assert parse_xinetd("service x { disable = yes }", "/f") == []
    assert [
        s.name for s in parse_xinetd("service a\n{\n server = /a\n}\nservice b\n{\n disable = no\n}\n", "/f")
    ] == ["a", "b"]


def test_the_audit_itself_is_not_in_the_process_list() -> None:
    from nectar_audit.facts.system.processes import Process, without_gatherer

    procs = [
        Process(1, 0, "root", "init", "/sbin/init"),
        Process(100, 1, "root", "sshd", "sshd: /usr/sbin/sshd -D"),
        Process(200, 100, "root", "sshd", "sshd: alice [priv]"),
        Process(300, 200, "root", "sudo", "sudo -n sh -s"),
        Process(301, 300, "root", "sh", "sh -s"),
        Process(302, 301, "root", "sh", "sh -s"),
        Process(303, 302, "root", "ps", "ps -eo ..."),
        Process(400, 1, "root", "cron", "/usr/sbin/cron -f"),
    ]
    assert [p.pid for p in without_gatherer(procs, 301)] == [1, 100, 200, 400]
    # Without sudo above it, only the script and its children are removed.
    assert [p.pid for p in without_gatherer(procs[:3] + procs[4:], 301)] == [1, 100, 200, 400]


def test_sudos_orphaned_mailer_fork_is_ours_too() -> None:
    """Captured in the lab: sudo could not resolve the host name and mailed root through a double fork,
    so a copy of our ``sudo -n sh -s`` briefly hung off PID 1 while the gatherer listed processes."""
    from nectar_audit.facts.system.processes import parse_ps, without_gatherer

    ps = """\
         1          0          0 root                             sh               sh -c set -e ...
         8          1          0 root                             sshd             sshd: /usr/sbin/sshd -D -e
      2437          8          0 root                             sshd             sshd: auditor [priv]
      2439       2437       2001 auditor                          sshd             sshd: auditor@notty
      2440       2439       2001 auditor                          sh               sh -c sudo -n sh -s
      2441       2440          0 root                             sudo             sudo -n sh -s
      2443          1          0 root                             sudo             sudo -n sh -s
      2445       2441          0 root                             sh               sh -s
      2446          1          0 root                             sudo             sudo -i
      2447          1       2001 auditor                          sendmail         sendmail -t
"""
    left = [p.pid for p in without_gatherer(parse_ps(ps), 2445)]
    # A different sudo, and the mailer once it has become sendmail, are not ours to hide.
    assert left == [1, 8, 2437, 2439, 2440, 2446, 2447]
