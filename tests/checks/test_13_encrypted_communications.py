"""Encrypted communications (Check-Security-13): protocol identification, TLS from configuration, statuses."""

from __future__ import annotations

import stat

from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import Entry, all_needs
from nectar_audit.checks import encrypted_communications
from nectar_audit.config import Config
from nectar_audit.engine import run_check
from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.network import plaintext
from nectar_audit.facts.network.plaintext import (
    ProbeResult,
    ServiceExposure,
    elasticsearch_http_tls,
    exposures,
    jupyter_certfile,
    memcached_tls,
    merge_probes,
    mongod_tls,
    parse_apache,
    parse_nginx,
    parse_redis_conf,
    parse_vsftpd_conf,
    redis_tls,
    vsftpd_tls,
)
from nectar_audit.facts.system.sockets import SS_COMMAND
from nectar_audit.model import Status
from tests import SAMPLES

MAIL = SAMPLES / "mail"
SAMPLES = SAMPLES / "plaintext"
ENTRY = Entry(
    encrypted_communications.CHECK.id, "enc?", "encrypted_communications", encrypted_communications.CHECK
)
PASSWD = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def tcp(addr: str, port: int, proc: str | None, uid: int = 0, pid: int = 500) -> str:
    users = f' users:(("{proc}",pid={pid},fd=6))' if proc else ""
    peer = "[::]:*" if addr.startswith("[") else "0.0.0.0:*"
    return f"tcp LISTEN 0 128 {addr}:{port} {peer}{users} uid:{uid} ino:1 sk:1 <->"


def make_bundle(
    files: dict[str, str], listeners: list[str] | None = None, live: bool = True, ps: str | None = None
) -> Bundle:
    b = Bundle(
        "t", "local" if live else "rootfs", live, uid=0 if live else None, sanitizers=all_needs().sanitize
    )
    b.add_file("/etc/os-release", b'ID=debian\nVERSION_ID="12"\n')
    b.add_file("/etc/passwd", PASSWD.encode())
    for path, text in files.items():
        b.add_file(path, text.encode())
    if live:
        b.commands[SS_COMMAND] = CommandRecord("#ss\n" + "\n".join(listeners or []) + "\n#bindv6only 0\n")
        if ps is not None:
            b.commands["processes.ps"] = CommandRecord("#ps\n" + ps)
    return b


def check(b: Bundle) -> tuple[Status, list[tuple[Status, str]]]:
    res = run_check(ENTRY, Facts(b, Config()))
    return res.status, [(f.status, f.message) for f in res.findings]


# ---------------------------------------------------------------------------------------------------
# Parsers on real defaults
def test_nginx_debian_default_site() -> None:
    listens = parse_nginx({"/etc/nginx/sites-enabled/default": sample("nginx-sites-default.debian12")})
    assert [(w.address, w.port, w.ssl, w.redirect_only) for w in listens] == [
        ("*", 80, False, False),
        ("::", 80, False, False),
    ]
    assert parse_nginx({"/etc/nginx/nginx.conf": sample("nginx.conf.debian12")}) == []


def test_nginx_tls_and_redirect() -> None:
    conf = """
    server { listen 80; listen [::]:80; server_name x; return 301 https://$host$request_uri; }
    server { listen 443 ssl http2; listen [::]:443 ssl; root /var/www; ssl_certificate /etc/ssl/x.pem; }
    """
    ls = parse_nginx({"/etc/nginx/conf.d/x.conf": conf})
    assert {(w.port, w.ssl, w.redirect_only) for w in ls} == {(80, False, True), (443, True, False)}


def test_apache_debian_defaults() -> None:
    listens, vhosts = parse_apache(
        {
            "/etc/apache2/ports.conf": sample("apache2-ports.conf.debian12"),
            "/etc/apache2/sites-enabled/000-default.conf": sample("apache2-000-default.conf.debian12"),
            "/etc/apache2/sites-enabled/default-ssl.conf": sample("apache2-default-ssl.conf.debian12"),
        }
    )
    assert [(a, p) for a, p, _, _ in listens] == [("*", 80), ("*", 443), ("*", 443)]
    assert {(v.port, v.ssl, v.redirect_only) for v in vhosts} == {(80, False, False), (443, True, False)}


