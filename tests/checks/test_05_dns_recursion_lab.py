"""Lab: real BIND, unbound and dnsmasq in network namespaces, audited live from inside (Check-Security-05).

Each daemon runs in its own namespace with that host's /etc/bind or /etc/unbound (``netns_host(etc=…)``);
the audit runs the gatherer there with ``ip netns exec NS sh -s``. Every verdict is cross-checked with a
real query from the root namespace (the gateway, 10.200.N.1, which is on the host's subnet): an open
resolver answers with the ``ra`` flag, a closed one refuses or does not listen.

The machine has bind9, unbound and dnsmasq all installed (NOTES.md), so every audit also reports the
stopped ones from their Debian default configuration; the expected statuses include them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nectar_audit import catalog, engine
from nectar_audit.config import Config
from nectar_audit.model import CheckResult, Status
from nectar_audit.targets.script_runner import ScriptTarget
from tests import lab

pytestmark = pytest.mark.lab

LAB_TRUSTED = Config(trusted_networks=(ipaddress.ip_network("10.200.0.0/16"),))


@pytest.fixture(autouse=True)
def _prereqs() -> None:
    lab.require_netns()
    for binary in ("named", "unbound", "dnsmasq", "dig"):
        lab.require_binary(binary)


def audit(host: lab.NetnsHost, config: Config | None = None) -> CheckResult:
    entries = [e for e in catalog.entries() if e.id == "Check-Security-05"]
    result, _ = engine.audit(
        ScriptTarget(host.name, ["ip", "netns", "exec", host.name, "sh", "-s"]), entries, config or Config()
    )
    assert result.error is None
    [check] = result.checks
    return check


def finding(check: CheckResult, prefix: str) -> tuple[Status, str]:
    found = [(f.status, f.message) for f in check.findings if f.message.startswith(prefix)]
    assert len(found) == 1, [f.message for f in check.findings]
    return found[0]


def dig(addr: str, name: str = "example.com", tcp: bool = False) -> str:
    argv = ["dig", "+time=2", "+tries=1", *(["+tcp"] if tcp else []), f"@{addr}", name, "A"]
    res = lab.run(argv, check=False, text=True, timeout=15)
    return str(res.stdout)


def answered_recursively(out: str) -> bool:
    m = re.search(r";; flags:([^;]*);", out)
    return m is not None and " ra" in m.group(1) and "status: REFUSED" not in out


def wait_udp(host: lab.NetnsHost, port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise lab.LabError(f"{what} exited: {host.log(proc)[-1000:]}")
        return f":{port} " in str(host.run(["ss", "-ulnH"], text=True).stdout)

    lab.wait_until(up, 20, what)


@pytest.fixture
def bind_etc(tmp_path: Path) -> Path:
    etc = tmp_path / "bind"
    shutil.copytree("/etc/bind", etc)
    opts = etc / "named.conf.options"
    text = opts.read_text().replace(
        'directory "/var/cache/bind";',
        f'directory "/var/cache/bind";\n\tpid-file "{tmp_path}/named.pid";\n'
        f'\tsession-keyfile "{tmp_path}/s.key";',
    )
    opts.write_text(text)
    (etc / "named.conf").write_text((etc / "named.conf").read_text() + "controls { };\n")
    return etc


@contextlib.contextmanager
def _bind_host(etc: Path, extra: str = "") -> Iterator[lab.NetnsHost]:
    if extra:
        opts = etc / "named.conf.options"
        opts.write_text(
            opts.read_text().replace("listen-on-v6 { any; };", "listen-on-v6 { any; };\n\t" + extra)
        )
    with lab.netns_host(etc={"bind": etc}) as host:
        proc = host.spawn(["named", "-g", "-u", "root", "-c", "/etc/bind/named.conf"])
        wait_udp(host, 53, proc, "named")
        lab.wait_until(lambda: ";; flags:" in dig(host.addr), 15, "named to answer")
        yield host


def test_bind_debian_default_allows_localnets(bind_etc: Path) -> None:
    with _bind_host(bind_etc) as host:
        assert answered_recursively(dig(host.addr))  # the gateway is on the host's subnet: localnets
        check = audit(host)
        assert check.status is Status.WARN
        assert finding(check, "BIND (named)") == (
            Status.WARN,
            f"BIND (named) allows recursion to localnets = 10.200.{host.slot}.0/24 (private subnet), "
            "listening on "
            f"{host.addr}:53/tcp, {host.addr}:53/udp: every host on that subnet can use it (list the subnet "
            "in "
            "[network] trusted_networks if it is yours)",
        )
        trusted = audit(host, LAB_TRUSTED)
        assert trusted.status is Status.PASS
        assert finding(trusted, "BIND (named)") == (
            Status.PASS,
            f"BIND (named) allows recursion to trusted networks only (10.200.{host.slot}.0/24)",
        )


def test_bind_allow_recursion_any_fails(bind_etc: Path) -> None:
    with _bind_host(bind_etc, "allow-recursion { any; };") as host:
        assert answered_recursively(dig(host.addr))
        check = audit(host, LAB_TRUSTED)
        assert check.status is Status.FAIL
        assert finding(check, "BIND (named)") == (
            Status.FAIL,
            f"BIND (named) allows recursion to any host, listening on {host.addr}:53/tcp, "
            f"{host.addr}:53/udp: "
            "an open resolver can be abused for DNS amplification attacks",
        )
        assert check.findings[0].remediation is not None
        assert "allow-recursion { localhost;" in check.findings[0].remediation


def test_bind_localhost_only_passes_and_refuses(bind_etc: Path) -> None:
    with _bind_host(bind_etc, "allow-recursion { localhost; };") as host:
        out = dig(host.addr)
        assert "status: REFUSED" in out and not answered_recursively(out)
        check = audit(host, LAB_TRUSTED)
        assert check.status is Status.PASS
        assert finding(check, "BIND (named)") == (
            Status.PASS,
            "BIND (named) allows recursion to this host only (loopback)",
        )


@contextlib.contextmanager
def _unbound_host(tmp_path: Path, lab_conf: str) -> Iterator[lab.NetnsHost]:
    etc = tmp_path / "unbound"
    shutil.copytree("/etc/unbound", etc)
    # Debian's unit creates the trust anchor before start (unbound-anchor); without it unbound refuses to
    # start, and it does not change who may query.
    (etc / "unbound.conf.d/root-auto-trust-anchor-file.conf").unlink()
    (etc / "unbound.conf.d/lab.conf").write_text(
        f'server:\n  username: ""\n  chroot: ""\n  pidfile: "{tmp_path}/unbound.pid"\n{lab_conf}'
    )
    with lab.netns_host(etc={"unbound": etc}) as host:
        proc = host.spawn(["unbound", "-d", "-c", "/etc/unbound/unbound.conf"])
        wait_udp(host, 53, proc, "unbound")
        yield host


def test_unbound_open_fails(tmp_path: Path) -> None:
    with _unbound_host(tmp_path, "  interface: 0.0.0.0\n  access-control: 0.0.0.0/0 allow\n") as host:
        lab.wait_until(lambda: ";; flags:" in dig(host.addr), 15, "unbound to answer")
        assert answered_recursively(dig(host.addr))
        check = audit(host, LAB_TRUSTED)
        assert check.status is Status.FAIL
        assert finding(check, "unbound") == (
            Status.FAIL,
            "unbound allows recursion to any host (0.0.0.0/0 allow), listening on 0.0.0.0:53/tcp, "
            "0.0.0.0:53/udp: "
            "an open resolver can be abused for DNS amplification attacks",
        )


def test_unbound_default_is_loopback_only(tmp_path: Path) -> None:
    with _unbound_host(tmp_path, "") as host:
        assert ";; flags:" not in dig(host.addr)  # nothing listens on the host's address
        check = audit(host, LAB_TRUSTED)
        assert check.status is Status.PASS
        assert finding(check, "unbound") == (
            Status.PASS,
            "unbound listens on loopback only (127.0.0.1:53/tcp, 127.0.0.1:53/udp, [::1]:53/tcp, "
            "[::1]:53/udp): other hosts cannot use it",
        )


def test_dnsmasq_debian_default_local_service(tmp_path: Path) -> None:
    with lab.netns_host() as host:
        # (Never --pid-file=/dev/null: dnsmasq unlinks its pid file when it stops.)
        # What Debian's systemd-helper runs (CONFIG_DIR from /etc/default/dnsmasq, --local-service from
        # init-system-common), as root, with a local record and no upstream (no traffic leaves the lab).
        proc = host.spawn(
            [
                "dnsmasq",
                "-k",
                "-u",
                "root",
                "-7",
                "/etc/dnsmasq.d,.dpkg-dist,.dpkg-old,.dpkg-new",
                "--local-service",
                "--no-resolv",
                f"--pid-file={tmp_path}/dnsmasq.pid",
                "--host-record=www.example.com,192.0.2.10",
            ]
        )
        wait_udp(host, 53, proc, "dnsmasq")
        assert "192.0.2.10" in dig(host.addr, "www.example.com")  # the gateway is on a local subnet
        check = audit(host)
        assert check.status is Status.WARN
        assert finding(check, "dnsmasq") == (
            Status.WARN,
            f"dnsmasq allows recursion to localnets = 10.200.{host.slot}.0/24 (private subnet), listening on "
            "0.0.0.0:53/tcp, 0.0.0.0:53/udp, [::]:53/tcp, [::]:53/udp: every host on that subnet can use it "
            "(list the subnet in [network] trusted_networks if it is yours)",
        )
        assert audit(host, LAB_TRUSTED).status is Status.PASS


def load_nft(host: lab.NetnsHost, rules: str) -> None:
    """Load an nftables ruleset into the host's namespace only."""
    path = host.workdir / "rules.nft"
    path.write_text(rules)
    res = host.run(["nft", "-f", str(path)], text=True, timeout=30)
    assert res.returncode == 0, res.stderr


