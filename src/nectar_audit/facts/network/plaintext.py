"""What each network-facing listener speaks, and whether that is encrypted.

Public API:

- ``exposures(facts) -> list[ServiceExposure]``: one per non-loopback TCP listener (and UDP TFTP) whose
  protocol is known: ``listener``, ``protocol`` (telnet, ftp, rsh, rlogin, rexec, tftp, smtp, submission,
  smtps, pop3, pop3s, imap, imaps, sieve, http, https, jupyter, rstudio, shiny, vnc, redis, memcached,
  mongodb, elasticsearch, ssh), ``tls`` (True: encrypted / required; False: plaintext; None: unknown),
  ``reason``, ``evidence``, ``redirect_only`` (plain HTTP that only redirects to HTTPS), ``source``
  ("config", "process", "port" or "probe"). Raises EvidenceError offline (no live sockets).
- ``unidentified(facts) -> list[Listener]``: non-loopback TCP listeners of unknown protocol.
- Refinement by later evidence (e.g. a live TLS probe): ``ProbeResult(address, port, tls, detail)`` and
  ``merge_probes(exposures, results)``; or ``register_refiner(fn)`` with ``fn(facts, exposures) ->
  exposures``: ``exposures()`` applies every registered refiner, so a probe module only has to register.
- Parsers (pure): ``parse_vsftpd_conf``, ``parse_proftpd_conf``, ``parse_redis_conf``,
  ``memcached_tls``, ``mongod_tls``, ``elasticsearch_http_tls``, ``jupyter_certfile``,
  ``parse_nginx``, ``parse_apache``, ``rstudio_ssl``, ``shiny_ssl``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from nectar_audit.evidence import Bundle, EvidenceError, Needs, rewrite_lines
from nectar_audit.facts.accounts import accounts
from nectar_audit.facts.network.dns import Stmt, parse_named_conf
from nectar_audit.facts.network.mail import mail_servers
from nectar_audit.facts.system import Listener, listeners, processes
from nectar_audit.model import Evidence

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

VSFTPD = ("/etc/vsftpd.conf", "/etc/vsftpd/vsftpd.conf")
PROFTPD = ("/etc/proftpd/proftpd.conf", "/etc/proftpd/tls.conf", "/etc/proftpd.conf")
PUREFTPD_TLS = "/etc/pure-ftpd/conf/TLS"
REDIS = ("/etc/redis/redis.conf", "/etc/redis.conf", "/etc/redis/*.conf")
MEMCACHED = ("/etc/memcached.conf", "/etc/sysconfig/memcached")
MONGOD = "/etc/mongod.conf"
ELASTIC = "/etc/elasticsearch/elasticsearch.yml"
RSTUDIO = "/etc/rstudio/rserver.conf"
SHINY = "/etc/shiny-server/shiny-server.conf"
TIGERVNC = ("/etc/tigervnc/vncserver-config-mandatory", "/etc/tigervnc/vncserver-config-defaults")
NGINX = ("/etc/nginx/nginx.conf", "/etc/nginx/conf.d/*.conf", "/etc/nginx/sites-enabled/*")
APACHE = (
    "/etc/apache2/apache2.conf",
    "/etc/apache2/ports.conf",
    "/etc/apache2/sites-enabled/*",
    "/etc/apache2/mods-enabled/ssl.conf",
    "/etc/httpd/conf/httpd.conf",
    "/etc/httpd/conf.d/*.conf",
)
_JUPYTER_NAMES = ("jupyter_server_config", "jupyter_notebook_config", "jupyter_lab_config")
_JUPYTER_DIRS = ("/root/.jupyter", "/home/*/.jupyter", "/etc/jupyter", "/usr/local/etc/jupyter")
JUPYTER = (
    *(f"{d}/{n}.{ext}" for d in _JUPYTER_DIRS for n in _JUPYTER_NAMES for ext in ("py", "json")),
    "/etc/jupyterhub/jupyterhub_config.py",
)
_SECRET_FILES = (*REDIS, *PROFTPD, MONGOD, ELASTIC, *JUPYTER, *MEMCACHED)


# A line that names a password, token or secret (before any "#"): KEY[suffix] [:=] VALUE or KEY VALUE.
# Scanned by hand, not by one regular expression: "requirepass" and 40,000 spaces took 20 s there.
_SECRET_KEY = re.compile(r"pass(?:word)?|token|secret|masterauth|requirepass|sqlconnectinfo|credential|api_?key",
                         re.IGNORECASE)


def _secret_value_at(line: str) -> int | None:
    """Where the secret value of ``line`` starts, or None when the line names no secret."""
    hash_at = line.find("#")
    n = len(line)
    word_end = -1  # a keyword inside a word already walked ends where that word ends: same outcome
    for m in _SECRET_KEY.finditer(line):
        if 0 <= hash_at < m.start():
            return None
        if m.start() < word_end:
            continue
        i = m.end()
        while i < n and (line[i].isalnum() or line[i] in "_.\"'"):
            i += 1
        word_end = i
        j = i
        while j < n and line[j].isspace():
            j += 1
        if j < n and line[j] in ":=":
            j += 1
            while j < n and line[j].isspace():
                j += 1
        elif j == i:
            continue
        if j < n:
            return j
    return None


def sanitize_service_secrets(data: bytes) -> str:
    """Blank the value of every line that names a password, token or secret; keep the rest line for line."""
    return rewrite_lines(data.decode("utf-8", "replace"), _SECRET_KEY, _blank_secret_value)


def _blank_secret_value(line: str) -> str | None:
    at = _secret_value_at(line)
    return None if at is None else line[:at] + "<redacted>"


@dataclass(frozen=True)
class ServiceExposure:
    listener: Listener
    protocol: str
    tls: bool | None
    reason: str
    evidence: tuple[Evidence, ...] = ()
    redirect_only: bool = False
    source: str = "config"


@dataclass(frozen=True)
class ProbeResult:
    """What a live probe saw on address:port (a later issue's TLS probe fills these)."""

    address: str
    port: int
    tls: bool | None
    detail: str
    proto: str = "tcp"


Refiner = Callable[["Facts", list[ServiceExposure]], list[ServiceExposure]]
_REFINERS: list[Refiner] = []


def register_refiner(fn: Refiner) -> Refiner:
    """Register a function that refines the exposures (e.g. with live TLS probe results)."""
    if fn not in _REFINERS:
        _REFINERS.append(fn)
    return fn


def merge_probes(items: list[ServiceExposure], results: Iterable[ProbeResult]) -> list[ServiceExposure]:
    """Replace config-derived TLS verdicts by what a probe observed on the same endpoint."""
    by_key: dict[tuple[str, int, str], ProbeResult] = {}
    for res in results:
        by_key[(res.address, res.port, res.proto)] = res
    out = []
    for e in items:
        li = e.listener
        r: ProbeResult | None = by_key.get((li.address, li.port, li.proto))
        if r is None and li.wildcard:
            r = next(
                (p for (a, port, proto), p in by_key.items() if port == li.port and proto == li.proto), None
            )
        if r is None or r.tls is None:
            out.append(e)
            continue
        out.append(
            replace(
                e,
                tls=r.tls,
                reason=f"{r.detail} (probe; configuration said: {e.reason})",
                evidence=(*e.evidence, Evidence(f"probe {r.address}:{r.port}", r.detail)),
                source="probe",
            )
        )
    return out


# ==================================================================================================
# Parsers
def _kv_lines(text: str, sep: str = "=") -> list[tuple[str, str, int]]:
    out = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if sep == " ":
            parts = line.split(None, 1)
            if parts:
                out.append((parts[0], parts[1].strip() if len(parts) > 1 else "", no))
        elif sep in line:
            k, _, v = line.partition(sep)
            out.append((k.strip(), v.strip(), no))
    return out


def parse_vsftpd_conf(text: str) -> dict[str, tuple[str, int]]:
    return {k.lower(): (v, no) for k, v, no in _kv_lines(text, "=")}


def vsftpd_tls(conf: dict[str, tuple[str, int]]) -> tuple[bool, str]:
    ssl = conf.get("ssl_enable", ("NO", 0))[0].upper() == "YES"
    if not ssl:
        return False, "vsftpd without ssl_enable=YES: passwords and files cross the network in clear text"
    logins = conf.get("force_local_logins_ssl", ("YES", 0))[0].upper() == "YES"
    data = conf.get("force_local_data_ssl", ("YES", 0))[0].upper() == "YES"
    if logins and data:
        return True, "FTPS required (ssl_enable=YES, force_local_logins_ssl/force_local_data_ssl)"
    return False, "ssl_enable=YES but TLS is optional (force_local_logins_ssl/force_local_data_ssl=NO)"


def parse_proftpd_conf(text: str) -> dict[str, tuple[str, int]]:
    return {k.lower(): (v, no) for k, v, no in _kv_lines(text, " ")}


def proftpd_tls(conf: dict[str, tuple[str, int]]) -> tuple[bool, str]:
    engine = conf.get("tlsengine", ("off", 0))[0].lower() == "on"
    required = conf.get("tlsrequired", ("off", 0))[0].lower()
    if not engine:
        return False, "ProFTPD without TLSEngine on: plain FTP"
    if required in ("on", "ctrl", "auth", "auth+data", "ctrl+data", "auth+ctrl+data"):
        return True, f"FTPS required (TLSEngine on, TLSRequired {required})"
    return False, "TLSEngine on but TLSRequired off: clients may log in without TLS"


def parse_redis_conf(text: str) -> dict[str, tuple[str, int]]:
    return {k.lower(): (v, no) for k, v, no in _kv_lines(text, " ")}


def redis_tls(conf: dict[str, tuple[str, int]], port: int) -> tuple[bool, str]:
    tls_port = conf.get("tls-port", ("0", 0))[0]
    plain_port = conf.get("port", ("6379", 0))[0]
    if tls_port.isdigit() and int(tls_port) == port:
        return True, f"Redis TLS port (tls-port {tls_port})"
    if plain_port.isdigit() and int(plain_port) == port:
        return False, f"Redis plaintext port (port {plain_port}; set port 0 and tls-port to require TLS)"
    return False, "Redis without TLS"


def memcached_tls(text: str) -> bool:
    return bool(re.search(r"(?m)^[^#\n]*(?:\s|^|\")(?:-Z|--enable-ssl)\b", text))


def mongod_tls(text: str) -> tuple[bool, str]:
    m = re.search(r"(?m)^\s+mode:\s*['\"]?(\w+)", _yaml_section(text, "net", ("tls", "ssl")))
    mode = m.group(1) if m else ""
    if mode in ("requireTLS", "requireSSL"):
        return True, f"net.tls.mode {mode}"
    if mode:
        return False, f"net.tls.mode {mode}: plaintext connections are accepted"
    return False, "no net.tls section: MongoDB speaks plaintext"


def _yaml_section(text: str, top: str, subs: tuple[str, ...]) -> str:
    lines = text.splitlines()
    out: list[str] = []
    in_top = in_sub = False
    for raw in lines:
        if raw.strip().startswith("#") or not raw.strip():
            continue
        if not raw[0].isspace():
            in_top = raw.split(":")[0].strip() == top
            in_sub = False
            continue
        if in_top:
            stripped = raw.strip()
            indent = len(raw) - len(raw.lstrip())
            if indent <= 2 and stripped.endswith(":"):
                in_sub = stripped[:-1] in subs
                continue
            if in_sub:
                out.append(raw)
    return "\n".join(out)


def elasticsearch_http_tls(text: str) -> bool | None:
    m = re.search(r"(?m)^\s*xpack\.security\.http\.ssl\.enabled\s*:\s*(\w+)", text)
    if m:
        return m.group(1).lower() == "true"
    m = re.search(r"(?ms)^xpack\.security\.http\.ssl\s*:\s*\n((?:[ \t]+.*\n?)+)", text)
    if m:
        e = re.search(r"enabled\s*:\s*(\w+)", m.group(1))
        if e:
            return e.group(1).lower() == "true"
    return False


def jupyter_certfile(text: str, path: str) -> str | None:
    """The ``certfile`` a Jupyter config sets (ServerApp / NotebookApp / JupyterHub ssl_cert), or None."""
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        for app in ("ServerApp", "NotebookApp"):
            sect = data.get(app)
            if isinstance(sect, dict) and isinstance(sect.get("certfile"), str) and sect["certfile"]:
                return str(sect["certfile"])
        return None
    found = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        m = re.match(
            r"\s*c\.(?:ServerApp|NotebookApp|JupyterHub)\.(?:certfile|ssl_cert)\s*=\s*[rbuf]?['\"]([^'\"]+)",
            line,
        )
        if m:
            found = m.group(1)
    return found


def rstudio_ssl(text: str) -> bool:
    return any(k == "ssl-enabled" and v.strip() in ("1", "true") for k, v, _ in _kv_lines(text, "="))


def shiny_ssl(text: str) -> bool:
    return bool(re.search(r"(?m)^\s*ssl\s+\S+", text))


# -- nginx ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebListen:
    address: str  # "*" for every address
    port: int
    ssl: bool
    redirect_only: bool
    where: str
    detail: str


def _nginx_listen(words: list[str]) -> tuple[str, int] | None:
    if len(words) < 2 or words[1].startswith("unix:"):
        return None
    spec = words[1]
    if spec.startswith("["):
        host, _, port = spec[1:].partition("]")
        port = port.lstrip(":") or "80"
    elif ":" in spec:
        host, _, port = spec.rpartition(":")
    elif spec.isdigit():
        host, port = "*", spec
    else:
        host, port = spec, "80"
    if not port.isdigit():
        return None
    return (host or "*"), int(port)


def _redirects(block: list[Stmt]) -> bool:
    for st in block:
        w = st.words
        if (
            w[:1] == ["return"]
            and len(w) >= 3
            and w[1] in ("301", "302", "307", "308")
            and w[2].startswith("https://")
        ):
            return True
        if w[:1] == ["rewrite"] and len(w) >= 3 and w[2].startswith("https://"):
            return True
        if w[:2] == ["location", "/"] and st.block is not None and _redirects(st.block):
            return True
    return False


def _serves_content(block: list[Stmt]) -> bool:
    return any(
        st.words[:1] in (["root"], ["proxy_pass"], ["alias"], ["fastcgi_pass"], ["uwsgi_pass"])
        or (st.block is not None and st.words[:1] == ["location"] and _serves_content(st.block))
        for st in block
    )


def _server_blocks(block: list[Stmt], depth: int = 0) -> list[Stmt]:
    out: list[Stmt] = []
    for st in block:
        if st.words[:1] == ["server"] and st.block is not None:
            out.append(st)
        elif st.block is not None and depth < 5:
            out.extend(_server_blocks(st.block, depth + 1))
    return out


def parse_nginx(files: dict[str, str]) -> list[WebListen]:
    """Every ``listen`` of every ``server`` block in the given nginx files (includes already flattened)."""
    out: list[WebListen] = []
    for path, text in files.items():
        stmts, _ = parse_named_conf(text, path)
        for srv in _server_blocks(stmts):
            block = srv.block or []
            ssl_on = any(st.words[:2] == ["ssl", "on"] for st in block)
            redirect = _redirects(block) and not _serves_content(
                [st for st in block if st.words[:2] != ["location", "/"]]
            )
            listens = [st for st in block if st.words[:1] == ["listen"]]
            if not listens:
                out.append(
                    WebListen("*", 80, ssl_on, redirect, srv.where, "server without listen (default *:80)")
                )
            for st in listens:
                hp = _nginx_listen(st.words)
                if hp is None:
                    continue
                ssl = ssl_on or "ssl" in st.words[2:] or "quic" in st.words[2:]
                out.append(WebListen(hp[0], hp[1], ssl, redirect, st.where, " ".join(st.words)))
    return out


# -- Apache -----------------------------------------------------------------------------------------
_APACHE_REDIRECT = r"(redirect|redirectmatch|redirectpermanent)\b.*\shttps://"
_APACHE_REWRITE = r"rewriterule\s.*\shttps://\S*\s*\[.*r(=30[1278])?\b"


def parse_apache(files: dict[str, str]) -> tuple[list[tuple[str, int, str, str]], list[WebListen]]:
    """(Listen directives (addr, port, proto, where), virtual hosts as WebListen) of Apache files."""
    listens: list[tuple[str, int, str, str]] = []
    vhosts: list[WebListen] = []
    for path, text in files.items():
        cur: list[tuple[str, int]] | None = None
        cur_where = ""
        ssl = redirect = content = False
        for no, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            low = line.lower()
            if low.startswith("listen "):
                parts = line.split()
                spec = parts[1]
                addr, _, port = spec.rpartition(":") if ":" in spec else ("*", "", spec)
                if port.isdigit():
                    listens.append(
                        (
                            addr.strip("[]") or "*",
                            int(port),
                            parts[2].lower() if len(parts) > 2 else "",
                            f"{path}:{no}",
                        )
                    )
            elif low.startswith("<virtualhost"):
                cur = []
                for spec in line[len("<virtualhost") :].rstrip(">").split():
                    host, _, port_s = spec.rpartition(":")
                    cur.append((host.strip("[]") or "*", int(port_s) if port_s.isdigit() else 80))
                cur_where = f"{path}:{no}"
                ssl = redirect = content = False
            elif low.startswith("</virtualhost") and cur is not None:
                for vaddr, vport in cur:
                    vhosts.append(
                        WebListen(
                            vaddr,
                            vport,
                            ssl,
                            redirect and not content,
                            cur_where,
                            f"<VirtualHost {vaddr}:{vport}>",
                        )
                    )
                cur = None
            elif cur is not None:
                if re.match(r"sslengine\s+on\b", low):
                    ssl = True
                elif re.match(_APACHE_REDIRECT, low) or re.match(_APACHE_REWRITE, low):
                    redirect = True
                elif (
                    re.match(r"(proxypass|documentroot|wsgiscriptalias|scriptalias)\b", low)
                    and "https://" not in low
                ):
                    content = content or low.startswith(("proxypass", "wsgiscriptalias"))
    return listens, vhosts


# ==================================================================================================
# The fact
PORT_PROTOCOLS = {
    21: "ftp",
    23: "telnet",
    25: "smtp",
    110: "pop3",
    143: "imap",
    465: "smtps",
    587: "submission",
    993: "imaps",
    995: "pop3s",
    4190: "sieve",
    512: "rexec",
    513: "rlogin",
    514: "rsh",
    80: "http",
    8080: "http",
    8000: "http",
    443: "https",
    8443: "https",
    8888: "jupyter",
    8787: "rstudio",
    3838: "shiny",
    6379: "redis",
    11211: "memcached",
    27017: "mongodb",
    9200: "elasticsearch",
    22: "ssh",
    **{p: "vnc" for p in range(5900, 5911)},
}
PROCESS_PROTOCOLS = {
    "in.telnetd": "telnet",
    "telnetd": "telnet",
    "vsftpd": "ftp",
    "proftpd": "ftp",
    "pure-ftpd": "ftp",
    "in.rshd": "rsh",
    "rshd": "rsh",
    "in.rlogind": "rlogin",
    "rlogind": "rlogin",
    "in.rexecd": "rexec",
    "rserver": "rstudio",
    "shiny-server": "shiny",
    "redis-server": "redis",
    "memcached": "memcached",
    "mongod": "mongodb",
    "Xvnc": "vnc",
    "Xtigervnc": "vnc",
    "x11vnc": "vnc",
    "Xvnc-core": "vnc",
    "vncserver": "vnc",
    "jupyter-lab": "jupyter",
    "jupyter-noteboo": "jupyter",
    "jupyter-server": "jupyter",
    "jupyterhub": "jupyter",
    "sshd": "ssh",
    "nginx": "web",
    "apache2": "web",
    "httpd": "web",
}
# Listeners that are not about encrypting communications (DNS, NTP, DHCP...) are left out of check 13.
NOT_IN_SCOPE = {
    "named",
    "unbound",
    "dnsmasq",
    "systemd-resolve",
    "ntpd",
    "chronyd",
    "pdns_recursor",
    "dhclient",
    "avahi-daemon",
    "rpcbind",
}
NOT_IN_SCOPE_PORTS = {53, 123, 67, 68, 546, 547, 5353, 323}
MAIL_PROCESSES = {"master", "exim4", "exim", "sendmail", "smtpd", "dovecot", "imap-login", "pop3-login"}


def _protocol(li: Listener) -> tuple[str | None, str]:
    """(protocol, how it was identified: process | port)."""
    if li.process in NOT_IN_SCOPE or (li.process is None and li.port in NOT_IN_SCOPE_PORTS):
        return None, "process"
    if li.process in PROCESS_PROTOCOLS:
        proto = PROCESS_PROTOCOLS[li.process]
        if proto == "web":
            return ("https" if li.port in (443, 8443) else "http"), "process"
        return proto, "process"
    if li.process in MAIL_PROCESSES:
        return PORT_PROTOCOLS.get(li.port, "smtp"), "process"
    if li.process and li.process.startswith("python") and 8888 <= li.port <= 8899:
        return "jupyter", "port"
    if li.process == "java" and li.port == 9200:
        return "elasticsearch", "process"
    if li.port in PORT_PROTOCOLS and (li.process is None or li.process in ("xinetd", "inetd", "systemd")):
        return PORT_PROTOCOLS[li.port], "port"
    return None, "port"


def _texts(b: Bundle, patterns: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pat in patterns:
        for p in b.glob(pat) if any(c in pat for c in "*?[") else [pat]:
            try:
                t = b.text(p)
            except EvidenceError:
                continue
            if t is not None:
                out[p] = t
    return out


class _Ctx:
    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.b = facts.bundle
        self._nginx: list[WebListen] | None = None
        self._apache: tuple[list[tuple[str, int, str, str]], list[WebListen]] | None = None
        self._args: dict[int, str] | None = None

    def args(self, pid: int | None) -> str:
        if self._args is None:
            try:
                self._args = {p.pid: p.args for p in self.facts.get(processes)}
            except EvidenceError:
                self._args = {}
        return self._args.get(pid or -1, "")

    def nginx(self) -> list[WebListen]:
        if self._nginx is None:
            self._nginx = parse_nginx(_texts(self.b, NGINX))
        return self._nginx

    def apache(self) -> tuple[list[tuple[str, int, str, str]], list[WebListen]]:
        if self._apache is None:
            self._apache = parse_apache(_texts(self.b, APACHE))
        return self._apache

    def home(self, user: str | None) -> str | None:
        if not user:
            return None
        if user == "root":
            return "/root"
        try:
            acct = self.facts.get(accounts).user(user)
        except EvidenceError:
            acct = None
        return acct.home if acct is not None else f"/home/{user}"


def _web(ctx: _Ctx, li: Listener, proto: str) -> tuple[bool | None, str, tuple[Evidence, ...], bool]:
    kinds = [li.process] if li.process in ("nginx", "apache2", "httpd") else ["nginx", "apache2"]
    matches: list[WebListen] = []
    for kind in kinds:
        if kind == "nginx":
            matches.extend(w for w in ctx.nginx() if w.port == li.port)
        else:
            listens, vhosts = ctx.apache()
            vh = [w for w in vhosts if w.port == li.port]
            if vh:
                matches.extend(vh)
            else:
                for addr, port, p, where in listens:
                    if port == li.port:
                        ssl = p == "https" or port == 443
                        matches.append(
                            WebListen(addr, port, ssl, False, where, f"Listen {addr}:{port} {p}".strip())
                        )
    ev = tuple(
        Evidence(w.where, w.detail + (" ssl" if w.ssl and "ssl" not in w.detail else "")) for w in matches
    )
    if not matches:
        if proto == "https":
            return (
                None,
                f"port {li.port}: HTTPS by convention, but no web server configuration was found for it",
                (),
                False,
            )
        return (
            None,
            f"port {li.port}: no web server configuration found for it (plain HTTP unless proven otherwise)",
            (),
            False,
        )
    if all(w.ssl for w in matches):
        return True, "TLS (listen … ssl / SSLEngine on)", ev, False
    plain = [w for w in matches if not w.ssl]
    if all(w.redirect_only for w in plain):
        return False, "plain HTTP that only redirects to https://", ev, True
    return False, "plain HTTP serving content (no ssl on this port, no redirect to https://)", ev, False


def _identify(ctx: _Ctx, li: Listener, proto: str, how: str) -> ServiceExposure:
    b = ctx.b
    args = ctx.args(li.pid)
    if proto in ("telnet", "rsh", "rlogin", "rexec", "tftp"):
        return ServiceExposure(
            li, proto, False, f"{proto} has no encryption: use SSH (or SFTP) instead", (), False, how
        )
    if proto == "ssh":
        return ServiceExposure(li, proto, True, "SSH is encrypted", (), False, how)
    if proto == "ftp":
        for path in VSFTPD:
            t = b.text(path) if b.file(path) else None
            if t is not None and li.process in ("vsftpd", None):
                tls, why = vsftpd_tls(parse_vsftpd_conf(t))
                return ServiceExposure(li, proto, tls, why, (Evidence(path, why),), False, "config")
        conf: dict[str, tuple[str, int]] = {}
        paths = [p for p in PROFTPD if b.file(p) is not None]
        for p in paths:
            conf.update(parse_proftpd_conf(b.text(p) or ""))
        if paths and li.process in ("proftpd", None):
            tls, why = proftpd_tls(conf)
            return ServiceExposure(
                li, proto, tls, why, tuple(Evidence(p, why) for p in paths), False, "config"
            )
        if b.file(PUREFTPD_TLS) is not None and li.process in ("pure-ftpd", None):
            level = (b.text(PUREFTPD_TLS) or "").strip()
            tls = level in ("2", "3")
            return ServiceExposure(
                li,
                proto,
                tls,
                f"pure-ftpd TLS level {level or '0'}",
                (Evidence(PUREFTPD_TLS, level or "(empty)"),),
                False,
                "config",
            )
        return ServiceExposure(
            li,
            proto,
            None,
            "FTP server whose configuration was not found: cannot tell whether FTPS is required",
            (),
            False,
            how,
        )
    if proto in ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps", "sieve"):
        for srv in ctx.facts.get(mail_servers):
            if (
                li.process is not None
                and li.process not in srv.processes
                and not (li.process in ("imap-login", "pop3-login") and srv.kind == "dovecot")
            ):
                continue
            for svc in srv.services:
                if svc.port == li.port:
                    return ServiceExposure(
                        li,
                        svc.protocol,
                        svc.tls,
                        f"{srv.name}: {svc.tls_reason}",
                        svc.evidence,
                        False,
                        "config",
                    )
        if li.port in (465, 993, 995):
            return ServiceExposure(
                li,
                proto,
                None,
                f"port {li.port} is implicit TLS by convention; the server's configuration was not found",
                (),
                False,
                how,
            )
        return ServiceExposure(
            li,
            proto,
            None,
            "mail server configuration not found: cannot tell whether STARTTLS is offered",
            (),
            False,
            how,
        )
    if proto in ("http", "https"):
        wtls, why, ev, redirect = _web(ctx, li, proto)
        return ServiceExposure(li, proto, wtls, why, ev, redirect, "config" if ev else how)
    if proto == "jupyter":
        if re.search(r"--(?:ServerApp\.|NotebookApp\.)?certfile[= ]\S+", args):
            return ServiceExposure(
                li,
                proto,
                True,
                "started with --certfile",
                (Evidence(f"process {li.pid}", args),),
                False,
                "process",
            )
        home = ctx.home(li.user)
        cands = [p for p in JUPYTER if "*" not in p] + (
            [f"{home}/.jupyter/{n}.{e}" for n in _JUPYTER_NAMES for e in ("py", "json")] if home else []
        )
        seen = []
        for path in cands:
            if b.file(path) is None:
                continue
            seen.append(path)
            cert = jupyter_certfile(b.text(path) or "", path)
            if cert:
                return ServiceExposure(
                    li,
                    proto,
                    True,
                    f"certfile = {cert}",
                    (Evidence(path, f"certfile = {cert}"),),
                    False,
                    "config",
                )
        if how == "port" and li.process is None:
            return ServiceExposure(
                li, proto, None, f"port {li.port} (Jupyter's default), process not visible", (), False, how
            )
        where = ", ".join(seen) if seen else f"{home or '~'}/.jupyter/jupyter_server_config.py"
        return ServiceExposure(
            li,
            proto,
            False,
            f"no certfile in {where} (nor --certfile): Jupyter serves plain "
            "HTTP, tokens and passwords included",
            tuple(Evidence(p, "no certfile") for p in seen),
            False,
            "config" if seen else how,
        )
    if proto == "rstudio":
        t = b.text(RSTUDIO) if b.file(RSTUDIO) else None
        if t is not None and rstudio_ssl(t):
            return ServiceExposure(
                li, proto, True, "ssl-enabled=1", (Evidence(RSTUDIO, "ssl-enabled=1"),), False, "config"
            )
        return ServiceExposure(
            li,
            proto,
            False,
            "RStudio Server serves plain HTTP (no ssl-enabled=1; the open-source "
            "edition has no TLS: put it behind an HTTPS proxy and set www-address=127.0.0.1)",
            (Evidence(RSTUDIO, "no ssl-enabled"),) if t is not None else (),
            False,
            how,
        )
    if proto == "shiny":
        t = b.text(SHINY) if b.file(SHINY) else None
        if t is not None and shiny_ssl(t):
            return ServiceExposure(
                li, proto, True, "ssl configured", (Evidence(SHINY, "ssl …"),), False, "config"
            )
        return ServiceExposure(
            li,
            proto,
            False,
            "Shiny Server serves plain HTTP (no ssl directive)",
            (Evidence(SHINY, "no ssl directive"),) if t is not None else (),
            False,
            how,
        )
    if proto == "redis":
        texts = _texts(b, REDIS)
        if texts:
            path, text = next(iter(texts.items()))
            tls, why = redis_tls(parse_redis_conf(text), li.port)
            return ServiceExposure(li, proto, tls, why, (Evidence(path, why),), False, "config")
        return ServiceExposure(
            li,
            proto,
            False if li.process == "redis-server" and "--tls" not in args else None,
            "Redis without a TLS configuration",
            (),
            False,
            how,
        )
    if proto == "memcached":
        texts = _texts(b, MEMCACHED)
        on = memcached_tls(args) or any(memcached_tls(t) for t in texts.values())
        return ServiceExposure(
            li,
            proto,
            on,
            "TLS enabled (-Z)" if on else "memcached without -Z: plaintext",
            tuple(Evidence(p, "-Z" if memcached_tls(t) else "no -Z") for p, t in texts.items()),
            False,
            "config" if texts else how,
        )
    if proto == "mongodb":
        t = b.text(MONGOD) if b.file(MONGOD) else None
        if t is None:
            return ServiceExposure(li, proto, None, f"{MONGOD} not found", (), False, how)
        tls, why = mongod_tls(t)
        return ServiceExposure(li, proto, tls, why, (Evidence(MONGOD, why),), False, "config")
    if proto == "elasticsearch":
        rec = b.file(ELASTIC)
        if rec is None or rec.error is not None:
            return ServiceExposure(li, proto, None, f"{ELASTIC} not readable", (), False, how)
        es_on = elasticsearch_http_tls(rec.content or "")
        why = "xpack.security.http.ssl enabled" if es_on else "xpack.security.http.ssl off: plain HTTP"
        return ServiceExposure(li, proto, es_on, why, (Evidence(ELASTIC, why),), False, "config")
    if proto == "vnc":
        m = re.search(r"-SecurityTypes[= ](\S+)", args, re.IGNORECASE)
        types = m.group(1) if m else None
        src = f"process {li.pid}" if m else ""
        if types is None:
            for path in TIGERVNC:
                t = b.text(path) if b.file(path) else None
                # Perl syntax (Debian's tigervncserver): $SecurityTypes = "X509Vnc,X509Plain";
                mm = re.search(r"(?mi)^\s*\$?securitytypes\s*=\s*[\"']?([^\"';\s]+)", t or "")
                if mm:
                    types, src = mm.group(1), path
                    break
        if types is None and li.process == "Xtigervnc":
            # Xtigervnc's compiled-in default (1.12, built with GnuTLS) is "TLSVnc,VncAuth": VncAuth
            # sessions are unencrypted. (Debian's tigervncserver always passes -SecurityTypes.)
            types, src = "TLSVnc,VncAuth", "Xtigervnc built-in default (no -SecurityTypes)"
        if li.process == "x11vnc":
            tls = "-ssl" in args.split()
            return ServiceExposure(
                li,
                proto,
                tls,
                "x11vnc -ssl" if tls else "x11vnc without -ssl: unencrypted",
                (Evidence(f"process {li.pid}", args),) if args else (),
                False,
                "process",
            )
        if types is None:
            return ServiceExposure(
                li,
                proto,
                None,
                "VNC: encryption depends on SecurityTypes, which is not set explicitly",
                (),
                False,
                how,
            )
        tl = [t.lower() for t in types.split(",")]
        plain = [t for t in tl if t in ("none", "vncauth", "plain")]
        tls = not plain
        return ServiceExposure(
            li,
            proto,
            tls,
            f"SecurityTypes={types}" + (f" allows unencrypted {', '.join(plain)}" if plain else ""),
            (Evidence(src, f"SecurityTypes={types}"),),
            False,
            "config",
        )
    return ServiceExposure(li, proto, None, "not evaluated", (), False, how)


def exposures(facts: Facts) -> list[ServiceExposure]:
    lst = facts.get(listeners)
    ctx = _Ctx(facts)
    out: list[ServiceExposure] = []
    seen: set[tuple[str, int, str, int | None]] = set()
    for li in lst:
        if li.loopback:
            continue
        if li.proto == "udp":
            if li.port == 69 or li.process in ("in.tftpd", "tftpd"):
                out.append(
                    ServiceExposure(
                        li, "tftp", False, "TFTP has no encryption nor authentication", (), False, "port"
                    )
                )
            continue
        proto, how = _protocol(li)
        if proto is None:
            continue
        key = (li.address, li.port, li.proto, li.pid)
        if key in seen:
            continue
        seen.add(key)
        out.append(_identify(ctx, li, proto, how))
    for fn in list(_REFINERS):
        out = fn(facts, out)
    return out


def unidentified(facts: Facts) -> list[Listener]:
    out = []
    for li in facts.get(listeners):
        if li.loopback or li.proto != "tcp":
            continue
        proto, _ = _protocol(li)
        if proto is None and li.process not in NOT_IN_SCOPE and li.port not in NOT_IN_SCOPE_PORTS:
            out.append(li)
    return out


# The evidence this module reads (after the sanitizers it names).
NEEDS = Needs(
    files=(
        *VSFTPD,
        *PROFTPD,
        PUREFTPD_TLS,
        *REDIS,
        *MEMCACHED,
        MONGOD,
        ELASTIC,
        RSTUDIO,
        SHINY,
        *TIGERVNC,
        *NGINX,
        *APACHE,
        *JUPYTER,
    ),
    sanitize=dict.fromkeys(_SECRET_FILES, sanitize_service_secrets),
)