def test_vsftpd_redis_memcached_mongo_es_jupyter() -> None:
    assert vsftpd_tls(parse_vsftpd_conf(sample("vsftpd.conf.debian12")))[0] is False
    assert vsftpd_tls(parse_vsftpd_conf("ssl_enable=YES\n"))[0] is True
    assert vsftpd_tls(parse_vsftpd_conf("ssl_enable=YES\nforce_local_logins_ssl=NO\n"))[0] is False
    conf = parse_redis_conf(sample("redis.conf.debian12"))
    assert conf["bind"][0] == "127.0.0.1 -::1"
    assert redis_tls(conf, 6379)[0] is False
    assert redis_tls(parse_redis_conf("port 0\ntls-port 6379\n"), 6379)[0] is True
    assert memcached_tls(sample("memcached.conf.debian12")) is False
    assert memcached_tls("-l 0.0.0.0\n-Z\n") is True
    assert mongod_tls("net:\n  port: 27017\n  bindIp: 0.0.0.0\n")[0] is False
    assert mongod_tls("net:\n  tls:\n    mode: requireTLS\n    certificateKeyFile: /x.pem\n")[0] is True
    assert mongod_tls("net:\n  tls:\n    mode: preferTLS\n")[0] is False
    assert elasticsearch_http_tls(
        "xpack.security.http.ssl:\n  enabled: true\n  keystore.path: certs/http.p12\n"
    )
    assert elasticsearch_http_tls("xpack.security.http.ssl.enabled: false\n") is False
    assert jupyter_certfile("c.ServerApp.certfile = '/home/a/cert.pem'\n", "x.py") == "/home/a/cert.pem"
    assert jupyter_certfile("# c.ServerApp.certfile = ''\n", "x.py") is None
    assert jupyter_certfile('{"NotebookApp": {"certfile": "/c.pem"}}', "x.json") == "/c.pem"
    assert jupyter_certfile("{not json", "x.json") is None


def test_secrets_are_blanked() -> None:
    b = make_bundle(
        {
            "/home/alice/.jupyter/jupyter_server_config.py": (
                "c.ServerApp.password = 'argon2:$argon2id$v=19$m=10240,t=10,p=8$abc'\n"
                "c.ServerApp.token = 'tok'\n"
            ),
            "/etc/redis/redis.conf": "requirepass foobared\nport 6379\n",
        }
    )
    jup = b.text("/home/alice/.jupyter/jupyter_server_config.py") or ""
    assert "argon2id" not in jup and "'tok'" not in jup
    red = b.text("/etc/redis/redis.conf") or ""
    assert "foobared" not in red and "port 6379" in red


# ---------------------------------------------------------------------------------------------------
# Check statuses
def test_plain_http_nginx_fails_and_redirect_passes() -> None:
    lst = [tcp("0.0.0.0", 80, "nginx"), tcp("[::]", 80, "nginx")]
    b = make_bundle({"/etc/nginx/sites-enabled/default": sample("nginx-sites-default.debian12")}, lst)
    status, findings = check(b)
    assert status is Status.FAIL
    assert findings[0][1] == (
        "HTTP (nginx (pid 500, user root)) on 0.0.0.0:80/tcp, [::]:80/tcp is not encrypted: "
        "plain HTTP serving content (no ssl on this port, no redirect to https://)"
    )
    conf = (
        "server { listen 80; return 301 https://$host$request_uri; }\nserver { listen 443 ssl; root /x; }\n"
    )
    lst = [tcp("0.0.0.0", 80, "nginx"), tcp("0.0.0.0", 443, "nginx")]
    status, findings = check(make_bundle({"/etc/nginx/conf.d/site.conf": conf}, lst))
    assert status is Status.PASS
    assert [m for _, m in findings] == [
        "HTTP (nginx (pid 500, user root)) on 0.0.0.0:80/tcp: plain HTTP that only redirects to https://",
        "HTTPS (nginx (pid 500, user root)) on 0.0.0.0:443/tcp: encrypted "
        "(TLS (listen … ssl / SSLEngine on))",
    ]


