"""Offline images: which ports the enabled services will listen on once a host boots, from their configuration.

A root filesystem has no sockets, but it says what will start (enabled units, SysV links, inetd) and how
each of those services is configured to listen: sshd's Port/ListenAddress or its socket unit, Postfix's
``inet_interfaces`` and master.cf, Exim's ``dc_local_interfaces``, Dovecot's listeners, nginx/Apache
``listen``/``Listen``, BIND/unbound/dnsmasq/chrony/ntpd's listening plans, vsftpd/ProFTPD, Redis,
rsyslog's network inputs, the ``ListenStream=``/``ListenDatagram=`` of enabled socket units and inetd's
services. Enabled units this module does not know are "undecided": the prediction is then incomplete, and
says which units could hold which ports. Everything here is a prediction from files, named as such.

Public API:

- ``service_plan(facts) -> ServicePlan``: ``listeners`` (``PlannedListener``: proto, port, address, unit,
  program, evidence; ``.listener()`` as a ``Listener`` for the checks' firewall logic), ``undecided``
  (unit, why, the ports it could use or None for any), ``quiet`` (enabled units known to listen on no
  network socket), ``sources`` (the files the prediction rests on).
- ``planned_exposures(facts)``: the plan's TCP listeners beyond loopback with what they speak and whether
  it is encrypted (the same judgement as live listeners), for check 13.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs
from nectar_audit.facts.network.dns import DnsServer, dns_servers
from nectar_audit.facts.network.mail import MailServer, mail_servers
from nectar_audit.facts.network.ntp import NtpServer, ntp_servers
from nectar_audit.facts.network.plaintext import (
    APACHE,
    NGINX,
    NOT_IN_SCOPE,
    NOT_IN_SCOPE_PORTS,
    PROFTPD,
    REDIS,
    VSFTPD,
    ServiceExposure,
    _Ctx,
    _identify,
    _protocol,
    _texts,
    parse_apache,
    parse_nginx,
    parse_proftpd_conf,
    parse_redis_conf,
    parse_vsftpd_conf,
)
from nectar_audit.facts.ssh import sshd_config, sshd_listeners
from nectar_audit.facts.system import Listener, Services, services, unit_base
from nectar_audit.model import Evidence

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
SOCKET_UNITS = tuple(f"{d}/*.socket" for d in UNIT_DIRS) + tuple(f"{d}/*.socket.d/*.conf" for d in UNIT_DIRS)
RSYSLOG = ("/etc/rsyslog.conf", "/etc/rsyslog.d/*.conf")
RESOLVED_CONF = "/etc/systemd/resolved.conf"
SSHD_CONFIG = "/etc/ssh/sshd_config"

NEEDS = Needs(files=(*SOCKET_UNITS, RESOLVED_CONF, "/etc/systemd/resolved.conf.d/*.conf"))

# Enabled units that open no listening network socket (unix sockets, clients, one-shot jobs, firewalls).
QUIET = frozenset(
    (
        "accounts-daemon",
        "anacron",
        "apparmor",
        "apport",
        "apt-daily",
        "apt-daily-upgrade",
        "atd",
        "auditd",
        "blk-availability",
        "chrony-wait",
        "cloud-config",
        "cloud-final",
        "cloud-init",
        "cloud-init-local",
        "cloud-init-main",
        "cloud-init-network",
        "console-getty",
        "console-setup",
        "containerd",
        "cron",
        "crond",
        "cronie",
        "dbus",
        "dm-event",
        "dmesg",
        "dnf-automatic",
        "dnf-automatic-install",
        "dnf-makecache",
        "dpkg-db-backup",
        "e2scrub_all",
        "e2scrub_reap",
        "fail2ban",
        "finalrd",
        "firewalld",
        "fstrim",
        "getty",
        "grub-common",
        "grub-initrd-fallback",
        "haveged",
        "hwclock",
        "ip6tables",
        "iptables",
        "irqbalance",
        "iscsid",
        "kdump",
        "kdump-tools",
        "keyboard-setup",
        "kmod",
        "kmod-static-nodes",
        "lm-sensors",
        "loadcpufreq",
        "logrotate",
        "lvm2-lvmpolld",
        "lvm2-monitor",
        "lxd-agent",
        "man-db",
        "mdadm",
        "mdmonitor",
        "ModemManager",
        "multipathd",
        "netfilter-persistent",
        "networkd-dispatcher",
        "networking",
        "NetworkManager",
        "NetworkManager-dispatcher",
        "NetworkManager-wait-online",
        "nftables",
        "nis-domainname",
        "open-iscsi",
        "open-vm-tools",
        "plymouth",
        "polkit",
        "pollinate",
        "qemu-guest-agent",
        "rc-local",
        "rescue",
        "rhsmcertd",
        "rngd",
        "secureboot-db",
        "serial-getty",
        "setvtrgb",
        "smartd",
        "smartmontools",
        "snapd",
        "snapd.apparmor",
        "snapd.autoimport",
        "snapd.core-fixup",
        "snapd.recovery-chooser-trigger",
        "snapd.seeded",
        "snapd.system-shutdown",
        "sssd",
        "sudo",
        "sysstat",
        "systemd-fsck",
        "systemd-journald",
        "systemd-logind",
        "systemd-networkd",
        "systemd-networkd-wait-online",
        "systemd-pstore",
        "systemd-remount-fs",
        "systemd-timesyncd",
        "systemd-tmpfiles-clean",
        "systemd-udevd",
        "tuned",
        "ua-reboot-cmds",
        "ubuntu-advantage",
        "ubuntu-fan",
        "udisks2",
        "ufw",
        "unattended-upgrades",
        "upower",
        "vgauth",
        "wpa_supplicant",
        "x11-common",
    )
)
_NO_LISTEN_SUFFIXES = (".timer", ".target", ".path", ".mount", ".automount", ".swap", ".slice", ".device", ".scope")
SSH_UNITS = ("ssh", "sshd")
MAIL_UNITS = {
    "postfix": ("postfix",),
    "exim": ("exim4", "exim"),
    "sendmail": ("sendmail",),
    "opensmtpd": ("opensmtpd",),
    "dovecot": ("dovecot",),
}
DNS_UNITS = {
    "bind": ("named", "bind9"),
    "unbound": ("unbound",),
    "dnsmasq": ("dnsmasq",),
    "pdns-recursor": ("pdns-recursor",),
    "systemd-resolved": ("systemd-resolved",),
}
NTP_UNITS = {
    "chrony": ("chrony", "chronyd"),
    "ntpd": ("ntp", "ntpd", "ntpsec"),
    "ntpsec": ("ntpsec", "ntp", "ntpd"),
    "openntpd": ("openntpd",),
}
WEB_UNITS = {"nginx": ("nginx",), "apache": ("apache2", "httpd")}
FTP_UNITS = {"vsftpd": ("vsftpd",), "proftpd": ("proftpd",)}
REDIS_UNITS = ("redis-server", "redis")
RSYSLOG_UNITS = ("rsyslog", "syslog")
INETD_UNITS = ("inetd", "openbsd-inetd", "inetutils-inetd", "xinetd")
# inetd service names (/etc/services) of the servers it commonly runs.
INETD_PORTS = {
    "telnet": ("tcp", 23),
    "ftp": ("tcp", 21),
    "shell": ("tcp", 514),
    "login": ("tcp", 513),
    "exec": ("tcp", 512),
    "tftp": ("udp", 69),
    "finger": ("tcp", 79),
    "discard": ("tcp", 9),
    "echo": ("tcp", 7),
    "daytime": ("tcp", 13),
    "time": ("tcp", 37),
    "ident": ("tcp", 113),
    "auth": ("tcp", 113),
}
_ANY = ("*", "0.0.0.0", "::", "[::]", "all", "any", "inet", "inet4", "inet6", "_default_", "")
_LOOPBACK_NAMES = ("localhost", "lo", "loopback-only", "localhost.localdomain", "ip6-localhost")


@dataclass(frozen=True)
class PlannedListener:
    proto: str  # tcp | udp
    port: int
    address: str  # "*" (every address, both families), "0.0.0.0", "::", an address or a name
    unit: str  # the enabled unit that starts it ("ssh.service")
    program: str  # the process name it will have ("sshd", "master", "nginx")
    evidence: tuple[Evidence, ...] = ()

    @property
    def loopback(self) -> bool:
        a = self.address.strip("[]").lower()
        if a in _LOOPBACK_NAMES:
            return True
        return a.startswith("127.") or a == "::1"

    def listener(self) -> Listener:
        """The socket it will be, for the live checks' logic (no pid: it does not run)."""
        a = self.address.strip("[]")
        if a.lower() in _ANY or a == "*":
            return Listener(self.proto, 6, "::", self.port, None, self.program, v6only=False)
        if a.lower() in _LOOPBACK_NAMES:
            return Listener(self.proto, 4, "127.0.0.1", self.port, None, self.program)
        family = 6 if ":" in a else 4
        if not re.fullmatch(r"[0-9a-fA-F:.]+", a):
            # A host or interface name: some address of this host, which one is unknown.
            return Listener(self.proto, 6, "::", self.port, None, self.program, v6only=False)
        return Listener(self.proto, family, a, self.port, None, self.program, v6only=True if family == 6 else None)

    def describe(self) -> str:
        where = f"[{self.address}]" if ":" in self.address else self.address
        return f"{where}:{self.port}/{self.proto} by {self.program} ({self.unit})"


