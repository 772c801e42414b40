"""Vantage (issue 6): a probe sent from an address the service trusts (the host itself, loopback) proves
nothing about the world. Real daemons that trust their own host (BIND's localhost ACL, ntpsec answering
mode 6 on loopback, sshd's Match Address) are probed from outside and from inside their namespace: outside
gives the verdict, inside gives `manual`, with what was seen and the vantage that would settle it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nectar_audit.model import Status
from nectar_audit.probes import Observation
from nectar_audit.probes.dns import probe_dns
from nectar_audit.probes.ntp import probe_ntp
from nectar_audit.probes.run import to_checks
from nectar_audit.probes.ssh import probe_ssh
from tests import REPO, lab

ROOT = REPO
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def settle(target: str) -> str:
    return (f"to settle it, run `nectar-audit probe {target}` from a machine outside the host (your workstation, "
            "or an instance in another project)")


def probe_inside(host: lab.NetnsHost, address: str, ports: str) -> tuple[int, dict[str, Any]]:
    """`nectar-audit probe` run inside the host's namespace: the vantage is the host itself."""
    r = host.run([sys.executable, "-m", "nectar_audit", "probe", address, "--ports", ports, "--format", "json",
                  "--timeout", "2"], text=True, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode in (0, 1), r.stderr
    (h,) = json.loads(r.stdout)["hosts"]
    assert h["error"] is None
    return r.returncode, {c["id"][-2:]: c for c in h["checks"]}


def test_to_checks_trusted_vantage_is_manual_with_the_settling_vantage() -> None:
    fail = Observation("05", "203.0.113.5", 53, "udp", "10.0.0.5", "fail", "DNS recurses for 10.0.0.5")
    passed = Observation("15", "203.0.113.5", 22, "tcp", "10.0.0.5", "pass", "refused")
    plain = Observation("13", "203.0.113.5", 80, "tcp", "10.0.0.5", "fail", "plain HTTP")
    checks = {c.id[-2:]: c for c in to_checks([fail, passed, plain], own_addresses=frozenset({"10.0.0.5"}))}
    assert checks["05"].status is Status.MANUAL and checks["15"].status is Status.MANUAL
    assert checks["05"].findings[0].message == (
        "DNS recurses for 10.0.0.5 (observed from 10.0.0.5); 10.0.0.5 is the target itself, and services trust "
        "their own host (BIND's localhost ACL, sshd Match Address, a firewall's loopback rule): this cannot prove "
        f"world-facing behaviour; {settle('203.0.113.5')}")
    # Whether a protocol is encrypted does not depend on who asks: 13 keeps its verdict, with the note.
    assert checks["13"].status is Status.FAIL
    assert any(e.source == "vantage" for e in checks["13"].findings[0].evidence)
    # From elsewhere, the verdicts stand.
    outside = {c.id[-2:]: c for c in to_checks([fail, passed])}
    assert outside["05"].status is Status.FAIL and outside["15"].status is Status.PASS


@pytest.mark.lab
def test_bind_localhost_acl_outside_refused_inside_manual(tmp_path: Path) -> None:
    lab.require_netns()
    named = lab.require_binary("named")
    conf = tmp_path / "named.conf"
    conf.write_text(
        f'options {{ directory "{tmp_path}"; pid-file "{tmp_path}/pid"; session-keyfile "{tmp_path}/sk";\n'
        "  listen-on { any; }; listen-on-v6 { none; }; recursion yes; allow-recursion { localhost; };\n"
        "  dnssec-validation no; };\ncontrols { };\n"
    )
    with lab.netns_host() as host:
        host.spawn([named, "-g", "-u", "root", "-c", str(conf)], log_name="named")
        lab.wait_for_tcp(host.addr, 53)
        outside = probe_dns(host.addr, timeout=3.0)
        rc, inside = probe_inside(host, host.addr, "53")
    a, g = host.addr, host.gateway
    assert [(o.proto, o.verdict, o.source) for o in outside] == [("udp", "pass", g), ("tcp", "pass", g)]
    assert rc == 0  # nothing proven failing from the host itself
    c05 = inside["05"]
    assert c05["status"] == "manual"
    for f, proto in zip(c05["findings"], ("udp", "tcp")):
        assert f["status"] == "manual"
        assert f["message"].startswith(f"DNS on {a}:53/{proto} recurses for {a} (recursive query for "
                                       "nectar-audit-probe.example. got SERVFAIL with ra set): open resolver "
                                       f"(observed from {a}); {a} is the target itself, and services trust")
        assert f["message"].endswith(settle(a))
        assert {"source": "vantage", "detail": f["message"].split("; ", 1)[1]} in f["evidence"]


@pytest.mark.lab
def test_ntpsec_answers_mode6_to_its_own_host_only(tmp_path: Path) -> None:
    lab.require_netns()
    ntpd = lab.require_binary("ntpd")
    conf = tmp_path / "ntp.conf"
    # Debian's stock restrictions (no server/pool lines: the clock is shared): queries from the host only.
    conf.write_text(f"driftfile {tmp_path}/drift\nrestrict default kod nomodify nopeer noquery limited\n"
                    "restrict 127.0.0.1\nrestrict ::1\n")
    with lab.netns_host() as host:
        host.spawn([ntpd, "-n", "-c", str(conf), "-p", str(tmp_path / "pid")], log_name="ntpd")
        lab.wait_until(lambda: ":123 " in host.run(["ss", "-Hlun"], text=True).stdout, 10, "ntpd on udp 123")
        outside = probe_ntp(host.addr, timeout=1.0)
        rc, inside = probe_inside(host, "127.0.0.1", "123")
    assert outside[1].message == f"NTP on {host.addr}:123/udp refuses mode-6 readvar from {host.gateway}"
    assert outside[1].verdict == "pass"
    c06 = inside["06"]
    assert c06["status"] == "manual" and rc == 0
    messages = [f["message"] for f in c06["findings"]]
    assert messages[1].startswith("NTP on 127.0.0.1:123/udp answers mode-6 readvar to 127.0.0.1 (")
    assert "bytes: version and system variables leak) (observed from 127.0.0.1); 127.0.0.1 is the target itself" \
        in messages[1]
    assert all(f["status"] == "manual" and m.endswith(settle("127.0.0.1")) for f, m in zip(c06["findings"], messages))


@pytest.mark.lab
def test_sshd_match_address_password_for_loopback_only(tmp_path: Path) -> None:
    lab.require_netns()
    sshd = lab.require_binary("sshd")
    key = tmp_path / "hostkey"
    subprocess.run([lab.require_binary("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                   timeout=30)
    conf = tmp_path / "sshd_config"
    conf.write_text(
        f"HostKey {key}\nStrictModes no\nUsePAM no\nPidFile {tmp_path}/pid\nKbdInteractiveAuthentication no\n"
        "PasswordAuthentication no\nMatch Address 127.0.0.1\n  PasswordAuthentication yes\n"
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    with lab.netns_host() as host:
        host.spawn([sshd, "-D", "-f", str(conf), "-E", str(tmp_path / "log")], log_name="sshd")
        lab.wait_for_tcp(host.addr, 22)
        outside = probe_ssh(host.addr, timeout=5.0)
        rc, inside = probe_inside(host, "127.0.0.1", "22")
    assert [o.verdict for o in outside] == ["pass", "pass", "pass"]  # only publickey for the world
    c01 = inside["01"]
    assert c01["status"] == "manual" and rc == 0
    weak = [f for f in c01["findings"] if "offers password authentication to 127.0.0.1" in f["message"]]
    assert len(weak) == 2 and all(f["status"] == "manual" and f["message"].endswith(settle("127.0.0.1"))
                                  for f in weak)


@pytest.mark.lab
def test_plaintext_is_plaintext_from_any_vantage(tmp_path: Path) -> None:
    lab.require_netns()
    with lab.netns_host() as host:
        host.spawn([sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "8080"], log_name="http")
        lab.wait_for_tcp(host.addr, 8080)
        rc, inside = probe_inside(host, "127.0.0.1", "8080")
    assert rc == 1
    assert inside["13"]["status"] == "fail"  # an unencrypted protocol is unencrypted for everyone
    assert inside["15"]["status"] == "manual"
    assert any(e["source"] == "vantage" for e in inside["13"]["findings"][0]["evidence"])
