"""Check-Security-15 (open ports without a service, host side) on bundles built from real dumps."""

from __future__ import annotations

import stat

from nectar_audit.checks.open_ports import run
from nectar_audit.config import Config
from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.system.sockets import SS_COMMAND
from nectar_audit.model import Finding, Status
from tests.checks.test_08_host_firewall import ROCKY, live_bundle, rules_output, sample, ufw_files

SSHD = (
    'tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=812,fd=3)) ino:11 sk:1 <->\n'
    'tcp LISTEN 0 128 [::]:22 [::]:* users:(("sshd",pid=812,fd=4)) ino:12 sk:2 v6only:1 <->\n'
)
DHCP = 'udp UNCONN 0 0 0.0.0.0:68 0.0.0.0:* users:(("dhclient",pid=500,fd=7)) ino:13 sk:3 <->\n'


def ufw_host(ss: str, config: Config | None = None) -> Facts:
    rules = rules_output(
        None,
        iptables_nft_save=sample("ufw-iptables-nft-save.v4"),
        ip6tables_nft_save=sample("ufw-ip6tables-nft-save.v6"),
    )
    b = live_bundle(rules, "ufw.service enabled enabled\n", files=ufw_files())
    b.commands[SS_COMMAND] = CommandRecord("#ss\n" + ss + "#bindv6only 0\n")
    return Facts(b, config or Config())


def msgs(findings: list[Finding]) -> dict[str, Status]:
    return {f.message: f.status for f in findings}


def test_open_ports_without_listener() -> None:
    findings = run(ufw_host(SSHD + DHCP, Config(allowed_ports=("22/tcp",))))
    m = msgs(findings)
    assert m["Port 2222/tcp is open in the firewall (IPv4) but nothing listens on it"] is Status.FAIL
    assert m["Port 5432/tcp is open to 10.0.0.0/8 (IPv4) but nothing listens on it"] is Status.WARN
    assert m["Ports 60000-61000/udp are open in the firewall (IPv4 and IPv6) but nothing listens on any"] is Status.WARN
    fail = next(f for f in findings if f.status is Status.FAIL)
    assert fail.evidence[0].source == "command: iptables-nft-save"
    assert fail.evidence[0].detail == "IPv4: ip filter ufw-user-limit-accept: -A ufw-user-limit-accept -j ACCEPT"
    assert fail.remediation == "ufw delete allow 2222/tcp   (see `ufw status numbered`)"
    table = findings[-1]
    assert table.message == "Listeners × firewall (2 beyond loopback)"
    assert [e.detail for e in table.evidence] == [
        "0.0.0.0:22/tcp by sshd (pid 812, user 0) → IPv4: open (ip filter ufw-user-input: "
        "-A ufw-user-input -p tcp "
        "-m tcp --dport 22 -j ACCEPT)",
        "[::]:22/tcp by sshd (pid 812, user 0) → IPv6: open (ip6 filter ufw6-user-input: "
        "-A ufw6-user-input -p tcp "
        "-m tcp --dport 22 -j ACCEPT)",
    ]
    assert not any(k.startswith("Port 22/tcp") for k in m)