@dataclass(frozen=True)
class Undecided:
    unit: str
    why: str
    ports: frozenset[tuple[str, int]] | None = None  # what it could listen on; None: anything


@dataclass(frozen=True)
class ServicePlan:
    listeners: tuple[PlannedListener, ...]
    undecided: tuple[Undecided, ...]
    quiet: tuple[str, ...]
    sources: tuple[str, ...]
    enabled_source: str

    def beyond_loopback(self) -> list[PlannedListener]:
        return [p for p in self.listeners if not p.loopback]

    def could_serve(self, proto: str, port: int) -> list[Undecided]:
        return [u for u in self.undecided if u.ports is None or (proto, port) in u.ports]

    def describe_sources(self) -> str:
        files = [s for s in self.sources if s]
        shown = ", ".join(files[:6]) + (f" and {len(files) - 6} more" if len(files) > 6 else "")
        return f"enabled units ({self.enabled_source})" + (f"; {shown}" if shown else "")


def _read(p: _Plan, path: str) -> str | None:
    """A file's text; None when absent or unreadable (the caller then cannot decide)."""
    try:
        return p.b.text(path)
    except EvidenceError:
        return None


def _path(where: str) -> str:
    return re.sub(r":\d+$", "", where)


class _Plan:
    def __init__(self, facts: Facts, svc: Services) -> None:
        self.facts = facts
        self.b = facts.bundle
        self.svc = svc
        self.listeners: list[PlannedListener] = []
        self.undecided: list[Undecided] = []
        self.quiet: list[str] = []
        self.sources: list[str] = []
        self.done: set[str] = set()

    def add(self, proto: str, port: int, address: str, unit: str, program: str, ev: Iterable[Evidence]) -> None:
        evs = tuple(ev)
        if not 0 < port < 65536:
            # The daemon refuses such a port (and may not start at all): no listener, but not a decision.
            self.undecided.append(Undecided(unit, f"port {port} is not a valid port", None))
            return
        self.listeners.append(PlannedListener(proto, port, address or "*", unit, program, evs))
        for e in evs:
            p = _path(e.source)
            if p.startswith("/") and p not in self.sources:
                self.sources.append(p)

    def enabled(self, names: Iterable[str]) -> str | None:
        for n in names:
            for unit in (f"{n}.service", f"{n}.socket"):
                if self.svc.is_enabled(unit):
                    return unit
        return None


