"""Mail servers on the host and where their configuration makes them listen: MTAs and POP/IMAP.

Public API:

- ``mail_servers(facts) -> list[MailServer]``: each installed mail server (postfix, exim, sendmail,
  opensmtpd, dovecot) with ``kind``, ``name``, ``installed`` (paths proving it), ``processes`` (daemon
  command names), ``listen`` (``ListenPlan``: does the configuration make it listen beyond loopback),
  ``services`` (``MailService`` per configured network port: ``port``, ``protocol`` smtp | submission |
  smtps | imap | imaps | pop3 | pop3s | ..., ``tls`` True/False/None, ``tls_reason``, ``evidence``),
  ``problems``.
- ``service_for(facts, port) -> MailService | None``: the configured mail service on a TCP port.
- Parsers (pure): ``parse_main_cf`` (with ``postfix_param``, ``$name`` expansion and Postfix defaults),
  ``parse_master_cf``, ``parse_exim_list``, ``parse_update_exim4_conf``, ``parse_sendmail_cf``,
  ``parse_sendmail_mc``, ``parse_smtpd_conf``, ``parse_dovecot_conf``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nectar_audit.evidence import Bundle, Needs, rewrite_lines
from nectar_audit.facts.net import LOOPBACK, ListenPlan, parse_net
from nectar_audit.model import Evidence

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

POSTFIX_MAIN = "/etc/postfix/main.cf"
POSTFIX_MASTER = "/etc/postfix/master.cf"
EXIM_DEBIAN = "/etc/exim4/update-exim4.conf.conf"
EXIM_CONFS = ("/etc/exim4/exim4.conf", "/etc/exim/exim.conf", "/etc/exim.conf")
EXIM_LOCALMACROS = "/etc/exim4/exim4.conf.localmacros"
SENDMAIL_CF = "/etc/mail/sendmail.cf"
SENDMAIL_MC = "/etc/mail/sendmail.mc"
SMTPD_CONFS = ("/etc/smtpd.conf", "/etc/smtpd/smtpd.conf", "/etc/opensmtpd/smtpd.conf")
DOVECOT_CONF = "/etc/dovecot/dovecot.conf"

BINARIES = {
    "postfix": ("/usr/sbin/postfix",),
    "exim": ("/usr/sbin/exim4", "/usr/sbin/exim"),
    "sendmail": ("/usr/sbin/sendmail.sendmail", "/usr/lib/sm.bin/sendmail", "/usr/libexec/sendmail/sendmail"),
    "opensmtpd": ("/usr/sbin/smtpd",),
    "dovecot": ("/usr/sbin/dovecot",),
}
PROCESSES = {
    "postfix": ("master",),
    "exim": ("exim4", "exim"),
    "sendmail": ("sendmail", "sendmail-mta"),
    "opensmtpd": ("smtpd",),
    "dovecot": ("dovecot", "imap-login", "pop3-login", "submission-login", "managesieve-login"),
}
NAMES = {
    "postfix": "Postfix",
    "exim": "Exim",
    "sendmail": "Sendmail",
    "opensmtpd": "OpenSMTPD",
    "dovecot": "Dovecot (POP3/IMAP)",
}
_DOVECOT_BINS = tuple(
    f"{d}/{p}"
    for d in ("/usr/lib/dovecot", "/usr/libexec/dovecot")
    for p in ("imap", "pop3", "submission", "managesieve")
)


# Well-known ports of the mail protocols (TCP).
PORTS = {
    "smtp": 25,
    "submission": 587,
    "smtps": 465,
    "submissions": 465,
    "pop3": 110,
    "pop3s": 995,
    "imap": 143,
    "imap2": 143,
    "imaps": 993,
    "sieve": 4190,
    "lmtp": 24,
}
IMPLICIT_TLS = {465, 993, 995}

# Exim/Dovecot/OpenSMTPD lines that set a password or a lookup holding one (before any "#"): the value
# after the next "=" is blanked. Scanned by hand: one expression was quadratic in keywords per line.
_SECRET_KEY = re.compile(r"pass(?:word)?|secret|server_condition|ldap_default_servers", re.IGNORECASE)
_PASSWORD_ARG = re.compile(r"(?i)(password=)\S+")
_PASSWORD_KEY = re.compile(r"password=", re.IGNORECASE)


def _mail_value_at(line: str) -> int | None:
    hash_at = line.find("#")
    for m in _SECRET_KEY.finditer(line):
        if 0 <= hash_at < m.start():
            return None
        eq = line.find("=", m.end())
        if eq < 0:
            return None
        j = eq + 1
        while j < len(line) - 1 and line[j].isspace():
            j += 1
        return j if j < len(line) else None
    return None


def sanitize_mail_secrets(data: bytes) -> str:
    # Both steps look only at the lines naming a keyword (neither reaches past a line's end).
    text = rewrite_lines(data.decode("utf-8", "replace"), _SECRET_KEY, _blank_mail_value)
    return rewrite_lines(text, _PASSWORD_KEY, _blank_password_args)


def _blank_mail_value(line: str) -> str | None:
    at = _mail_value_at(line)
    return None if at is None else line[:at] + "<redacted>"


def _blank_password_args(line: str) -> str:
    return _PASSWORD_ARG.sub(r"\1<redacted>", line)


@dataclass(frozen=True)
class MailService:
    port: int
    protocol: str
    addresses: tuple[str, ...]  # addresses it binds ("all" = every address)
    tls: bool | None  # True: encrypted (implicit TLS or STARTTLS offered); None: cannot tell
    tls_reason: str
    evidence: tuple[Evidence, ...] = ()

    @property
    def beyond_loopback(self) -> bool | None:
        results = [_addr_beyond(a) for a in self.addresses]
        if any(r is True for r in results):
            return True
        if any(r is None for r in results):
            return None
        return False


@dataclass
class MailServer:
    kind: str
    installed: tuple[str, ...]
    config: str | None
    listen: ListenPlan = field(default_factory=lambda: ListenPlan(None, "unknown"))
    services: list[MailService] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return NAMES[self.kind]

    @property
    def processes(self) -> tuple[str, ...]:
        return PROCESSES[self.kind]


def _addr_beyond(addr: str) -> bool | None:
    """True: a non-loopback address; False: loopback; None: a host or interface name we cannot resolve."""
    a = addr.strip().strip("[]").lower()
    if a in ("all", "*", "0.0.0.0", "::", "any", "inet", "inet4", "inet6"):
        return True
    if a in (
        "loopback-only",
        "localhost",
        "lo",
        "127.0.0.1",
        "::1",
        "localhost.localdomain",
        "ip6-localhost",
    ):
        return False
    net = parse_net(a)
    if net is None:
        return None
    return not any(net.version == lb.version and net.subnet_of(lb) for lb in LOOPBACK)  # type: ignore[arg-type]


def _plan(services: list[MailService], config: str, default_text: str) -> ListenPlan:
    if not services:
        return ListenPlan(False, default_text, (Evidence(config, default_text),))
    flags = [s.beyond_loopback for s in services]
    beyond: bool | None = True if True in flags else (None if None in flags else False)
    shown = sorted({f"{'/'.join(s.addresses)} port {s.port} ({s.protocol})" for s in services})
    ev = tuple(dict.fromkeys(e for s in services for e in s.evidence))
    return ListenPlan(beyond, "; ".join(shown), ev)


# ==================================================================================================
# Postfix
@dataclass(frozen=True)
class Param:
    value: str
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


POSTFIX_DEFAULTS = {
    "inet_interfaces": "all",
    "inet_protocols": "all",
    "smtpd_tls_security_level": "",
    "smtpd_use_tls": "no",
    "smtpd_enforce_tls": "no",
    "smtpd_tls_wrappermode": "no",
    "smtpd_tls_auth_only": "no",
    "smtpd_tls_cert_file": "",
    "smtpd_tls_eccert_file": "",
    "smtpd_tls_chain_files": "",
    "smtpd_tls_dcert_file": "",
    "myhostname": "",
}


def parse_main_cf(text: str, path: str = POSTFIX_MAIN) -> dict[str, Param]:
    """main.cf(5): ``name = value``, continuation lines start with whitespace; the last setting wins."""
    out: dict[str, Param] = {}
    cur: tuple[str, list[str], int] | None = None

    def flush() -> None:
        if cur is not None:
            out[cur[0]] = Param(" ".join(v.strip() for v in cur[1]).strip(), path, cur[2])

    for no, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if raw[0].isspace():
            if cur is not None:
                cur[1].append(raw)
            continue
        flush()
        cur = None
        name, sep, value = raw.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            continue
        cur = (name, [value], no)
    flush()
    return out


def postfix_param(
    params: dict[str, Param], name: str, overrides: dict[str, str] | None = None, depth: int = 0
) -> str:
    """The value of a parameter with ``$name`` / ``${name}`` expanded (-o overrides first)."""
    if overrides and name in overrides:
        raw = overrides[name]
    elif name in params:
        raw = params[name].value
    else:
        raw = POSTFIX_DEFAULTS.get(name, "")
    if depth > 8:
        return raw

    def sub(m: re.Match[str]) -> str:
        return postfix_param(params, m.group(1) or m.group(2), overrides, depth + 1)

    return re.sub(r"\$\{?([A-Za-z0-9_]+)\}?|\$\(([A-Za-z0-9_]+)\)", sub, raw)


@dataclass(frozen=True)
class MasterEntry:
    service: str
    type: str
    command: str
    options: dict[str, str]
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def host_port(self) -> tuple[str | None, str]:
        """``127.0.0.1:smtp`` -> ("127.0.0.1", "smtp"); ``[::1]:2525``; ``smtp`` -> (None, "smtp")."""
        s = self.service
        if s.startswith("["):
            host, _, port = s[1:].partition("]:")
            return host, port
        if ":" in s:
            host, _, port = s.rpartition(":")
            return host, port
        return None, s


def parse_master_cf(text: str, path: str = POSTFIX_MASTER) -> list[MasterEntry]:
    """master.cf(5): service type private unpriv chroot wakeup maxproc command [args…]; ``-o k=v``."""
    out: list[MasterEntry] = []
    logical: list[tuple[int, str]] = []
    for no, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if raw[0].isspace() and logical:
            logical[-1] = (logical[-1][0], logical[-1][1] + " " + raw.strip())
        elif not raw[0].isspace():
            logical.append((no, raw.strip()))
    for no, line in logical:
        words = line.split()
        if len(words) < 8:
            continue
        opts: dict[str, str] = {}
        args = words[8:]
        i = 0
        while i < len(args):
            if args[i] == "-o" and i + 1 < len(args):
                k, _, v = args[i + 1].partition("=")
                opts[k] = v
                i += 2
                continue
            if args[i].startswith("-o") and len(args[i]) > 2:
                k, _, v = args[i][2:].partition("=")
                opts[k] = v
            i += 1
        out.append(MasterEntry(words[0], words[1], words[7], opts, path, no))
    return out


def _port_number(port: str) -> int | None:
    if port.isdigit():
        return int(port)
    return PORTS.get(port)


def _postfix_tls(
    params: dict[str, Param], ent: MasterEntry, port: int
) -> tuple[bool | None, str, list[Evidence]]:
    o = ent.options
    level = postfix_param(params, "smtpd_tls_security_level", o).strip().lower()
    use = postfix_param(params, "smtpd_use_tls", o).strip().lower() == "yes"
    enforce = postfix_param(params, "smtpd_enforce_tls", o).strip().lower() == "yes"
    wrapper = postfix_param(params, "smtpd_tls_wrappermode", o).strip().lower() == "yes"
    cert = any(
        postfix_param(params, n, o).strip()
        for n in (
            "smtpd_tls_cert_file",
            "smtpd_tls_eccert_file",
            "smtpd_tls_chain_files",
            "smtpd_tls_dcert_file",
        )
    )
    ev: list[Evidence] = []
    for name in (
        "smtpd_tls_security_level",
        "smtpd_tls_wrappermode",
        "smtpd_tls_cert_file",
        "smtpd_tls_chain_files",
        "smtpd_use_tls",
    ):
        if name in o:
            ev.append(Evidence(ent.where, f"-o {name}={o[name]}"))
        elif name in params:
            ev.append(Evidence(params[name].where, f"{name} = {params[name].value}"))
    if not level:
        level = "encrypt" if enforce else "may" if use else "none"
    if wrapper:
        if cert:
            return True, "implicit TLS (smtpd_tls_wrappermode = yes)", ev
        return False, "smtpd_tls_wrappermode = yes but no certificate (smtpd_tls_cert_file) is set", ev
    if level in ("may", "encrypt", "dane", "verify", "secure"):
        if not cert:
            return (
                False,
                f"smtpd_tls_security_level = {level} but no certificate (smtpd_tls_cert_file) is set",
                ev,
            )
        if level == "may":
            return True, "STARTTLS offered (smtpd_tls_security_level = may; not required)", ev
        return True, f"STARTTLS required (smtpd_tls_security_level = {level})", ev
    return False, "no TLS: smtpd_tls_security_level is " + (level or "empty") + " (plaintext SMTP)", ev


def postfix_server(bundle: Bundle, installed: tuple[str, ...]) -> MailServer:
    srv = MailServer("postfix", installed, POSTFIX_MAIN)
    main_text = bundle.text(POSTFIX_MAIN)
    master_text = bundle.text(POSTFIX_MASTER)
    if main_text is None:
        srv.problems.append(f"{POSTFIX_MAIN} not found: Postfix defaults apply (inet_interfaces = all)")
    params = parse_main_cf(main_text or "")
    if master_text is None:
        srv.problems.append(f"{POSTFIX_MASTER} not found")
        srv.listen = ListenPlan(None, f"{POSTFIX_MASTER} not found")
        return srv
    entries = parse_master_cf(master_text)
    ii_raw = params.get("inet_interfaces")
    ii = postfix_param(params, "inet_interfaces")
    addrs = tuple(a for a in re.split(r"[\s,]+", ii) if a) or ("all",)
    ii_ev = (
        Evidence(ii_raw.where, f"inet_interfaces = {ii_raw.value}")
        if ii_raw
        else Evidence(POSTFIX_MAIN, "inet_interfaces not set: Postfix's default is all")
    )
    for ent in entries:
        if ent.type != "inet":
            continue
        host, port_s = ent.host_port
        port = _port_number(port_s)
        if port is None:
            srv.problems.append(f"{ent.where}: unknown service port {port_s!r}")
            continue
        ev = [Evidence(ent.where, f"{ent.service} {ent.type} … {ent.command}")]
        if host is None:
            ev.insert(0, ii_ev)
        wrapper = postfix_param(params, "smtpd_tls_wrappermode", ent.options).strip().lower() == "yes"
        protocol = {25: "smtp", 587: "submission", 465: "smtps"}.get(
            port, "smtp" if ent.command == "smtpd" else ent.command
        )
        if wrapper and port not in (465,):
            protocol = "smtps"
        if ent.command in ("smtpd", "postscreen"):
            tls, reason, tev = _postfix_tls(params, ent, port)
        else:
            tls, reason, tev = None, f"{ent.command} (not smtpd): encryption not evaluated", []
        srv.services.append(
            MailService(port, protocol, (host,) if host else addrs, tls, reason, tuple(ev + tev))
        )
    srv.listen = _plan(srv.services, POSTFIX_MASTER, "no inet services in master.cf: no network listener")
    return srv


# ==================================================================================================
# Exim
def parse_exim_list(value: str) -> list[str]:
    """An Exim list: ``:``-separated (``::`` escapes a colon) or ``<; a ; b`` with a custom separator."""
    value = value.strip()
    sep = ":"
    m = re.match(r"<\s*(\S)\s*", value)
    if m:
        sep = m.group(1)
        value = value[m.end() :]
    if sep == ":":
        items = re.split(r"(?<!:):(?!:)", value)
        items = [i.replace("::", ":") for i in items]
    else:
        items = value.split(sep)
    return [i.strip() for i in items if i.strip()]


def _exim_addr(item: str) -> str:
    """``127.0.0.1.25`` / ``[::1]:587`` / ``::1`` -> the address part."""
    if item.startswith("["):
        return item[1:].split("]", 1)[0]
    m = re.fullmatch(r"(\d+\.\d+\.\d+\.\d+)\.\d+", item)
    if m:
        return m.group(1)
    return item


def parse_update_exim4_conf(text: str) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*(dc_[a-z_]+|CFILEMODE)\s*=\s*(.*)$", raw)
        if m:
            value = m.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            out[m.group(1)] = (value, no)
    return out


def _exim_setting(text: str, name: str) -> tuple[str, int] | None:
    found = None
    for no, raw in enumerate(text.splitlines(), 1):
        m = re.match(rf"\s*{name}\s*=\s*(.*)$", raw)
        if m and not raw.lstrip().startswith("#"):
            found = (m.group(1).strip(), no)
        if re.match(r"\s*begin\s+\w+", raw):
            break  # main section ends
    return found


def exim_server(bundle: Bundle, installed: tuple[str, ...]) -> MailServer:
    conf = next((p for p in EXIM_CONFS if bundle.file(p) is not None), None)
    srv = MailServer("exim", installed, conf or (EXIM_DEBIAN if bundle.file(EXIM_DEBIAN) else None))
    items: list[str] | None = None
    ev: Evidence
    if conf is not None:
        setting = _exim_setting(bundle.text(conf) or "", "local_interfaces")
        if setting is not None:
            items = parse_exim_list(setting[0])
            ev = Evidence(f"{conf}:{setting[1]}", f"local_interfaces = {setting[0]}")
        else:
            ev = Evidence(conf, "local_interfaces not set: Exim listens on every address")
    elif bundle.file(EXIM_DEBIAN) is not None:
        dc = parse_update_exim4_conf(bundle.text(EXIM_DEBIAN) or "")
        macros = bundle.text(EXIM_LOCALMACROS) or ""
        mac = re.search(r"(?m)^\s*MAIN_LOCAL_INTERFACES\s*=\s*(.*)$", macros)
        if mac:
            items = parse_exim_list(mac.group(1))
            line = macros[: mac.start()].count("\n") + 1
            ev = Evidence(f"{EXIM_LOCALMACROS}:{line}", f"MAIN_LOCAL_INTERFACES = {mac.group(1).strip()}")
        elif "dc_local_interfaces" in dc:
            value, no = dc["dc_local_interfaces"]
            items = [i.strip() for i in value.split(";") if i.strip()] or None
            ev = Evidence(
                f"{EXIM_DEBIAN}:{no}",
                f"dc_local_interfaces='{value}'" + ("" if items else " (empty: every address)"),
            )
        else:
            ev = Evidence(EXIM_DEBIAN, "dc_local_interfaces not set: Exim listens on every address")
    else:
        srv.problems.append("no Exim configuration found (" + ", ".join((EXIM_DEBIAN, *EXIM_CONFS)) + ")")
        srv.listen = ListenPlan(None, "no configuration found")
        return srv
    addrs = tuple(_exim_addr(i) for i in items) if items else ("all",)
    srv.services.append(
        MailService(
            25, "smtp", addrs, None, "Exim's TLS (tls_advertise_hosts, certificate) is not evaluated", (ev,)
        )
    )
    srv.listen = _plan(srv.services, srv.config or "", "")
    return srv


# ==================================================================================================
# Sendmail
def parse_sendmail_cf(text: str, path: str = SENDMAIL_CF) -> list[tuple[dict[str, str], int]]:
    """``O DaemonPortOptions=Port=smtp,Addr=127.0.0.1, Name=MTA`` lines -> option dicts."""
    out = []
    for no, raw in enumerate(text.splitlines(), 1):
        m = re.match(r"O\s+DaemonPortOptions\s*=\s*(.*)$", raw)
        if m:
            out.append((_daemon_opts(m.group(1)), no))
    return out


def parse_sendmail_mc(text: str) -> list[tuple[dict[str, str], int]]:
    """``DAEMON_OPTIONS(`Port=smtp,Addr=127.0.0.1, Name=MTA')dnl`` lines."""
    out = []
    for no, raw in enumerate(text.splitlines(), 1):
        if raw.lstrip().startswith("dnl"):
            continue
        m = re.search(r"DAEMON_OPTIONS\(\s*`([^']*)'", raw)
        if m:
            out.append((_daemon_opts(m.group(1)), no))
    return out


def _daemon_opts(text: str) -> dict[str, str]:
    opts = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if sep:
            opts[k.strip().lower()] = v.strip()
    return opts


def sendmail_server(bundle: Bundle, installed: tuple[str, ...]) -> MailServer:
    cf = bundle.text(SENDMAIL_CF)
    path = SENDMAIL_CF if cf is not None else SENDMAIL_MC
    text = cf if cf is not None else bundle.text(SENDMAIL_MC)
    srv = MailServer("sendmail", installed, path if text is not None else None)
    if text is None:
        srv.problems.append(f"neither {SENDMAIL_CF} nor {SENDMAIL_MC} found")
        srv.listen = ListenPlan(None, "no configuration found")
        return srv
    daemons = parse_sendmail_cf(text) if cf is not None else parse_sendmail_mc(text)
    if not daemons:
        daemons = [({"port": "smtp"}, 0)]
    for opts, no in daemons:
        port = _port_number(opts.get("port", "smtp")) or 25
        addr = opts.get("addr", "all")
        modifiers = opts.get("m", opts.get("modifiers", ""))
        tls: bool | None = True if "s" in modifiers else None
        where = f"{path}:{no}" if no else path
        detail = (
            ",".join(f"{k}={v}" for k, v in opts.items())
            if no
            else "no DaemonPortOptions: port 25 on every address"
        )
        srv.services.append(
            MailService(
                port,
                "smtps" if tls else ("submission" if port == 587 else "smtp"),
                (addr,),
                tls,
                "Sendmail's STARTTLS is not evaluated" if tls is None else "implicit TLS (M=s)",
                (Evidence(where, detail),),
            )
        )
    srv.listen = _plan(srv.services, path, "")
    return srv


# ==================================================================================================
# OpenSMTPD
def parse_smtpd_conf(text: str, path: str = SMTPD_CONFS[0]) -> list[tuple[list[str], int]]:
    out = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("listen on "):
            out.append((line.split()[2:], no))
    return out


def opensmtpd_server(bundle: Bundle, installed: tuple[str, ...]) -> MailServer:
    conf = next((p for p in SMTPD_CONFS if bundle.file(p) is not None), None)
    srv = MailServer("opensmtpd", installed, conf)
    if conf is None:
        srv.problems.append("no smtpd.conf found")
        srv.listen = ListenPlan(None, "no configuration found")
        return srv
    for words, no in parse_smtpd_conf(bundle.text(conf) or "", conf):
        if not words or words[0] == "socket":
            continue
        target = words[0]
        port = 25
        if "port" in words:
            i = words.index("port")
            port = _port_number(words[i + 1]) or 25 if i + 1 < len(words) else 25
        tls: bool | None = False
        reason = "no tls option: plaintext SMTP"
        if "smtps" in words:
            port = port if "port" in words else 465
            tls, reason = True, "implicit TLS (smtps)"
        elif "tls-require" in words:
            tls, reason = True, "STARTTLS required (tls-require)"
        elif "tls" in words:
            tls, reason = True, "STARTTLS offered (tls)"
        protocol = "smtps" if "smtps" in words else "submission" if port == 587 else "smtp"
        srv.services.append(
            MailService(
                port,
                protocol,
                (target,),
                tls,
                reason,
                (Evidence(f"{conf}:{no}", "listen on " + " ".join(words)),),
            )
        )
    srv.listen = _plan(srv.services, conf, "no 'listen on' line (except sockets): no network listener")
    return srv


# ==================================================================================================
# Dovecot
@dataclass(frozen=True)
class DovecotSetting:
    path: tuple[str, ...]  # enclosing sections, e.g. ("service imap-login", "inet_listener imaps")
    key: str
    value: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def parse_dovecot_conf(text: str, path: str = DOVECOT_CONF) -> tuple[list[DovecotSetting], list[str]]:
    """Settings with their section path, and ``!include``/``!include_try`` targets (in order)."""
    out: list[DovecotSetting] = []
    includes: list[str] = []
    stack: list[str] = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!include"):
            parts = line.split(None, 1)
            if len(parts) == 2:
                includes.append(parts[1].strip())
                out.append(DovecotSetting(tuple(stack), "!include", parts[1].strip(), path, no))
            continue
        if line == "}":
            if stack:
                stack.pop()
            continue
        if line.endswith("{"):
            if len(stack) < 20:
                stack.append(" ".join(line[:-1].split()))
            continue
        if "=" in line:
            key, _, value = line.partition("=")
            value = value.split(" #", 1)[0].strip()
            out.append(DovecotSetting(tuple(stack), key.strip(), value, path, no))
    return out, includes


def _dovecot_settings(bundle: Bundle, path: str, depth: int = 0) -> list[DovecotSetting]:
    text = bundle.text(path)
    if text is None or depth > 5:
        return []
    raw, _ = parse_dovecot_conf(text, path)
    out: list[DovecotSetting] = []
    base = path.rsplit("/", 1)[0]
    for s in raw:
        if s.key == "!include":
            target = s.value if s.value.startswith("/") else f"{base}/{s.value}"
            targets = bundle.glob(target) if any(c in target for c in "*?[") else [target]
            for t in targets:
                out.extend(_dovecot_settings(bundle, t, depth + 1))
            continue
        out.append(s)
    return out


def dovecot_settings(facts: Facts) -> list[DovecotSetting]:
    """Every Dovecot setting in the order Dovecot reads them (includes followed), with file and line."""
    return _dovecot_settings(facts.bundle, DOVECOT_CONF)


_DOVECOT_LISTENERS = {
    "imap": (("imap", 143, False), ("imaps", 993, True)),
    "pop3": (("pop3", 110, False), ("pop3s", 995, True)),
    "submission": (("submission", 587, False),),
    "sieve": (("sieve", 4190, False),),
}


def dovecot_server(bundle: Bundle, installed: tuple[str, ...], settings: list[DovecotSetting]) -> MailServer:
    srv = MailServer("dovecot", installed, DOVECOT_CONF if bundle.file(DOVECOT_CONF) else None)
    if srv.config is None:
        srv.problems.append(f"{DOVECOT_CONF} not found")
        srv.listen = ListenPlan(None, "no configuration found")
        return srv
    top = [s for s in settings if not s.path]

    def last(key: str) -> DovecotSetting | None:
        found = [s for s in top if s.key == key]
        return found[-1] if found else None

    protocols: list[str] = []
    proto_ev: list[Evidence] = []
    for s in top:
        if s.key == "protocols":
            words = s.value.split()
            protocols = (
                [w for w in words if w != "$protocols"]
                if "$protocols" not in words
                else protocols + [w for w in words if w != "$protocols"]
            )
            proto_ev.append(Evidence(s.where, f"protocols = {s.value}"))
    if not proto_ev:
        if "/usr/share/dovecot/protocols.d" in (bundle.text(DOVECOT_CONF) or ""):
            protocols = []  # Debian: a protocol is enabled by installing dovecot-imapd, -pop3d, ...
        else:
            protocols = [
                p
                for p in ("imap", "pop3")
                if any(f"/{p}" == b[-len(p) - 1 :] for b in bundle.stats if b in _DOVECOT_BINS)
            ] or ["imap", "pop3"]
        proto_ev.append(
            Evidence(DOVECOT_CONF, "protocols not set (default: " + (" ".join(protocols) or "none") + ")")
        )
    listen = last("listen")
    addrs = tuple(a.strip() for a in (listen.value if listen else "*, ::").split(",") if a.strip())
    listen_ev = (
        Evidence(listen.where, f"listen = {listen.value}")
        if listen
        else Evidence(DOVECOT_CONF, "listen not set: Dovecot's default is *, ::")
    )
    ssl = last("ssl")
    ssl_value = (ssl.value if ssl else "yes").lower()
    cert = last("ssl_cert")
    plain = last("disable_plaintext_auth") or last("auth_allow_cleartext")
    tls_ev = [Evidence(x.where, f"{x.key} = {x.value}") for x in (ssl, cert, plain) if x is not None]
    for proto in protocols:
        for lname, port, implicit in _DOVECOT_LISTENERS.get(proto, ()):
            sect = [
                s
                for s in settings
                if len(s.path) == 2
                and s.path[0].startswith("service ")
                and s.path[1] == f"inet_listener {lname}"
            ]
            port_s = next((s for s in reversed(sect) if s.key == "port"), None)
            addr_s = next((s for s in reversed(sect) if s.key == "address"), None)
            ssl_s = next((s for s in reversed(sect) if s.key == "ssl"), None)
            real_port = int(port_s.value) if port_s and port_s.value.isdigit() else port
            if real_port == 0:
                continue
            laddrs = (
                tuple(a.strip() for a in addr_s.value.split(",") if a.strip())
                if addr_s and addr_s.value
                else addrs
            )
            is_tls = implicit or (ssl_s is not None and ssl_s.value.lower() == "yes")
            ev = [Evidence(p.where, f"{p.key} = {p.value}") for p in (port_s, addr_s, ssl_s) if p is not None]
            ev.insert(0, listen_ev)
            if ssl_value == "no":
                tls, reason = False, "ssl = no: plaintext only"
            elif cert is None and ssl_value in ("yes", "required"):
                tls, reason = None, f"ssl = {ssl_value} but no ssl_cert found: TLS may fail"
            elif is_tls:
                tls, reason = True, "implicit TLS"
            elif ssl_value == "required":
                tls, reason = True, "STARTTLS required before login (ssl = required)"
            else:
                allow_plain = plain is not None and (
                    (plain.key == "disable_plaintext_auth" and plain.value.lower() == "no")
                    or (plain.key == "auth_allow_cleartext" and plain.value.lower() == "yes")
                )
                if allow_plain and plain is not None:
                    tls, reason = (
                        False,
                        (f"STARTTLS offered but plaintext logins are allowed ({plain.key} = {plain.value})"),
                    )
                else:
                    tls, reason = True, "STARTTLS offered; plaintext logins refused (disable_plaintext_auth)"
            srv.services.append(
                MailService(real_port, lname, laddrs, tls, reason, tuple(ev + tls_ev + proto_ev))
            )
    srv.listen = _plan(srv.services, DOVECOT_CONF, "no POP3/IMAP protocol enabled: no network listener")
    return srv


# ==================================================================================================
# The fact
def mail_servers(facts: Facts) -> list[MailServer]:
    b = facts.bundle
    out: list[MailServer] = []
    builders = (
        ("postfix", (POSTFIX_MAIN, POSTFIX_MASTER), postfix_server),
        ("exim", (EXIM_DEBIAN, *EXIM_CONFS), exim_server),
        ("sendmail", (SENDMAIL_CF,), sendmail_server),
        ("opensmtpd", SMTPD_CONFS, opensmtpd_server),
        # Its settings are a fact of their own: the plan of check 02 reads them too.
        ("dovecot", (DOVECOT_CONF,), lambda b, found: dovecot_server(b, found, facts.get(dovecot_settings))),
    )
    for kind, confs, build in builders:
        found = tuple(p for p in BINARIES[kind] if p in b.stats)
        if not found and kind in ("sendmail", "opensmtpd"):
            continue  # their config paths are shared with other software; the binary decides
        found += tuple(p for p in confs if b.file(p) is not None)
        if found:
            out.append(build(b, found))
    return out


def service_for(facts: Facts, port: int) -> tuple[MailServer, MailService] | None:
    for srv in facts.get(mail_servers):
        for svc in srv.services:
            if svc.port == port:
                return srv, svc
    return None


# The evidence this module reads (after the sanitizers it names).
NEEDS = Needs(
    files=(
        POSTFIX_MAIN,
        POSTFIX_MASTER,
        EXIM_DEBIAN,
        *EXIM_CONFS,
        EXIM_LOCALMACROS,
        SENDMAIL_CF,
        SENDMAIL_MC,
        *SMTPD_CONFS,
        DOVECOT_CONF,
        "/etc/dovecot/conf.d/*.conf",
        "/etc/dovecot/local.conf",
        "/usr/share/dovecot/protocols.d/*.protocol",
    ),
    stats=(*(p for paths in BINARIES.values() for p in paths), *_DOVECOT_BINS),
    # Exim's and Dovecot's files may hold passwords (SQL/LDAP lookups, authenticators): blank them.
    sanitize={
        p: sanitize_mail_secrets
        for p in (
            *EXIM_CONFS,
            EXIM_LOCALMACROS,
            "/etc/dovecot/*",
            "/etc/dovecot/conf.d/*",
            SMTPD_CONFS[0],
            SMTPD_CONFS[1],
            SMTPD_CONFS[2],
        )
    },
)