def test_telnet_and_ftp_fail() -> None:
    lst = [tcp("0.0.0.0", 23, "in.telnetd"), tcp("[::]", 21, "vsftpd")]
    status, findings = check(make_bundle({"/etc/vsftpd.conf": sample("vsftpd.conf.debian12")}, lst))
    assert status is Status.FAIL
    msgs = [m for _, m in findings]
    assert any(
        m.startswith("Telnet (in.telnetd (pid 500, user root)) on 0.0.0.0:23/tcp is not encrypted")
        for m in msgs
    )
    assert any("FTP (vsftpd" in m and "ssl_enable=YES" in m for m in msgs)


def test_jupyter_without_and_with_certfile() -> None:
    lst = [tcp("0.0.0.0", 8888, "jupyter-lab", uid=1000)]
    status, findings = check(make_bundle({}, lst))
    assert status is Status.FAIL
    assert "no certfile in /home/alice/.jupyter/jupyter_server_config.py" in findings[0][1]
    files = {"/home/alice/.jupyter/jupyter_server_config.py": "c.ServerApp.certfile = '/home/alice/c.pem'\n"}
    status, findings = check(make_bundle(files, lst))
    assert status is Status.PASS and "certfile = /home/alice/c.pem" in findings[0][1]
    # Process not visible (non-root audit): the port alone is not proof of plaintext.
    status, findings = check(make_bundle({}, [tcp("0.0.0.0", 8888, None, uid=1000)]))
    assert status is Status.WARN and "cannot tell whether it is encrypted" in findings[0][1]


def test_jupyter_certfile_on_command_line() -> None:
    ps = (
        "       500          1       1000 alice                            jupyter-lab      "
        "/usr/bin/python3 /usr/local/bin/jupyter-lab --ip=0.0.0.0 --certfile=/home/alice/c.pem\n"
    )
    lst = [tcp("0.0.0.0", 8888, "jupyter-lab", uid=1000)]
    status, findings = check(make_bundle({}, lst, ps=ps))
    assert status is Status.PASS and "started with --certfile" in findings[0][1]


def test_postfix_and_dovecot_from_mail_facts() -> None:
    files = {
        "/etc/postfix/main.cf": (MAIL / "postfix-main.cf.rocky9-effective")
        .read_text()
        .replace("inet_interfaces = localhost", "inet_interfaces = all"),
        "/etc/postfix/master.cf": (MAIL / "postfix-master.cf.rocky9-effective").read_text()
        + "submission inet n - n - - smtpd\n  -o smtpd_tls_security_level=encrypt\n",
    }
    lst = [tcp("0.0.0.0", 25, "master"), tcp("0.0.0.0", 587, "master")]
    status, findings = check(make_bundle(files, lst))
    assert status is Status.PASS
    assert "STARTTLS offered" in findings[0][1] and "STARTTLS required" in findings[1][1]
    files["/etc/postfix/main.cf"] = (MAIL / "postfix-main.cf.debian12").read_text()
    files["/etc/postfix/master.cf"] = (MAIL / "postfix-master.cf.debian12").read_text()
    status, findings = check(make_bundle(files, [tcp("0.0.0.0", 25, "master")]))
    assert status is Status.FAIL and "no TLS: smtpd_tls_security_level is none" in findings[0][1]


