"""Check-Security-13: services reachable from other hosts use encrypted communications."""

from __future__ import annotations

from nectar_audit.checks.base import Check
from nectar_audit.evidence import EvidenceError
from nectar_audit.facts import Facts
from nectar_audit.facts import network as network_facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.network import (
    ServiceExposure,
    exposures,
    planned_exposures,
    planned_unidentified,
    service_plan,
    unidentified,
)
from nectar_audit.facts.system import sockets_source
from nectar_audit.model import Evidence, Finding, Status

NAMES = {
    "telnet": "Telnet",
    "ftp": "FTP",
    "rsh": "rsh",
    "rlogin": "rlogin",
    "rexec": "rexec",
    "tftp": "TFTP",
    "smtp": "SMTP",
    "submission": "SMTP submission",
    "smtps": "SMTPS",
    "pop3": "POP3",
    "pop3s": "POP3S",
    "imap": "IMAP",
    "imaps": "IMAPS",
    "sieve": "ManageSieve",
    "http": "HTTP",
    "https": "HTTPS",
    "jupyter": "Jupyter",
    "rstudio": "RStudio Server",
    "shiny": "Shiny Server",
    "vnc": "VNC",
    "redis": "Redis",
    "memcached": "memcached",
    "mongodb": "MongoDB",
    "elasticsearch": "Elasticsearch",
    "ssh": "SSH",
}

FIXES = {
    "telnet": "Disable telnet (systemctl disable --now telnet.socket, or remove telnetd) and use SSH.",
    "rsh": "Remove rsh-server / rsh-redone-server and use SSH.",
    "rlogin": "Remove rsh-server / rsh-redone-server and use SSH.",
    "rexec": "Remove rsh-server / rsh-redone-server and use SSH.",
    "tftp": "Remove the TFTP server or bind it to a trusted interface only.",
    "ftp": (
        "Use SFTP (part of SSH) instead of FTP, or require FTPS: vsftpd ssl_enable=YES with a certificate; "
        "ProFTPD TLSEngine on + TLSRequired on."
    ),
    "smtp": (
        "Offer STARTTLS: postconf -e 'smtpd_tls_cert_file = …' 'smtpd_tls_key_file = …' "
        "'smtpd_tls_security_level = may'; systemctl reload postfix."
    ),
    "submission": (
        "Require TLS on submission: in master.cf add -o smtpd_tls_security_level=encrypt to the "
        "submission service, with a certificate; systemctl reload postfix."
    ),
    "imap": "Dovecot: ssl = required with ssl_cert/ssl_key set (or close ports 110/143, use 995/993).",
    "http": (
        "Serve HTTPS (e.g. certbot --nginx / --apache) and make port 80 only redirect to https://, or bind "
        "the service to 127.0.0.1 and reach it through an SSH tunnel."
    ),
    "jupyter": (
        "Bind Jupyter to 127.0.0.1 (c.ServerApp.ip = '127.0.0.1') and use an SSH tunnel, or set "
        "c.ServerApp.certfile/keyfile, or put it behind an HTTPS reverse proxy."
    ),
    "rstudio": (
        "Set www-address=127.0.0.1 in /etc/rstudio/rserver.conf and publish it through an HTTPS reverse "
        "proxy (nginx with a certificate), or use an SSH tunnel."
    ),
    "shiny": ("Bind Shiny Server to 127.0.0.1 (listen 3838 127.0.0.1;) and publish it through an HTTPS reverse proxy."),
    "vnc": (
        "Use VNC only through an SSH tunnel (vncserver -localhost yes) or require TLS security types "
        "(SecurityTypes=X509Vnc,TLSVnc)."
    ),
    "redis": "Bind Redis to 127.0.0.1 (bind 127.0.0.1 -::1), or set port 0 and tls-port 6379 + certificates.",
    "memcached": "Bind memcached to 127.0.0.1 (-l 127.0.0.1), or enable TLS (-Z, ssl_chain_cert, ssl_key).",
    "mongodb": "Bind MongoDB to 127.0.0.1 (net.bindIp) or set net.tls.mode: requireTLS with a certificate.",
    "elasticsearch": "Enable xpack.security.http.ssl (elasticsearch-certutil http), or bind to 127.0.0.1.",
}


def _fix(proto: str) -> str | None:
    if proto in ("pop3", "pop3s", "imaps", "sieve"):
        proto = "imap"
    return FIXES.get(proto)


def _group(items: list[ServiceExposure]) -> list[tuple[ServiceExposure, list[str]]]:
    groups: dict[tuple[object, ...], tuple[ServiceExposure, list[str]]] = {}
    for e in items:
        key = (e.protocol, e.listener.port, e.listener.process, e.tls, e.reason, e.redirect_only)
        if key not in groups:
            groups[key] = (e, [])
        groups[key][1].append(e.listener.endpoint)
    return list(groups.values())