def _address(addr: str) -> str:
    a = addr.strip()
    return "*" if a.lower() in _ANY else a


def _sshd(p: _Plan, unit: str) -> None:
    try:
        info = p.facts.get(sshd_listeners)
        cfg = p.facts.get(sshd_config)
    except EvidenceError as exc:
        p.undecided.append(Undecided(unit, f"sshd's configuration cannot be read: {exc}", None))
        return
    if info.socket is not None:
        for lp in info.ports:
            value = lp.detail.split("=", 1)[-1].strip()
            host = value.rsplit(":", 1)[0].strip("[]") if ":" in value else "*"
            p.add("tcp", lp.port, _address(host), info.socket.name, "sshd", [Evidence(lp.where, lp.detail)])
        return
    family = cfg.global_value("addressfamily").value.lower()
    wildcard = {"inet": "0.0.0.0", "inet6": "::"}.get(family, "*")
    ports = [(int(d.args[0]), d) for d in cfg.global_directives if d.keyword == "port" and d.args[0].isdigit()]
    default = ports if ports else [(22, None)]
    listens = [d for d in cfg.global_directives if d.keyword == "listenaddress" and d.args]
    if not listens:
        for port, d in default:
            ev = (
                Evidence(d.where, " ".join([d.name, *d.args]))
                if d
                else Evidence(SSHD_CONFIG, "no Port nor ListenAddress: sshd listens on port 22 of every address")
            )
            p.add("tcp", port, wildcard, unit, "sshd", [ev])
        return
    for d in listens:
        spec = d.args[0]
        m = re.fullmatch(r"\[([^\]]*)\]:(\d+)|([^:\[\]]+):(\d+)", spec)
        ev = Evidence(d.where, " ".join([d.name, *d.args]))
        if m:
            host = m.group(1) if m.group(1) is not None else m.group(3)
            p.add("tcp", int(m.group(2) or m.group(4)), _address(host), unit, "sshd", [ev])
        else:
            for port, _ in default:
                p.add("tcp", port, _address(spec.strip("[]")), unit, "sshd", [ev])