def test_redis_and_unknown_and_ssh() -> None:
    lst = [tcp("0.0.0.0", 6379, "redis-server"), tcp("0.0.0.0", 22, "sshd"), tcp("0.0.0.0", 5000, "python3")]
    b = make_bundle({"/etc/redis/redis.conf": "bind 0.0.0.0\nport 6379\n"}, lst)
    status, findings = check(b)
    assert status is Status.FAIL
    assert findings[0] == (
        Status.PASS,
        "SSH (sshd (pid 500, user root)) on 0.0.0.0:22/tcp: encrypted (SSH is encrypted)",
    )
    assert findings[1][0] is Status.FAIL and "Redis plaintext port" in findings[1][1]
    assert findings[2] == (
        Status.MANUAL,
        "1 listener(s) beyond loopback speak a protocol this tool does not "
        "identify: 0.0.0.0:5000/tcp (python3); check that they use TLS",
    )


def test_only_loopback_is_not_applicable_and_offline() -> None:
    status, _ = check(make_bundle({}, [tcp("127.0.0.1", 6379, "redis-server")]))
    assert status is Status.NOT_APPLICABLE
    files = {
        "/etc/nginx/sites-enabled/default": sample("nginx-sites-default.debian12"),
        "/etc/postfix/main.cf": (MAIL / "postfix-main.cf.debian12").read_text(),
        "/etc/postfix/master.cf": (MAIL / "postfix-master.cf.debian12").read_text(),
    }
    # An image: the configuration decides, for the services enabled at boot only.
    image = make_bundle(files, live=False)
    status, findings = check(image)
    assert status is Status.NOT_APPLICABLE
    assert findings[0][1].startswith("Offline image: no enabled service is configured to listen on TCP beyond")
    enable(image, "postfix.service", "nginx.service", "ssh.service")
    image.add_file("/etc/ssh/sshd_config", b"Port 2222\nListenAddress 127.0.0.1\nListenAddress 192.0.2.7\n")
    status, findings = check(image)
    assert status is Status.FAIL
    predicted = (
        " (predicted from configuration: enabled units (/etc/systemd/system/*.wants/ and /etc/rc?.d/ links); "
        "/etc/ssh/sshd_config, /etc/postfix/main.cf, /etc/postfix/master.cf, /etc/nginx/sites-enabled/default)"
    )
    assert findings == [
        (
            Status.PASS,
            "Offline image: SSH (sshd) configured to listen beyond loopback on port 2222: encrypted (SSH is "
            "encrypted)" + predicted,
        ),
        (
            Status.FAIL,
            "Offline image: SMTP (master) configured to listen beyond loopback on port 25 is not encrypted: "
            "Postfix: no TLS: smtpd_tls_security_level is none (plaintext SMTP)" + predicted,
        ),
        (
            Status.FAIL,
            "Offline image: HTTP (nginx) configured to listen beyond loopback on port 80 is not encrypted: "
            "plain HTTP serving content (no ssl on this port, no redirect to https://)" + predicted,
        ),
    ]
    # An enabled service whose listeners the files do not tell: left to a human, saying which.
    enable(image, "myapp.service")
    status, findings = check(image)
    assert findings[-1] == (
        Status.MANUAL,
        "Offline image: the configuration does not tell what these enabled services will listen on: "
        "myapp.service (an enabled service this tool cannot predict the listeners of); check them on a host "
        "booted from the image",
    )


def enable(b: Bundle, *units: str) -> None:
    """Enable units the way an image records it: symlinks in multi-user.target.wants (lstat metadata)."""
    for unit in units:
        b.stats[f"/etc/systemd/system/multi-user.target.wants/{unit}"] = StatRecord(
            stat.S_IFLNK | 0o777, 0, 0, len(f"/lib/systemd/system/{unit}"), 0
        )


