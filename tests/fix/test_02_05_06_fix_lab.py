"""Lab: `nectar-audit fix` for checks 02 (mail), 05 (DNS recursion) and 06 (NTP) on chroot hosts with real daemons.

Each host is a full chroot host (own network, mount and pid namespaces) on an overlay of a cached Debian root:
the lab's default root for exim and chrony, ``rootfs.NET_ROOT_PACKAGES`` for Postfix, Dovecot, BIND, unbound,
dnsmasq and NTPsec. The daemons run as their init scripts start them (pid files where the fix's activation
looks; no systemd as PID 1). For each daemon: the check fails, ``plan_host`` + ``apply_host`` apply the fix,
a fresh audit passes and the daemon itself shows it (a query, connection or NTP request from the root
namespace is refused or unanswered, the same from inside the host is answered); a second plan has nothing
to apply; ``undo_host`` restores every touched file byte for byte and the daemon serves outsiders again. A
configuration the daemon's own checker rejects makes the fix report ``error`` and leaves the files as they were.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nectar_audit import catalog, engine
from nectar_audit.config import Config
from nectar_audit.fix.run import HostFix, apply_host, plan_host, undo_host
from nectar_audit.model import CheckResult
from nectar_audit.targets.script_runner import ScriptTarget
from tests import lab
from tests.lab import rootfs

pytestmark = pytest.mark.lab

# TEST-NET-1: a trusted network that is not the lab's, so the root namespace stays an outsider.
ELSEWHERE = Config(trusted_networks=(ipaddress.ip_network("192.0.2.0/24"),))


@pytest.fixture(scope="module")
def net_root() -> Path:
    lab.require_root()
    lab.require_netns()
    lab.require_overlay()
    return rootfs.build_root(rootfs.NET_ROOT_PACKAGES)


@contextlib.contextmanager
def chroot(tmp_path: Path, lower: Path, prepare: Callable[[Path], None]) -> Iterator[lab.ChrootHost]:
    with lab.overlay_root(tmp_path, lower) as root:
        prepare(root)
        with lab.chroot_host(root) as host:
            yield host


def start(host: lab.ChrootHost, *argv: str) -> None:
    """Run an init script or a self-daemonizing command inside the host; it must succeed. Its output goes
    to a file: a daemon keeping the inherited stderr open (Dovecot) would hold a pipe open forever."""
    res = host.exec(["sh", "-c", '"$@" > /run/lab-start.log 2>&1 < /dev/null || { cat /run/lab-start.log; exit 1; }',
                     "start", *argv], text=True, timeout=60)
    assert res.returncode == 0, f"{argv}: {res.stdout}{res.stderr}"


def entries(check_id: str) -> list[catalog.Entry]:
    return [e for e in catalog.entries() if e.id == check_id]


def audit(host: lab.ChrootHost, check_id: str, config: Config) -> CheckResult:
    result, _ = engine.audit(ScriptTarget(host.name, host.sh_argv()), entries(check_id), config)
    assert result.error is None
    [check] = result.checks
    return check


def snapshot(host: lab.ChrootHost, paths: list[str]) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for p in paths:
        f = host.path(p)
        out[p] = f.read_bytes() if f.is_file() else None
    return out


def touched(fix: HostFix) -> list[str]:
    paths = [c.path for r in fix.remedies for c in r.changes]
    paths += [p for r in fix.remedies for s in r.commands for p in s.backs_up]
    return sorted(set(paths))


def fix_cycle(host: lab.ChrootHost, check_id: str, config: Config, closed: Callable[[], None],
              open_again: Callable[[], None]) -> HostFix:
    """Fail → plan → apply (applied, passes, ``closed`` proves it) → idempotent → undo (``open_again``)."""
    target = ScriptTarget(host.name, host.sh_argv())
    assert audit(host, check_id, config).status.value in ("fail", "warn")
    fix = plan_host(target, entries(check_id), config)
    assert fix.error is None
    [remedy] = fix.remedies
    assert remedy.applicable, remedy.text()
    assert not remedy.manual, remedy.manual
    paths = touched(fix)
    before = snapshot(host, paths)
    apply_host(fix, entries(check_id), config, set())
    assert [(o.status, o.after) for o in fix.outcomes] == [("applied", "pass")], [o.to_json() for o in fix.outcomes]
    assert audit(host, check_id, config).status.value == "pass"
    closed()
    after = snapshot(host, paths)
    assert after != before
    # Idempotent: a second fix plans nothing to apply and changes nothing.
    again = plan_host(target, entries(check_id), config)
    assert again.error is None and again.to_apply(set()) == []
    apply_host(again, entries(check_id), config, set())
    assert again.outcomes == [] and snapshot(host, paths) == after
    # Undo: every file byte for byte as before, the daemon told again.
    records, error = undo_host(target, fix.run_id)
    assert error is None
    assert (check_id, "undone", "") in records, records
    assert snapshot(host, paths) == before
    open_again()
    assert audit(host, check_id, config).status.value in ("fail", "warn")
    return fix


def fix_rejected(host: lab.ChrootHost, check_id: str, config: Config, paths: list[str]) -> str:
    """Plan and apply on a host whose configuration the daemon's checker rejects: ``error``, files unchanged."""
    target = ScriptTarget(host.name, host.sh_argv())
    fix = plan_host(target, entries(check_id), config)
    assert fix.error is None
    assert len(fix.remedies) == 1
    paths = sorted({*paths, *touched(fix)})
    before = snapshot(host, paths)
    apply_host(fix, entries(check_id), config, set())
    [outcome] = fix.outcomes
    assert outcome.status == "error", outcome.to_json()
    assert outcome.message.startswith("validation failed: "), outcome.message
    assert snapshot(host, paths) == before
    return outcome.message


