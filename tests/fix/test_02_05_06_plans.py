"""The fix plans of checks 02, 05 and 06 on offline images: what they edit, and that the edited image passes.

Each plan's file changes are applied to the bundle as the host's awk would (``apply_line_edits``, or the
whole file); the check judged again on the result must pass, and plan again nothing. The lab proves the
same with the real daemons (tests/fix/test_02_05_06_fix_lab.py); here are the cases the lab has no daemon
for: classic ntpd with monlist, RHEL's Exim, views and multi-line statements in BIND, chrony subnets.
"""

from __future__ import annotations

import ipaddress

from nectar_audit.catalog import Entry, all_needs
from nectar_audit.checks import dns_recursion, mail_server, ntp_service
from nectar_audit.config import Config
from nectar_audit.engine import run_check
from nectar_audit.evidence.bundle import Bundle, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.model import Status
from nectar_audit.remedy import Remedy, apply_line_edits
from tests import SAMPLES

TRUSTED = Config(trusted_networks=(ipaddress.ip_network("10.200.0.0/16"),))


def bundle(files: dict[str, str], os_id: str = "debian", stats: tuple[str, ...] = (), dpkg: str = "") -> Bundle:
    b = Bundle("t", "rootfs", False, sanitizers=all_needs().sanitize)
    b.add_file("/etc/os-release", f'ID={os_id}\nVERSION_ID="12"\n'.encode())
    for path, text in files.items():
        b.add_file(path, text.encode())
    for path in stats:
        b.stats[path] = StatRecord(0o100755, 0, 0, 1000, 0)
    if dpkg:
        b.add_file("/var/lib/dpkg/status", dpkg.encode())
    return b


def judge(module: object, b: Bundle, config: Config) -> Status:
    check = module.CHECK  # type: ignore[attr-defined]
    return run_check(Entry(check.id, "t", "t", check), Facts(b, config)).status


def applied(b: Bundle, remedy: Remedy, files: dict[str, str], **kw: object) -> Bundle:
    """The image after the remedy's file changes (commands are not run here)."""
    out = dict(files)
    for change in remedy.changes:
        if change.whole:
            out[change.path] = change.after
        else:
            after = apply_line_edits(files[change.path], change.edits)
            assert after is not None and after == change.after
            out[change.path] = after
    return bundle(out, **kw)  # type: ignore[arg-type]


def roundtrip(module: object, files: dict[str, str], config: Config, **kw: object) -> Remedy:
    b = bundle(files, **kw)  # type: ignore[arg-type]
    assert judge(module, b, config) in (Status.FAIL, Status.WARN)
    remedy = module.plan(Facts(b, config))  # type: ignore[attr-defined]
    assert remedy is not None and remedy.applicable and not remedy.manual, remedy and remedy.text()
    fixed = applied(b, remedy, files, **kw)
    assert judge(module, fixed, config) is Status.PASS
    assert module.plan(Facts(fixed, config)) is None  # type: ignore[attr-defined]
    return remedy


OLD_NTP = """driftfile /var/lib/ntp/ntp.drift
restrict -4 default kod notrap nomodify nopeer
restrict -6 default kod notrap nomodify nopeer
restrict 127.0.0.1
restrict ::1
"""


def test_classic_ntpd_with_monlist_gets_noserve_noquery_and_monitor_off() -> None:
    files = {"/etc/ntp.conf": OLD_NTP}
    dpkg = "Package: ntp\nStatus: install ok installed\nVersion: 1:4.2.6.p5+dfsg-2\n\n"
    remedy = roundtrip(ntp_service, files, TRUSTED, stats=("/usr/sbin/ntpd",), dpkg=dpkg)
    [change] = remedy.changes
    assert change.after.splitlines()[:1] == ["disable monitor"]
    assert "restrict -4 default notrap nomodify nopeer noquery noserve" in change.after
    assert "restrict -6 default notrap nomodify nopeer noquery noserve" in change.after
    # The trusted network was served before and still is (queries closed, no kod/limited: they need monitoring).
    assert "restrict 10.200.0.0 mask 255.255.0.0 nomodify nopeer noquery" in change.after
    assert "systemctl try-restart ntp;" in remedy.activate[0].sh
    assert remedy.validate == ()


def test_ntpsec_without_restrict_default_gets_one_at_the_top() -> None:
    files = {"/etc/ntpsec/ntp.conf": "driftfile /var/lib/ntpsec/ntp.drift\n"}
    remedy = roundtrip(ntp_service, files, Config(), stats=("/usr/sbin/ntpd",))
    [change] = remedy.changes
    assert change.after.splitlines()[:3] == ["restrict default nomodify nopeer noquery noserve kod limited",
                                             "restrict 127.0.0.1", "restrict ::1"]


CHRONY = "pool 2.debian.pool.ntp.org iburst\nallow 10/8\ncmdallow all\nbindcmdaddress 0.0.0.0\nallow 10.200\n"