def _mail(p: _Plan, srv: MailServer, unit: str) -> None:
    if not srv.services:
        if srv.config is None:
            p.undecided.append(Undecided(unit, f"{srv.name}: its configuration was not found", None))
        else:
            p.sources.append(srv.config)
        return
    for s in srv.services:
        for addr in s.addresses or ("all",):
            p.add("tcp", s.port, _address(addr), unit, srv.processes[0], s.evidence)


def _plan_server(p: _Plan, srv: DnsServer | NtpServer, unit: str, ports: list[tuple[str, int]], program: str) -> None:
    plan = srv.listen
    if isinstance(srv, NtpServer) and srv.client_only:
        p.sources.extend(_path(e.source) for e in plan.evidence if e.source.startswith("/"))
        return
    if plan.beyond_loopback is None:
        p.undecided.append(Undecided(unit, f"{srv.kind}: {plan.text}", frozenset(ports)))
        return
    addr = "*" if plan.beyond_loopback else "127.0.0.1"
    for proto, port in ports:
        p.add(proto, port, addr, unit, program, plan.evidence or (Evidence(srv.config or unit, plan.text),))


def _web(p: _Plan, kind: str, unit: str) -> None:
    if kind == "nginx":
        files = _texts(p.b, NGINX)
        items = parse_nginx(files)
        if not files:
            p.undecided.append(Undecided(unit, "nginx: /etc/nginx/nginx.conf not found", None))
        for w in items:
            p.add("tcp", w.port, _address(w.address), unit, "nginx", [Evidence(w.where, w.detail)])
        return
    files = _texts(p.b, APACHE)
    listens, _ = parse_apache(files)
    program = "apache2" if any(f.startswith("/etc/apache2") for f in files) else "httpd"
    if not listens:
        p.undecided.append(Undecided(unit, "Apache: no Listen directive found", None))
    for addr, port, _proto, where in listens:
        p.add("tcp", port, _address(addr), unit, program, [Evidence(where, f"Listen {addr}:{port}")])