def test_bind_open_behind_firewall_dropping_dns_passes(bind_etc: Path) -> None:
    # The firewall, not the access list, keeps other hosts out: over UDP and over TCP.
    lab.require_binary("nft")
    with _bind_host(bind_etc, "allow-recursion { any; };") as host:
        load_nft(
            host,
            "table inet lab {\n  chain input {\n    type filter hook input priority 0; policy drop;\n"
            "    iif lo accept\n    tcp dport 22 accept\n  }\n}\n",
        )
        assert ";; flags:" not in dig(host.addr)
        assert ";; flags:" not in dig(host.addr, tcp=True)
        check = audit(host, LAB_TRUSTED)
        assert check.status is Status.PASS
        assert finding(check, "BIND (named)") == (
            Status.PASS,
            "BIND (named)'s access list allows recursion to any host, but the host firewall lets no other "
            "host reach port 53 (TCP or UDP)",
        )
        [f] = [f for f in check.findings if f.message.startswith("BIND (named)")]
        fw = [e.detail for e in f.evidence if e.source == "host firewall"]
        assert [d.split(":")[0] for d in fw] == ["IPv4 tcp/53", "IPv4 udp/53"]


def test_bind_open_firewall_dropping_only_udp_53_fails(bind_etc: Path) -> None:
    # Dropping UDP/53 alone leaves the resolver open over TCP: dig +tcp gets a recursive answer.
    lab.require_binary("nft")
    with _bind_host(bind_etc, "allow-recursion { any; };") as host:
        load_nft(
            host,
            "table inet lab {\n  chain input {\n    type filter hook input priority 0; policy accept;\n"
            "    udp dport 53 drop\n  }\n}\n",
        )
        assert ";; flags:" not in dig(host.addr)
        assert answered_recursively(dig(host.addr, tcp=True))
        check = audit(host, LAB_TRUSTED)
        assert check.status is Status.FAIL
        assert finding(check, "BIND (named)") == (
            Status.FAIL,
            f"BIND (named) allows recursion to any host, listening on {host.addr}:53/tcp, "
            f"{host.addr}:53/udp: an open resolver can be abused for DNS amplification attacks (the host "
            "firewall admits it over TCP/53 only)",
        )