# --- what the daemons answer -------------------------------------------------------------------------------


def outside(addr: str) -> str:
    assert addr.startswith("10.200."), "lab traffic only"
    return addr


def tcp_banner(addr: str, port: int) -> str | None:
    try:
        with socket.create_connection((outside(addr), port), timeout=3) as s:
            s.settimeout(5)
            return s.recv(200).decode("ascii", "replace")
    except OSError:
        return None


_INSIDE_BANNER = (
    "import socket, sys\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
    "s.settimeout(5)\n"
    "print(s.recv(200).decode('ascii', 'replace'))\n"
)


def inside_banner(host: lab.ChrootHost, port: int) -> str:
    res = host.exec(["python3", "-c", _INSIDE_BANNER, str(port)], text=True, timeout=30)
    return str(res.stdout) if res.returncode == 0 else ""


def dig_out(addr: str, name: str) -> str:
    res = lab.run(["dig", "+time=2", "+tries=1", f"@{outside(addr)}", name, "A"], check=False, text=True, timeout=15)
    return str(res.stdout)


def dig_in(host: lab.ChrootHost, name: str) -> str:
    res = host.exec(["dig", "+time=2", "+tries=1", "@127.0.0.1", name, "A"], text=True, timeout=15)
    return str(res.stdout)


def recursive(out: str) -> bool:
    m = re.search(r";; flags:([^;]*);", out)
    return m is not None and " ra" in m.group(1) and "status: REFUSED" not in out


def refused(out: str) -> bool:
    m = re.search(r";; flags:([^;]*);", out)
    return "status: REFUSED" in out and m is not None and " ra" not in m.group(1)


NTP_CLIENT = b"\x23" + bytes(47)  # NTPv4 mode 3
NTP_READVAR = b"\x16\x02\x00\x01" + bytes(8)  # NTPv2 mode 6 READVAR (ntpq rv)
NTP_MONLIST = b"\x17\x00\x03\x2a" + bytes(44)  # mode 7 MON_GETLIST_1


def ntp_answers(addr: str, packet: bytes = NTP_CLIENT) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(packet, (outside(addr), 123))
        try:
            data, _ = s.recvfrom(2048)
        except OSError:
            return False
    return len(data) >= 12


_INSIDE_NTP = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.settimeout(3)\n"
    "s.sendto(b'\\x23' + bytes(47), ('127.0.0.1', 123))\n"
    "print(len(s.recvfrom(512)[0]))\n"
)


def ntp_answers_inside(host: lab.ChrootHost) -> bool:
    return host.exec(["python3", "-c", _INSIDE_NTP], text=True, timeout=30).returncode == 0


def wait_port(host: lab.ChrootHost, proto: str, port: int, addr: str = "") -> None:
    flag = "-tlnH" if proto == "tcp" else "-ulnH"
    lab.wait_until(lambda: f"{addr}:{port} " in str(host.exec(["ss", flag], text=True).stdout), 30,
                   f"{proto}/{port} to listen")


def until(pred: Callable[[], bool], what: str) -> None:
    """The daemon was just (re)started: wait until it shows the expected behaviour."""
    lab.wait_until(pred, 30, what)