def test_chrony_untrusted_allows_replaced_by_the_trusted_networks() -> None:
    files = {"/etc/chrony/chrony.conf": CHRONY}
    remedy = roundtrip(ntp_service, files, TRUSTED, stats=("/usr/sbin/chronyd",))
    [change] = remedy.changes
    lines = change.after.splitlines()
    assert lines[1].startswith("# allow 10/8  # replaced by nectar-audit") and lines[2] == "allow 10.200.0.0/16"
    assert lines[3].startswith("# cmdallow all  # disabled by nectar-audit")
    assert lines[4].startswith("# bindcmdaddress 0.0.0.0  # disabled by nectar-audit")
    assert lines[5] == "allow 10.200"  # trusted already: kept
    assert remedy.validate[0].sh == "chronyd -p -f /etc/chrony/chrony.conf >/dev/null"


def test_chrony_on_rhel_restarts_chronyd() -> None:
    files = {"/etc/chrony.conf": "allow\n"}
    remedy = roundtrip(ntp_service, files, Config(), os_id="rhel", stats=("/usr/sbin/chronyd",))
    assert "systemctl try-restart chronyd;" in remedy.activate[0].sh


BIND_VIEWS = """options {
\tdirectory "/var/cache/bind";
};
view "inside" {
\tmatch-clients { any; };
\tallow-recursion { any; };
};
view "outside" {
\tmatch-clients { any; };
};
"""


def test_bind_views_edited_in_place_and_options_get_the_default() -> None:
    files = {"/etc/bind/named.conf": BIND_VIEWS}
    remedy = roundtrip(dns_recursion, files, TRUSTED, stats=("/usr/sbin/named",))
    [change] = remedy.changes
    assert "\tallow-recursion { localhost; 10.200.0.0/16; };  // nectar-audit\n};\nview \"outside\"" in change.after
    assert change.after.startswith("options {\n\tallow-recursion { localhost; 10.200.0.0/16; };  // nectar-audit: ")
    assert [s.sh for s in remedy.validate] == ["named-checkconf"]


def test_bind_statement_over_several_lines_is_left_to_a_human() -> None:
    files = {"/etc/bind/named.conf": "options {\n\tallow-recursion {\n\t\tany;\n\t};\n};\n"}
    b = bundle(files, stats=("/usr/sbin/named",))
    remedy = dns_recursion.plan(Facts(b, TRUSTED))
    assert remedy is not None and not remedy.applicable
    assert remedy.manual == ("/etc/bind/named.conf:2: set `allow-recursion { localhost; 10.200.0.0/16; };` "
                             "(the statement is not alone on one line)",)


def test_unbound_on_rhel_conf_d() -> None:
    main = "server:\n    interface: 0.0.0.0\n    access-control: 0.0.0.0/0 allow\ninclude: /etc/unbound/conf.d/*.conf\n"
    files = {"/etc/unbound/unbound.conf": main}
    remedy = roundtrip(dns_recursion, files, TRUSTED, os_id="rhel", stats=("/usr/sbin/unbound",))
    changes = {c.path: c.after for c in remedy.changes}
    assert "    # access-control: 0.0.0.0/0 allow  # disabled by nectar-audit" in changes["/etc/unbound/unbound.conf"]
    assert changes["/etc/unbound/conf.d/nectar-audit-05.conf"].endswith(
        "server:\n    access-control: 10.200.0.0/16 allow\n")


def test_dnsmasq_without_conf_dir_edits_dnsmasq_conf() -> None:
    files = {"/etc/dnsmasq.conf": "# dnsmasq\ninterface=eth0\n"}
    remedy = roundtrip(dns_recursion, files, Config(), os_id="rhel", stats=("/usr/sbin/dnsmasq",))
    [change] = remedy.changes
    assert change.after.splitlines() == ["interface=lo", "bind-interfaces", "# dnsmasq",
                                         "# interface=eth0  # disabled by nectar-audit: Check-Security-05: "
                                         "recursion for localhost and trusted networks only"]


def test_exim_on_rhel_sets_local_interfaces_in_the_main_section() -> None:
    conf = "primary_hostname = mail\nlocal_interfaces = 0.0.0.0\nbegin acl\nlocal_interfaces = x\n"
    files = {"/etc/exim/exim.conf": conf}
    remedy = roundtrip(mail_server, files, Config(), os_id="rhel", stats=("/usr/sbin/exim",))
    [change] = remedy.changes
    assert change.after.splitlines()[1:3] == ["# local_interfaces = 0.0.0.0  # replaced by nectar-audit: "
                                              "Check-Security-02: a mail server listens on localhost only",
                                              "local_interfaces = <; 127.0.0.1 ; ::1"]
    assert [s.sh for s in remedy.validate] == ["exim -bV -C /etc/exim/exim.conf >/dev/null"]
    assert remedy.commands == ()


def test_dovecot_listen_replaced_where_it_is_set() -> None:
    main = (SAMPLES / "mail" / "dovecot.conf.debian12").read_text()
    files = {"/etc/dovecot/dovecot.conf": main + "listen = *\n",
             "/usr/share/dovecot/protocols.d/imapd.protocol": "protocols = $protocols imap\n"}
    remedy = roundtrip(mail_server, files, Config(), stats=("/usr/sbin/dovecot",))
    [change] = remedy.changes
    assert change.after.endswith("# listen = *  # replaced by nectar-audit: Check-Security-02: a mail server "
                                 "listens on localhost only\nlisten = 127.0.0.1, ::1\n")