def _finding(e: ServiceExposure, endpoints: list[str], src: str, offline: bool, predicted: str = "") -> Finding:
    name = NAMES.get(e.protocol, e.protocol)
    li = e.listener
    where = (
        ("configured to listen beyond loopback on port " + str(li.port))
        if offline
        else f"on {', '.join(sorted(set(endpoints)))}"
    )
    who = f" ({li.owner})" if not offline else (f" ({li.process})" if li.process else "")
    ev = list(e.evidence)
    if not offline:
        ev.insert(0, Evidence(src, li.describe()))
    lead = "Offline image: " if offline else ""
    if e.tls is True:
        return Finding(Status.PASS, f"{lead}{name}{who} {where}: encrypted ({e.reason}){predicted}", ev)
    if e.redirect_only:
        return Finding(Status.PASS, f"{lead}{name}{who} {where}: {e.reason}{predicted}", ev)
    if e.tls is False:
        return Finding(
            Status.FAIL, f"{lead}{name}{who} {where} is not encrypted: {e.reason}{predicted}", ev, _fix(e.protocol)
        )
    return Finding(
        Status.WARN,
        f"{lead}{name}{who} {where}: cannot tell whether it is encrypted ({e.reason}){predicted}",
        ev,
        _fix(e.protocol),
    )


def _offline(facts: Facts) -> list[Finding]:
    """An image: what its enabled services are configured to serve beyond loopback, judged as live ones are."""
    plan = facts.get(service_plan)
    predicted = f" (predicted from configuration: {plan.describe_sources()})"
    findings = [_finding(e, [], "", True, predicted) for e, _ in _group(planned_exposures(facts))]
    unknown = planned_unidentified(facts)
    if unknown:
        shown = sorted({i.describe() for i in unknown})
        findings.append(
            Finding(
                Status.MANUAL,
                f"Offline image: {len(shown)} service(s) configured to listen beyond loopback speak a protocol "
                f"this tool does not identify: {', '.join(shown[:10])}; check that they use TLS{predicted}",
                [e for i in unknown for e in i.evidence[:1]],
            )
        )
    if plan.undecided:
        findings.append(
            Finding(
                Status.MANUAL,
                "Offline image: the configuration does not tell what these enabled services will listen on: "
                + ", ".join(f"{u.unit} ({u.why})" for u in plan.undecided[:8])
                + (" …" if len(plan.undecided) > 8 else "")
                + "; check them on a host booted from the image",
                [Evidence(plan.enabled_source, u.unit) for u in plan.undecided],
            )
        )
    if not findings:
        return [
            Finding(
                Status.NOT_APPLICABLE,
                f"Offline image: no enabled service is configured to listen on TCP beyond loopback{predicted}",
                [Evidence(s, "read") for s in plan.sources] or [Evidence(plan.enabled_source, "enabled units")],
            )
        ]
    return findings


def run(facts: Facts) -> list[Finding]:
    if not facts.bundle.live:
        return _offline(facts)
    try:
        items = facts.get(exposures)
        unknown = facts.get(unidentified)
    except EvidenceError as exc:
        return [Finding(Status.ERROR, f"cannot list listening sockets: {exc}")]
    src = sockets_source(facts)
    findings = [_finding(e, eps, src, False) for e, eps in _group(items)]
    if unknown:
        shown = sorted({f"{li.endpoint} ({li.process or 'process not visible'})" for li in unknown})
        findings.append(
            Finding(
                Status.MANUAL,
                f"{len(shown)} listener(s) beyond loopback speak a protocol this tool does not identify: "
                f"{', '.join(shown[:10])}{' …' if len(shown) > 10 else ''}; check that they use TLS",
                [Evidence(src, li.describe()) for li in unknown[:20]],
            )
        )
    if not findings:
        return [Finding(Status.NOT_APPLICABLE, "No TCP service listens beyond loopback")]
    return findings


CHECK = Check(
    id="Check-Security-13",
    severity="medium",
    run=run,
    needs=network_facts.NEEDS | system_facts.NEEDS,
    why="Anything sent in clear text over the network (passwords, Jupyter tokens, database queries, mail) "
    "can be "
    "read and altered by anyone on the path; cloud networks and the Internet are such paths.",
    how="For every listening TCP socket beyond loopback (live), identifies the protocol from the owning "
    "process "
    "and port (telnet, FTP, rsh, POP3/IMAP, SMTP, HTTP, Jupyter, RStudio, Shiny, VNC, Redis, memcached, "
    "MongoDB, Elasticsearch, SSH) and decides from its configuration whether it is encrypted (postfix "
    "smtpd_tls_*, dovecot ssl, nginx/apache 'listen … ssl' / SSLEngine and redirects to https://, Jupyter "
    "certfile, vsftpd/ProFTPD TLS, redis tls-port, mongod net.tls, memcached -Z, xpack http ssl). Plaintext "
    "fails, unknown warns (never guessed), unidentified listeners are listed for manual review. Offline images: the "
    "services enabled at boot (units, SysV links, inetd) and what their configuration makes them listen on "
    "(sshd, mail, web, DNS, NTP, FTP, Redis, rsyslog, socket units) are judged the same way, as a prediction "
    "naming its files; enabled services whose listeners the configuration does not tell are left to a human.",
    fix={
        "debian": "Replace plaintext services by encrypted ones (SSH/SFTP, HTTPS, STARTTLS/IMAPS) or bind "
        "them to "
        "127.0.0.1 and use an SSH tunnel.",
        "rhel": "Replace plaintext services by encrypted ones (SSH/SFTP, HTTPS, STARTTLS/IMAPS) or bind "
        "them to "
        "127.0.0.1 and use an SSH tunnel.",
    },
)