def _ftp(p: _Plan, kind: str, unit: str) -> None:
    if kind == "vsftpd":
        path = next((f for f in VSFTPD if p.b.file(f) is not None), None)
        if path is None:
            p.undecided.append(Undecided(unit, "vsftpd: its configuration was not found", frozenset({("tcp", 21)})))
            return
        text = _read(p, path)
        if text is None:
            p.undecided.append(Undecided(unit, f"vsftpd: {path} is not readable", frozenset({("tcp", 21)})))
            return
        conf = parse_vsftpd_conf(text)
        port = conf.get("listen_port", ("21", 0))[0]
        v4 = conf.get("listen", ("NO", 0))[0].upper() == "YES"
        v6 = conf.get("listen_ipv6", ("NO", 0))[0].upper() == "YES"
        where = f"{path}:{(conf.get('listen_ipv6') or conf.get('listen') or ('', 0))[1]}"
        if not port.isdigit() or not (v4 or v6):
            p.sources.append(path)  # run from inetd, or not at all
            return
        addr = conf.get("listen_address6" if v6 else "listen_address", ("", 0))[0]
        p.add(
            "tcp",
            int(port),
            _address(addr) if addr else ("*" if v6 else "0.0.0.0"),
            unit,
            "vsftpd",
            [Evidence(where, f"listen={'YES' if v4 else 'NO'} listen_ipv6={'YES' if v6 else 'NO'} port {port}")],
        )
        return
    files = _texts(p.b, PROFTPD)
    if not files:
        p.undecided.append(Undecided(unit, "ProFTPD: its configuration was not found", frozenset({("tcp", 21)})))
        return
    pconf: dict[str, tuple[str, int]] = {}
    for text in files.values():
        pconf.update(parse_proftpd_conf(text))
    port = pconf.get("port", ("21", 0))[0]
    if port.isdigit() and int(port) > 0:
        p.add("tcp", int(port), "*", unit, "proftpd", [Evidence(next(iter(files)), f"Port {port}")])


def _redis(p: _Plan, unit: str) -> None:
    texts = _texts(p.b, REDIS)
    if not texts:
        p.undecided.append(Undecided(unit, "Redis: its configuration was not found", frozenset({("tcp", 6379)})))
        return
    path, text = next(iter(texts.items()))
    conf = parse_redis_conf(text)
    binds = conf.get("bind", ("* -::*", 0))
    addrs = [a.lstrip("-") for a in binds[0].split()] or ["*"]
    for key in ("port", "tls-port"):
        value = conf.get(key, ("6379" if key == "port" else "0", 0))
        if value[0].isdigit() and int(value[0]) > 0:
            for a in addrs:
                p.add(
                    "tcp",
                    int(value[0]),
                    _address("*" if a in ("*", "::*") else a),
                    unit,
                    "redis-server",
                    [
                        Evidence(f"{path}:{binds[1]}", f"bind {binds[0]}"),
                        Evidence(f"{path}:{value[1]}", f"{key} {value[0]}"),
                    ],
                )


_RSYSLOG_INPUT = re.compile(r"""input\s*\(([^)]*)\)""", re.S)


def _rsyslog(p: _Plan, unit: str) -> None:
    for path, text in _texts(p.b, RSYSLOG).items():
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for m in _RSYSLOG_INPUT.finditer(body):
            params = dict(re.findall(r"""(\w+)\s*=\s*["']([^"']*)["']""", m.group(1)))
            kind = params.get("type", "").lower()
            if kind in ("imudp", "imtcp", "imptcp", "imrelp"):
                line = body.count("\n", 0, m.start()) + 1
                port = params.get("port", "514")
                proto = "udp" if kind == "imudp" else "tcp"
                if port.isdigit():
                    p.add(
                        proto,
                        int(port),
                        _address(params.get("address", "*")),
                        unit,
                        "rsyslogd",
                        [Evidence(f"{path}:{line}", " ".join(m.group(0).split()))],
                    )
        for no, raw in enumerate(text.splitlines(), 1):
            m2 = re.match(r"\s*\$(UDPServerRun|InputTCPServerRun)\s+(\d+)", raw)
            if m2:
                proto = "udp" if m2.group(1) == "UDPServerRun" else "tcp"
                p.add(proto, int(m2.group(2)), "*", unit, "rsyslogd", [Evidence(f"{path}:{no}", raw.strip())])
        p.sources.append(path)