def test_probe_merge_and_refiner() -> None:
    b = make_bundle({}, [tcp("0.0.0.0", 8888, None)])
    items = exposures(Facts(b, Config()))
    assert items[0].tls is None
    merged = merge_probes(items, [ProbeResult("10.0.0.5", 8888, True, "TLS 1.3 handshake")])
    assert merged[0].tls is True and merged[0].source == "probe"

    def refiner(facts: Facts, found: list[ServiceExposure]) -> list[ServiceExposure]:
        return merge_probes(found, [ProbeResult("0.0.0.0", 8888, False, "HTTP/1.1 200 in clear text")])

    plaintext.register_refiner(refiner)
    try:
        status, findings = check(make_bundle({}, [tcp("0.0.0.0", 8888, None)]))
    finally:
        plaintext._REFINERS.remove(refiner)
    assert status is Status.FAIL and "HTTP/1.1 200 in clear text (probe" in findings[0][1]


@settings(max_examples=120, deadline=None)
@given(st.text(max_size=300))
def test_garbage_configs(text: str) -> None:
    files = {
        p: text
        for p in (
            "/etc/nginx/nginx.conf",
            "/etc/apache2/apache2.conf",
            "/etc/vsftpd.conf",
            "/etc/redis/redis.conf",
            "/etc/mongod.conf",
            "/etc/rstudio/rserver.conf",
            "/home/alice/.jupyter/jupyter_server_config.json",
        )
    }
    lst = [
        tcp("0.0.0.0", p, n)
        for p, n in (
            (80, "nginx"),
            (21, "vsftpd"),
            (6379, "redis-server"),
            (27017, "mongod"),
            (8787, "rserver"),
            (8888, "jupyter-lab"),
        )
    ]
    status, _ = check(make_bundle(files, lst))
    assert status in (Status.PASS, Status.FAIL, Status.WARN)


# ---------------------------------------------------------------------------------------------------
# Every protocol of the issue, check-level: dovecot, VNC, RStudio, Shiny, MongoDB, Elasticsearch, memcached, rsh
DOVECOT_CERT = "ssl_cert = </etc/dovecot/private/dovecot.pem\nssl_key = </etc/dovecot/private/dovecot.key\n"
DOVECOT_LISTENERS = [
    tcp("0.0.0.0", 110, "pop3-login", pid=610),
    tcp("0.0.0.0", 143, "imap-login", pid=611),
]


def test_dovecot_ssl_no_fails_on_pop3_and_imap() -> None:
    files = {"/etc/dovecot/dovecot.conf": "protocols = imap pop3\nssl = no\n"}
    status, findings = check(make_bundle(files, DOVECOT_LISTENERS))
    assert status is Status.FAIL
    assert findings == [
        (
            Status.FAIL,
            "POP3 (pop3-login (pid 610, user root)) on 0.0.0.0:110/tcp is not encrypted: "
            "Dovecot (POP3/IMAP): ssl = no: plaintext only",
        ),
        (
            Status.FAIL,
            "IMAP (imap-login (pid 611, user root)) on 0.0.0.0:143/tcp is not encrypted: "
            "Dovecot (POP3/IMAP): ssl = no: plaintext only",
        ),
    ]


def test_dovecot_ssl_required_passes() -> None:
    files = {"/etc/dovecot/dovecot.conf": "protocols = imap pop3\nssl = required\n" + DOVECOT_CERT}
    status, findings = check(make_bundle(files, DOVECOT_LISTENERS))
    assert status is Status.PASS
    assert findings == [
        (
            Status.PASS,
            "POP3 (pop3-login (pid 610, user root)) on 0.0.0.0:110/tcp: encrypted (Dovecot (POP3/IMAP): "
            "STARTTLS required before login (ssl = required))",
        ),
        (
            Status.PASS,
            "IMAP (imap-login (pid 611, user root)) on 0.0.0.0:143/tcp: encrypted (Dovecot (POP3/IMAP): "
            "STARTTLS required before login (ssl = required))",
        ),
    ]


def _ps(pid: int, comm: str, args: str, user: str = "alice", uid: int = 1000) -> str:
    return f"{pid:>10} {1:>10} {uid:>10} {user:<32} {comm:<16} {args}\n"


