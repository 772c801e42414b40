"""`nectar-audit fix` for check 11 on a chroot host with rsyslog, sshd on port 2222 and fail2ban.

Debian's sshd jail bans port 22 ("ssh") while sshd listens on 2222. After the fix, fail2ban itself says
the jail runs, real failed SSH logins (an unknown user, from the machine's side of the lab link) make it
ban the source address, and the firewall rule it installs covers port 2222; a second plan changes
nothing, undo restores /etc/fail2ban byte for byte, and a configuration fail2ban's own test refuses is
rolled back with `error`.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import lab
from tests.fix import upd_lab

pytestmark = pytest.mark.lab

C11 = "Check-Security-11"
DROPIN = "/etc/fail2ban/jail.d/nectar-audit.local"
PORT = 2222


@pytest.fixture
def host(lab_root: Path, tmp_path: Path) -> Iterator[lab.ChrootHost]:
    lab.require_netns()
    (lab_root / "etc/fail2ban/fail2ban.local").write_text("[Definition]\ndbfile = :memory:\n")
    (lab_root / "etc/ssh/sshd_config.d/port.conf").write_text(f"Port {PORT}\n")
    (lab_root / "var/log/auth.log").touch()
    with lab.chroot_host(lab_root, hostname="fix11", workdir=tmp_path) as h:
        h.start(["rsyslogd", "-n"])
        # No -e: sshd logs through syslog, so rsyslog writes auth.log, which the jail reads.
        h.start(["/usr/sbin/sshd", "-D"])
        server = h.start(["fail2ban-server", "-f", "-x"])
        lab.wait_until(lambda: h.exec(["fail2ban-client", "status", "sshd"], timeout=10).returncode == 0
                       or server.poll() is not None, 30, "fail2ban's sshd jail")
        assert server.poll() is None, h.log(server)
        lab.wait_for_tcp(h.addr, PORT)
        yield h


def _status(h: lab.ChrootHost) -> str:
    return str(h.exec(["fail2ban-client", "status", "sshd"], timeout=30, text=True, check=True).stdout)


def _action_port(h: lab.ChrootHost) -> str:
    """The port the running jail's ban action blocks, as fail2ban-server holds it."""
    res = h.exec(["fail2ban-client", "get", "sshd", "action", "iptables-multiport", "port"], timeout=30, text=True)
    return str(res.stdout).strip()


def _failed_login(h: lab.ChrootHost) -> None:
    ssh = lab.require_binary("ssh")
    # A ban that arrives in the middle of a connection leaves it hanging (its packets are rejected).
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run([ssh, "-p", str(PORT), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                        "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                        f"nosuchuser@{h.addr}", "true"], capture_output=True, timeout=10, check=False)


def test_11_jail_on_sshd_port_bans_real_attacker(host: lab.ChrootHost) -> None:
    before = upd_lab.snapshot(host, "/etc/fail2ban")
    fix = upd_lab.plan(host, ["11"])
    assert fix.before is not None and fix.before.checks[0].status.value == "fail"
    assert fix.before.checks[0].summary.startswith("fail2ban jail sshd blocks port ssh")
    r = upd_lab.remedy(fix, C11)
    assert [c.path for c in r.changes] == [DROPIN]
    assert r.changes[0].after.splitlines()[1:] == ["[sshd]", "enabled = true", f"port = {PORT}"]
    assert [s.sh for s in r.validate] == ["fail2ban-client -t"]
    upd_lab.apply(fix, ["11"])
    assert [(o.check, o.status, o.after) for o in fix.outcomes] == [(C11, "applied", "pass")], fix.outcomes
    assert upd_lab.snapshot(host, "/etc/fail2ban").keys() - before.keys() == {DROPIN}

    # Real failed logins: fail2ban bans the address they came from (the machine's end of the link).
    def banned() -> bool:
        _failed_login(host)
        return host.gateway in _status(host)

    lab.wait_until(banned, 90, f"fail2ban to ban {host.gateway}")
    status = _status(host)
    assert "Currently banned:\t1" in status and host.gateway in status, status
    assert "/var/log/auth.log" in status
    assert _action_port(host) == str(PORT)
    rules = str(host.exec(["iptables", "-S"], text=True, check=True).stdout)
    assert f"--dports {PORT} -j f2b-sshd" in rules, rules
    assert f"-A f2b-sshd -s {host.gateway}/32 -j REJECT" in rules, rules
    # The ban holds: sshd is no longer reachable from that address.
    probe = subprocess.run(["ssh", "-p", str(PORT), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                            f"nosuchuser@{host.addr}", "true"], capture_output=True, text=True, timeout=30)
    assert "Connection refused" in probe.stderr, probe.stderr

    # Idempotent, then undone byte for byte (fail2ban reloaded: the jail is back on port ssh).
    assert upd_lab.plan(host, ["11"]).remedies == []
    records = upd_lab.undo(host, fix.run_id)
    assert (C11, "undone", "") in records
    assert upd_lab.snapshot(host, "/etc/fail2ban") == before
    lab.wait_until(lambda: _action_port(host) == "ssh", 30, "the reloaded jail to ban port ssh again")


def test_11_configuration_fail2ban_refuses_rolls_back(host: lab.ChrootHost) -> None:
    fix = upd_lab.plan(host, ["11"])
    # After the audit someone points the sshd jail at a filter that does not exist.
    broken = host.path("/etc/fail2ban/jail.d/zz-broken.local")
    broken.write_text("[sshd]\nfilter = no-such-filter\n")
    before = upd_lab.snapshot(host, "/etc/fail2ban")
    upd_lab.apply(fix, ["11"])
    [outcome] = fix.outcomes
    assert outcome.status == "error", outcome
    assert outcome.message.startswith("validation failed: fail2ban-client -t: "), outcome.message
    assert "no-such-filter" in outcome.message, outcome.message
    assert upd_lab.snapshot(host, "/etc/fail2ban") == before
    # The running jail was never reloaded: it still bans port ssh.
    assert _action_port(host) == "ssh"
