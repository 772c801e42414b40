"""What an image's enabled services are configured to listen on (facts/network/planned.py), service by service."""

from __future__ import annotations

import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.config import Config
from nectar_audit.evidence.bundle import Bundle, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.network import ServicePlan, service_plan


def image(files: dict[str, str], *units: str, rc: tuple[str, ...] = ()) -> Bundle:
    b = Bundle("root:/img", "rootfs", False)
    b.add_file("/etc/os-release", b'ID=debian\nVERSION_ID="12"\n')
    for path, text in files.items():
        b.add_file(path, text.encode())
    for unit in units:
        target = "sockets.target.wants" if unit.endswith(".socket") else "multi-user.target.wants"
        b.stats[f"/etc/systemd/system/{target}/{unit}"] = StatRecord(stat.S_IFLNK | 0o777, 0, 0, 40, 0)
    for name in rc:
        b.stats[f"/etc/rc2.d/S01{name}"] = StatRecord(stat.S_IFLNK | 0o777, 0, 0, 20, 0)
    return b


def plan(b: Bundle) -> ServicePlan:
    return Facts(b, Config()).get(service_plan)


def listening(b: Bundle) -> set[str]:
    return {f"{li.address} {li.port}/{li.proto} {li.program} {li.unit}" for li in plan(b).listeners}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("", {"* 22/tcp sshd ssh.service"}),
        ("Port 2222\nPort 22\n", {"* 2222/tcp sshd ssh.service", "* 22/tcp sshd ssh.service"}),
        ("AddressFamily inet\n", {"0.0.0.0 22/tcp sshd ssh.service"}),
        (
            "Port 2200\nListenAddress 127.0.0.1\nListenAddress [2001:db8::5]:443\nListenAddress 192.0.2.1\n",
            {
                "127.0.0.1 2200/tcp sshd ssh.service",
                "2001:db8::5 443/tcp sshd ssh.service",
                "192.0.2.1 2200/tcp sshd ssh.service",
            },
        ),
    ],
)
def test_sshd_port_and_listenaddress(config: str, expected: set[str]) -> None:
    assert listening(image({"/etc/ssh/sshd_config": config}, "ssh.service")) == expected


def test_sshd_not_enabled_listens_on_nothing() -> None:
    p = plan(image({"/etc/ssh/sshd_config": "Port 22\n"}, "cron.service"))
    assert p.listeners == () and p.undecided == () and p.quiet == ("cron.service",)


def test_sysv_links_count_as_enabled() -> None:
    assert listening(image({"/etc/ssh/sshd_config": ""}, rc=("ssh",))) == {"* 22/tcp sshd ssh.service"}


SOCKET_UNIT = """[Unit]
Description=Cockpit Web Service Socket

[Socket]
ListenStream=9090
ListenStream=/run/cockpit/sock
ListenDatagram=127.0.0.1:9999
FreeBind=yes

[Install]
WantedBy=sockets.target
"""


def test_socket_units_and_their_dropins() -> None:
    files = {"/lib/systemd/system/cockpit.socket": SOCKET_UNIT}
    assert listening(image(files, "cockpit.socket")) == {
        "* 9090/tcp cockpit cockpit.socket",
        "127.0.0.1 9999/udp cockpit cockpit.socket",
    }
    # A drop-in resets ListenStream (empty assignment) and moves the port, as systemd does.
    files["/etc/systemd/system/cockpit.socket.d/listen.conf"] = "[Socket]\nListenStream=\nListenStream=[::1]:9091\n"
    assert listening(image(files, "cockpit.socket")) == {
        "127.0.0.1 9999/udp cockpit cockpit.socket",
        "::1 9091/tcp cockpit cockpit.socket",
    }
    assert all(li.loopback for li in plan(image(files, "cockpit.socket")).listeners)