def test_tigervnc_with_and_without_tls_security_types() -> None:
    lst = [tcp("0.0.0.0", 5901, "Xtigervnc", uid=1000, pid=700)]
    base = "/usr/bin/Xtigervnc :1 -desktop lab:1 -auth /home/alice/.Xauthority -rfbport 5901 -localhost=0"
    status, findings = check(make_bundle({}, lst, ps=_ps(700, "Xtigervnc", base + " -SecurityTypes X509Vnc")))
    assert (status, findings) == (
        Status.PASS,
        [(Status.PASS, "VNC (Xtigervnc (pid 700, user alice)) on 0.0.0.0:5901/tcp: encrypted (SecurityTypes=X509Vnc)")],
    )
    status, findings = check(
        make_bundle({}, lst, ps=_ps(700, "Xtigervnc", base + " -SecurityTypes VncAuth,TLSVnc"))
    )
    assert (status, findings) == (
        Status.FAIL,
        [
            (
                Status.FAIL,
                "VNC (Xtigervnc (pid 700, user alice)) on 0.0.0.0:5901/tcp is not encrypted: "
                "SecurityTypes=VncAuth,TLSVnc allows unencrypted vncauth",
            )
        ],
    )
    # Set in TigerVNC's mandatory configuration rather than on the command line.
    files = {"/etc/tigervnc/vncserver-config-mandatory": "$SecurityTypes = \"X509Vnc\";\n"}
    status, findings = check(make_bundle(files, lst, ps=_ps(700, "Xtigervnc", base)))
    assert (status, findings) == (
        Status.PASS,
        [
            (
                Status.PASS,
                "VNC (Xtigervnc (pid 700, user alice)) on 0.0.0.0:5901/tcp: encrypted (SecurityTypes=X509Vnc)",
            )
        ],
    )
    # Neither: Xtigervnc's compiled-in default "TLSVnc,VncAuth" lets VncAuth sessions through unencrypted.
    status, findings = check(make_bundle({}, lst, ps=_ps(700, "Xtigervnc", base)))
    assert (status, findings) == (
        Status.FAIL,
        [
            (
                Status.FAIL,
                "VNC (Xtigervnc (pid 700, user alice)) on 0.0.0.0:5901/tcp is not encrypted: "
                "SecurityTypes=TLSVnc,VncAuth allows unencrypted vncauth",
            )
        ],
    )
    # Another VNC server with nothing known: unknown, not guessed.
    status, findings = check(make_bundle({}, [tcp("0.0.0.0", 5902, "Xvnc", uid=1000, pid=701)]))
    assert status is Status.WARN and "cannot tell whether it is encrypted" in findings[0][1]


def test_tigervnc_debian_config_files_parse() -> None:
    # The stock Debian 12 files (tigervnc-common 1.12.0+dfsg-8) set nothing: every line is a comment.
    lst = [tcp("0.0.0.0", 5901, "Xvnc", uid=1000, pid=700)]
    files = {
        "/etc/tigervnc/vncserver-config-defaults": sample("tigervnc-vncserver-config-defaults.debian12"),
        "/etc/tigervnc/vncserver-config-mandatory": sample("tigervnc-vncserver-config-mandatory.debian12"),
    }
    status, _ = check(make_bundle(files, lst))
    assert status is Status.WARN
    files["/etc/tigervnc/vncserver-config-defaults"] += '$SecurityTypes = "VncAuth";\n'
    status, findings = check(make_bundle(files, lst))
    assert status is Status.FAIL and "SecurityTypes=VncAuth allows unencrypted vncauth" in findings[0][1]


