"""Lab: checks 13 and 15 on an offline image decide from configuration, and the prediction holds when it runs.

The image is the lab's cached Debian root (an overlay per test). Offline, ``scan root:PATH`` predicts which
ports the boot firewall opens and which the enabled services will serve. The ground truth is the same root
booted as a chroot host: every enabled unit that is not known to be quiet is started with its daemon's
own command line, the boot firewall is loaded the way nftables.service does (``nft -f /etc/nftables.conf``
inside the host's namespace), then the root namespace connects to each port the firewall opens and ``ss``
inside the host lists what really listens. The offline verdicts must name exactly the ports that do not
answer, and the predicted listeners must be the real ones.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from nectar_audit.model import Status
from tests import lab
from tests.lab.patching import audit_chroot, scan_root

pytestmark = pytest.mark.lab

NFTABLES_CONF = """#!/usr/sbin/nft -f
flush ruleset
table inet filter {
    chain input {
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
        tcp dport { 22, 25, 8080 } accept
    }
}
"""
OPENED = (22, 25, 8080)
# How each enabled unit of the lab root starts (its daemon's command line, in the foreground) and what
# it is expected to do; units known to listen on nothing are left out (cron, fail2ban, getty, …).
DAEMONS = {
    "ssh.service": ["/usr/sbin/sshd", "-D", "-e"],
    "exim4.service": ["/usr/sbin/exim4", "-bd", "-q30m"],
    "chrony.service": ["/usr/sbin/chronyd", "-x", "-d"],
    "rsyslog.service": ["/usr/sbin/rsyslogd", "-n", "-iNONE"],
}
QUIET = {
    "cron.service",
    "e2scrub_reap.service",
    "fail2ban.service",
    "getty@tty1.service",
    "sudo.service",
    "systemd-pstore.service",
    "ufw.service",
    "unattended-upgrades.service",
    "nftables.service",
}


def _enable_nftables(root: Path) -> None:
    (root / "etc/nftables.conf").write_text(NFTABLES_CONF)
    link = root / "etc/systemd/system/multi-user.target.wants/nftables.service"
    link.symlink_to("/lib/systemd/system/nftables.service")


def _enabled_units(root: Path) -> set[str]:
    units = {p.name for p in (root / "etc/systemd/system").glob("*.wants/*.service")}
    units |= {re.sub(r"^S\d*", "", p.name) + ".service" for p in (root / "etc/rc2.d").glob("S*")}
    return units


def _answers(addr: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect((addr, port))
            return True
        except OSError:
            return False


@contextmanager
def _booted(root: Path, tmp_path: Path, name: str) -> Iterator[lab.ChrootHost]:
    """The image running: its enabled daemons started, its boot firewall loaded."""
    enabled = _enabled_units(root)
    unknown = enabled - set(DAEMONS) - QUIET
    assert not unknown, f"enabled units this test does not know how to start: {unknown}"
    with lab.chroot_host(root, hostname=name, workdir=tmp_path) as host:
        for unit, argv in DAEMONS.items():
            if unit in enabled:
                host.start(argv)
        lab.wait_until(lambda: "sshd" in host.exec(["ss", "-tlnpH"], text=True).stdout, 15, "sshd listening")
        if "nftables.service" in enabled:
            res = host.exec(["nft", "-f", "/etc/nftables.conf"], text=True)
            assert res.returncode == 0, res.stderr
        yield host


def _listening(host: lab.ChrootHost) -> set[tuple[str, int]]:
    """(proto, port) of every socket listening beyond loopback inside the host, as ss shows them."""
    out = host.exec(["ss", "-tulnH"], text=True).stdout
    found = set()
    for line in out.splitlines():
        words = line.split()
        proto, local = words[0], words[4]
        addr, _, port = local.rpartition(":")
        addr = addr.strip("[]").split("%")[0]
        if addr.startswith("127.") or addr == "::1":
            continue
        found.add((proto, int(port)))
    return found


def _predicted(check: dict[str, Any]) -> set[tuple[str, int]]:
    """(proto, port) of the predicted non-loopback listeners in check 15's table."""
    table = check["findings"][-1]
    assert table["message"].startswith("Predicted listeners × firewall restored at boot"), table
    out = set()
    for ev in table["evidence"]:
        m = re.match(r"\S+:(\d+)/(tcp|udp) by ", ev["detail"])
        if m:
            out.add((m.group(2), int(m.group(1))))
    return out


