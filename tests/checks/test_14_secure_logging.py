"""Check-Security-14 (secure logging): rsyslog, syslog-ng, journald and journal-upload parsing, verdicts."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.facts.system.logging import (
    logging_state,
    parse_rsyslog,
    parse_syslog_ng,
    syslog_ng_channels,
    systemd_conf_files,
)
from nectar_audit.model import Status
from tests.patching_helpers import DIR, Host, messages, ps_line, sample

RSYSLOG = "/etc/rsyslog.conf"
DEBIAN_RSYSLOG = sample("rsyslog/debian12-rsyslog.conf")
ROCKY_RSYSLOG = sample("rsyslog/rocky9-rsyslog.conf")
SYSLOG_NG = sample("syslog-ng/debian12-syslog-ng.conf")


def rs_files(extra: str = "", main: str = DEBIAN_RSYSLOG) -> dict[str, str]:
    return {
        RSYSLOG: main,
        "/etc/rsyslog.d/20-ufw.conf": sample("rsyslog/debian12-rsyslog.d-20-ufw.conf"),
        "/etc/rsyslog.d/90-forward.conf": extra,
    }


def channels(extra: str, main: str = DEBIAN_RSYSLOG) -> list[tuple[str, str, bool, str | None]]:
    conf = parse_rsyslog(rs_files(extra, main))
    return [(c.target, c.transport, c.authenticated, c.auth_mode) for c in conf.channels]


def syslog_host(extra: str = "", live: bool = True, rsyslogd: bool = True) -> Host:
    h = Host("debian12", live=live).add_files(rs_files(extra)).stat("/usr/sbin/rsyslogd")
    h.stat("/var/log/auth.log", 0o100640, gid=4).stat("/var/log/syslog", 0o100640, gid=4)
    if live:
        h.processes([ps_line(300, "rsyslogd", "/usr/sbin/rsyslogd -n -iNONE")] if rsyslogd else [])
    return h


# -- rsyslog parsing ---------------------------------------------------------------------------------


def test_default_configs_have_no_remote_channel() -> None:
    deb = parse_rsyslog(rs_files())
    assert deb.channels == [] and deb.notes == []
    assert deb.files == [RSYSLOG, "/etc/rsyslog.d/20-ufw.conf", "/etc/rsyslog.d/90-forward.conf"]
    assert ("/var/log/auth.log", "/etc/rsyslog.conf:60") in deb.file_actions
    rocky = parse_rsyslog({RSYSLOG: ROCKY_RSYSLOG, "/etc/rsyslog.d/x.conf": "*.* @10.0.0.9\n"})
    assert [(c.target, c.transport) for c in rocky.channels] == [
        ("10.0.0.9", "udp")
    ]  # include(file=…) followed
    assert ("/var/log/secure", "/etc/rsyslog.conf:51") in rocky.file_actions
    kinds = [o.name for o in rocky.objects]
    assert kinds[:4] == ["global", "module", "module", "module"]  # the commented sample action is no object


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        ("*.* @loghost", [("loghost", "udp", False, None)]),
        ("*.* @loghost:10514", [("loghost:10514", "udp", False, None)]),
        ("auth.* @@[2001:db8::5]:6514", [("[2001:db8::5]:6514", "tcp", False, None)]),
        (
            "*.* @@(o,z9)logs.example.org:6514;RSYSLOG_ForwardFormat",
            [("logs.example.org:6514", "tcp", False, None)],
        ),
        (
            "$DefaultNetstreamDriver gtls\n$ActionSendStreamDriverMode 1\n*.* @@logs.example.org:6514",
            [("logs.example.org:6514", "tls", False, "anon")],
        ),
        (
            "$DefaultNetstreamDriver gtls\n$ActionSendStreamDriverMode 1\n"
            "$ActionSendStreamDriverAuthMode x509/name\n"
            "*.* @@logs.example.org:6514",
            [("logs.example.org:6514", "tls", True, "x509/name")],
        ),
        (
            "$ActionSendStreamDriver ossl\n$ActionSendStreamDriverMode 1\n$ActionSendStreamDriverAuthMode "
            "x509/fingerprint\n*.* @@logs:6514",
            [("logs:6514", "tls", True, "x509/fingerprint")],
        ),
        # the directives only apply to actions after them
        (
            "*.* @@early:6514\n$DefaultNetstreamDriver gtls\n$ActionSendStreamDriverMode 1\n"
            "$ActionSendStreamDriverAuthMode x509/name\n*.* @@late:6514",
            [("early:6514", "tcp", False, None), ("late:6514", "tls", True, "x509/name")],
        ),
        ('*.* action(type="omfwd" target="10.0.0.5" port="514")', [("10.0.0.5:514", "udp", False, None)]),
        (
            '*.* action(type="omfwd" target="10.0.0.5" port="514" protocol="tcp")',
            [("10.0.0.5:514", "tcp", False, None)],
        ),
        (
            'action(type="omfwd" Target="logs" Port="6514" Protocol="tcp" StreamDriver="gtls" '
            'StreamDriverMode="1")',
            [("logs:6514", "tls", False, "anon")],
        ),
        (
            'action(type="omfwd" target="logs" port="6514" protocol="tcp"\n  streamdriver="gtls"  # TLS\n'
            '  streamdrivermode="1" /* verify the server */ streamdriverauthmode="x509/name"\n'
            '  streamdriverpermittedpeers="logs.example.org")',
            [("logs:6514", "tls", True, "x509/name")],
        ),
        (
            'global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="/etc/ssl/ca.pem")\n'
            'action(type="omfwd" target="logs" protocol="tcp" StreamDriver.Mode="1" '
            'StreamDriver.AuthMode="x509/name")',
            [("logs", "tls", True, "x509/name")],
        ),
        (
            'action(type="omfwd" target="logs" protocol="tcp" StreamDriver="ptcp" StreamDriverMode="1")',
            [("logs", "tcp", False, None)],
        ),
        (
            'action(type="omfwd" target="logs" protocol="tcp" StreamDriver="gtls" StreamDriverMode="1" '
            'StreamDriverAuthMode="x509/certvalid")',
            [("logs", "tls", False, "x509/certvalid")],
        ),
        (
            'module(load="omrelp")\naction(type="omrelp" target="relp.example" port="2514")',
            [("relp.example:2514", "relp", False, None)],
        ),
        (
            'action(type="omrelp" target="relp.example" port="2514" tls="on" tls.authMode="name" '
            'tls.permittedPeer=["relp.example"])',
            [("relp.example:2514", "relp+tls", True, "name")],
        ),
        (
            'action(type="omrelp" target="relp.example" port="2514" tls="on")',
            [("relp.example:2514", "relp+tls", False, "anon")],
        ),
        (
            "$ModLoad omrelp\n*.* :omrelp:relp.example:2514;RSYSLOG_ForwardFormat",
            [("relp.example:2514", "relp", False, None)],
        ),
        ('if $programname == "sshd" then @@10.1.1.1:514\n& stop', [("10.1.1.1:514", "tcp", False, None)]),
        (':msg, contains, "denied" @10.2.2.2', [("10.2.2.2", "udp", False, None)]),
        ("#*.* @commented\n/* *.* @@block\n   commented */\n", []),
        (
            'ruleset(name="remote") {\n  action(type="omfwd" target="10.3.3.3" protocol="udp")\n}\n',
            [("10.3.3.3", "udp", False, None)],
        ),
    ],
)
def test_rsyslog_channels(extra: str, want: list[tuple[str, str, bool, str | None]]) -> None:
    assert channels(extra) == want


def test_include_follows_globs_only() -> None:
    files = rs_files()
    files["/etc/rsyslog.d/50-forward.conf.disabled"] = "*.* @nowhere\n"
    assert parse_rsyslog(files).channels == []
    files[RSYSLOG] += '\ninclude(file="/etc/rsyslog.d/extra/*.conf")\n'
    files["/etc/rsyslog.d/extra/x.conf"] = "*.* @@somewhere:514\n"
    assert [c.target for c in parse_rsyslog(files).channels] == ["somewhere:514"]


# -- syslog-ng ----------------------------------------------------------------------------------------


def sng(extra: str) -> list[tuple[str, str, bool]]:
    files = {
        "/etc/syslog-ng/syslog-ng.conf": SYSLOG_NG,
        "/etc/syslog-ng/conf.d/remote.conf": extra,
        "/etc/syslog-ng/scl.conf": sample("syslog-ng/debian12-scl.conf"),
    }
    chans, _ = syslog_ng_channels(files)
    return [(c.target, c.transport, c.authenticated) for c in chans]


def test_syslog_ng_default_is_local() -> None:
    assert sng("") == []
    tree = parse_syslog_ng(SYSLOG_NG)
    assert sum(1 for n in tree if getattr(n, "kind", "") == "log") == 17


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        (
            'destination d_net { network("logs.example.org" transport("tls") port(6514)\n'
            '  tls(ca-dir("/etc/syslog-ng/ca.d") peer-verify(required-trusted))); };\n'
            "log { source(s_src); destination(d_net); };",
            [("logs.example.org:6514", "tls", True)],
        ),
        (
            'destination d_net { syslog("logs" transport(tls) tls(peer-verify(optional-untrusted))); };\n'
            "log { source(s_src); destination(d_net); };",
            [("logs", "tls", False)],
        ),
        (
            'destination d_net { network("10.0.0.7" port(514)); };\n'
            "log { source(s_src); destination(d_net); };",
            [("10.0.0.7:514", "tcp", False)],
        ),
        (
            'destination d_udp { udp("10.0.0.8"); };\nlog { source(s_src); destination(d_udp); };',
            [("10.0.0.8", "udp", False)],
        ),
        (
            'destination d_tcp { tcp("10.0.0.9" port(6514) tls(ca_dir("/etc/ca"))); };\n'
            "log { source(s_src); destination(d_tcp); };",
            [("10.0.0.9:6514", "tls", True)],
        ),
        ('destination d_unused { udp("10.0.0.10"); };', []),
        (
            'log { source(s_src); destination { network("10.0.0.11" transport("udp")); }; };',
            [("10.0.0.11", "udp", False)],
        ),
        ('# destination d_c { udp("10.0.0.12"); };\n# log { source(s_src); destination(d_c); };', []),
    ],
)
def test_syslog_ng_channels(extra: str, want: list[tuple[str, str, bool]]) -> None:
    assert sng(extra) == want


# -- journald ------------------------------------------------------------------------------------------


def test_journald_dropin_order() -> None:
    paths = [
        "/etc/systemd/journald.conf",
        "/usr/lib/systemd/journald.conf.d/20-p.conf",
        "/etc/systemd/journald.conf.d/10-v.conf",
        "/usr/lib/systemd/journald.conf.d/10-v.conf",
        "/etc/systemd/journald.conf.d/README",
    ]
    assert systemd_conf_files(
        paths,
        ("/etc/systemd/journald.conf",),
        ("/etc/systemd/journald.conf.d", "/usr/lib/systemd/journald.conf.d"),
    ) == [
        "/etc/systemd/journald.conf",
        "/etc/systemd/journald.conf.d/10-v.conf",
        "/usr/lib/systemd/journald.conf.d/20-p.conf",
    ]


def journal_host(storage_dropin: str | None, journal_dir: bool) -> Host:
    h = (
        Host("debian12")
        .systemd()
        .file("/etc/systemd/journald.conf", sample("journald/debian12-journald.conf"))
    )
    if storage_dropin is not None:
        h.file("/etc/systemd/journald.conf.d/50-storage.conf", f"[Journal]\nStorage={storage_dropin}\n")
    if journal_dir:
        h.stat("/var/log/journal", DIR)
    return h


def test_journal_only_volatile_fails() -> None:
    r = journal_host("volatile", True).check(14)
    assert r.status is Status.FAIL
    assert r.summary == (
        "no syslog daemon runs and the journal is not kept on disk: logs are lost at reboot "
        "(or not kept at all)"
    )
    assert any(e.source == "/etc/systemd/journald.conf.d/50-storage.conf:2" for e in r.findings[0].evidence)


@pytest.mark.parametrize(("storage", "journal_dir"), [(None, True), ("persistent", False), ("auto", True)])
def test_persistent_journal_is_local_logging(storage: str | None, journal_dir: bool) -> None:
    r = journal_host(storage, journal_dir).check(14)
    assert r.status is Status.WARN, messages(r)
    assert r.summary.startswith("logs are only kept on this host")


def test_journal_as_the_keeper_is_the_local_only_evidence() -> None:
    # rsyslog's files are installed but no rsyslog runs: the persistent journal is what keeps the logs,
    # so it, not /etc/rsyslog.conf, is the evidence of "only kept on this host".
    h = journal_host("persistent", True).file("/etc/rsyslog.conf", "*.* /var/log/syslog\n")
    r = h.check(14)
    (local,) = [f for f in r.findings if f.message.startswith("logs are only kept on this host")]
    details = [e.detail for e in local.evidence]
    assert details == ["journald Storage=persistent (persistent)"], details


def test_auto_without_directory_is_volatile() -> None:
    assert journal_host(None, False).check(14).status is Status.FAIL


@pytest.mark.parametrize(
    ("conf", "status", "start"),
    [
        (
            "[Upload]\nURL=https://logs.example.org:19532\n",
            Status.PASS,
            "systemd-journal-upload sends logs to https://logs.example.org:19532 over TLS and verifies the "
            "receiver (server certificate verified with /etc/ssl/ca/trusted.pem, the default "
            "TrustedCertificateFile)",
        ),
        (
            "[Upload]\nURL=https://logs.example.org:19532\nTrustedCertificateFile=/etc/ssl/logs-ca.pem\n",
            Status.PASS,
            "systemd-journal-upload sends logs to https://logs.example.org:19532 over TLS and verifies the "
            "receiver (server certificate verified with TrustedCertificateFile=/etc/ssl/logs-ca.pem)",
        ),
        (
            "[Upload]\nURL=http://logs.example.org:19532\n",
            Status.FAIL,
            "systemd-journal-upload sends logs to http://logs.example.org:19532 over HTTP without TLS",
        ),
        (
            "[Upload]\nURL=logs.example.org\nTrustedCertificateFile=-\n",
            Status.WARN,
            "systemd-journal-upload sends logs to logs.example.org over TLS without verifying the receiver "
            "(no verification (TrustedCertificateFile=-)): a man in the middle can read them",
        ),
    ],
)
def test_journal_upload(conf: str, status: Status, start: str) -> None:
    h = journal_host(None, True).file("/etc/systemd/journal-upload.conf", conf)
    h.enabled("systemd-journal-upload.service", "multi-user.target")
    r = h.check(14)
    assert r.status is status, messages(r)
    if status is Status.FAIL:
        assert any(m.startswith(start) for _, m in messages(r)), messages(r)
    else:
        assert (status.value, start) in messages(r), messages(r)  # the whole message
        assert "None" not in start


# -- the verdicts ----------------------------------------------------------------------------------------


def test_local_only_warns() -> None:
    r = syslog_host().check(14)
    assert r.status is Status.WARN
    assert r.summary == (
        "logs are only kept on this host: whoever takes over the host can erase them (forward "
        "them to a log server over TLS)"
    )


def test_udp_fails() -> None:
    r = syslog_host("*.* @10.9.9.9:514\n").check(14)
    assert r.status is Status.FAIL
    assert r.summary == (
        "rsyslog sends logs to 10.9.9.9:514 over plain UDP: anyone on the path can read (and forge) them"
    )
    assert r.findings[0].evidence[0].source == "/etc/rsyslog.d/90-forward.conf:1"


def test_tcp_without_tls_fails() -> None:
    r = syslog_host("*.* @@10.9.9.9:514\n").check(14)
    assert (
        r.summary
        == "rsyslog sends logs to 10.9.9.9:514 over TCP without TLS: anyone on the path can read them"
    )


def test_tls_with_auth_passes_and_auditd_is_evidence() -> None:
    h = syslog_host(
        'action(type="omfwd" target="logs" port="6514" protocol="tcp" StreamDriver="gtls" '
        'StreamDriverMode="1" StreamDriverAuthMode="x509/name")\n'
    )
    h.processes([ps_line(300, "rsyslogd", "/usr/sbin/rsyslogd -n"), ps_line(200, "auditd", "/sbin/auditd")])
    h.stat("/sbin/auditd")
    r = h.check(14)
    assert r.status is Status.PASS, messages(r)
    assert r.summary == "rsyslog sends logs to logs:6514 over TLS and verifies the receiver (x509/name)"
    assert any("auditd is running" in e.detail for e in r.findings[0].evidence)


def test_tls_without_auth_warns() -> None:
    r = syslog_host("$DefaultNetstreamDriver gtls\n$ActionSendStreamDriverMode 1\n*.* @@logs:6514\n").check(
        14
    )
    assert r.status is Status.WARN
    assert r.summary.startswith(
        "rsyslog sends logs to logs:6514 over TLS without verifying the receiver (anon)"
    )


def test_forwarding_of_a_stopped_daemon() -> None:
    h = syslog_host("*.* @@10.9.9.9:514\n", rsyslogd=False)
    r = h.check(14)
    assert ("warn", "logs are configured to go to 10.9.9.9:514 but rsyslog does not run") in messages(r)
    assert r.status is Status.FAIL  # and nothing keeps logs: no syslog daemon, no persistent journal


def test_offline_counts_the_enabled_daemon() -> None:
    h = syslog_host("*.* @10.9.9.9\n", live=False).systemd().enabled("rsyslog.service", "multi-user.target")
    assert h.check(14).summary.startswith("rsyslog sends logs to 10.9.9.9 over plain UDP")


@pytest.mark.parametrize(
    ("path", "mode", "status", "start"),
    [
        ("/var/log/auth.log", 0o100644, Status.FAIL, "/var/log/auth.log is world-readable (mode 0644)"),
        ("/var/log/secure", 0o100666, Status.FAIL, "/var/log/secure is world-writable (mode 0666)"),
        ("/var/log/syslog", 0o100644, Status.WARN, "/var/log/syslog is world-readable (mode 0644)"),
    ],
)
def test_log_file_modes(path: str, mode: int, status: Status, start: str) -> None:
    h = syslog_host(
        'action(type="omfwd" target="l" protocol="tcp" StreamDriver="ossl" StreamDriverMode="1" '
        'StreamDriverAuthMode="x509/fingerprint")\n'
    ).stat(path, mode)
    r = h.check(14)
    assert r.status is status
    assert any(m.startswith(start) for _, m in messages(r))


def test_unreadable_config_is_noted() -> None:
    h = syslog_host().unreadable("/etc/rsyslog.d/90-forward.conf")
    state = h.facts().get(logging_state)
    assert "cannot read /etc/rsyslog.d/90-forward.conf: Permission denied" in state.notes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400), st.text(max_size=300))
def test_garbage_never_crashes(rs_text: str, sng_text: str) -> None:
    h = syslog_host(rs_text).file("/etc/syslog-ng/syslog-ng.conf", sng_text).stat("/usr/sbin/syslog-ng")
    r = h.check(14)
    assert r.status in (Status.PASS, Status.WARN, Status.FAIL), messages(r)
    parse_syslog_ng(rs_text)


def test_offline_installed_rsyslog() -> None:
    # systemd image with rsyslog installed but not enabled: it will not run; nothing keeps logs on disk.
    h = syslog_host(live=False).systemd()
    r = h.check(14)
    assert r.status is Status.FAIL
    assert any(e.detail == "rsyslog is installed but not enabled" for e in r.findings[0].evidence)
    # without systemd (a container image), whether it runs cannot be told
    r = syslog_host(live=False).check(14)
    assert ("manual", "cannot tell whether a syslog daemon runs on this image") in messages(r)


def test_syslog_ng_include_outside_conf_d_with_tls() -> None:
    from nectar_audit.facts.system.logging import NEEDS

    assert "/etc/syslog-ng/*.conf" in NEEDS.files
    main = SYSLOG_NG + '\n@include "remote-tls.conf"\n@include "/opt/site/syslog-ng/extra.conf"\n'
    remote = (
        'destination d_remote { network("logs.example.org" port(6514) transport("tls")\n'
        '  tls(ca-dir("/etc/syslog-ng/ca.d") peer-verify(required-trusted))); };\n'
        "log { source(s_src); destination(d_remote); };\n"
    )
    files = {
        "/etc/syslog-ng/syslog-ng.conf": main,
        "/etc/syslog-ng/scl.conf": sample("syslog-ng/debian12-scl.conf"),
        "/etc/syslog-ng/remote-tls.conf": remote,
    }
    chans, notes = syslog_ng_channels(files)
    assert [(c.target, c.transport, c.authenticated) for c in chans] == [("logs.example.org:6514", "tls", True)]
    assert notes == [
        "/etc/syslog-ng/syslog-ng.conf: @include /opt/site/syslog-ng/extra.conf was not gathered: "
        "destinations defined there are not seen"
    ]
    # The whole check on a host running syslog-ng (no rsyslog): the TLS channel passes, the note is shown.
    h = Host("debian12", live=True).add_files(files).stat("/usr/sbin/syslog-ng")
    h.stat("/var/log/auth.log", 0o100640, gid=4).processes([ps_line(300, "syslog-ng", "/usr/sbin/syslog-ng -F")])
    r = h.check(14)
    assert (
        "pass",
        "syslog-ng sends logs to logs.example.org:6514 over TLS and verifies the receiver (required-trusted)",
    ) in messages(r), messages(r)
    assert any("@include /opt/site/syslog-ng/extra.conf was not gathered" in e.detail for e in r.findings[0].evidence)
