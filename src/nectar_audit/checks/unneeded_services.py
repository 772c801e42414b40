"""Check-Security-12: are unneeded services disabled?

Inventories the services that run (systemd units where systemd runs, else the process list) and start
at boot (unit symlinks; that is all an offline image tells), plus inetd/xinetd services. Known-insecure
ones (telnet, rsh/rlogin/rexec, tftp) fail; ones a research VM rarely needs (xinetd, FTP servers, avahi,
cups, rpcbind/NFS, snmpd, Samba, xrdp/VNC) warn; databases and caches fail when they listen beyond
loopback. ``services.allowed`` in the config file accepts a service by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from nectar_audit.checks import manual_fix
from nectar_audit.checks.base import Check, for_family
from nectar_audit.evidence import EvidenceError
from nectar_audit.facts import Facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.system import (
    Listener,
    Process,
    Services,
    listeners,
    processes,
    services,
    sockets_source,
    unit_base,
)
from nectar_audit.model import Evidence, Finding, Status
from nectar_audit.remedy import Remedy


@dataclass(frozen=True)
class Risky:
    key: str  # name used in messages and matched by services.allowed
    units: tuple[str, ...]  # unit base names
    procs: tuple[str, ...]  # process command names
    kind: str  # insecure | unneeded | datastore
    why: str
    packages: str  # for the remediation


RISKY: tuple[Risky, ...] = (
    Risky(
        "telnet",
        ("telnet", "telnetd", "inetutils-telnetd"),
        ("in.telnetd", "telnetd"),
        "insecure",
        "sends passwords in clear text",
        "telnetd inetutils-telnetd telnet-server",
    ),
    Risky(
        "rsh",
        ("rsh", "rlogin", "rexec", "rsh-server"),
        ("in.rshd", "in.rlogind", "in.rexecd", "rshd", "rlogind", "rexecd"),
        "insecure",
        "r-services authenticate by host name and send data in clear text",
        "rsh-server rsh-redone-server",
    ),
    Risky(
        "tftp",
        ("tftp", "tftpd-hpa", "atftpd", "tftp-server"),
        ("in.tftpd", "atftpd", "tftpd"),
        "insecure",
        "serves files without any authentication",
        "tftpd-hpa atftpd tftp-server",
    ),
    Risky(
        "nis",
        ("ypbind", "ypserv", "nis"),
        ("ypbind", "ypserv"),
        "insecure",
        "NIS sends password hashes across the network",
        "nis ypserv ypbind",
    ),
    Risky(
        "xinetd",
        ("xinetd", "inetd", "openbsd-inetd", "inetutils-inetd"),
        ("xinetd", "inetd"),
        "unneeded",
        "a super-server that starts legacy network services on demand",
        "xinetd openbsd-inetd",
    ),
    Risky(
        "ftp",
        ("vsftpd", "proftpd", "pure-ftpd", "pure-ftpd-mysql"),
        ("vsftpd", "proftpd", "pure-ftpd"),
        "unneeded",
        "FTP sends credentials in clear text unless TLS is forced",
        "vsftpd proftpd-basic pure-ftpd",
    ),
    Risky(
        "avahi",
        ("avahi-daemon",),
        ("avahi-daemon",),
        "unneeded",
        "announces the host and its services by multicast DNS",
        "avahi-daemon",
    ),
    Risky(
        "cups",
        ("cups", "cups-browsed", "cupsd"),
        ("cupsd", "cups-browsed"),
        "unneeded",
        "a print server has no use on a cloud VM and has had remotely exploitable bugs",
        "cups cups-browsed",
    ),
    Risky(
        "rpcbind",
        ("rpcbind", "portmap"),
        ("rpcbind", "portmap"),
        "unneeded",
        "the RPC portmapper exposes NFS and other RPC services and is abused for amplification",
        "rpcbind",
    ),
    Risky(
        "nfs",
        ("nfs-server", "nfs-kernel-server", "nfs-mountd"),
        ("rpc.mountd", "nfsd"),
        "unneeded",
        "an NFS server exports file systems to the network",
        "nfs-kernel-server nfs-utils",
    ),
    Risky(
        "snmpd",
        ("snmpd",),
        ("snmpd",),
        "unneeded",
        "SNMP v1/v2c uses clear-text community strings",
        "snmpd net-snmp",
    ),
    Risky(
        "samba",
        ("smbd", "nmbd", "samba", "smb", "nmb"),
        ("smbd", "nmbd"),
        "unneeded",
        "Windows file sharing exposed to the network",
        "samba",
    ),
    Risky(
        "xrdp", ("xrdp", "xrdp-sesman"), ("xrdp", "xrdp-sesman"), "unneeded", "remote desktop access", "xrdp"
    ),
    Risky(
        "vnc",
        ("vncserver", "x11vnc", "tigervnc", "vncserver-x11-serviced"),
        ("Xvnc", "x11vnc", "Xtigervnc", "vncserver"),
        "unneeded",
        "VNC is unencrypted unless tunnelled",
        "tigervnc-standalone-server x11vnc",
    ),
    Risky(
        "mysql",
        ("mysql", "mysqld", "mariadb"),
        ("mysqld", "mariadbd"),
        "datastore",
        "MySQL/MariaDB",
        "mariadb-server mysql-server",
    ),
    Risky("postgresql", ("postgresql",), ("postgres", "postmaster"), "datastore", "PostgreSQL", "postgresql"),
    Risky("mongodb", ("mongod", "mongodb"), ("mongod",), "datastore", "MongoDB", "mongodb-org"),
    Risky("redis", ("redis-server", "redis"), ("redis-server",), "datastore", "Redis", "redis-server redis"),
    Risky("memcached", ("memcached",), ("memcached",), "datastore", "memcached", "memcached"),
    Risky(
        "elasticsearch",
        ("elasticsearch", "opensearch"),
        (),
        "datastore",
        "Elasticsearch/OpenSearch",
        "elasticsearch",
    ),
    Risky("couchdb", ("couchdb",), ("beam.smp",), "datastore", "CouchDB", "couchdb"),
    Risky("rabbitmq", ("rabbitmq-server",), (), "datastore", "RabbitMQ", "rabbitmq-server"),
)


def _allowed(facts: Facts, r: Risky) -> bool:
    allowed = {a.lower() for a in facts.config.allowed_services}
    allowed |= {unit_base(a.lower()) for a in facts.config.allowed_services}
    return (
        r.key in allowed or any(u in allowed for u in r.units) or any(p.lower() in allowed for p in r.procs)
    )


def _disable_fix(facts: Facts, r: Risky, units: list[str]) -> str | None:
    unit_list = " ".join(units) or " ".join(f"{u}.service" for u in r.units[:1])
    return for_family(
        facts,
        {
            "debian": f"systemctl disable --now {unit_list}; or remove it: apt purge {r.packages.split()[0]}"
            f'  (or add "{r.key}" to services.allowed in the nectar-audit config if it is needed)',
            "rhel": f"systemctl disable --now {unit_list}; or remove it: dnf remove {r.packages.split()[-1]}"
            f'  (or add "{r.key}" to services.allowed in the nectar-audit config if it is needed)',
        },
    )


def _match_units(svc: Services, names: set[str], r: Risky) -> list[str]:
    return sorted(u for u in names if unit_base(u) in r.units)


def run(facts: Facts) -> list[Finding]:
    svc = facts.get(services)
    findings: list[Finding] = []
    procs: list[Process] = []
    if facts.bundle.live:
        try:
            procs = [p for p in facts.get(processes) if not p.kernel_thread]
        except EvidenceError:
            procs = []
    socks: list[Listener] | None = None
    try:
        socks = facts.get(listeners)
    except EvidenceError:
        socks = None

    flagged: set[str] = set()
    for r in RISKY:
        en_units = [u for u in _match_units(svc, set(svc.enabled), r) if not svc.is_masked(u)]
        run_units = _match_units(svc, set(svc.running), r) if svc.running_units else []
        run_procs = [p for p in procs if p.comm in r.procs or p.exe_name in r.procs]
        inetd = [
            s
            for s in svc.inetd
            if s.name in r.units
            or s.name == r.key
            or any(s.server.endswith("/" + p) or s.server == p for p in r.procs)
        ]
        if r.key == "rsh":
            inetd += [s for s in svc.inetd if s.name in ("shell", "login", "exec")]
        if not (en_units or run_units or run_procs or inetd):
            continue
        ev: list[Evidence] = []
        for u in run_units:
            ev.append(Evidence(svc.running_source, f"{u} running"))
        for p in run_procs[:5]:
            ev.append(Evidence("process list", p.describe()))
        for u in en_units:
            ev.append(Evidence(svc.enabled_source, f"{u} enabled at boot"))
        for s in inetd:
            ev.append(Evidence(s.source, s.text))
        running_now = bool(run_units or run_procs)
        where = "running" if running_now else "enabled at boot" if (en_units or inetd) else "present"
        what = r.key
        flagged.add(r.key)
        if _allowed(facts, r):
            findings.append(
                Finding(Status.PASS, f"{what} is {where} and allowed by services.allowed in the config", ev)
            )
            continue
        if r.kind == "datastore":
            findings.append(_datastore(facts, r, ev, run_procs, socks, en_units, running_now))
            continue
        status = Status.FAIL if r.kind == "insecure" else Status.WARN
        findings.append(
            Finding(status, f"{what} is {where}: {r.why}", ev, _disable_fix(facts, r, run_units or en_units))
        )

    # Other inetd services (echo, discard, daytime, chargen, finger, talk…) are legacy too.
    for s in svc.inetd:
        if any(s.name in r.units or s.name == r.key for r in RISKY) or s.name in ("shell", "login", "exec"):
            continue
        findings.append(
            Finding(
                Status.WARN,
                f"inetd service {s.name} is enabled ({s.server or 'internal'})",
                [Evidence(s.source, s.text)],
                f"Comment out the line in {s.source.split(':')[0]} (or set disable = yes) and "
                "restart inetd/xinetd",
            )
        )

    findings.append(_inventory(facts, svc, procs))
    return findings


def _datastore(
    facts: Facts,
    r: Risky,
    ev: list[Evidence],
    run_procs: list[Process],
    socks: list[Listener] | None,
    en_units: list[str],
    running_now: bool,
) -> Finding:
    if socks is not None and running_now:
        pids = {p.pid for p in run_procs}
        mine = [s for s in socks if (s.pid in pids) or (s.process in r.procs)]
        exposed = [s for s in mine if not s.loopback]
        for s in mine:
            ev.append(Evidence(sockets_source(facts), s.describe()))
        if exposed:
            return Finding(
                Status.FAIL,
                f"{r.why} listens beyond loopback on {exposed[0].endpoint}"
                f"{' (+' + str(len(exposed) - 1) + ' more)' if len(exposed) > 1 else ''}",
                ev,
                f"Bind {r.key} to 127.0.0.1 (or a private address behind the firewall) in its "
                "configuration and restart it, or add it to services.allowed if remote access "
                "is intended and protected",
            )
        if mine:
            return Finding(Status.PASS, f"{r.why} runs and listens on loopback only", ev)
        return Finding(Status.PASS, f"{r.why} runs; no listening socket of it was seen", ev)
    if running_now:
        return Finding(
            Status.WARN,
            f"{r.why} runs; whether it listens beyond loopback is unknown (listening sockets unavailable)",
            ev,
        )
    return Finding(
        Status.WARN,
        f"{r.why} is enabled at boot; whether it will listen beyond loopback cannot "
        "be known without it running: check its bind address",
        ev,
    )


def _inventory(facts: Facts, svc: Services, procs: list[Process]) -> Finding:
    ev: list[Evidence] = []
    if svc.running_known and svc.running_units:
        names = sorted(u for u in svc.running if u.endswith((".service", ".socket")))
        ev.append(Evidence(svc.running_source, f"running: {', '.join(names)}"[:2000]))
        running_txt = f"{len(names)} running unit(s)"
    elif procs:
        daemons = sorted({p.comm for p in procs if p.ppid in (0, 1)})
        ev.append(Evidence("process list", f"daemons (children of PID 1): {', '.join(daemons)}"[:2000]))
        running_txt = f"{len(daemons)} daemon process(es)"
    else:
        running_txt = (
            "running services unknown (offline image)"
            if not facts.bundle.live
            else "running services unknown"
        )
    enabled = sorted(u for u in svc.enabled if u.endswith((".service", ".socket")))
    ev.append(Evidence(svc.enabled_source, f"enabled at boot: {', '.join(enabled)}"[:2000]))
    for note in svc.notes:
        ev.append(Evidence("services", note))
    return Finding(Status.PASS, f"Inventory: {running_txt}, {len(enabled)} unit(s) enabled at boot", ev)


def plan(facts: Facts) -> Remedy | None:
    """Never automatic: each service to disable (systemctl disable --now UNIT) or keep, by a human."""
    return manual_fix.remedy("Check-Security-12", "decide which services are needed",
                             manual_fix.decisions(facts.get(run)))


CHECK = Check(
    id="Check-Security-12",
    severity="medium",
    run=run,
    needs=system_facts.NEEDS,
    plan=plan,
    why="Every running network service is attack surface. Legacy clear-text services (telnet, rsh, tftp) "
    "and desktop/LAN services (avahi, cups, Samba, VNC) have no place on a cloud VM unless deliberately "
    "used, and databases or caches reachable from the Internet are a classic data leak.",
    how="Lists running units (systemctl list-units) and enabled units (systemctl list-unit-files, or the "
    "symlinks in /etc/systemd/system/*.wants and /etc/rc?.d offline), the process list where systemd "
    "is not PID 1, and inetd/xinetd services. Insecure services fail; rarely needed ones warn; "
    "databases/caches fail when a socket of theirs listens beyond loopback. Names in services.allowed "
    "of the config file pass.",
    fix={
        "debian": "systemctl disable --now UNIT, or apt purge PACKAGE; list wanted services in [services] "
        "allowed",
        "rhel": "systemctl disable --now UNIT, or dnf remove PACKAGE; list wanted services in [services] "
        "allowed",
        "fedora": "systemctl disable --now UNIT, or dnf remove PACKAGE",
    },
)
