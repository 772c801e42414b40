"""NTP access and monlist (Check-Security-06): parsers on real default configs and the check's statuses."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import Entry, all_needs
from nectar_audit.checks import ntp_service
from nectar_audit.config import Config
from nectar_audit.engine import run_check
from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.net import judge
from nectar_audit.facts.network.ntp import (
    VERSION_COMMAND,
    chrony_subnet,
    monlist_capable,
    ntp_servers,
    ntpd_version,
    parse_chrony_conf,
    parse_ntp_conf,
    version_tuple,
)
from nectar_audit.facts.system.sockets import SS_COMMAND
from nectar_audit.model import Status
from tests import SAMPLES

SAMPLES = SAMPLES / "ntp"
N = ipaddress.ip_network
ENTRY = Entry(ntp_service.CHECK.id, "ntp?", "ntp_service", ntp_service.CHECK)


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def udp(addr: str, proc: str | None, port: int = 123) -> str:
    users = f' users:(("{proc}",pid=77,fd=5))' if proc else ""
    return f"udp UNCONN 0 0 {addr}:{port} 0.0.0.0:*{users} uid:0 ino:1 sk:1 <->"


def make_bundle(
    files: dict[str, str],
    live: bool = False,
    listeners: list[str] | None = None,
    stats: tuple[str, ...] = (),
    version: str | None = None,
    dpkg: str | None = None,
) -> Bundle:
    b = Bundle(
        "t", "local" if live else "rootfs", live, uid=0 if live else None, sanitizers=all_needs().sanitize
    )
    b.add_file("/etc/os-release", b'ID=debian\nVERSION_ID="12"\n')
    for path, text in files.items():
        b.add_file(path, text.encode())
    for path in stats:
        b.stats[path] = StatRecord(0o100755, 0, 0, 1000, 0)
    if live:
        b.commands[SS_COMMAND] = CommandRecord("#ss\n" + "\n".join(listeners or []) + "\n#bindv6only 0\n")
        b.commands[VERSION_COMMAND] = CommandRecord(version or "", "", 0 if version else 127)
    if dpkg is not None:
        b.add_file("/var/lib/dpkg/status", dpkg.encode())
    return b


def check(b: Bundle, config: Config | None = None) -> tuple[Status, list[tuple[Status, str]]]:
    res = run_check(ENTRY, Facts(b, config or Config()))
    return res.status, [(f.status, f.message) for f in res.findings]


# ---------------------------------------------------------------------------------------------------
def test_versions() -> None:
    assert ntpd_version("ntpd 4.2.8p15@1.3728-o Wed Feb 16 17:13:02 UTC 2022 (1)\n") == ("ntpd", "4.2.8p15")
    assert ntpd_version("ntpd ntpsec-1.2.2\n") == ("ntpsec", "1.2.2")
    assert version_tuple("1:4.2.6.p5+dfsg-2") == (4, 2, 6, 5)
    assert version_tuple("4.2.7p26") == (4, 2, 7, 26)
    assert monlist_capable((4, 2, 6, 5), True) is True
    assert monlist_capable((4, 2, 7, 26), True) is False
    assert monlist_capable((4, 2, 6, 5), False) is False
    assert monlist_capable(None, True) is None
    assert chrony_subnet("192.168.1") == N("192.168.1.0/24")
    assert chrony_subnet("10") == N("10.0.0.0/8")
    assert chrony_subnet("fd00::/8") == N("fd00::/8")


def test_ntpsec_debian_default_serves_everyone_but_refuses_queries() -> None:
    lines = parse_ntp_conf(sample("ntpsec-ntp.conf.debian12"))
    assert any(ln.text == "restrict default kod nomodify nopeer noquery limited" for ln in lines)
    b = make_bundle({"/etc/ntpsec/ntp.conf": sample("ntpsec-ntp.conf.debian12")})
    [srv] = ntp_servers(Facts(b, Config()))
    assert srv.kind == "ntpsec" and not srv.client_only
    assert judge(srv.serve, [], None).level == "untrusted"
    assert judge(srv.query, [], None).level == "local"
    assert srv.monlist is False and srv.listen.beyond_loopback


def test_classic_ntp_bullseye_default() -> None:
    b = make_bundle(
        {"/etc/ntp.conf": sample("ntp.conf.debian11-ntp-4.2.8p15")},
        stats=("/usr/sbin/ntpd",),
        dpkg="Package: ntp\nStatus: install ok installed\nVersion: 1:4.2.8p15+dfsg-1\n\n",
    )
    [srv] = ntp_servers(Facts(b, Config()))
    assert srv.kind == "ntpd" and srv.version == "1:4.2.8p15+dfsg-1"
    assert srv.monitor is True and srv.monlist is False
    assert judge(srv.query, [], None).level == "local"


def test_chrony_defaults_are_client_only() -> None:
    for name, path in (
        ("chrony.conf.debian12", "/etc/chrony/chrony.conf"),
        ("chrony.conf.ubuntu2204", "/etc/chrony/chrony.conf"),
        ("chrony.conf.rocky9", "/etc/chrony.conf"),
    ):
        assert parse_chrony_conf(sample(name))
        b = make_bundle({path: sample(name)})
        [srv] = ntp_servers(Facts(b, Config()))
        assert srv.client_only, name
        assert check(b)[0] is Status.PASS


def test_openntpd_default_is_client_only() -> None:
    b = make_bundle({"/etc/openntpd/ntpd.conf": sample("openntpd-ntpd.conf.debian12")})
    [srv] = ntp_servers(Facts(b, Config()))
    assert srv.kind == "openntpd" and srv.client_only


def test_chrony_allow_semantics() -> None:
    conf = "allow 10.0.0.0/8\ndeny 10.5.0.0/16\nallow all 192.168.0.0/16\n"
    b = make_bundle(
        {
            "/etc/chrony/chrony.conf": conf + "include /etc/chrony/conf.d/*.conf\n",
            "/etc/chrony/conf.d/x.conf": "allow 172.16.0.0/12\n",
        }
    )
    [srv] = ntp_servers(Facts(b, Config()))
    nets = srv.serve.networks
    assert N("10.5.0.0/16") not in nets and N("172.16.0.0/12") in nets and N("192.168.0.0/16") in nets
    v = judge(srv.serve, [N("10.0.0.0/8"), N("172.16.0.0/12"), N("192.168.0.0/16")], None)
    assert v.level == "trusted"


# ---------------------------------------------------------------------------------------------------
# Check statuses
NTPSEC = {"/etc/ntpsec/ntp.conf": sample("ntpsec-ntp.conf.debian12")}
NTPD_SOCKETS = [udp("0.0.0.0", "ntpd"), udp("10.0.0.5", "ntpd"), udp("127.0.0.1", "ntpd")]


def test_not_applicable() -> None:
    assert check(make_bundle({}))[0] is Status.NOT_APPLICABLE


def test_timesyncd_passes() -> None:
    status, findings = check(make_bundle({}, stats=("/lib/systemd/systemd-timesyncd",)))
    assert status is Status.PASS and "client only" in findings[0][1]


def test_ntpsec_running_default_fails() -> None:
    b = make_bundle(NTPSEC, live=True, listeners=NTPD_SOCKETS, version="ntpd ntpsec-1.2.2\n")
    status, findings = check(b)
    assert status is Status.FAIL
    assert findings[0] == (
        Status.FAIL,
        "ntpd (NTPsec) serves time to any host (restrict default kod nomodify "
        "nopeer noquery limited), listening on 0.0.0.0:123/udp, 10.0.0.5:123/udp: access to "
        "the NTP server is not limited",
    )
    assert findings[1] == (
        Status.PASS,
        "ntpd (NTPsec): monlist is not available (NTPsec has no mode 7 at all)",
    )


def test_ntpsec_offline_warns_and_noserve_passes() -> None:
    assert check(make_bundle(NTPSEC))[0] is Status.WARN
    conf = sample("ntpsec-ntp.conf.debian12").replace("noquery limited", "noquery limited noserve")
    status, findings = check(
        make_bundle(
            {"/etc/ntpsec/ntp.conf": conf}, live=True, listeners=NTPD_SOCKETS, version="ntpd ntpsec-1.2.2\n"
        )
    )
    assert status is Status.PASS
    assert findings[0][1] == "ntpd (NTPsec) serves time to this host only (loopback)"


def test_ntpsec_restricted_to_trusted_network() -> None:
    conf = sample("ntpsec-ntp.conf.debian12").replace("noquery limited", "noquery limited noserve")
    conf += "restrict 10.0.0.0 mask 255.255.0.0 nomodify nopeer noquery\n"
    b = make_bundle(
        {"/etc/ntpsec/ntp.conf": conf}, live=True, listeners=NTPD_SOCKETS, version="ntpd ntpsec-1.2.2\n"
    )
    assert check(b)[0] is Status.FAIL
    status, findings = check(b, Config(trusted_networks=(N("10.0.0.0/16"),)))
    assert status is Status.PASS and "trusted networks only (10.0.0.0/16)" in findings[0][1]


def test_old_classic_ntpd_with_monitor_fails_monlist() -> None:
    conf = "driftfile /var/lib/ntp/drift\nserver 127.127.1.0\n"  # no restrict lines: everything open
    b = make_bundle(
        {"/etc/ntp.conf": conf},
        live=True,
        listeners=NTPD_SOCKETS,
        version="ntpd 4.2.6p5@1.2349-o Fri Apr 13 12:52:27 UTC 2018 (1)\n",
        stats=("/usr/sbin/ntpd",),
    )
    status, findings = check(b)
    assert status is Status.FAIL
    monlist = [m for s, m in findings if "monlist" in m]
    assert monlist[0].startswith("ntpd (classic NTP) 4.2.6p5 answers mode 7 'monlist' queries from any host")
    # disable monitor fixes monlist (the time service stays open)
    b = make_bundle(
        {"/etc/ntp.conf": conf + "disable monitor\n"},
        live=True,
        listeners=NTPD_SOCKETS,
        version="ntpd 4.2.6p5\n",
        stats=("/usr/sbin/ntpd",),
    )
    _, findings = check(b)
    assert (Status.PASS, "ntpd (classic NTP): monlist is not available (monitoring is disabled)") in findings


def test_old_ntpd_with_noquery_warns() -> None:
    conf = "restrict default kod nomodify notrap nopeer noquery\nrestrict 127.0.0.1\n"
    b = make_bundle(
        {"/etc/ntp.conf": conf},
        live=True,
        listeners=[udp("127.0.0.1", "ntpd")],
        version="ntpd 4.2.6p5\n",
        stats=("/usr/sbin/ntpd",),
    )
    status, findings = check(b)
    assert status is Status.WARN
    assert any(
        "supports 'monlist'" in m and "queries are limited to this host only" in m for _, m in findings
    )


def test_ntpd_version_unknown_offline_rpm() -> None:
    b = make_bundle({"/etc/ntp.conf": "restrict default ignore\n"}, stats=("/usr/sbin/ntpd",))
    status, findings = check(b)
    assert status is Status.WARN
    assert any("version unknown and monitoring on" in m for _, m in findings)


def test_chrony_allow_running_fails_and_client_passes() -> None:
    conf = sample("chrony.conf.debian12") + "allow\n"
    lst = [udp("0.0.0.0", "chronyd"), udp("[::]", "chronyd"), udp("127.0.0.1", "chronyd", 323)]
    status, findings = check(make_bundle({"/etc/chrony/chrony.conf": conf}, live=True, listeners=lst))
    assert status is Status.FAIL
    assert findings[0][1] == (
        "chronyd serves time to any host (allow), listening on 0.0.0.0:123/udp, "
        "[::]:123/udp: access to the NTP server is not limited"
    )
    lst = [udp("127.0.0.1", "chronyd", 323)]
    b = make_bundle({"/etc/chrony/chrony.conf": sample("chrony.conf.debian12")}, live=True, listeners=lst)
    status, findings = check(b)
    assert status is Status.PASS
    assert findings == [
        (Status.PASS, "chronyd is a client only: no allow directive: chronyd does not serve time")
    ]


def test_chrony_cmdallow_open() -> None:
    conf = sample("chrony.conf.debian12") + "bindcmdaddress 0.0.0.0\ncmdallow all\n"
    lst = [udp("0.0.0.0", "chronyd", 323)]
    status, findings = check(make_bundle({"/etc/chrony/chrony.conf": conf}, live=True, listeners=lst))
    assert status is Status.FAIL
    assert any(
        m.startswith("chronyd accepts monitoring commands (cmdallow) from any host") for _, m in findings
    )


def test_unknown_ntp_listener() -> None:
    status, findings = check(make_bundle({}, live=True, listeners=[udp("0.0.0.0", "ptp4l")]))
    assert status is Status.WARN and "is not a known NTP server" in findings[0][1]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_garbage_configs(text: str) -> None:
    b = make_bundle({"/etc/ntp.conf": text, "/etc/chrony/chrony.conf": text, "/etc/openntpd/ntpd.conf": text})
    status, _ = check(b)
    assert status in (Status.PASS, Status.WARN, Status.FAIL)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "restrict",
                "default",
                "-4",
                "-6",
                "mask",
                "255.0.0.0",
                "10.0.0.0",
                "ignore",
                "noserve",
                "noquery",
                "source",
                "::1",
                "interface",
                "listen",
                "ignore",
                "all",
                "wildcard",
                "includefile",
                "/etc/x",
                "disable",
                "monitor",
                "\n",
            ]
        ),
        max_size=40,
    )
)
def test_ntp_token_soup(tokens: list[str]) -> None:
    b = make_bundle({"/etc/ntp.conf": " ".join(tokens)})
    ntp_servers(Facts(b, Config()))


# ---------------------------------------------------------------------------------------------------
# chrony bindaddress (per address family) and OpenNTPD 'listen on *'
def test_chrony_allow_with_loopback_bindaddress_for_both_families_is_loopback_only() -> None:
    conf = sample("chrony.conf.debian12") + "allow\nbindaddress 127.0.0.1\nbindaddress ::1\n"
    b = make_bundle({"/etc/chrony/chrony.conf": conf})
    [srv] = ntp_servers(Facts(b, Config()))
    assert srv.listen.beyond_loopback is False
    assert check(b) == (
        Status.PASS,
        [(Status.PASS, "chronyd serves time on loopback only (bindaddress 127.0.0.1; bindaddress ::1)")],
    )


def test_chrony_allow_with_ipv4_loopback_bindaddress_still_serves_ipv6() -> None:
    # chronyd 4.3 with 'allow' + 'bindaddress 127.0.0.1' (seen in a lab namespace): 127.0.0.1:123 and
    # [::]:123. One bindaddress per family; the IPv6 socket stays on every address.
    conf = sample("chrony.conf.debian12") + "allow\nbindaddress 127.0.0.1\n"
    b = make_bundle({"/etc/chrony/chrony.conf": conf})
    [srv] = ntp_servers(Facts(b, Config()))
    assert srv.listen.beyond_loopback is True
    assert all(n.version == 6 or n.is_loopback for n in srv.serve.networks)
    assert check(b) == (
        Status.WARN,
        [
            (
                Status.WARN,
                "chronyd serves time to any host (allow), configured to listen on bindaddress 127.0.0.1 (IPv4); "
                "every IPv6 address (no IPv6 bindaddress): access to the NTP server is not limited",
            )
        ],
    )
    # Live: the sockets decide. Only loopback sockets -> loopback only.
    lst = [udp("127.0.0.1", "chronyd"), udp("127.0.0.1", "chronyd", 323)]
    b = make_bundle({"/etc/chrony/chrony.conf": conf}, live=True, listeners=lst)
    assert check(b)[0] is Status.PASS
    lst.append(udp("[::]", "chronyd"))
    b = make_bundle({"/etc/chrony/chrony.conf": conf}, live=True, listeners=lst)
    assert check(b) == (
        Status.FAIL,
        [
            (
                Status.FAIL,
                "chronyd serves time to any host (allow), listening on [::]:123/udp: access to the NTP server "
                "is not limited",
            )
        ],
    )


def test_openntpd_listen_on_star_serves_everyone() -> None:
    conf = sample("openntpd-ntpd.conf.debian12") + "listen on *\n"
    b = make_bundle({"/etc/openntpd/ntpd.conf": conf})
    [srv] = ntp_servers(Facts(b, Config()))
    assert srv.kind == "openntpd" and not srv.client_only and srv.listen.beyond_loopback is True
    assert check(b) == (
        Status.WARN,
        [
            (
                Status.WARN,
                "OpenNTPD serves time to any host (listen on *), configured to listen on listen on *: access "
                "to the NTP server is not limited",
            )
        ],
    )
    lst = [udp("0.0.0.0", "ntpd"), udp("[::]", "ntpd")]
    b = make_bundle({"/etc/openntpd/ntpd.conf": conf}, live=True, listeners=lst, stats=("/usr/sbin/openntpd",))
    status, findings = check(b)
    assert status is Status.FAIL
    assert findings[0] == (
        Status.FAIL,
        "OpenNTPD serves time to any host (listen on *), listening on 0.0.0.0:123/udp, [::]:123/udp: access "
        "to the NTP server is not limited",
    )
    b = make_bundle({"/etc/openntpd/ntpd.conf": sample("openntpd-ntpd.conf.debian12") + "listen on 127.0.0.1\n"})
    assert check(b)[0] is Status.PASS