# --- 02: Postfix and Dovecot, then Exim ---------------------------------------------------------------------


def _mail_root(root: Path) -> None:
    # Debian's debconf-generated main.cf (Internet Site): every address.
    main = root / "etc/postfix/main.cf"
    assert "inet_interfaces = all\n" in main.read_text()


def test_02_postfix_and_dovecot_fixed_and_undone(net_root: Path, tmp_path: Path) -> None:
    with chroot(tmp_path, net_root, _mail_root) as host:
        start(host, "/etc/init.d/postfix", "start")
        start(host, "/etc/init.d/dovecot", "start")
        wait_port(host, "tcp", 25)
        wait_port(host, "tcp", 143)
        until(lambda: (tcp_banner(host.addr, 25) or "").startswith("220 "), "SMTP from outside")
        assert (tcp_banner(host.addr, 143) or "").startswith("* OK")

        def closed() -> None:
            until(lambda: tcp_banner(host.addr, 25) is None and tcp_banner(host.addr, 143) is None,
                  "SMTP and IMAP closed to outsiders")
            until(lambda: inside_banner(host, 25).startswith("220 "), "SMTP on localhost")
            until(lambda: inside_banner(host, 143).startswith("* OK"), "IMAP on localhost")

        def open_again() -> None:
            until(lambda: (tcp_banner(host.addr, 25) or "").startswith("220 "), "SMTP from outside again")
            until(lambda: (tcp_banner(host.addr, 143) or "").startswith("* OK"), "IMAP from outside again")

        fix = fix_cycle(host, "Check-Security-02", Config(), closed, open_again)
        [remedy] = fix.remedies
        assert [s.sh for s in remedy.commands] == ["postconf -e 'inet_interfaces = loopback-only'"]
        assert [c.path for c in remedy.changes] == ["/etc/dovecot/conf.d/99-nectar-audit-02.conf"]
        assert [s.sh for s in remedy.validate] == ["postfix check", "doveconf -n >/dev/null"]


def test_02_exim_debconf_fixed_and_undone(debian_root: Path, tmp_path: Path) -> None:
    def prepare(root: Path) -> None:
        conf = root / "etc/exim4/update-exim4.conf.conf"
        text = conf.read_text()
        assert "dc_local_interfaces='127.0.0.1 ; ::1'\n" in text
        conf.write_text(text.replace("dc_local_interfaces='127.0.0.1 ; ::1'", "dc_local_interfaces=''"))

    with chroot(tmp_path, debian_root, prepare) as host:
        start(host, "update-exim4.conf")
        start(host, "/etc/init.d/exim4", "start")
        wait_port(host, "tcp", 25)
        until(lambda: (tcp_banner(host.addr, 25) or "").startswith("220 "), "SMTP from outside")

        def closed() -> None:
            until(lambda: tcp_banner(host.addr, 25) is None, "SMTP closed to outsiders")
            until(lambda: inside_banner(host, 25).startswith("220 "), "SMTP on localhost")

        def open_again() -> None:
            until(lambda: (tcp_banner(host.addr, 25) or "").startswith("220 "), "SMTP from outside again")

        fix = fix_cycle(host, "Check-Security-02", Config(), closed, open_again)
        [change] = fix.remedies[0].changes
        assert change.path == "/etc/exim4/update-exim4.conf.conf" and not change.whole
        assert "dc_local_interfaces='127.0.0.1 ; ::1'\n" in change.after


# --- 05: BIND, unbound, dnsmasq -----------------------------------------------------------------------------


def _bind_open(root: Path) -> None:
    opts = root / "etc/bind/named.conf.options"
    text = opts.read_text()
    assert "\tlisten-on-v6 { any; };\n" in text
    opts.write_text(text.replace("\tlisten-on-v6 { any; };\n",
                                 "\tlisten-on-v6 { any; };\n\tallow-recursion { any; };\n"))


@contextlib.contextmanager
def bind_host(tmp_path: Path, net_root: Path) -> Iterator[lab.ChrootHost]:
    with chroot(tmp_path, net_root, _bind_open) as host:
        start(host, "/etc/init.d/named", "start")
        wait_port(host, "udp", 53, host.addr)
        until(lambda: recursive(dig_out(host.addr, "example.com")), "named to recurse for outsiders")
        yield host


