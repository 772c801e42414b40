"""Lab: check 14 against a real rsyslog in a chroot host forwarding to a real rsyslog receiver.

The receiver is the machine's rsyslogd with a private configuration, in the root network namespace,
listening only on the chroot host's gateway address (the one address the host can reach: lab hosts
have no default route). UDP forwarding must fail, TLS with x509/name authentication must pass, and in
both cases the test proves the message really arrived.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nectar_audit.model import Status
from tests import lab
from tests.lab.patching import audit_chroot

pytestmark = pytest.mark.lab

GTLS = "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so"
UDP_PORT = 5514
TLS_PORT = 6514
PEER = "logs.lab.test"


def _version(pkg: str, admindir: str = "/var/lib/dpkg") -> str:
    out = lab.run(
        ["dpkg-query", f"--admindir={admindir}", "-W", "-f", "${Version}", pkg],
        timeout=30,
        check=False,
        text=True,
    )
    return str(out.stdout).strip() if out.returncode == 0 else ""


def _make_certs(d: Path) -> None:
    openssl = lab.require_binary("openssl")
    lab.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(d / "ca.key"),
            "-out",
            str(d / "ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=nectar-audit lab CA",
        ],
        timeout=60,
    )
    lab.run(
        [
            openssl,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(d / "server.key"),
            "-out",
            str(d / "server.csr"),
            "-subj",
            f"/CN={PEER}",
        ],
        timeout=60,
    )
    (d / "ext.cnf").write_text(f"subjectAltName=DNS:{PEER}\n")
    lab.run(
        [
            openssl,
            "x509",
            "-req",
            "-in",
            str(d / "server.csr"),
            "-CA",
            str(d / "ca.pem"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-out",
            str(d / "server.pem"),
            "-days",
            "2",
            "-extfile",
            str(d / "ext.cnf"),
        ],
        timeout=60,
    )


@dataclass
class Receiver:
    addr: str
    log: Path
    proc: subprocess.Popen[bytes]

    def wait_for(self, token: str) -> None:
        lab.wait_until(
            lambda: self.log.exists() and token in self.log.read_text(errors="replace"),
            20,
            f"message {token} at the receiver",
        )


@pytest.fixture
def sender_root(lab_root: Path) -> Path:
    """The lab root with rsyslog's TLS driver (the machine's rsyslog-gnutls of the same version)."""
    rsyslogd = lab.require_binary("rsyslogd")
    lab.require(
        Path(GTLS).exists(), f"rsyslog-gnutls on the machine ({GTLS}; apt-get install rsyslog-gnutls)"
    )
    root_version = _version("rsyslog", str(lab_root / "var/lib/dpkg"))
    lab.require(
        bool(root_version) and root_version == _version("rsyslog-gnutls"),
        f"the machine's rsyslog-gnutls ({_version('rsyslog-gnutls')}) matches the lab root's rsyslog "
        f"({root_version})",
    )
    target = lab_root / GTLS.lstrip("/")
    if not target.exists():  # not in the cached root's package list: add it to this overlay only
        shutil.copy2(GTLS, target)
    assert rsyslogd
    return lab_root


@pytest.fixture
def receiver_factory(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(addr: str) -> Receiver:
        d = tmp_path / "receiver"
        d.mkdir()
        _make_certs(d)
        conf = d / "rsyslog.conf"
        conf.write_text(
            f'global(workDirectory="{d}" DefaultNetstreamDriverCAFile="{d}/ca.pem"\n'
            f'       DefaultNetstreamDriverCertFile="{d}/server.pem"\n'
            f'       DefaultNetstreamDriverKeyFile="{d}/server.key")\n'
            'module(load="imudp")\n'
            f'input(type="imudp" address="{addr}" port="{UDP_PORT}")\n'
            'module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1"\n'
            '       StreamDriver.AuthMode="anon")\n'
            f'input(type="imtcp" address="{addr}" port="{TLS_PORT}")\n'
            f'*.* action(type="omfile" file="{d}/received.log")\n'
        )
        with (d / "rsyslogd.out").open("wb") as out:
            proc = subprocess.Popen(
                ["rsyslogd", "-n", "-f", str(conf), "-i", str(d / "rsyslogd.pid")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(proc)
        try:
            lab.wait_for_tcp(addr, TLS_PORT, timeout=15)
        except Exception as exc:
            raise AssertionError(
                "receiver did not start:\n" + (d / "rsyslogd.out").read_text(errors="replace")
            ) from exc
        return Receiver(addr, d / "received.log", proc)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _run_sender(host: lab.ChrootHost) -> None:
    host.start(["rsyslogd", "-n", "-iNONE"])
    lab.wait_until(lambda: host.exec(["test", "-S", "/dev/log"]).returncode == 0, 15, "rsyslog's /dev/log")


def _send(host: lab.ChrootHost) -> str:
    token = f"nectar-audit-{uuid.uuid4().hex}"
    host.exec(["logger", "-t", "natest", token], check=True)
    return token


def test_udp_forwarding_fails_and_arrives(sender_root: Path, tmp_path: Path, receiver_factory) -> None:  # type: ignore[no-untyped-def]
    with lab.chroot_host(sender_root, hostname="logudp", workdir=tmp_path) as host:
        rcv = receiver_factory(host.gateway)
        (sender_root / "etc/rsyslog.d/90-forward.conf").write_text(f"*.* @{host.gateway}:{UDP_PORT}\n")
        _run_sender(host)
        rcv.wait_for(_send(host))
        result = audit_chroot(host, "Check-Security-14")
    check = result.checks[0]
    assert check.status is Status.FAIL, [(f.status, f.message) for f in check.findings]
    assert check.summary == (
        f"rsyslog sends logs to {host.gateway}:{UDP_PORT} over plain UDP: anyone on the "
        "path can read (and forge) them"
    )
    assert check.findings[0].evidence[0].source == "/etc/rsyslog.d/90-forward.conf:1"


def test_tls_forwarding_with_authentication_passes_and_arrives(
    sender_root: Path, tmp_path: Path, receiver_factory
) -> None:  # type: ignore[no-untyped-def]
    with lab.chroot_host(sender_root, hostname="logtls", workdir=tmp_path) as host:
        rcv = receiver_factory(host.gateway)
        ssl = sender_root / "etc/ssl/lab"
        ssl.mkdir(parents=True)
        shutil.copy2(rcv.log.parent / "ca.pem", ssl / "ca.pem")
        (sender_root / "etc/rsyslog.d/90-forward.conf").write_text(
            'global(DefaultNetstreamDriverCAFile="/etc/ssl/lab/ca.pem")\n'
            f'*.* action(type="omfwd" target="{host.gateway}" port="{TLS_PORT}" protocol="tcp"\n'
            '           StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"\n'
            f'           StreamDriverPermittedPeers="{PEER}")\n'
        )
        _run_sender(host)
        rcv.wait_for(_send(host))
        result = audit_chroot(host, "Check-Security-14")
    check = result.checks[0]
    assert check.status is Status.PASS, [(f.status, f.message) for f in check.findings]
    assert check.summary == (
        f"rsyslog sends logs to {host.gateway}:{TLS_PORT} over TLS and verifies the receiver (x509/name)"
    )


def test_stopped_rsyslog_is_not_counted(lab_root: Path, tmp_path: Path) -> None:
    (lab_root / "etc/rsyslog.d/90-forward.conf").write_text("*.* @@10.200.0.1:514\n")
    with lab.chroot_host(lab_root, hostname="lognone", workdir=tmp_path) as host:
        result = audit_chroot(host, "Check-Security-14")
    found = [(f.status, f.message) for f in result.checks[0].findings]
    assert (Status.WARN, "logs are configured to go to 10.200.0.1:514 but rsyslog does not run") in found
    assert result.checks[0].status is Status.FAIL  # no syslog daemon, no journal: nothing keeps logs
