"""Mail server only on localhost (Check-Security-02): parsers on real default configs, check statuses."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import Entry, all_needs
from nectar_audit.checks import mail_server
from nectar_audit.config import Config
from nectar_audit.engine import run_check
from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.network.mail import (
    mail_servers,
    parse_dovecot_conf,
    parse_exim_list,
    parse_main_cf,
    parse_master_cf,
    parse_sendmail_cf,
    parse_sendmail_mc,
    parse_smtpd_conf,
    parse_update_exim4_conf,
    postfix_param,
)
from nectar_audit.facts.system.sockets import SS_COMMAND
from nectar_audit.model import Status
from tests import SAMPLES

SAMPLES = SAMPLES / "mail"
ENTRY = Entry(mail_server.CHECK.id, "mail?", "mail_server", mail_server.CHECK)
DEBIAN_POSTFIX = {
    "/etc/postfix/main.cf": "postfix-main.cf.debian12",
    "/etc/postfix/master.cf": "postfix-master.cf.debian12",
}
ROCKY_POSTFIX = {
    "/etc/postfix/main.cf": "postfix-main.cf.rocky9-effective",
    "/etc/postfix/master.cf": "postfix-master.cf.rocky9-effective",
}


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def tcp(addr: str, port: int, proc: str | None, pid: int = 900) -> str:
    users = f' users:(("{proc}",pid={pid},fd=12))' if proc else ""
    peer = "[::]:*" if addr.startswith("[") else "0.0.0.0:*"
    return f"tcp LISTEN 0 100 {addr}:{port} {peer}{users} uid:0 ino:1 sk:1 <->"


def make_bundle(
    files: dict[str, str],
    live: bool = False,
    listeners: list[str] | None = None,
    stats: tuple[str, ...] = (),
    family: str = "debian",
) -> Bundle:
    b = Bundle(
        "t", "local" if live else "rootfs", live, uid=0 if live else None, sanitizers=all_needs().sanitize
    )
    osr = (
        'ID=debian\nVERSION_ID="12"\n' if family == "debian" else 'ID="rocky"\nID_LIKE="rhel centos fedora"\n'
    )
    b.add_file("/etc/os-release", osr.encode())
    b.add_file("/etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n")
    for path, text in files.items():
        b.add_file(path, text.encode())
    for path in stats:
        b.stats[path] = StatRecord(0o100755, 0, 0, 1000, 0)
    if live:
        b.commands[SS_COMMAND] = CommandRecord("#ss\n" + "\n".join(listeners or []) + "\n#bindv6only 0\n")
    return b


def files_of(mapping: dict[str, str], **overrides: str) -> dict[str, str]:
    out = {path: sample(name) for path, name in mapping.items()}
    out.update({k.replace("__", "/"): v for k, v in overrides.items()})
    return out


def check(b: Bundle) -> tuple[Status, list[tuple[Status, str]]]:
    res = run_check(ENTRY, Facts(b, Config()))
    return res.status, [(f.status, f.message) for f in res.findings]


# ---------------------------------------------------------------------------------------------------
# Parsers
def test_postfix_main_cf_debian_and_rocky() -> None:
    deb = parse_main_cf(sample("postfix-main.cf.debian12"))
    assert deb["inet_interfaces"].value == "all" and deb["inet_interfaces"].line == 35
    rocky = parse_main_cf(sample("postfix-main.cf.rocky9-effective"))
    assert rocky["inet_interfaces"].value == "localhost"
    assert rocky["debugger_command"].value.startswith("PATH=/bin")  # continuation lines joined
    assert postfix_param({}, "inet_interfaces") == "all"  # Postfix's built-in default
    params = parse_main_cf("ii = 127.0.0.1\ninet_interfaces = $ii, ${ii}\n")
    assert postfix_param(params, "inet_interfaces") == "127.0.0.1, 127.0.0.1"


def test_postfix_master_cf() -> None:
    entries = parse_master_cf(sample("postfix-master.cf.debian12"))
    inet = [e for e in entries if e.type == "inet"]
    assert [(e.service, e.command) for e in inet] == [("smtp", "smtpd")]
    text = (
        "127.0.0.1:smtp inet n - y - - smtpd\nsubmission inet n - y - - smtpd\n"
        "  -o smtpd_tls_security_level=encrypt\n  -o smtpd_sasl_auth_enable=yes\n[::1]:2525 inet n - n - - "
        "smtpd\n"
    )
    e1, e2, e3 = parse_master_cf(text)
    assert e1.host_port == ("127.0.0.1", "smtp")
    assert e2.options == {"smtpd_tls_security_level": "encrypt", "smtpd_sasl_auth_enable": "yes"}
    assert e3.host_port == ("::1", "2525")


def test_exim_lists() -> None:
    assert parse_exim_list("<; 127.0.0.1 ; ::1") == ["127.0.0.1", "::1"]
    assert parse_exim_list("127.0.0.1 : ::::1") == ["127.0.0.1", "::1"]
    dc = parse_update_exim4_conf(sample("update-exim4.conf.conf.debian12"))
    assert dc["dc_local_interfaces"] == ("127.0.0.1 ; ::1", 21)
    assert dc["dc_eximconfig_configtype"][0] == "local"


def test_sendmail_and_opensmtpd() -> None:
    [(opts, no)] = parse_sendmail_cf("O DaemonPortOptions=Port=smtp,Addr=127.0.0.1, Name=MTA\n")
    assert opts == {"port": "smtp", "addr": "127.0.0.1", "name": "MTA"} and no == 1
    [(opts, _)] = parse_sendmail_mc("dnl # comment\nDAEMON_OPTIONS(`Port=smtp, Name=MTA')dnl\n")
    assert "addr" not in opts
    assert parse_smtpd_conf("listen on localhost\nlisten on all tls\n") == [
        (["localhost"], 1),
        (["all", "tls"], 2),
    ]


def test_dovecot_parser() -> None:
    _, includes = parse_dovecot_conf(sample("dovecot.conf.debian12"))
    assert includes == ["/usr/share/dovecot/protocols.d/*.protocol", "conf.d/*.conf", "local.conf"]
    master, _ = parse_dovecot_conf(sample("dovecot-10-master.conf.debian12"))
    assert not [s for s in master if s.key == "port"]  # all commented out


# ---------------------------------------------------------------------------------------------------
# Facts on real defaults
def test_debian_postfix_listens_everywhere_without_tls() -> None:
    b = make_bundle(files_of(DEBIAN_POSTFIX))
    [srv] = mail_servers(Facts(b, Config()))
    assert srv.listen.beyond_loopback is True
    [svc] = srv.services
    assert (svc.port, svc.addresses, svc.tls) == (25, ("all",), False)


def test_rocky_postfix_localhost_with_starttls() -> None:
    b = make_bundle(files_of(ROCKY_POSTFIX))
    [srv] = mail_servers(Facts(b, Config()))
    assert srv.listen.beyond_loopback is False
    [svc] = srv.services
    assert svc.tls is True and "STARTTLS offered" in svc.tls_reason


def test_debian_exim_defaults_loopback() -> None:
    b = make_bundle(
        {"/etc/exim4/update-exim4.conf.conf": sample("update-exim4.conf.conf.debian12")},
        stats=("/usr/sbin/exim4",),
    )
    [srv] = mail_servers(Facts(b, Config()))
    assert srv.kind == "exim" and srv.listen.beyond_loopback is False
    b = make_bundle(
        {"/etc/exim4/update-exim4.conf.conf": "dc_local_interfaces=''\n"}, stats=("/usr/sbin/exim4",)
    )
    assert mail_servers(Facts(b, Config()))[0].listen.beyond_loopback is True


def test_dovecot_debian_imap() -> None:
    b = make_bundle(
        {
            "/etc/dovecot/dovecot.conf": sample("dovecot.conf.debian12"),
            "/etc/dovecot/conf.d/10-ssl.conf": sample("dovecot-10-ssl.conf.debian12"),
            "/etc/dovecot/conf.d/10-master.conf": sample("dovecot-10-master.conf.debian12"),
            "/usr/share/dovecot/protocols.d/imapd.protocol": "protocols = $protocols imap\n",
        },
        stats=("/usr/sbin/dovecot",),
    )
    [srv] = mail_servers(Facts(b, Config()))
    assert [(s.port, s.tls) for s in srv.services] == [(143, True), (993, True)]
    assert srv.listen.beyond_loopback is True


def test_secrets_in_exim_and_dovecot_are_blanked() -> None:
    b = make_bundle(
        {
            "/etc/exim/exim.conf": "local_interfaces = 127.0.0.1\nhide mysql_servers = "
                                   "db/u/password=hunter2\n"
            "  server_condition = ${if eq{$auth2}{hunter2}}\n",
            "/etc/dovecot/conf.d/auth.conf": "passdb {\n  args = password=hunter2\n}\n",
        }
    )
    for path in ("/etc/exim/exim.conf", "/etc/dovecot/conf.d/auth.conf"):
        assert "hunter2" not in (b.text(path) or "")
    assert "local_interfaces = 127.0.0.1" in (b.text("/etc/exim/exim.conf") or "")


# ---------------------------------------------------------------------------------------------------
# Check statuses
def test_not_applicable() -> None:
    status, _ = check(make_bundle({}))
    assert status is Status.NOT_APPLICABLE


def test_fail_postfix_listening_everywhere() -> None:
    lst = [tcp("0.0.0.0", 25, "master"), tcp("[::]", 25, "master")]
    status, findings = check(make_bundle(files_of(DEBIAN_POSTFIX), live=True, listeners=lst))
    assert status is Status.FAIL
    assert findings == [
        (
            Status.FAIL,
            "Postfix (master (pid 900, user root)) listens on 0.0.0.0:25/tcp, "
            "[::]:25/tcp: reachable from other hosts, not only localhost",
        )
    ]
    res = run_check(ENTRY, Facts(make_bundle(files_of(DEBIAN_POSTFIX), live=True, listeners=lst), Config()))
    assert res.findings[0].remediation is not None and "loopback-only" in res.findings[0].remediation


def test_pass_postfix_loopback() -> None:
    lst = [tcp("127.0.0.1", 25, "master"), tcp("[::1]", 25, "master")]
    files = files_of(DEBIAN_POSTFIX)
    files["/etc/postfix/main.cf"] = files["/etc/postfix/main.cf"].replace(
        "inet_interfaces = all", "inet_interfaces = loopback-only"
    )
    status, findings = check(make_bundle(files, live=True, listeners=lst))
    assert (status, findings) == (
        Status.PASS,
        [(Status.PASS, "Postfix listens on localhost only (127.0.0.1:25/tcp, [::1]:25/tcp)")],
    )


def test_warn_stopped_and_offline() -> None:
    status, findings = check(make_bundle(files_of(DEBIAN_POSTFIX), live=True, listeners=[]))
    assert status is Status.WARN
    assert findings[0][1] == (
        "Postfix is not running, but its configuration makes it listen beyond localhost "
        "when started: all port 25 (smtp)"
    )
    status, findings = check(make_bundle(files_of(DEBIAN_POSTFIX)))
    assert status is Status.WARN and "is installed (offline image)" in findings[0][1]
    status, findings = check(make_bundle(files_of(ROCKY_POSTFIX), family="rhel"))
    assert status is Status.PASS and "configured for localhost only" in findings[0][1]


def test_unknown_process_on_smtp_port_fails() -> None:
    status, findings = check(make_bundle({}, live=True, listeners=[tcp("0.0.0.0", 587, "docker-proxy")]))
    assert status is Status.FAIL and findings[0][1].startswith(
        "docker-proxy (pid 900, user root) listens on 0.0.0.0:587/tcp"
    )


def test_invisible_process_is_attributed_by_port() -> None:
    status, findings = check(
        make_bundle(files_of(DEBIAN_POSTFIX), live=True, listeners=[tcp("0.0.0.0", 25, None)])
    )
    assert status is Status.FAIL and findings[0][1].startswith("Postfix (unknown process")


def test_exim_rhel_without_local_interfaces_warns() -> None:
    b = make_bundle(
        {"/etc/exim/exim.conf": "primary_hostname = x\nbegin acl\n"}, stats=("/usr/sbin/exim",), family="rhel"
    )
    status, findings = check(b)
    assert status is Status.WARN and "all port 25" in findings[0][1]
    res = run_check(ENTRY, Facts(b, Config()))
    assert res.findings[0].remediation is not None and "/etc/exim/exim.conf" in res.findings[0].remediation


def test_sendmail_default_loopback() -> None:
    b = make_bundle(
        {"/etc/mail/sendmail.cf": "O DaemonPortOptions=Port=smtp,Addr=127.0.0.1, Name=MTA\n"},
        stats=("/usr/sbin/sendmail.sendmail",),
    )
    assert check(b)[0] is Status.PASS
    b = make_bundle(
        {"/etc/mail/sendmail.cf": "O DaemonPortOptions=Port=smtp, Name=MTA\n"},
        stats=("/usr/sbin/sendmail.sendmail",),
    )
    assert check(b)[0] is Status.WARN


def test_sockets_unavailable_is_error() -> None:
    b = make_bundle(files_of(DEBIAN_POSTFIX), live=True)
    b.commands[SS_COMMAND] = CommandRecord("", "", 1)
    status, _ = check(b)
    assert status is Status.ERROR


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_garbage(text: str) -> None:
    b = make_bundle(
        {
            "/etc/postfix/main.cf": text,
            "/etc/postfix/master.cf": text,
            "/etc/dovecot/dovecot.conf": text,
            "/etc/exim4/update-exim4.conf.conf": text,
        },
        stats=("/usr/sbin/exim4", "/usr/sbin/dovecot"),
    )
    status, _ = check(b)
    assert status in (Status.PASS, Status.WARN)


# ---------------------------------------------------------------------------------------------------
# Dovecot live, OpenSMTPD stopped
def test_dovecot_live_on_every_address_fails_naming_imap_login() -> None:
    files = {"/etc/dovecot/dovecot.conf": sample("dovecot.conf.debian12")}
    lst = [tcp("0.0.0.0", 143, "imap-login", pid=610), tcp("[::]", 143, "imap-login", pid=610)]
    status, findings = check(make_bundle(files, live=True, listeners=lst, stats=("/usr/sbin/dovecot",)))
    assert (status, findings) == (
        Status.FAIL,
        [
            (
                Status.FAIL,
                "Dovecot (POP3/IMAP) (imap-login (pid 610, user root)) listens on 0.0.0.0:143/tcp, "
                "[::]:143/tcp: reachable from other hosts, not only localhost",
            )
        ],
    )


def test_opensmtpd_listen_on_all_stopped_warns() -> None:
    conf = 'listen on all\naction "local" mbox\nmatch for local action "local"\n'
    b = make_bundle({"/etc/smtpd.conf": conf}, live=True, listeners=[], stats=("/usr/sbin/smtpd",))
    assert check(b) == (
        Status.WARN,
        [
            (
                Status.WARN,
                "OpenSMTPD is not running, but its configuration makes it listen beyond localhost when "
                "started: all port 25 (smtp)",
            )
        ],
    )
    b = make_bundle({"/etc/smtpd.conf": "listen on localhost\n"}, live=True, listeners=[], stats=("/usr/sbin/smtpd",))
    assert check(b)[0] is Status.PASS