def test_listener_review() -> None:
    ss = SSHD + (
        'tcp LISTEN 0 128 *:60500 *:* users:(("mosh-server",pid=900,fd=4)) ino:14 sk:4 v6only:0 <->\n'
        'tcp LISTEN 0 128 0.0.0.0:5000 0.0.0.0:* users:(("python3",pid=901,fd=4)) ino:15 sk:5 <->\n'
        'tcp LISTEN 0 128 127.0.0.1:2222 0.0.0.0:* users:(("sshd",pid=902,fd=4)) ino:16 sk:6 <->\n'
    )
    # Without an allowlist: one manual review of what the firewall lets in (5000/tcp is blocked).
    m = msgs(run(ufw_host(ss)))
    assert (
        m[
            "No ports.allowed list in the config: review the 2 listener(s) the firewall lets in: "
            "0.0.0.0:22/tcp "
            "(sshd), [::]:22/tcp (sshd)"
        ]
        is Status.MANUAL
    )
    assert (
        m[
            "Port 2222/tcp is open in the firewall (IPv4) but nothing listens on it; only a loopback "
            "listener: "
            "127.0.0.1:2222/tcp by sshd (pid 902, user 0)"
        ]
        is Status.FAIL
    )
    # With one: a warning per reachable listener that is not in it.
    findings = run(
        ufw_host(
            SSHD + 'udp UNCONN 0 0 *:60500 *:* users:(("mosh-server",pid=900,fd=4)) ino:14 sk:4 v6only:0 <->\n',
            Config(allowed_ports=("22/tcp",)),
        )
    )
    warn = [f for f in findings if f.message.startswith("[::]:60500/udp")]
    assert len(warn) == 1 and warn[0].status is Status.WARN
    assert warn[0].message == (
        "[::]:60500/udp (mosh-server) listens beyond loopback, the firewall lets it in, and it is not in ports.allowed"
    )
    assert '"60500/udp" to ports.allowed' in (warn[0].remediation or "")
    assert "IPv4: open" in warn[0].evidence[0].detail and "IPv6: open" in warn[0].evidence[0].detail


def test_everything_fine() -> None:
    ss = SSHD + (
        'tcp LISTEN 0 128 0.0.0.0:2222 0.0.0.0:* users:(("sshd",pid=903,fd=4)) ino:14 sk:4 <->\n'
        'tcp LISTEN 0 128 0.0.0.0:5432 0.0.0.0:* users:(("postgres",pid=904,fd=4)) ino:15 sk:5 <->\n'
        'udp UNCONN 0 0 *:60001 *:* users:(("mosh-server",pid=905,fd=4)) ino:16 sk:6 v6only:0 <->\n'
    )
    cfg = Config(allowed_ports=("22/tcp", "2222/tcp", "5432/tcp", "60001/udp"))
    findings = run(ufw_host(ss, cfg))
    assert [f.status for f in findings] == [Status.PASS, Status.PASS]
    assert findings[0].message == (
        "Every port the firewall opens has a listener, and the 5 non-loopback listener(s) are allowed or blocked"
    )


def test_no_firewall_every_listener_is_reachable() -> None:
    b = live_bundle(rules_output(None), "")
    b.commands[SS_COMMAND] = CommandRecord("#ss\n" + SSHD + "#bindv6only 0\n")
    findings = run(Facts(b, Config(allowed_ports=("443/tcp",))))
    assert [f.status for f in findings].count(Status.WARN) == 2
    assert "IPv4: open (no filter chain on the input path)" in findings[0].evidence[0].detail


def _image(*units: str) -> Bundle:
    """A Rocky image whose firewalld (enabled) opens ssh and 8080/tcp in the public zone."""
    b = Bundle("root:/img", "rootfs", False)
    b.add_file("/etc/os-release", ROCKY)
    b.add_file("/etc/firewalld/firewalld.conf", sample("firewalld/firewalld.conf").encode())
    b.add_file("/etc/firewalld/zones/public.xml", sample("firewalld/zones/public.xml").encode())
    for unit in ("firewalld.service", *units):
        b.stats[f"/etc/systemd/system/multi-user.target.wants/{unit}"] = StatRecord(stat.S_IFLNK | 0o777, 0, 0, 40, 0)
    return b


PREDICTED = " (predicted from configuration: enabled units (/etc/systemd/system/*.wants/ and /etc/rc?.d/ links)"


