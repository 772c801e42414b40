"""Lab: real NTPsec in a network namespace and real chrony in a chroot host, audited live (Check-Security-06).

No server/pool lines anywhere (the clock is shared): the Debian defaults are used with their pool lines
commented out, chronyd runs with -x. Each verdict is cross-checked with a real NTP client request (mode 3)
from the root namespace: a server that serves time answers, a client-only one does not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nectar_audit import catalog, engine
from nectar_audit.config import Config
from nectar_audit.model import CheckResult, Status
from nectar_audit.targets.script_runner import ScriptTarget
from tests import lab

pytestmark = pytest.mark.lab


def audit(name: str, argv: list[str]) -> CheckResult:
    entries = [e for e in catalog.entries() if e.id == "Check-Security-06"]
    result, _ = engine.audit(ScriptTarget(name, argv), entries, Config())
    assert result.error is None
    [check] = result.checks
    return check


def ntp_answers(addr: str, timeout: float = 2.0) -> bool:
    """One NTPv4 client request (mode 3) to addr:123 from the root namespace; True if anything answers."""
    assert addr.startswith("10.200."), "lab traffic only"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(b"\x23" + bytes(47), (addr, 123))
        try:
            data, _ = s.recvfrom(512)
        except OSError:  # timeout, or ICMP port unreachable
            return False
    return len(data) >= 48


def no_pool(text: str) -> str:
    return (
        "\n".join(
            "#" + ln if ln.lstrip().startswith(("pool ", "server ", "peer ")) else ln
            for ln in text.splitlines()
        )
        + "\n"
    )


@contextlib.contextmanager
def ntpsec_host(tmp_path: Path, edit: str = "") -> Iterator[lab.NetnsHost]:
    lab.require_netns()
    lab.require_binary("ntpd")
    etc = tmp_path / "ntpsec"
    shutil.copytree("/etc/ntpsec", etc)
    conf = no_pool((etc / "ntp.conf").read_text())
    if edit:
        conf = conf.replace("restrict default kod nomodify nopeer noquery limited", edit)
    (etc / "ntp.conf").write_text(conf)
    with lab.netns_host(etc={"ntpsec": etc}) as host:
        proc = host.spawn(["ntpd", "-n", "-c", "/etc/ntpsec/ntp.conf", "-p", str(tmp_path / "ntpd.pid")])

        def up() -> bool:
            if proc.poll() is not None:
                raise lab.LabError(f"ntpd exited: {host.log(proc)[-1000:]}")
            return f"{host.addr}:123 " in str(host.run(["ss", "-ulnH"], text=True).stdout)

        lab.wait_until(up, 20, "ntpd")
        yield host


def test_ntpsec_debian_default_serves_everyone(tmp_path: Path) -> None:
    with ntpsec_host(tmp_path) as host:
        assert ntp_answers(host.addr)
        check = audit(host.name, ["ip", "netns", "exec", host.name, "sh", "-s"])
        assert check.status is Status.FAIL
        assert [(f.status, f.message) for f in check.findings] == [
            (
                Status.FAIL,
                f"ntpd (NTPsec) serves time to any host (restrict default kod nomodify nopeer noquery "
                f"limited), listening on 0.0.0.0:123/udp, {host.addr}:123/udp, [::]:123/udp: access to the "
                "NTP server is not limited",
            ),
            (Status.PASS, "ntpd (NTPsec): monlist is not available (NTPsec has no mode 7 at all)"),
        ]
        assert "noserve" in (check.findings[0].remediation or "")


def test_ntpsec_noserve_serves_no_one(tmp_path: Path) -> None:
    with ntpsec_host(tmp_path, "restrict default kod nomodify nopeer noquery limited noserve") as host:
        assert not ntp_answers(host.addr)
        check = audit(host.name, ["ip", "netns", "exec", host.name, "sh", "-s"])
        assert check.status is Status.PASS
        assert check.findings[0].message == "ntpd (NTPsec) serves time to this host only (loopback)"


@contextlib.contextmanager
def chrony_host(tmp_path: Path, extra: str) -> Iterator[lab.ChrootHost]:
    lab.require_netns()
    lab.require_overlay()
    with lab.overlay_root(tmp_path) as root:
        conf = root / "etc/chrony/chrony.conf"
        conf.write_text(no_pool(conf.read_text()) + extra)
        with lab.chroot_host(root) as host:
            proc = host.start(["chronyd", "-x", "-d"])

            def up() -> bool:
                if proc.poll() is not None:
                    raise lab.LabError(f"chronyd exited: {host.log(proc)[-1000:]}")
                return ":323 " in str(host.exec(["ss", "-ulnH"], text=True).stdout)

            lab.wait_until(up, 20, "chronyd")
            yield host


def test_chrony_debian_default_is_client_only(debian_root: Path, tmp_path: Path) -> None:
    with chrony_host(tmp_path, "") as host:
        assert not ntp_answers(host.addr)
        check = audit(host.name, host.sh_argv())
        assert check.status is Status.PASS
        assert [(f.status, f.message) for f in check.findings] == [
            (Status.PASS, "chronyd is a client only: no allow directive: chronyd does not serve time")
        ]


def test_chrony_allow_serves_everyone(debian_root: Path, tmp_path: Path) -> None:
    with chrony_host(tmp_path, "allow\n") as host:
        lab.wait_until(
            lambda: (
                f"{host.addr}:123" in str(host.exec(["ss", "-ulnH"], text=True).stdout)
                or "0.0.0.0:123" in str(host.exec(["ss", "-ulnH"], text=True).stdout)
            ),
            10,
            "NTP port",
        )
        deadline = time.monotonic() + 10
        while not ntp_answers(host.addr) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ntp_answers(host.addr)
        check = audit(host.name, host.sh_argv())
        assert check.status is Status.FAIL
        assert [(f.status, f.message) for f in check.findings] == [
            (
                Status.FAIL,
                "chronyd serves time to any host (allow), listening on 0.0.0.0:123/udp, [::]:123/udp: "
                "access to the NTP server is not limited",
            )
        ]


def test_chrony_allow_trusted_subnet_passes(debian_root: Path, tmp_path: Path) -> None:
    with chrony_host(tmp_path, "allow 10.200.0.0/16\n") as host:
        entries = [e for e in catalog.entries() if e.id == "Check-Security-06"]
        cfg = Config(trusted_networks=(ipaddress.ip_network("10.200.0.0/16"),))
        result, _ = engine.audit(ScriptTarget(host.name, host.sh_argv()), entries, cfg)
        [check] = result.checks
        assert check.status is Status.PASS
        assert check.findings[0].message == "chronyd serves time to trusted networks only (10.200.0.0/16)"
        untrusted = audit(host.name, host.sh_argv())
        assert untrusted.status is Status.FAIL
        assert untrusted.findings[0].message.startswith(
            "chronyd serves time to 10.200.0.0/16 (not a trusted network), listening on 0.0.0.0:123/udp"
        )


def test_chrony_allow_behind_firewall_dropping_ntp_passes(debian_root: Path, tmp_path: Path) -> None:
    # chrony serves everyone per its config, the host firewall drops UDP/123: the check follows the firewall.
    lab.require_binary("nft")
    with chrony_host(tmp_path, "allow\n") as host:
        lab.wait_until(lambda: ":123 " in str(host.exec(["ss", "-ulnH"], text=True).stdout), 10, "NTP port")
        deadline = time.monotonic() + 10
        while not ntp_answers(host.addr) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ntp_answers(host.addr)  # open before the firewall is loaded
        rules = tmp_path / "rules.nft"
        rules.write_text(
            "table inet lab {\n  chain input {\n    type filter hook input priority 0; policy accept;\n"
            "    udp dport 123 drop\n  }\n}\n"
        )
        res = lab.run(["ip", "netns", "exec", host.name, "nft", "-f", str(rules)], check=False, text=True,
                      timeout=30)
        assert res.returncode == 0, res.stderr
        assert not ntp_answers(host.addr)
        check = audit(host.name, host.sh_argv())
        assert check.status is Status.PASS
        assert [(f.status, f.message) for f in check.findings] == [
            (
                Status.PASS,
                "chronyd would serve time to any host (allow), but the host firewall lets no other host reach "
                "UDP port 123",
            )
        ]
        fw = [e.detail for e in check.findings[0].evidence if e.source == "host firewall"]
        assert len(fw) == 1 and fw[0].startswith("IPv4 udp/123: ") and "IPv6 udp/123: " in fw[0]


def test_chrony_allow_bindaddress_ipv4_loopback_still_listens_on_ipv6(debian_root: Path, tmp_path: Path) -> None:
    # One bindaddress per address family: 'bindaddress 127.0.0.1' leaves the IPv6 NTP socket on [::].
    with chrony_host(tmp_path, "allow\nbindaddress 127.0.0.1\n") as host:
        lab.wait_until(lambda: ":123 " in str(host.exec(["ss", "-ulnH"], text=True).stdout), 10, "NTP port")
        ss = str(host.exec(["ss", "-ulnH"], text=True).stdout)
        assert "127.0.0.1:123 " in ss and "[::]:123 " in ss and "0.0.0.0:123 " not in ss
        assert not ntp_answers(host.addr)  # IPv4 from outside: nothing listens
        check = audit(host.name, host.sh_argv())
        assert check.status is Status.FAIL
        assert [(f.status, f.message) for f in check.findings] == [
            (
                Status.FAIL,
                "chronyd serves time to any host (allow), listening on [::]:123/udp: access to the NTP server "
                "is not limited",
            )
        ]
