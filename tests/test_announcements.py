"""Check-Security-07: the announcement lists per distribution, and whether root's mail reaches anyone."""

from __future__ import annotations

import pytest

from nectar_audit.facts.updates import classify_destination, parse_aliases, root_mail
from nectar_audit.model import Status
from tests.patching_helpers import Host, messages

SEC_REL = "/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_InRelease"
SEC_LIST = (
    "/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"
)


def quiet_debian() -> Host:
    """A Debian host with no pending update, an MTA and root forwarded off the host."""
    h = (
        Host()
        .dpkg()
        .stat("/usr/sbin/sendmail")
        .file("/etc/aliases", "postmaster: root\nroot: ops@example.org\n")
    )
    h.file(
        SEC_REL,
        "Origin: Debian\nLabel: Debian-Security\nSuite: oldstable-security\n"
        "Date: Mon, 30 Nov 2026 10:00:00 UTC\n",
    ).stat(SEC_REL)
    h.file(SEC_LIST, "Package: libssl3\nVersion: 3.0.22-1~deb12u2\nArchitecture: amd64\n").stat(SEC_LIST)
    return h


@pytest.mark.parametrize(
    ("os", "name", "urls"),
    [
        (
            "debian12",
            "Debian",
            [
                "https://lists.debian.org/debian-security-announce/",
                "https://www.debian.org/security/",
                "https://www.debian.org/security/dsa.rdf",
            ],
        ),
        (
            "ubuntu2204",
            "Ubuntu",
            [
                "https://ubuntu.com/security/notices",
                "https://ubuntu.com/security/notices/rss.xml",
                "https://lists.ubuntu.com/mailman/listinfo/ubuntu-security-announce",
            ],
        ),
        (
            "rocky9",
            "Rocky Linux",
            [
                "https://lists.resf.org/mailman3/lists/rocky-announce.lists.resf.org/",
                "https://errata.rockylinux.org/",
            ],
        ),
        (
            "alma9",
            "AlmaLinux",
            [
                "https://lists.almalinux.org/mailman3/lists/announce.lists.almalinux.org/",
                "https://errata.almalinux.org/",
            ],
        ),
        (
            "fedora41",
            "Fedora",
            [
                "https://lists.fedoraproject.org/archives/list/package-announce@lists.fedoraproject.org/",
                "https://bodhi.fedoraproject.org/rss/updates/?type=security",
            ],
        ),
        (
            "centos9",
            "CentOS",
            [
                "https://lists.centos.org/hyperkitty/list/centos-announce@lists.centos.org/",
                "https://access.redhat.com/security/security-updates/",
            ],
        ),
    ],
)
def test_manual_with_the_exact_lists(os: str, name: str, urls: list[str]) -> None:
    r = Host(os).check(7)
    manual = r.findings[0]
    assert manual.status is Status.MANUAL
    assert manual.message.startswith(f"subscribe to the {name} security announcements (")
    assert manual.message.endswith("a subscription cannot be seen from the host")
    assert [e.detail for e in manual.evidence[1:]] == urls
    assert manual.remediation is not None and all(u in manual.remediation for u in urls)


def test_unknown_distribution() -> None:
    r = Host().file("/etc/os-release", 'ID=gentoo\nPRETTY_NAME="Gentoo Linux"\n').check(7)
    assert r.findings[0].status is Status.MANUAL
    assert "Gentoo Linux (no list is known to this tool for it)" in r.findings[0].message


def test_everything_verifiable_is_fine_so_manual() -> None:
    r = quiet_debian().check(7)
    assert r.status is Status.MANUAL, messages(r)
    assert messages(r)[1:] == [
        ("pass", "no security update is pending (package metadata from 2026-11-30)"),
        ("pass", "root's mail is forwarded to ops@example.org"),
    ]


def test_no_mta_warns() -> None:
    h = quiet_debian()
    del h.stats["/usr/sbin/sendmail"]
    r = h.check(7)
    assert r.status is Status.WARN
    assert r.summary.startswith(
        "no mail transfer agent is installed: update and security notices mailed to root"
    )


def test_root_mail_stays_local() -> None:
    h = quiet_debian().file("/etc/aliases", "postmaster: root\n")
    r = h.check(7)
    assert r.status is Status.WARN
    assert r.summary.startswith("root's mail stays on this host (/var/mail/root)")


def test_root_mail_to_local_user_or_dev_null() -> None:
    assert (
        quiet_debian()
        .file("/etc/aliases", "root: alice\n")
        .check(7)
        .summary.startswith("root's mail stays on this host (alice)")
    )
    assert (
        quiet_debian().file("/etc/aliases", "root: /dev/null\n").check(7).summary
        == "root's mail is thrown away (/etc/aliases:1: /dev/null)"
    )


def test_root_forward_file() -> None:
    h = quiet_debian().file("/etc/aliases", "postmaster: root\n").file("/root/.forward", "ops@example.org\n")
    r = h.check(7)
    assert ("pass", "root's mail is forwarded to ops@example.org") in messages(r)


def test_root_forward_unknown_without_root() -> None:
    h = Host("debian12", live=True, uid=1000).dpkg().stat("/usr/sbin/sendmail").file("/etc/aliases", "x: y\n")
    r = h.check(7)
    assert (
        "manual",
        "where root's mail goes is unknown: needs root to see whether /root/.forward exists",
    ) in messages(r)


def test_unattended_upgrades_mail_is_evidence() -> None:
    h = quiet_debian().file("/etc/apt/apt.conf.d/50unattended-upgrades", 'Unattended-Upgrade::Mail "root";\n')
    mail = h.check(7).findings[-1]  # the root mail finding comes last
    assert mail.message == "root's mail is forwarded to ops@example.org"
    assert any(e.detail == 'Unattended-Upgrade::Mail "root"' for e in mail.evidence)


def test_aliases_parser() -> None:
    text = "# comment\nroot:\talice,\n  bob@example.org,\n\t|/usr/bin/procmail\nMailer-Daemon: postmaster\n"
    aliases = parse_aliases(text)
    assert aliases["root"] == ("alice, bob@example.org, |/usr/bin/procmail", 2)
    assert aliases["mailer-daemon"] == ("postmaster", 5)
    assert [
        classify_destination(d)
        for d in ("alice", "bob@example.org", "|/x", "/var/log/m", "/dev/null", ":include:/etc/list")
    ] == ["local", "remote", "program", "file", "discard", "file"]
    rm = Host().file("/etc/aliases", text).stat("/usr/sbin/sendmail").facts().get(root_mail)
    assert rm.source == "/etc/aliases:2" and len(rm.destinations) == 3