def _failed_ports(check: dict[str, Any]) -> set[int]:
    return {
        int(m.group(1))
        for f in check["findings"]
        if f["status"] == "fail"
        for m in [re.match(r"Offline image: port (\d+)/tcp is open in the firewall restored at boot", f["message"])]
        if m
    }


def test_boot_firewall_ports_without_a_configured_service_fail_as_they_prove_dead(
    lab_root: Path, tmp_path: Path
) -> None:
    lab.require_binary("nft")
    _enable_nftables(lab_root)
    offline = scan_root(lab_root, "15")["Check-Security-15"]
    assert offline["status"] == "fail", offline
    assert _failed_ports(offline) == {25, 8080}, offline["findings"]
    msg25 = next(f["message"] for f in offline["findings"] if "port 25/tcp" in f["message"])
    assert "only a loopback listener: 127.0.0.1:25/tcp by exim4 (exim4.service)" in msg25
    assert "(predicted from configuration: enabled units" in msg25
    assert "/etc/exim4/update-exim4.conf.conf" in msg25

    with _booted(lab_root, tmp_path, "img15") as host:
        answering = {p for p in OPENED if _answers(host.addr, p)}
        listening = _listening(host)
    # Ground truth: the ports the boot firewall opens that nothing answers on are exactly those failed.
    assert set(OPENED) - answering == _failed_ports(offline)
    # And the predicted listeners are the real ones.
    assert _predicted(offline) == listening


def test_image_whose_only_network_service_is_sshd_passes_13(lab_root: Path, tmp_path: Path) -> None:
    offline = scan_root(lab_root, "13")["Check-Security-13"]
    assert offline["status"] == "pass", offline
    assert [f["message"].split(" (predicted from configuration")[0] for f in offline["findings"]] == [
        "Offline image: SSH (sshd) configured to listen beyond loopback on port 22: encrypted (SSH is encrypted)"
    ]
    with _booted(lab_root, tmp_path, "img13") as host:
        tcp = {p for proto, p in _listening(host) if proto == "tcp"}
        live = audit_chroot(host, "Check-Security-13").checks[0]
    assert tcp == {22}
    assert live.status is Status.PASS, live.findings


def test_exim_opened_to_the_network_is_predicted_and_judged_as_when_it_runs(lab_root: Path, tmp_path: Path) -> None:
    lab.require_binary("chroot")
    _enable_nftables(lab_root)
    conf = lab_root / "etc/exim4/update-exim4.conf.conf"
    conf.write_text(conf.read_text().replace("dc_local_interfaces='127.0.0.1 ; ::1'", "dc_local_interfaces=''"))
    # What the package's maintainer scripts do after a debconf change: regenerate exim's configuration.
    lab.run(["chroot", str(lab_root), "update-exim4.conf"])
    offline = scan_root(lab_root, "13,15")
    c13, c15 = offline["Check-Security-13"], offline["Check-Security-15"]
    assert _failed_ports(c15) == {8080}  # 25 is served now
    smtp = [f for f in c13["findings"] if f["message"].startswith("Offline image: SMTP (exim4)")]
    assert len(smtp) == 1, c13["findings"]
    with _booted(lab_root, tmp_path, "img13x") as host:
        answering = {p for p in OPENED if _answers(host.addr, p)}
        listening = _listening(host)
        live = audit_chroot(host, "Check-Security-13").checks[0]
    assert set(OPENED) - answering == _failed_ports(c15)
    assert _predicted(c15) == listening
    # The running exim is judged exactly as the image's configuration predicted.
    live_smtp = [f for f in live.findings if f.message.startswith("SMTP (")]
    assert [f.status.value for f in live_smtp] == [smtp[0]["status"]]
    assert live_smtp[0].message.split(": ", 1)[1] == smtp[0]["message"].split(": ", 2)[2].split(" (predicted")[0]
