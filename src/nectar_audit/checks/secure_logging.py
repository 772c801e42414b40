"""Check-Security-14: is logging stored in a secure place (off the host, over a secure channel)?"""

from __future__ import annotations

from nectar_audit.checks import logging_fix
from nectar_audit.checks.base import Check, for_family
from nectar_audit.facts import Facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.system import Channel, LoggingState, logging_state
from nectar_audit.model import Evidence, Finding, Status

RSYSLOG_TLS = (
    'action(type="omfwd" target="LOGHOST" port="6514" protocol="tcp" StreamDriver="gtls" '
    'StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="LOGHOST") '
    'with global(DefaultNetstreamDriverCAFile="/etc/ssl/certs/ca-certificates.crt"); needs the '
    "rsyslog-gnutls package"
)
SYSLOG_NG_TLS = (
    'destination d_remote { network("LOGHOST" port(6514) transport("tls") '
    'tls(ca-file("/etc/ssl/certs/ca-certificates.crt") peer-verify(required-trusted))); };'
)


def _channel_ev(ch: Channel) -> Evidence:
    return Evidence(ch.source, ch.detail)


def _channel_finding(ch: Channel, facts: Facts) -> Finding:
    who = {"rsyslog": "rsyslog", "syslog-ng": "syslog-ng", "journal-upload": "systemd-journal-upload"}[
        ch.daemon
    ]
    fix = for_family(
        facts,
        {
            "debian": f"Forward over TLS: {RSYSLOG_TLS}",
            "rhel": f"Forward over TLS: {RSYSLOG_TLS.replace('rsyslog-gnutls', 'rsyslog-gnutls (dnf)')}",
        },
    )
    if ch.daemon == "syslog-ng":
        fix = f"Use TLS: {SYSLOG_NG_TLS}"
    elif ch.daemon == "journal-upload":
        fix = "Use URL=https://… in /etc/systemd/journal-upload.conf with TrustedCertificateFile= set"
    if ch.transport == "udp":
        return Finding(
            Status.FAIL,
            f"{who} sends logs to {ch.target} over plain UDP: anyone on the path can read (and forge) them",
            [_channel_ev(ch)],
            fix,
        )
    if ch.transport in ("tcp", "relp", "http"):
        name = {"tcp": "TCP", "relp": "RELP", "http": "HTTP"}[ch.transport]
        return Finding(
            Status.FAIL,
            f"{who} sends logs to {ch.target} over {name} without TLS: anyone on the path can read them",
            [_channel_ev(ch)],
            fix,
        )
    if not ch.authenticated:
        return Finding(
            Status.WARN,
            f"{who} sends logs to {ch.target} over TLS without verifying the receiver "
            f"({ch.auth_mode or 'no authentication'}): a man in the middle can read them",
            [_channel_ev(ch)],
            'Authenticate the log server: StreamDriverAuthMode="x509/name" with '
            'StreamDriverPermittedPeers (rsyslog), tls.authMode="name" (RELP), '
            "peer-verify(required-trusted) (syslog-ng)",
        )
    return Finding(
        Status.PASS,
        f"{who} sends logs to {ch.target} over TLS and verifies the receiver"
        + (f" ({ch.auth_mode})" if ch.auth_mode else ""),
        [_channel_ev(ch)],
    )


def _local_storage(state: LoggingState, facts: Facts) -> tuple[list[Finding], list[str], list[Evidence]]:
    """(findings when nothing keeps logs, what keeps them, the evidence of either)."""
    d = state.daemons
    ev: list[Evidence] = []
    keepers: list[str] = []
    unknown = False
    for name in ("rsyslog", "syslog-ng"):
        ds = d[name]
        if ds.running:
            keepers.append(name)
            ev.append(Evidence(ds.how or "process list", f"{name} is running"))
        elif ds.running is None and ds.enabled:
            keepers.append(name)
            ev.append(Evidence(ds.how or "systemd", f"{name} is enabled"))
        elif ds.running is None and ds.installed and d["systemd-journald"].enabled:
            ev.append(Evidence(ds.how or "systemd", f"{name} is installed but not enabled"))
        elif ds.running is None and ds.installed:
            unknown = True
            ev.append(Evidence("package files", f"{name} is installed (whether it runs is unknown)"))
        elif ds.installed:
            ev.append(Evidence(ds.how or "process list", f"{name} is installed but not running"))
    if state.journal_persistent is not None:
        ev.append(
            Evidence(
                state.journald_storage.source,
                f"journald Storage={state.journald_storage.value} "
                f"({'persistent' if state.journal_persistent else 'not persistent'})",
            )
        )
        if state.journal_persistent and d["systemd-journald"].running is not False:
            keepers.append("journald (persistent)")
    if keepers:
        return [], keepers, ev
    if unknown:
        return [Finding(Status.MANUAL, "cannot tell whether a syslog daemon runs on this image", ev)], keepers, ev
    return [
        Finding(
            Status.FAIL,
            "no syslog daemon runs and the journal is not kept on disk: logs are lost at "
            "reboot (or not kept at all)",
            ev,
            for_family(
                facts,
                {
                    "debian": "apt-get install rsyslog (or set Storage=persistent in "
                    "/etc/systemd/journald.conf)",
                    "rhel": "dnf install rsyslog && systemctl enable --now rsyslog",
                },
            ),
        )
    ], keepers, ev