def _socket_unit(p: _Plan, unit: str) -> None:
    found = [d for d in UNIT_DIRS if p.b.file(f"{d}/{unit}") is not None]
    if not found:
        p.undecided.append(Undecided(unit, f"the unit file of {unit} was not found", None))
        return
    parts = [f"{found[0]}/{unit}"]
    for d in UNIT_DIRS:
        parts += sorted(p.b.glob(f"{d}/{unit}.d/*.conf"))
    values: list[tuple[str, str, str, str]] = []  # (kind, value, where, line)
    for path in parts:
        section = ""
        text = _read(p, path)
        if text is None:
            p.undecided.append(Undecided(unit, f"{path} is not readable", None))
            return
        for no, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif section == "Socket" and "=" in line and not line.startswith(("#", ";")):
                key, _, value = line.partition("=")
                key, value = key.strip(), value.strip()
                if key in ("ListenStream", "ListenDatagram", "ListenSequentialPacket"):
                    if not value:
                        values = [v for v in values if v[0] != key]
                    else:
                        values.append((key, value, f"{path}:{no}", line))
    program = unit_base(unit)
    for key, value, where, line in values:
        if value.startswith(("/", "@", "vsock:")):
            continue
        m = re.fullmatch(r"(?:\[([^\]]*)\]|([^:\[\]]+)):(\d+)|(\d+)", value)
        if m is None:
            p.undecided.append(Undecided(unit, f"{where}: {line}", None))
            continue
        host = m.group(1) or m.group(2) or "*"
        port = int(m.group(3) or m.group(4))
        p.add("udp" if key == "ListenDatagram" else "tcp", port, _address(host), unit, program, [Evidence(where, line)])
    p.sources.append(parts[0])


def _inetd(p: _Plan, unit: str) -> None:
    for s in p.svc.inetd:
        name = s.name.lower()
        if name in INETD_PORTS:
            proto, port = INETD_PORTS[name]
            # inetd itself holds the socket, as a live host shows it.
            p.add(proto, port, "*", unit, unit_base(unit), [Evidence(s.source, s.text)])
        elif name.isdigit():
            p.add("tcp", int(name), "*", unit, unit_base(unit), [Evidence(s.source, s.text)])
        else:
            p.undecided.append(
                Undecided(unit, f"inetd service {s.name} ({s.source}): its port is not known here", None)
            )


def _resolved_llmnr(p: _Plan, unit: str) -> None:
    value: tuple[str, str, str] | None = None
    default: tuple[str, str, str] | None = None
    for path in [RESOLVED_CONF, *sorted(p.b.glob("/etc/systemd/resolved.conf.d/*.conf"))]:
        for no, raw in enumerate((_read(p, path) or "").splitlines(), 1):
            m = re.match(r"\s*LLMNR\s*=\s*(\S*)", raw)
            if m:
                value = (m.group(1).lower(), f"{path}:{no}", raw.strip())
            elif value is None and path == RESOLVED_CONF:
                # The packaged resolved.conf shows the compile-time defaults as comments ("#LLMNR=no").
                d = re.match(r"\s*#\s*LLMNR\s*=\s*(\S+)\s*$", raw)
                if d:
                    default = (d.group(1).lower(), f"{path}:{no}", f"{raw.strip()} (the compiled-in default)")
    if value is None:
        value = default
    # "resolve": resolution only, the responder (the 5355 listener) stays off.
    if value is not None and value[0] in ("no", "false", "0", "off", "resolve"):
        p.sources.append(_path(value[1]))
        return
    if value is not None and value[0] in ("yes", "true", "1", "on"):
        for proto in ("tcp", "udp"):
            p.add(proto, 5355, "*", unit, "systemd-resolve", [Evidence(value[1], value[2])])
        return
    p.undecided.append(
        Undecided(
            unit,
            "systemd-resolved: LLMNR is not set, and resolved.conf does not show the compiled-in default",
            frozenset({("tcp", 5355), ("udp", 5355)}),
        )
    )