def test_offline_boot_firewall_against_the_enabled_services() -> None:
    # sshd enabled (default port 22): 22 is served, 8080 is opened for nothing.
    b = _image("sshd.service")
    b.add_file("/etc/ssh/sshd_config", b"PasswordAuthentication no\n")
    findings = run(Facts(b, Config(allowed_ports=("22/tcp",))))
    m = msgs(findings)
    assert m == {
        "Offline image: port 8080/tcp is open in the firewall restored at boot (IPv4 and IPv6) but no enabled "
        "service is configured to serve it" + PREDICTED + "; /etc/ssh/sshd_config)": Status.FAIL,
        "Predicted listeners × firewall restored at boot (1 beyond loopback)": Status.PASS,
    }
    fail = findings[0]
    assert [e.detail for e in fail.evidence[:2]] == [
        "IPv4: inet firewalld filter_IN_public: /etc/firewalld/zones/public.xml: port 8080/tcp",
        "IPv6: inet firewalld filter_IN_public: /etc/firewalld/zones/public.xml: port 8080/tcp",
    ]
    assert fail.remediation is not None and "--remove-port=8080/tcp" in fail.remediation
    assert [e.detail for e in findings[-1].evidence] == [
        "*:22/tcp by sshd (sshd.service): no Port nor ListenAddress: sshd listens on port 22 of every address → "
        "IPv4: open (inet firewalld filter_IN_public: /etc/firewalld/zones/public.xml: service ssh (22/tcp)); "
        "IPv6: open (inet firewalld filter_IN_public: /etc/firewalld/zones/public.xml: service ssh (22/tcp))"
    ]
    # A service configured on 8080 (nginx): every opened port is served.
    b.add_file("/etc/nginx/nginx.conf", b"events {}\nhttp { server { listen 8080; root /srv; } }\n")
    b.stats["/etc/systemd/system/multi-user.target.wants/nginx.service"] = StatRecord(stat.S_IFLNK | 0o777, 0, 0, 40, 0)
    m = msgs(run(Facts(b, Config(allowed_ports=("22/tcp", "8080/tcp")))))
    assert (
        "Offline image: every port the firewall restored at boot opens has a service configured to serve it, "
        "and the 2 predicted non-loopback listener(s) are allowed or blocked"
        + PREDICTED
        + "; /etc/ssh/sshd_config, /etc/nginx/nginx.conf)"
    ) in m
    assert not any(s is not Status.PASS for s in m.values())


def test_offline_port_only_an_unknown_service_could_serve_stays_manual() -> None:
    b = _image("sshd.service", "myapp.service")
    b.add_file("/etc/ssh/sshd_config", b"Port 22\n")
    (f, _table) = run(Facts(b, Config(allowed_ports=("22/tcp",))))
    assert f.status is Status.MANUAL
    assert f.message == (
        "Offline image: the firewall restored at boot opens 8080/tcp (IPv4 and IPv6); no enabled service is "
        "configured to serve it, but myapp.service may, and the configuration does not tell (myapp.service: an "
        "enabled service this tool cannot predict the listeners of)" + PREDICTED + "; /etc/ssh/sshd_config)"
    )


def test_offline_sshd_moved_to_another_port_leaves_22_open_for_nothing() -> None:
    b = _image("sshd.service")
    b.add_file("/etc/ssh/sshd_config", b"Port 2222\n")
    m = msgs(run(Facts(b, Config(allowed_ports=("2222/tcp",)))))
    assert (
        "Offline image: port 22/tcp is open in the firewall restored at boot (IPv4 and IPv6) but no enabled "
        "service is configured to serve it" + PREDICTED + "; /etc/ssh/sshd_config)"
    ) in m


def test_offline_without_firewall_or_services() -> None:
    b = Bundle("root:/img", "rootfs", False)
    (f, _table) = run(Facts(b))
    assert f.status is Status.PASS
    assert f.message == (
        "Offline image: no firewall is restored at boot (see Check-Security-08), and no enabled service is "
        "configured to listen beyond loopback" + PREDICTED + ")"
    )
    b.stats["/etc/systemd/system/multi-user.target.wants/myapp.service"] = StatRecord(stat.S_IFLNK | 0o777, 0, 0, 40, 0)
    assert run(Facts(b))[0].status is Status.MANUAL