def test_05_bind_fixed_and_undone(net_root: Path, tmp_path: Path) -> None:
    with bind_host(tmp_path, net_root) as host:
        def closed() -> None:
            until(lambda: refused(dig_out(host.addr, "example.com")), "named to refuse outsiders")
            assert recursive(dig_in(host, "example.com"))

        def open_again() -> None:
            until(lambda: recursive(dig_out(host.addr, "example.com")), "named to recurse for outsiders again")

        fix = fix_cycle(host, "Check-Security-05", ELSEWHERE, closed, open_again)
        changes = {c.path: c for c in fix.remedies[0].changes}
        # dnsmasq, installed and stopped, would answer its local subnets when started: fixed alike.
        assert sorted(changes) == ["/etc/bind/named.conf.options", "/etc/dnsmasq.d/nectar-audit-05.conf"]
        change = changes["/etc/bind/named.conf.options"]
        assert "\tallow-recursion { localhost; 192.0.2.0/24; };  // nectar-audit\n" in change.after
        assert "\t// allow-recursion { any; };  // replaced by nectar-audit" in change.after


def test_05_bind_rejected_by_named_checkconf_restores(net_root: Path, tmp_path: Path) -> None:
    with bind_host(tmp_path, net_root) as host:
        # A zone without a file: named-checkconf rejects the configuration (the running named has not read it).
        local = host.path("/etc/bind/named.conf.local")
        local.write_text(local.read_text() + 'zone "broken.test" { type master; };\n')
        message = fix_rejected(host, "Check-Security-05", ELSEWHERE, ["/etc/bind/named.conf.local"])
        assert "named-checkconf" in message and "broken.test" in message
        assert recursive(dig_out(host.addr, "example.com"))  # untouched: still open


def test_05_unbound_fixed_and_undone(net_root: Path, tmp_path: Path) -> None:
    def prepare(root: Path) -> None:
        # Debian's unit creates the trust anchor before start (unbound-anchor); not who may query.
        (root / "etc/unbound/unbound.conf.d/root-auto-trust-anchor-file.conf").unlink()
        (root / "etc/unbound/unbound.conf.d/lab.conf").write_text(
            "server:\n  interface: 0.0.0.0\n  access-control: 0.0.0.0/0 allow\n  chroot: \"\"\n")

    with chroot(tmp_path, net_root, prepare) as host:
        start(host, "/etc/init.d/unbound", "start")
        wait_port(host, "udp", 53)
        until(lambda: recursive(dig_out(host.addr, "example.com")), "unbound to recurse for outsiders")

        def closed() -> None:
            until(lambda: refused(dig_out(host.addr, "example.com")), "unbound to refuse outsiders")
            assert recursive(dig_in(host, "example.com"))

        def open_again() -> None:
            until(lambda: recursive(dig_out(host.addr, "example.com")), "unbound to recurse for outsiders again")

        fix = fix_cycle(host, "Check-Security-05", ELSEWHERE, closed, open_again)
        changes = {c.path: c for c in fix.remedies[0].changes}
        # BIND and dnsmasq, installed and stopped, would answer their local subnets when started: fixed alike.
        assert sorted(changes) == ["/etc/bind/named.conf.options", "/etc/dnsmasq.d/nectar-audit-05.conf",
                                   "/etc/unbound/unbound.conf.d/lab.conf",
                                   "/etc/unbound/unbound.conf.d/nectar-audit-05.conf"]
        assert "access-control: 192.0.2.0/24 allow" in changes["/etc/unbound/unbound.conf.d/nectar-audit-05.conf"].after
        assert "# access-control: 0.0.0.0/0 allow  # disabled by nectar-audit" in \
            changes["/etc/unbound/unbound.conf.d/lab.conf"].after


def test_05_dnsmasq_fixed_and_undone(net_root: Path, tmp_path: Path) -> None:
    def prepare(root: Path) -> None:
        # A local record answers at once (the upstream in resolv.conf is unreachable from the lab).
        (root / "etc/dnsmasq.d/lab.conf").write_text("host-record=www.example.com,192.0.2.10\n")

    with chroot(tmp_path, net_root, prepare) as host:
        start(host, "/etc/init.d/dnsmasq", "start")
        wait_port(host, "udp", 53)
        until(lambda: "192.0.2.10" in dig_out(host.addr, "www.example.com"), "dnsmasq to answer outsiders")

        def closed() -> None:
            until(lambda: ";; flags:" not in dig_out(host.addr, "www.example.com"), "dnsmasq closed to outsiders")
            until(lambda: "192.0.2.10" in dig_in(host, "www.example.com"), "dnsmasq on localhost")

        def open_again() -> None:
            until(lambda: "192.0.2.10" in dig_out(host.addr, "www.example.com"), "dnsmasq to answer outsiders again")

        fix = fix_cycle(host, "Check-Security-05", Config(), closed, open_again)
        changes = {c.path: c for c in fix.remedies[0].changes}
        assert sorted(changes) == ["/etc/bind/named.conf.options", "/etc/dnsmasq.d/nectar-audit-05.conf"]
        change = changes["/etc/dnsmasq.d/nectar-audit-05.conf"]
        assert change.after.endswith("interface=lo\nbind-interfaces\n")