def test_rsyslog_network_inputs() -> None:
    conf = (
        'module(load="imudp")\n# input(type="imudp" port="5514")\ninput(type="imudp" port="514")\n'
        'module(load="imtcp")\ninput(type="imtcp" port="10514" address="127.0.0.1")\n$InputTCPServerRun 6514\n'
    )
    assert listening(image({"/etc/rsyslog.conf": conf}, "rsyslog.service")) == {
        "* 514/udp rsyslogd rsyslog.service",
        "127.0.0.1 10514/tcp rsyslogd rsyslog.service",
        "* 6514/tcp rsyslogd rsyslog.service",
    }
    assert listening(image({"/etc/rsyslog.conf": "*.* /var/log/syslog\n"}, "rsyslog.service")) == set()


def test_redis_vsftpd_and_inetd() -> None:
    files = {
        "/etc/redis/redis.conf": "bind 127.0.0.1 -::1\nport 6379\n",
        "/etc/vsftpd.conf": "listen=NO\nlisten_ipv6=YES\n",
        "/etc/inetd.conf": "telnet stream tcp nowait root /usr/sbin/tcpd /usr/sbin/in.telnetd\n",
    }
    assert listening(image(files, "redis-server.service", "vsftpd.service", "inetd.service")) == {
        "127.0.0.1 6379/tcp redis-server redis-server.service",
        "::1 6379/tcp redis-server redis-server.service",
        "* 21/tcp vsftpd vsftpd.service",
        "* 23/tcp inetd inetd.service",
    }


def test_unknown_units_are_undecided_and_resolved_llmnr() -> None:
    b = image({}, "myapp.service", "systemd-resolved.service", "fstrim.timer")
    b.stats["/lib/systemd/systemd-resolved"] = StatRecord(stat.S_IFREG | 0o755, 0, 0, 100, 0)
    p = plan(b)
    undecided = {u.unit: u for u in p.undecided}
    assert set(undecided) == {"myapp.service", "systemd-resolved.service"}
    assert undecided["myapp.service"].ports is None
    assert p.could_serve("tcp", 8080) == [undecided["myapp.service"]]
    assert undecided["systemd-resolved.service"].ports == frozenset({("tcp", 5355), ("udp", 5355)})
    # The packaged file shows the compiled-in defaults as comments: Debian's says yes.
    b.add_file("/etc/systemd/resolved.conf", b"[Resolve]\n#DNS=\n#LLMNR=yes\n#MulticastDNS=no\n")
    assert {li.port for li in plan(b).listeners if not li.loopback} == {5355}
    assert plan(b).listeners[-1].evidence[0].detail == "#LLMNR=yes (the compiled-in default)"
    b.add_file("/etc/systemd/resolved.conf", b"[Resolve]\n#LLMNR=yes\nLLMNR=no\n")
    p = plan(b)
    assert [u.unit for u in p.undecided] == ["myapp.service"]
    assert not any(li.port == 5355 for li in p.listeners)
    assert all(li.loopback for li in p.listeners if li.unit == "systemd-resolved.service")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400), st.text(max_size=200))
def test_garbage_configuration_never_crashes(text: str, other: str) -> None:
    files = {
        "/etc/ssh/sshd_config": text,
        "/lib/systemd/system/x.socket": "[Socket]\n" + text,
        "/etc/rsyslog.conf": text + other,
        "/etc/redis/redis.conf": text,
        "/etc/vsftpd.conf": other,
        "/etc/inetd.conf": text,
        "/etc/nginx/nginx.conf": other,
        "/etc/systemd/resolved.conf": text,
    }
    units = ("ssh.service", "x.socket", "rsyslog.service", "redis-server.service", "vsftpd.service",
             "inetd.service", "nginx.service", "systemd-resolved.service")  # fmt: skip
    p = plan(image(files, *units))
    for li in p.listeners:
        assert 0 < li.port < 65536
        assert li.proto in ("tcp", "udp")
        li.listener()
