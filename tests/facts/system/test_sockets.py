"""Listening sockets and processes: ss, /proc/net and ps parsers on real captures (tests/samples/sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.evidence.bundle import Bundle, CommandRecord, EvidenceError
from nectar_audit.facts import Facts
from nectar_audit.facts.system.processes import PS_COMMAND, parse_proc_status, parse_ps, processes, redact, running
from nectar_audit.facts.system.sockets import (
    SS_COMMAND,
    Listener,
    listeners,
    parse_proc_net,
    parse_proc_output,
    parse_ss,
    sockets_source,
)
from tests import SAMPLES

SAMPLES = SAMPLES / "sockets"
PID = 3332

EXPECTED = {
    # (proto, family, address, port, interface, v6only)
    ("tcp", 4, "0.0.0.0", 22, None, None),
    ("tcp", 6, "::", 22, None, True),
    ("tcp", 4, "127.0.0.1", 5432, None, None),
    ("tcp", 6, "::1", 5432, None, True),
    ("tcp", 6, "::", 8080, None, False),
    ("tcp", 4, "127.0.0.53", 53, "lo", None),
    ("udp", 4, "127.0.0.53", 53, "lo", None),
    ("udp", 4, "0.0.0.0", 123, None, None),
    ("udp", 6, "::", 123, None, True),
    ("udp", 4, "0.0.0.0", 68, "lo", None),
}


def _key(item: Listener) -> tuple[object, ...]:
    return (item.proto, item.family, item.address, item.port, item.interface, item.v6only)


def _proc_stdout() -> str:
    parts = ["#proc"]
    for name in ("tcp", "tcp6", "udp", "udp6"):
        parts.append(f"#file /proc/net/{name}")
        parts.append((SAMPLES / f"proc-net-{name}").read_text().rstrip("\n"))
    parts.append("#fd")
    parts.append((SAMPLES / "find-proc-fd.txt").read_text().rstrip("\n"))
    parts.append("#bindv6only 0")
    return "\n".join(parts) + "\n"


def test_parse_ss_sample() -> None:
    items = parse_ss((SAMPLES / "ss-tulpnHe.txt").read_text(), {0: "root"})
    assert {_key(i) for i in items} == EXPECTED
    assert all(i.pid == PID and i.process == "python3" and i.user == "root" for i in items)
    by = {(_key(i)[0], i.address, i.port): i for i in items}
    dual = by[("tcp", "::", 8080)]
    assert dual.wildcard and dual.covers_ipv4 and not dual.loopback
    assert by[("tcp", "::", 22)].covers_ipv4 is False
    assert by[("udp", "127.0.0.53", 53)].loopback
    assert by[("udp", "0.0.0.0", 68)].loopback  # bound to lo
    assert by[("tcp", "::1", 5432)].loopback and not by[("tcp", "::1", 5432)].wildcard
    assert by[("tcp", "0.0.0.0", 22)].describe() == "0.0.0.0:22/tcp by python3 (pid 3332, user root)"
    assert by[("tcp", "::", 8080)].endpoint == "[::]:8080/tcp"


def test_proc_fallback_matches_ss() -> None:
    items = parse_proc_output(
        _proc_stdout().split("\n", 1)[1], {PID: "python3"}, {0: "root"}, bindv6only=False
    )
    # /proc/net cannot show SO_BINDTODEVICE nor per-socket IPV6_V6ONLY: those come from ss only.
    got = {(i.proto, i.family, i.address, i.port) for i in items}
    assert got == {(p, f, a, n) for p, f, a, n, _, _ in EXPECTED}
    assert all(i.pid == PID and i.process == "python3" for i in items)
    assert all(not i.interface_known and i.interface is None for i in items)


def test_proc_fallback_v6only_unknown_counts_as_dual_stack() -> None:
    # ss shows [::]:22 v6only:1 (sshd sets IPV6_V6ONLY itself) and [::]:8080 v6only:0; /proc/net shows
    # neither, whatever the bindv6only sysctl says: both are unknown and may accept IPv4.
    for sysctl in (False, True):
        items = parse_proc_output(_proc_stdout().split("\n", 1)[1], {PID: "python3"}, {0: "root"}, sysctl)
        by = {(i.proto, i.address, i.port): i for i in items}
        for key in (("tcp", "::", 22), ("tcp", "::", 8080), ("udp", "::", 123)):
            assert by[key].v6only is None and by[key].covers_ipv4 and by[key].covers_ipv6, key
        assert by[("tcp", "::1", 5432)].v6only is True and not by[("tcp", "::1", 5432)].covers_ipv4
        assert by[("tcp", "::", 22)].describe() == (
            "[::]:22/tcp by python3 (pid 3332, user root) (IPV6_V6ONLY unknown without ss: counted as "
            "accepting IPv4 too; interface binding (SO_BINDTODEVICE) unknown without ss)"
        )
        # Loopback sockets carry no note; IPv4 wildcards only the interface one.
        assert by[("tcp", "127.0.0.1", 5432)].describe() == "127.0.0.1:5432/tcp by python3 (pid 3332, user root)"
        assert by[("udp", "0.0.0.0", 68)].notes == ("interface binding (SO_BINDTODEVICE) unknown without ss",)
    # ss-sourced listeners are unchanged: known flags, no notes.
    ss_items = parse_ss((SAMPLES / "ss-tulpnHe.txt").read_text(), {0: "root"})
    assert all(i.interface_known and i.notes == () for i in ss_items)


def test_covers_ipv4_cases() -> None:
    assert Listener("tcp", 4, "10.0.0.5", 80).covers_ipv4
    assert Listener("tcp", 6, "::", 80, v6only=False).covers_ipv4
    assert not Listener("tcp", 6, "::", 80, v6only=True).covers_ipv4
    assert Listener("tcp", 6, "::", 80, v6only=None).covers_ipv4
    assert not Listener("tcp", 6, "2001:db8::5", 80, v6only=None).covers_ipv4
    assert Listener("tcp", 6, "::ffff:10.0.0.5", 80, v6only=False).covers_ipv4


def test_open_ports_counts_unknown_v6only_as_ipv4_too_with_a_note() -> None:
    # Check-Security-15 on a host without ss: sshd's [::]:22 may take IPv4, so both families are judged.
    from nectar_audit.checks.open_ports import run
    from nectar_audit.config import Config
    from tests.checks.test_08_host_firewall import live_bundle, rules_output

    tcp6 = (SAMPLES / "proc-net-tcp6").read_text().splitlines()
    tcp6 = [tcp6[0]] + [ln for ln in tcp6[1:] if ":0016 " in ln.split()[1] + " "]
    inode = int(tcp6[1].split()[9])
    stdout = (
        "#proc\n#file /proc/net/tcp6\n" + "\n".join(tcp6) + f"\n#fd\n/proc/812/fd socket:[{inode}]\n"
        "#bindv6only 0\n"
    )
    b = live_bundle(rules_output(None), "")
    b.commands[SS_COMMAND] = CommandRecord(stdout)
    b.commands[PS_COMMAND] = CommandRecord(
        "#ps\n" + "{:>10} {:>10} {:>10} {:<32} {:<16} {}\n".format(812, 1, 0, "root", "sshd", "sshd: /usr/sbin/sshd")
    )
    findings = run(Facts(b, Config()))
    table = findings[-1]
    [row] = [e.detail for e in table.evidence]
    assert row.startswith(
        "[::]:22/tcp by sshd (pid 812, user 0) (IPV6_V6ONLY unknown without ss: counted as accepting IPv4 "
        "too; interface binding (SO_BINDTODEVICE) unknown without ss) → IPv4: open"
    )
    assert "; IPv6: open" in row


def test_proc_net_skips_connected_udp_and_non_listening_tcp() -> None:
    rows = parse_proc_net((SAMPLES / "proc-net-udp").read_text(), "udp", 4)
    assert sorted((a, p) for a, p, _, _ in rows) == [("0.0.0.0", 68), ("0.0.0.0", 123), ("127.0.0.53", 53)]
    established = (
        "   1: 0101FA0A:B034 0201FA0A:0016 01 00000000:00000000 03:00000000 00000000     0        0 0 3 x\n"
    )
    assert parse_proc_net(established, "tcp", 4) == []


def _live(stdout: str, **commands: str) -> Facts:
    b = Bundle("t", "local", True, uid=0)
    b.commands[SS_COMMAND] = CommandRecord(stdout)
    for name, out in commands.items():
        b.commands[name] = CommandRecord(out)
    b.add_file("/etc/passwd", b"root:x:0:0::/root:/bin/sh\nsshd:x:105:65534::/run/sshd:/usr/sbin/nologin\n")
    return Facts(b)


def test_listeners_fact_ss_and_fallback() -> None:
    facts = _live("#ss\n" + (SAMPLES / "ss-tulpnHe.txt").read_text() + "#bindv6only 0\n")
    assert {_key(i) for i in facts.get(listeners)} == EXPECTED
    assert sockets_source(facts) == "command: ss -tulpnHe"
    ps = "#ps\n" + "{:>10} {:>10} {:>10} {:<32} {:<16} {}\n".format(
        PID, 1, 0, "root", "python3", "python3 x.py"
    )
    facts = _live(_proc_stdout(), **{PS_COMMAND: ps})
    items = facts.get(listeners)
    assert len(items) == len(EXPECTED) and {i.process for i in items} == {"python3"}
    assert sockets_source(facts) == "/proc/net/{tcp,tcp6,udp,udp6}"


def test_listeners_offline_and_missing() -> None:
    with pytest.raises(EvidenceError, match="no live sockets in an offline image"):
        Facts(Bundle("root:/x", "rootfs", False)).get(listeners)
    with pytest.raises(EvidenceError, match="printed nothing"):
        _live("").get(listeners)


def test_bindv6only_default_applies_without_ss_flag() -> None:
    old_ss = 'tcp LISTEN 0 128 :::22 :::* users:(("sshd",pid=5,fd=3))\n'  # iproute2 without v6only field
    (item,) = parse_ss(old_ss, bindv6only=False)
    assert (item.family, item.address, item.v6only, item.covers_ipv4) == (6, "::", False, True)
    (item,) = parse_ss(old_ss, bindv6only=True)
    assert item.covers_ipv4 is False


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_socket_parsers_never_raise(text: str) -> None:
    parse_ss(text)
    parse_proc_output(text, {})
    for name in ("tcp", "udp"):
        parse_proc_net(text, name, 6)


# -- processes -------------------------------------------------------------------------------------------
def test_parse_ps_sample() -> None:
    procs = parse_ps((SAMPLES / "ps-eo.txt").read_text())
    assert procs[0].pid == 1 and procs[0].comm == "process_api" and procs[0].user == "root"
    assert (
        not procs[0].kernel_thread and procs[1].kernel_thread and procs[2].kernel_thread
    )  # kthreadd + child
    assert procs[2].comm == "pool_workqueue_r" and procs[2].args == "[pool_workqueue_release]"


def test_ps_comm_with_spaces_and_long_user() -> None:
    line = "{:>10} {:>10} {:>10} {:<32} {:<16} {}".format(
        77, 1, 1000, "a-very-long-user-name-of-26", "Web Content", "/usr/lib/firefox/firefox -contentproc"
    )
    (p,) = parse_ps(line)
    assert (p.pid, p.ppid, p.uid, p.user, p.comm) == (
        77,
        1,
        1000,
        "a-very-long-user-name-of-26",
        "Web Content",
    )
    assert p.exe_name == "firefox"


def test_redaction() -> None:
    assert redact("mysql --password=hunter2 -h db") == "mysql --password=<redacted> -h db"
    assert (
        redact("jupyter notebook --NotebookApp.token=abc123")
        == "jupyter notebook --NotebookApp.token=<redacted>"
    )
    assert redact("curl https://user:pw@example.org/x") == "curl https://<redacted>@example.org/x"
    assert redact("app --api-key SECRET --port 80") == "app --api-key <redacted> --port 80"
    assert redact("/usr/sbin/sshd -D") == "/usr/sbin/sshd -D"


def test_proc_status_fallback_and_running() -> None:
    text = (
        "/proc/1/status:Name:\tsystemd\n/proc/1/status:PPid:\t0\n/proc/1/status:Uid:\t0\t0\t0\t0\n"
        "/proc/812/status:Name:\tsshd\n/proc/812/status:PPid:\t1\n/proc/812/status:Uid:\t0\t0\t0\t0\n"
        "/proc/900/status:Name:\tchronyd\n/proc/900/status:PPid:\t1\n/proc/900/status:Uid:\t105\t105\t105\t105\n"
    )
    procs = parse_proc_status(text, {0: "root"})
    assert [(p.pid, p.comm, p.user) for p in procs] == [
        (1, "systemd", "root"),
        (812, "sshd", "root"),
        (900, "chronyd", "105"),
    ]
    b = Bundle("t", "local", True, uid=0)
    b.commands[PS_COMMAND] = CommandRecord("#proc\n" + text)
    facts = Facts(b)
    assert running(facts, "sshd") and running(facts, "nope", "chronyd") and not running(facts, "ntpd")
    assert len(facts.get(processes)) == 3
    with pytest.raises(EvidenceError, match="offline"):
        Facts(Bundle("r", "rootfs", False)).get(processes)


def test_ps_snippet_redacts_in_shell() -> None:
    import subprocess

    from nectar_audit.facts.system.processes import _SED

    out = subprocess.run(
        ["sed", "-E", _SED],
        input="x --password=abc https://u:p@h/ --Token=zz -k key\n",
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert out == "x --password=<redacted> https://<redacted>@h/ --Token=<redacted> -k key\n"