def test_listener_open_only_to_trusted_networks() -> None:
    import ipaddress

    pg = 'tcp LISTEN 0 128 0.0.0.0:5432 0.0.0.0:* users:(("postgres",pid=904,fd=4)) ino:15 sk:5 <->\n'
    base = {"allowed_ports": ("22/tcp",)}
    m = msgs(run(ufw_host(SSHD + pg, Config(**base))))  # type: ignore[arg-type]
    assert (
        m[
            "0.0.0.0:5432/tcp (postgres) listens beyond loopback, the firewall lets it in, and it is not in "
            "ports.allowed"
        ]
        is Status.WARN
    )
    trusted = Config(trusted_networks=(ipaddress.ip_network("10.0.0.0/8"),), **base)  # type: ignore[arg-type]
    findings = run(ufw_host(SSHD + pg, trusted))
    assert not any(f.status is Status.WARN and "5432" in f.message for f in findings)
    assert any("IPv4: only from 10.0.0.0/8" in e.detail for e in findings[-1].evidence)


def test_wide_range_opened_on_purpose() -> None:
    rules = (
        "# Generated by iptables-save v1.8.9 (nf_tables)\n*filter\n:INPUT DROP [0:0]\n"
        "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
        "-A INPUT -p tcp -m tcp --dport 1024:65535 -j ACCEPT\nCOMMIT\n"
    )
    b = live_bundle(rules_output(None, iptables_nft_save=rules), "")
    b.commands[SS_COMMAND] = CommandRecord("#ss\n" + SSHD + "#bindv6only 0\n")
    m = msgs(run(Facts(b, Config(allowed_ports=("22/tcp",)))))
    want = "Ports 1024-65535/tcp (64512 ports) are open in the firewall (IPv4): open only the ports of "
    want += "required services"
    assert m[want] is Status.WARN


def test_offline_ufw_image_with_sshd_and_postgres_configured() -> None:
    # ufw restores its user rules at boot (ENABLED=yes, ufw.service enabled): 22, 2222, 5432 from 10/8, …
    b = Bundle("root:/img", "rootfs", False)
    for path, text in ufw_files().items():
        b.add_file(path, text.encode())
    b.add_file("/etc/ssh/sshd_config", b"Port 22\nListenAddress 0.0.0.0\n")
    for unit in ("ufw.service", "ssh.service"):
        b.stats[f"/etc/systemd/system/multi-user.target.wants/{unit}"] = StatRecord(stat.S_IFLNK | 0o777, 0, 0, 40, 0)
    m = msgs(run(Facts(b, Config(allowed_ports=("22/tcp",)))))
    tail = PREDICTED + "; /etc/ssh/sshd_config)"
    assert (
        m[
            "Offline image: port 2222/tcp is open in the firewall restored at boot (IPv4 and IPv6) but no enabled "
            "service is configured to serve it" + tail
        ]
        is Status.FAIL
    )
    assert (
        m[
            "Offline image: port 5432/tcp is open to 10.0.0.0/8 in the firewall restored at boot (IPv4) but no "
            "enabled service is configured to serve it" + tail
        ]
        is Status.WARN
    )
    assert not any("port 22/tcp" in k for k in m)
    # ufw installed but not enabled (ENABLED=no): nothing is restored, the listener is simply reachable.
    b.add_file("/etc/ufw/ufw.conf", ufw_files(enabled=False)["/etc/ufw/ufw.conf"].encode())
    (f, _t) = run(Facts(b, Config(allowed_ports=("22/tcp",))))
    assert f.message == (
        "Offline image: no firewall is restored at boot (see Check-Security-08), and the 1 predicted "
        "non-loopback listener(s) are in ports.allowed" + tail
    )