# --- 06: NTPsec and chrony ----------------------------------------------------------------------------------


def no_pool(text: str) -> str:
    return "".join("#" + ln if ln.lstrip().startswith(("pool ", "server ", "peer ")) else ln
                   for ln in text.splitlines(keepends=True))


def test_06_ntpsec_fixed_and_undone(net_root: Path, tmp_path: Path) -> None:
    def prepare(root: Path) -> None:
        conf = root / "etc/ntpsec/ntp.conf"
        conf.write_text(no_pool(conf.read_text()))  # never a server: the clock is the machine's

    with chroot(tmp_path, net_root, prepare) as host:
        start(host, "/etc/init.d/ntpsec", "start")
        wait_port(host, "udp", 123, host.addr)
        until(lambda: ntp_answers(host.addr), "ntpd to serve outsiders")
        assert not ntp_answers(host.addr, NTP_READVAR)  # Debian's default already has noquery
        assert not ntp_answers(host.addr, NTP_MONLIST)

        def closed() -> None:
            until(lambda: ntp_answers_inside(host), "ntpd to serve localhost")
            assert not ntp_answers(host.addr)
            assert not ntp_answers(host.addr, NTP_READVAR)
            assert not ntp_answers(host.addr, NTP_MONLIST)

        def open_again() -> None:
            until(lambda: ntp_answers(host.addr), "ntpd to serve outsiders again")

        fix = fix_cycle(host, "Check-Security-06", Config(), closed, open_again)
        [change] = fix.remedies[0].changes
        assert change.path == "/etc/ntpsec/ntp.conf" and not change.whole
        assert "\nrestrict default kod nomodify nopeer noquery limited noserve\n" in change.after


def _chrony(extra: str) -> Callable[[Path], None]:
    def prepare(root: Path) -> None:
        conf = root / "etc/chrony/chrony.conf"
        conf.write_text(no_pool(conf.read_text()) + extra)
        # -x: chronyd never touches the clock, which this host shares with the machine.
        (root / "etc/default/chrony").write_text('DAEMON_OPTS="-x"\n')

    return prepare


def test_06_chrony_fixed_and_undone(debian_root: Path, tmp_path: Path) -> None:
    with chroot(tmp_path, debian_root, _chrony("allow\n")) as host:
        start(host, "/etc/init.d/chrony", "start")
        wait_port(host, "udp", 123)
        until(lambda: ntp_answers(host.addr), "chronyd to serve outsiders")

        def closed() -> None:
            until(lambda: host.exec(["chronyc", "-n", "tracking"], timeout=30).returncode == 0,
                  "chronyd running again")
            assert not ntp_answers(host.addr)

        def open_again() -> None:
            until(lambda: ntp_answers(host.addr), "chronyd to serve outsiders again")

        fix = fix_cycle(host, "Check-Security-06", Config(), closed, open_again)
        [change] = fix.remedies[0].changes
        assert change.path == "/etc/chrony/chrony.conf"
        assert change.after.endswith("\n# allow  # replaced by nectar-audit: Check-Security-06: NTP served to "
                                     "trusted networks only, queries closed\n")


def test_06_chrony_rejected_by_chronyd_restores(debian_root: Path, tmp_path: Path) -> None:
    with chroot(tmp_path, debian_root, _chrony("allow\n")) as host:
        start(host, "/etc/init.d/chrony", "start")
        until(lambda: ntp_answers(host.addr), "chronyd to serve outsiders")
        # A directive chronyd does not know, added after it started: its own parse (-p) rejects the file.
        conf = host.path("/etc/chrony/chrony.conf")
        conf.write_text(conf.read_text() + "nosuchdirective 1\n")
        message = fix_rejected(host, "Check-Security-06", Config(), ["/etc/chrony/chrony.conf"])
        assert "chronyd -p" in message
        assert ntp_answers(host.addr)  # untouched: still serving