def test_rstudio_with_and_without_ssl() -> None:
    lst = [tcp("0.0.0.0", 8787, "rserver", uid=999, pid=800)]
    status, findings = check(make_bundle({"/etc/rstudio/rserver.conf": "www-port=8787\n"}, lst))
    assert (status, findings) == (
        Status.FAIL,
        [
            (
                Status.FAIL,
                "RStudio Server (rserver (pid 800, user 999)) on 0.0.0.0:8787/tcp is not encrypted: RStudio "
                "Server serves plain HTTP (no ssl-enabled=1; the open-source edition has no TLS: put it behind "
                "an HTTPS proxy and set www-address=127.0.0.1)",
            )
        ],
    )
    files = {"/etc/rstudio/rserver.conf": "www-port=8787\nssl-enabled=1\nssl-certificate=/etc/ssl/r.pem\n"}
    status, findings = check(make_bundle(files, lst))
    assert (status, findings) == (
        Status.PASS,
        [(Status.PASS, "RStudio Server (rserver (pid 800, user 999)) on 0.0.0.0:8787/tcp: encrypted (ssl-enabled=1)")],
    )


def test_shiny_server_plain_fails() -> None:
    conf = (
        "run_as shiny;\nserver {\n  listen 3838;\n  location / {\n    site_dir /srv/shiny-server;\n"
        "    log_dir /var/log/shiny-server;\n    directory_index on;\n  }\n}\n"
    )
    lst = [tcp("0.0.0.0", 3838, "shiny-server", uid=998, pid=810)]
    status, findings = check(make_bundle({"/etc/shiny-server/shiny-server.conf": conf}, lst))
    assert (status, findings) == (
        Status.FAIL,
        [
            (
                Status.FAIL,
                "Shiny Server (shiny-server (pid 810, user 998)) on 0.0.0.0:3838/tcp is not encrypted: Shiny "
                "Server serves plain HTTP (no ssl directive)",
            )
        ],
    )


def test_databases_and_caches_on_every_address_fail() -> None:
    lst = [
        tcp("0.0.0.0", 27017, "mongod", uid=0, pid=900),
        tcp("0.0.0.0", 9200, "java", uid=0, pid=901),
        tcp("0.0.0.0", 11211, "memcached", uid=0, pid=902),
    ]
    files = {
        "/etc/mongod.conf": "storage:\n  dbPath: /var/lib/mongodb\nnet:\n  port: 27017\n  bindIp: 0.0.0.0\n",
        "/etc/elasticsearch/elasticsearch.yml": "network.host: 0.0.0.0\nxpack.security.http.ssl:\n  enabled: false\n",
        "/etc/memcached.conf": sample("memcached.conf.debian12").replace("-l 127.0.0.1", "-l 0.0.0.0"),
    }
    status, findings = check(make_bundle(files, lst))
    assert status is Status.FAIL
    assert findings == [
        (
            Status.FAIL,
            "Elasticsearch (java (pid 901, user root)) on 0.0.0.0:9200/tcp is not encrypted: "
            "xpack.security.http.ssl off: plain HTTP",
        ),
        (
            Status.FAIL,
            "memcached (memcached (pid 902, user root)) on 0.0.0.0:11211/tcp is not encrypted: "
            "memcached without -Z: plaintext",
        ),
        (
            Status.FAIL,
            "MongoDB (mongod (pid 900, user root)) on 0.0.0.0:27017/tcp is not encrypted: "
            "no net.tls section: MongoDB speaks plaintext",
        ),
    ]
    files["/etc/mongod.conf"] += "  tls:\n    mode: requireTLS\n    certificateKeyFile: /etc/ssl/m.pem\n"
    files["/etc/elasticsearch/elasticsearch.yml"] = "xpack.security.http.ssl:\n  enabled: true\n"
    files["/etc/memcached.conf"] += "-Z\n"
    status, findings = check(make_bundle(files, lst))
    assert status is Status.PASS, findings
    assert [s for s, _ in findings] == [Status.PASS] * 3


def test_rshd_fails() -> None:
    status, findings = check(make_bundle({}, [tcp("0.0.0.0", 514, "in.rshd", pid=950)]))
    assert (status, findings) == (
        Status.FAIL,
        [
            (
                Status.FAIL,
                "rsh (in.rshd (pid 950, user root)) on 0.0.0.0:514/tcp is not encrypted: rsh has no "
                "encryption: use SSH (or SFTP) instead",
            )
        ],
    )