def service_plan(facts: Facts) -> ServicePlan:
    """What the enabled services are configured to listen on (a prediction for images that do not run)."""
    svc = facts.get(services)
    p = _Plan(facts, svc)
    handled: set[str] = set()

    def mark(names: Iterable[str]) -> None:
        for n in names:
            handled.update({f"{n}.service", f"{n}.socket"})

    unit = p.enabled(SSH_UNITS)
    if unit is not None:
        _sshd(p, unit)
    mark(SSH_UNITS)
    for srv in facts.get(mail_servers):
        unit = p.enabled(MAIL_UNITS[srv.kind])
        if unit is not None:
            _mail(p, srv, unit)
        mark(MAIL_UNITS[srv.kind])
    for dns in facts.get(dns_servers):
        unit = p.enabled(DNS_UNITS.get(dns.kind, ()))
        if unit is not None:
            _plan_server(p, dns, unit, [("udp", 53), ("tcp", 53)], dns.kind)
            if dns.kind == "systemd-resolved":
                _resolved_llmnr(p, unit)
        mark(DNS_UNITS.get(dns.kind, ()))
    for ntp in facts.get(ntp_servers):
        unit = p.enabled(NTP_UNITS.get(ntp.kind, ()))
        if unit is not None:
            _plan_server(p, ntp, unit, [("udp", 123)], "chronyd" if ntp.kind == "chrony" else ntp.kind)
        mark(NTP_UNITS.get(ntp.kind, ()))
    for kind, names in WEB_UNITS.items():
        unit = p.enabled(names)
        if unit is not None:
            _web(p, kind, unit)
        mark(names)
    for kind, names in FTP_UNITS.items():
        unit = p.enabled(names)
        if unit is not None:
            _ftp(p, kind, unit)
        mark(names)
    for names, fn in ((REDIS_UNITS, _redis), (RSYSLOG_UNITS, _rsyslog), (INETD_UNITS, _inetd)):
        unit = p.enabled(names)
        if unit is not None:
            fn(p, unit)
        mark(names)

    for unit in sorted(svc.enabled - svc.masked):
        if unit in handled or unit.endswith(_NO_LISTEN_SUFFIXES):
            continue
        base = unit_base(unit)
        if base in QUIET or unit.rsplit(".", 1)[0] in QUIET:
            p.quiet.append(unit)
        elif unit.endswith(".socket"):
            _socket_unit(p, unit)
        elif unit.endswith(".service") and base.rsplit(".", 1)[0] in QUIET:
            p.quiet.append(unit)
        else:
            p.undecided.append(Undecided(unit, "an enabled service this tool cannot predict the listeners of", None))
    # One unit may be enabled under two names (ssh.service and its alias sshd.service): one listener each.
    seen: set[tuple[str, int, str, str]] = set()
    uniq: list[PlannedListener] = []
    for item in p.listeners:
        key = (item.proto, item.port, item.address, item.program)
        if key not in seen:
            seen.add(key)
            uniq.append(item)
    return ServicePlan(
        tuple(uniq), tuple(p.undecided), tuple(p.quiet), tuple(dict.fromkeys(p.sources)), svc.enabled_source
    )


def planned_exposures(facts: Facts) -> list[ServiceExposure]:
    """The plan's TCP listeners beyond loopback (and UDP TFTP), judged as live listeners are (``source``
    "config-offline"); listeners of unknown protocol are left out (``planned_unidentified``)."""
    plan = facts.get(service_plan)
    ctx = _Ctx(facts)
    out: list[ServiceExposure] = []
    for item in plan.beyond_loopback():
        li = item.listener()
        if item.proto == "udp":
            if item.port == 69:
                out.append(
                    ServiceExposure(
                        li,
                        "tftp",
                        False,
                        "TFTP has no encryption nor authentication",
                        item.evidence,
                        False,
                        "config-offline",
                    )
                )
            continue
        proto, how = _protocol(li)
        if proto is None:
            continue
        e = _identify(ctx, li, proto, how)
        out.append(replace(e, evidence=tuple(dict.fromkeys((*item.evidence, *e.evidence))), source="config-offline"))
    return out


def planned_unidentified(facts: Facts) -> list[PlannedListener]:
    """TCP listeners of the plan beyond loopback whose protocol is not known."""
    plan = facts.get(service_plan)
    return [
        i
        for i in plan.beyond_loopback()
        if i.proto == "tcp"
        and _protocol(i.listener())[0] is None
        and i.program not in NOT_IN_SCOPE
        and i.port not in NOT_IN_SCOPE_PORTS
    ]