def _file_modes(state: LoggingState) -> list[Finding]:
    out: list[Finding] = []
    for lf in state.log_files:
        ev = [Evidence(lf.path, f"mode {lf.mode:04o} uid {lf.uid} gid {lf.gid}")]
        if lf.world_writable:
            out.append(
                Finding(
                    Status.FAIL,
                    f"{lf.path} is world-writable (mode {lf.mode:04o}): anyone can "
                    "erase or forge log entries",
                    ev,
                    f"chmod o-w {lf.path}",
                )
            )
        elif lf.world_readable and lf.auth:
            out.append(
                Finding(
                    Status.FAIL,
                    f"{lf.path} is world-readable (mode {lf.mode:04o}): it records "
                    "logins and authentication failures",
                    ev,
                    f"chmod o-r {lf.path}",
                )
            )
        elif lf.world_readable:
            out.append(
                Finding(
                    Status.WARN,
                    f"{lf.path} is world-readable (mode {lf.mode:04o})",
                    ev,
                    f"chmod o-r {lf.path}",
                )
            )
    return out


def run(facts: Facts) -> list[Finding]:
    state = facts.get(logging_state)
    findings: list[Finding] = []
    storage, keepers, storage_ev = _local_storage(state, facts)
    findings.extend(storage)
    findings.extend(_channel_finding(ch, facts) for ch in state.channels)
    for ch in state.inactive_channels:
        findings.append(
            Finding(
                Status.WARN,
                f"logs are configured to go to {ch.target} but {ch.daemon} does not run",
                [_channel_ev(ch)],
            )
        )
    findings.extend(_file_modes(state))
    if not state.channels:
        # What keeps the logs, and (for rsyslog) the files that send them nowhere else: the configuration
        # of a daemon that does not run is beside the point.
        ev = [e for e in storage_ev if any(k.split()[0] in e.detail for k in keepers)]
        if "rsyslog" in keepers:
            ev += [Evidence(f, "no remote destination") for f in state.rsyslog_files[:3]]
        findings.append(
            Finding(
                Status.WARN,
                "logs are only kept on this host: whoever takes over the host can erase them "
                "(forward them to a log server over TLS)",
                ev,
                for_family(
                    facts,
                    {
                        "debian": f"Forward over TLS: {RSYSLOG_TLS}",
                        "rhel": f"Forward over TLS: {RSYSLOG_TLS}",
                    },
                ),
            )
        )
    auditd = state.daemons["auditd"]
    target = next((f for f in findings if f.status is Status.PASS), findings[0] if findings else None)
    if target is not None and (auditd.running or auditd.enabled):
        target.evidence.append(
            Evidence(auditd.how or "auditd", "auditd is running: kernel audit records add tamper evidence")
        )
    if not findings:
        findings.append(Finding(Status.PASS, "logs are kept", []))
    for note in state.notes:
        if findings:
            findings[0].evidence.append(Evidence("note", note))
    return findings


CHECK = Check(
    id="Check-Security-14",
    severity="medium",
    run=run,
    needs=system_facts.NEEDS,
    plan=logging_fix.plan,
    why="An intruder's first move is to erase the logs; logs kept only on the host cannot be trusted after a "
    "compromise, and logs sent in clear text leak what happens on the host.",
    how="A syslog daemon (rsyslog, syslog-ng) runs or journald keeps a persistent journal; auth logs are not "
    "world-readable or world-writable; each remote destination is judged: rsyslog @host (UDP) and "
    "@@host/omfwd TCP or RELP without TLS fail, TLS without authenticating the receiver warns, omfwd with "
    "StreamDriver gtls/ossl, StreamDriverMode 1 and x509/name or fingerprint authentication (or RELP "
    'tls="on" with tls.authMode) passes; syslog-ng network()/syslog() with transport("tls") and '
    "peer-verify(required-trusted); systemd-journal-upload over https. No remote destination at all warns. "
    "auditd running is shown as evidence.",
    fix={
        "debian": f"apt-get install rsyslog-gnutls and forward: {RSYSLOG_TLS}",
        "rhel": f"dnf install rsyslog-gnutls and forward: {RSYSLOG_TLS}",
    },
)
