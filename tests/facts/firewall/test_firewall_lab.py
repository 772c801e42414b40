"""Lab tests: real rules loaded in network namespaces, audited live from inside, and a property test that
compares the firewall evaluator with real connection attempts.

Traffic goes only from the root namespace to the lab namespaces these tests create.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import selectors
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import entries
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.evidence.bundle import Bundle
from nectar_audit.evidence.needs import Needs, merge
from nectar_audit.facts import firewall as firewall_facts
from nectar_audit.facts import host as host_mod
from nectar_audit.facts.firewall import effective as fw_mod
from nectar_audit.facts.firewall.model import Verdict, evaluate
from nectar_audit.facts.firewall.nft import parse_nft_json, parse_nft_text
from nectar_audit.model import CheckResult, Status
from nectar_audit.targets.script_runner import ScriptTarget
from tests import lab

pytestmark = pytest.mark.lab

# A listener process for the lab host: TCP accept-and-close on the given ports, UDP echo on others.
LISTENER = r"""
import selectors, socket, sys
tcp = [int(p) for p in sys.argv[1].split(",") if p]
udp = [int(p) for p in sys.argv[2].split(",") if p]
sel = selectors.DefaultSelector()
for port in tcp:
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port)); s.listen(64); s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "tcp")
for port in udp:
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port)); s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "udp")
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        try:
            if key.data == "tcp":
                c, _ = s.accept(); c.close()
            else:
                data, peer = s.recvfrom(512); s.sendto(data, peer)
        except OSError:
            pass
"""

ONLY_NEEDS = merge([host_mod.NEEDS, firewall_facts.NEEDS])


class _OnlyMyNeeds:
    """A target gathering just the evidence of the facts these checks use (keeps lab tests fast)."""

    def __init__(self, target: ScriptTarget) -> None:
        self.target = target
        self.name = target.name
        self.kind = target.kind

    def gather(self, needs: Needs) -> Bundle:
        return self.target.gather(ONLY_NEEDS)


def _require() -> None:
    lab.require_netns()
    for name in ("nft", "iptables", "ufw"):
        lab.require_binary(name)


def _audit(host: lab.NetnsHost, config: Config | None = None) -> dict[str, CheckResult]:
    chosen = [e for e in entries() if e.id in ("Check-Security-08", "Check-Security-12", "Check-Security-15")]
    target = ScriptTarget(host.name, ["ip", "netns", "exec", host.name, "sh", "-s"], timeout=60)
    result, bundle = audit(_OnlyMyNeeds(target), chosen, config or Config())  # type: ignore[arg-type]
    assert result.error is None and bundle is not None
    return {c.id: c for c in result.checks}


def _messages(check: CheckResult) -> dict[str, Status]:
    return {f.message: f.status for f in check.findings}


def _listen(host: lab.NetnsHost, tcp: list[int], udp: list[int]) -> None:
    proc = host.spawn(
        [sys.executable, "-c", LISTENER, ",".join(map(str, tcp)), ",".join(map(str, udp))],
        log_name="listener",
    )
    lab.wait_until(lambda: "ready" in host.log(proc) or proc.poll() is not None, 15, "listener ready")
    assert proc.poll() is None, host.log(proc)


def _tcp_open(addr: str, port: int, timeout: float = 1.0) -> bool:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
            return True
        except OSError:
            return False


def _systemd_dir(tmp: Path, *units: str) -> Path:
    """An /etc/systemd replacement whose only enabled units are ``units`` (offline-style symlinks)."""
    root = tmp / "systemd"
    wants = root / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True)
    for unit in units:
        (wants / unit).symlink_to(f"/lib/systemd/system/{unit}")
    return root


def _empty_ufw(tmp: Path, enabled: bool = False) -> Path:
    d = tmp / "ufw"
    shutil.copytree("/etc/ufw", d, symlinks=True)
    conf = d / "ufw.conf"
    text = conf.read_text()
    conf.write_text(text.replace("ENABLED=yes", "ENABLED=no") if not enabled else text)
    return d


# --------------------------------------------------------------------------------------------------
def test_nftables_port_open_without_listener(tmp_path: Path) -> None:
    _require()
    rules = """flush ruleset
table inet filter {
    chain input {
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        iif "lo" accept
        tcp dport { 22, 8443 } accept
    }
}
"""
    etc = {
        "nftables.conf": rules,
        "systemd": _systemd_dir(tmp_path, "nftables.service"),
        "ufw": _empty_ufw(tmp_path),
    }
    with lab.netns_host(etc) as host:
        host.run(["nft", "-f", "/etc/nftables.conf"], check=True, timeout=30)
        _listen(host, [22, 5000], [])
        assert (
            _tcp_open(host.addr, 22)
            and not _tcp_open(host.addr, 8443, 0.5)
            and not _tcp_open(host.addr, 5000, 0.5)
        )
        checks = _audit(host, Config(allowed_ports=("22/tcp",)))
    c08, c15 = checks["Check-Security-08"], checks["Check-Security-15"]
    m08 = _messages(c08)
    assert c08.status is Status.PASS, m08
    assert (
        m08["IPv4 input is filtered: default drop/reject (policy drop of inet filter input)"] is Status.PASS
    )
    assert (
        m08["IPv6 input is filtered: default drop/reject (policy drop of inet filter input)"] is Status.PASS
    )
    assert m08["Effective IPv4 open ports now: open to all: 22/tcp, 8443/tcp"] is Status.PASS
    assert m08["IPv4 filtered by default at boot by nftables"] is Status.PASS
    assert c15.status is Status.FAIL
    assert c15.summary == "Port 8443/tcp is open in the firewall (IPv4 and IPv6) but nothing listens on it"
    table = next(f for f in c15.findings if f.message.startswith("Listeners × firewall"))
    details = [e.detail for e in table.evidence]
    assert any(
        d.startswith("0.0.0.0:5000/tcp by python") and "IPv4: closed (policy drop of inet filter input)" in d
        for d in details
    ), details
    assert any(
        d.startswith("0.0.0.0:22/tcp by python")
        and "IPv4: open (inet filter input: tcp dport { 22, 8443 } accept)" in d
        for d in details
    ), details


def test_ipv4_only_filtering(tmp_path: Path) -> None:
    _require()
    etc = {"systemd": _systemd_dir(tmp_path), "ufw": _empty_ufw(tmp_path)}
    with lab.netns_host(etc) as host:
        v6_root, v6_host = f"fd42:200:{host.slot}::1", f"fd42:200:{host.slot}::2"
        lab.run(["ip", "-6", "addr", "add", f"{v6_root}/64", "dev", host.veth, "nodad"], timeout=30)
        host.run(["ip", "-6", "addr", "add", f"{v6_host}/64", "dev", "eth0", "nodad"], check=True)
        for argv in (
            ["iptables", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
            [
                "iptables",
                "-A",
                "INPUT",
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                "ACCEPT",
            ],
            ["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
            ["iptables", "-P", "INPUT", "DROP"],
        ):
            host.run(argv, check=True)
        _listen(host, [22, 8080], [])
        # What the check says is what happens: IPv4 8080 is blocked, IPv6 8080 is wide open.
        assert not _tcp_open(host.addr, 8080, 0.5)
        lab.wait_until(lambda: _tcp_open(v6_host, 8080), 10, "IPv6 connect")
        checks = _audit(host)
    c08 = checks["Check-Security-08"]
    m08 = _messages(c08)
    assert c08.status is Status.FAIL
    assert m08["IPv4 input is filtered: default drop/reject (policy drop of ip filter INPUT)"] is Status.PASS
    assert m08["No IPv6 input filter is loaded"] is Status.FAIL
    assert any(m.startswith("No firewall is enabled at boot") and s is Status.FAIL for m, s in m08.items()), (
        m08
    )
    assert m08["Effective IPv4 open ports now: open to all: 22/tcp"] is Status.PASS
    assert m08["Effective IPv6 open ports now: open to all: every TCP port, every UDP port"] is Status.PASS


def test_ufw_enabled(tmp_path: Path) -> None:
    _require()
    etc = {"systemd": _systemd_dir(tmp_path, "ufw.service"), "ufw": _empty_ufw(tmp_path)}
    with lab.netns_host(etc) as host:
        for argv in (
            ["ufw", "--force", "enable"],
            ["ufw", "allow", "22/tcp"],
            ["ufw", "allow", "8080/tcp"],
            ["ufw", "allow", "from", "10.9.0.0/16", "to", "any", "port", "5432", "proto", "tcp"],
        ):
            res = host.run(argv, text=True, timeout=60)
            assert res.returncode == 0, res.stderr
        assert "ENABLED=yes" in (host.etc_dir / "ufw" / "ufw.conf").read_text()
        _listen(host, [22, 8080, 9000], [])
        assert _tcp_open(host.addr, 8080) and not _tcp_open(host.addr, 9000, 0.5)
        checks = _audit(host, Config(allowed_ports=("22/tcp", "8080/tcp")))
    c08, c15 = checks["Check-Security-08"], checks["Check-Security-15"]
    m08 = _messages(c08)
    assert c08.status is Status.PASS, m08
    assert (
        "Effective IPv4 open ports now: open to all: 22/tcp, 8080/tcp; only from some networks: 5432/tcp "
        "(10.9.0.0/16)"
    ) in m08
    assert m08["IPv4 filtered by default at boot by ufw"] is Status.PASS
    assert m08["IPv6 filtered by default at boot by ufw"] is Status.PASS
    m15 = _messages(c15)
    assert c15.status is Status.WARN, m15
    assert m15["Port 5432/tcp is open to 10.9.0.0/16 (IPv4) but nothing listens on it"] is Status.WARN


# --------------------------------------------------------------------------------------------------
# Property tests: evaluator verdict == real connection attempt, over IPv4 and IPv6, for the rule shapes
# the evaluator supports.
TCP_PORTS = [22, 80, 443, 8080]
UDP_PORTS = [53, 8080]
PROBES = [("tcp", p) for p in TCP_PORTS] + [("udp", p) for p in UDP_PORTS]
ALL_PORTS = sorted(set(TCP_PORTS + UDP_PORTS + [1000, 9999]))


# The gatherer's own command, with the runner's with_timeout (timeout wrapper) reduced to running the command.
_GATHER = 'with_timeout() { shift; "$@"; }\n' + fw_mod._RULES_SNIPPET


class PropHost:
    """A lab host with IPv4 and IPv6 (fd42:… with nodad and static neighbours, so that a ruleset that
    drops ICMPv6 does not break neighbour discovery) and listeners on every probed port."""

    def __init__(self, host: lab.NetnsHost) -> None:
        self.host = host
        self.addr4, self.gw4 = host.addr, host.gateway
        self.addr6, self.gw6 = f"fd42:201:{host.slot}::2", f"fd42:201:{host.slot}::1"
        lab.run(["ip", "-6", "addr", "add", f"{self.gw6}/64", "dev", host.veth, "nodad"], timeout=30)
        host.run(["ip", "-6", "addr", "add", f"{self.addr6}/64", "dev", "eth0", "nodad"], check=True)
        mac_root = Path(f"/sys/class/net/{host.veth}/address").read_text().strip()
        mac_host = host.run(
            ["cat", "/sys/class/net/eth0/address"], text=True, check=True, timeout=30
        ).stdout.strip()
        lab.run(
            ["ip", "-6", "neigh", "replace", self.addr6, "lladdr", mac_host, "dev", host.veth, "nud", "permanent"],
            timeout=30,
        )
        host.run(
            ["ip", "-6", "neigh", "replace", self.gw6, "lladdr", mac_root, "dev", "eth0", "nud", "permanent"],
            check=True,
        )

    def addr(self, family: int) -> str:
        return self.addr4 if family == 4 else self.addr6

    def peer(self, family: int) -> str:
        """The source address the probes come from (the root namespace's side of the veth)."""
        return self.gw4 if family == 4 else self.gw6

    def nets(self, family: int) -> list[str]:
        """Source networks for generated rules: some hold the prober, some do not."""
        if family == 4:
            net = ipaddress.ip_network(self.gw4 + "/24", strict=False)
            return [str(net), f"{self.gw4}/32", "10.0.0.0/8", "192.0.2.0/24", "198.51.100.0/25"]
        return [f"fd42:201:{self.host.slot}::/64", f"{self.gw6}/128", "fd00::/8", "2001:db8::/32", "fd42:999::/48"]

    def probe(self) -> dict[int, dict[tuple[str, int], bool]]:
        return {fam: _probe(self.addr(fam), PROBES) for fam in (4, 6)}

    def gathered(self) -> fw_mod.Firewall:
        """The firewall fact from the live gatherer's own command, run inside the host."""
        from nectar_audit.evidence.bundle import CommandRecord
        from nectar_audit.facts import Facts

        out = self.host.run(["sh", "-c", _GATHER], text=True, timeout=60, check=True).stdout
        b = Bundle(self.host.name, "exec", True, uid=0)
        b.commands[fw_mod.RULES_COMMAND] = CommandRecord(out)
        b.commands[fw_mod.IFACES_COMMAND] = CommandRecord("#file /proc/net/dev\nx\ny\n  eth0: 0\n")
        fw = Facts(b).get(fw_mod.firewall)
        assert fw.loaded_known, fw.loaded_error
        return fw


@pytest.fixture(scope="module")
def prop_host() -> Iterator[PropHost]:
    _require()
    with lab.netns_host() as host:
        ph = PropHost(host)
        _listen(host, TCP_PORTS, UDP_PORTS)
        for port in TCP_PORTS:
            lab.wait_for_tcp(host.addr, port)
        lab.wait_until(lambda: _tcp_open(ph.addr6, TCP_PORTS[0]), 10, "IPv6 connect")
        yield ph


_UDP_SOURCE_PORTS = itertools.cycle(range(40000, 60000))


def _bind_fresh_port(s: socket.socket, family: int) -> None:
    """A source port not used by the last thousands of probes: an ephemeral port the kernel hands out
    again could match the conntrack entry of an earlier example's flow (ESTABLISHED, accepted
    whatever the new rules say)."""
    for _ in range(100):
        try:
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", next(_UDP_SOURCE_PORTS)))
            return
        except OSError:
            continue
    raise OSError("no free UDP source port for the probe")


def _probe(addr: str, probes: list[tuple[str, int]], timeout: float = 0.4) -> dict[tuple[str, int], bool]:
    """Parallel TCP connects / UDP echo requests from the root namespace; True when they get through."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sel = selectors.DefaultSelector()
    result: dict[tuple[str, int], bool] = {}
    socks = []
    for proto, port in probes:
        if proto == "tcp":
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((addr, port))
            sel.register(s, selectors.EVENT_WRITE, (proto, port))
        else:
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.setblocking(False)
            _bind_fresh_port(s, family)
            s.connect((addr, port))
            s.send(b"ping")
            sel.register(s, selectors.EVENT_READ, (proto, port))
        socks.append(s)
        result[(proto, port)] = False
    deadline = time.monotonic() + timeout
    pending = len(probes)
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            proto, port = key.data
            if proto == "tcp":
                result[(proto, port)] = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            else:
                with contextlib.suppress(OSError):
                    result[(proto, port)] = s.recv(512) == b"ping"
            sel.unregister(s)
            pending -= 1
    for s in socks:
        s.close()
    sel.close()
    return result


def _compare(
    ph: PropHost,
    verdict: Callable[[str, int, int], Verdict],
    text: str,
    real: dict[int, dict[tuple[str, int], bool]] | None = None,
    what: str = "",
) -> None:
    """Every probe, both families: the verdict is decided and equals what the real connection did."""
    real = real if real is not None else ph.probe()
    for family in (4, 6):
        for proto, port in PROBES:
            v = verdict(proto, port, family)
            got = real[family][(proto, port)]
            assert v.allowed is not None, f"{what} IPv{family} {proto}/{port} undecided: {v.undecided_reason}\n{text}"
            assert v.allowed == got, (
                f"{what} IPv{family} {proto}/{port}: evaluator {v.describe()}, real "
                f"{'open' if got else 'closed'}\n{text}"
            )


def _ports_expr(ports: list[int], proto: str) -> str:
    return str(ports[0]) if len(ports) == 1 else "{ " + ", ".join(map(str, sorted(set(ports)))) + " }"


@st.composite
def rulesets(draw: st.DrawFn, ph: PropHost) -> str:
    """An nft ruleset: table ip, ip6 or inet; saddr matches of the families the table sees."""
    family = draw(st.sampled_from(["inet", "ip", "ip6"]))
    saddr_fams = {"inet": [4, 6], "ip": [4], "ip6": [6]}[family]

    def rule(verdicts: list[str]) -> str:
        parts = []
        if draw(st.booleans()):
            fam = draw(st.sampled_from(saddr_fams))
            chosen = draw(st.lists(st.sampled_from(ph.nets(fam)), min_size=1, max_size=2, unique=True))
            neg = draw(st.sampled_from(["", "", "!= "]))
            sel = chosen[0] if len(chosen) == 1 else "{ " + ", ".join(chosen) + " }"
            parts.append(f"{'ip' if fam == 4 else 'ip6'} saddr {neg}{sel}")
        proto = draw(st.sampled_from(["tcp", "udp", "th", None]))
        if proto is not None:
            shape = draw(st.sampled_from(["one", "set", "range"]))
            if shape == "range":
                lo = draw(st.sampled_from(ALL_PORTS))
                hi = draw(st.sampled_from([p for p in ALL_PORTS if p >= lo]))
                parts.append(f"{proto} dport {lo}-{hi}" if hi > lo else f"{proto} dport {lo}")
            else:
                ports = draw(
                    st.lists(st.sampled_from(ALL_PORTS), min_size=1, max_size=1 if shape == "one" else 3)
                )
                parts.append(f"{proto} dport {_ports_expr(ports, proto)}")
        if draw(st.integers(0, 5)) == 0:
            parts.append('iif "lo"')
        verdict = draw(st.sampled_from(verdicts))
        return " ".join([*parts, verdict]) if parts or verdict != "jump custom" else verdict

    policy = draw(st.sampled_from(["accept", "drop"]))
    user_rules = draw(st.lists(st.just(None), max_size=3))
    user = [rule(["accept", "drop", "return", "reject"]) for _ in user_rules]
    main = []
    if draw(st.booleans()):
        main.append("ct state established,related accept")
    if draw(st.booleans()):
        main.append('iif "lo" accept')
    verdicts = ["accept", "drop", "reject"] + (["jump custom", "goto custom"] if user_rules else [])
    main += [rule(verdicts) for _ in range(draw(st.integers(0, 5)))]
    lines = [
        "flush ruleset",
        f"table {family} filter {{",
        "  chain input {",
        f"    type filter hook input priority filter; policy {policy};",
        *[f"    {r}" for r in main],
        "  }",
    ]
    if user_rules:
        lines += ["  chain custom {", *[f"    {r}" for r in user], "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


@settings(
    max_examples=int(os.environ.get("NA_FW_PROP_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_evaluator_matches_real_connections(prop_host: PropHost, data: st.DataObject) -> None:
    ph = prop_host
    host = ph.host
    text = data.draw(rulesets(ph), label="ruleset")
    rules_file = host.workdir / "rules.nft"
    rules_file.write_text(text)
    res = host.run(["nft", "-f", str(rules_file)], text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    dump = host.run(["nft", "-j", "list", "ruleset"], text=True, timeout=30, check=True).stdout
    loaded = parse_nft_json(dump)
    from_text = parse_nft_text({"/r.nft": text}, "/r.nft")

    def verdict(proto: str, port: int, family: int) -> Verdict:
        v = evaluate([loaded], proto, port, family, saddr=ph.peer(family), iifs=("eth0",))
        t = evaluate([from_text], proto, port, family, saddr=ph.peer(family), iifs=("eth0",))
        assert t.allowed == v.allowed, f"text reader disagrees on IPv{family} {proto}/{port}: {t.describe()}\n{text}"
        return v

    _compare(ph, verdict, text)


@st.composite
def iptables_rulesets(draw: st.DrawFn, ph: PropHost, family: int) -> str:
    """iptables-restore (family 4) or ip6tables-restore (family 6) text in the shapes the reader supports."""
    nets = ph.nets(family)[:4]

    def rule(chain: str, targets: list[str]) -> str:
        parts = [f"-A {chain}"]
        if draw(st.booleans()):
            parts.append(f"{draw(st.sampled_from(['', '', '! ']))}-s {draw(st.sampled_from(nets))}")
        proto = draw(st.sampled_from(["tcp", "udp", None]))
        if proto:
            parts.append(f"-p {proto}")
            shape = draw(st.sampled_from(["none", "dport", "range", "multiport", "not"]))
            if shape == "dport":
                parts.append(f"-m {proto} --dport {draw(st.sampled_from(ALL_PORTS))}")
            elif shape == "not":
                parts.append(f"-m {proto} ! --dport {draw(st.sampled_from(ALL_PORTS))}")
            elif shape == "range":
                lo = draw(st.sampled_from(ALL_PORTS))
                hi = draw(st.sampled_from([p for p in ALL_PORTS if p >= lo]))
                parts.append(f"--dport {lo}:{hi}")
            elif shape == "multiport":
                ports = draw(st.lists(st.sampled_from(ALL_PORTS), min_size=1, max_size=3, unique=True))
                parts.append("-m multiport --dports " + ",".join(map(str, ports)))
        if draw(st.integers(0, 5)) == 0:
            parts.append("-i lo")
        if draw(st.integers(0, 5)) == 0:
            parts.append("-m conntrack --ctstate NEW")
        parts.append(draw(st.sampled_from(targets)))
        return " ".join(parts)

    policy = draw(st.sampled_from(["ACCEPT", "DROP"]))
    with_user = draw(st.booleans())
    lines = ["*filter", f":INPUT {policy} [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    if with_user:
        lines.append(":custom - [0:0]")
    if draw(st.booleans()):
        lines.append("-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    targets = ["-j ACCEPT", "-j DROP", "-j REJECT"] + (["-j custom", "-g custom"] if with_user else [])
    lines += [rule("INPUT", targets) for _ in range(draw(st.integers(0, 5)))]
    if with_user:
        lines += [
            rule("custom", ["-j ACCEPT", "-j DROP", "-j RETURN"]) for _ in range(draw(st.integers(0, 3)))
        ]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


_BLANK = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"


def _reset_rules(host: lab.NetnsHost) -> None:
    """No rules anywhere: nftables flushed, legacy filter tables empty with ACCEPT policies."""
    host.run(["nft", "flush", "ruleset"], check=True, timeout=30)
    for tool in ("iptables-legacy-restore", "ip6tables-legacy-restore"):
        host.run([tool], input=_BLANK, text=True, check=True, timeout=30)


def _restore(host: lab.NetnsHost, backend: str, family: int, text: str) -> None:
    tool = f"{'ip6tables' if family == 6 else 'iptables'}-{backend}-restore"
    res = host.run([tool], input=text, text=True, timeout=30)
    assert res.returncode == 0, f"{tool}: {res.stderr}\n{text}"


@settings(
    max_examples=int(os.environ.get("NA_FW_PROP_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_iptables_reader_matches_real_connections(prop_host: PropHost, data: st.DataObject) -> None:
    """The live path of the firewall fact (the gatherer's command, both backends, iptables and
    ip6tables) against reality."""
    ph = prop_host
    backend = data.draw(st.sampled_from(["legacy", "nft"]), label="backend")
    v4 = data.draw(iptables_rulesets(ph, 4), label="iptables")
    v6 = data.draw(iptables_rulesets(ph, 6), label="ip6tables")
    _reset_rules(ph.host)
    _restore(ph.host, backend, 4, v4)
    _restore(ph.host, backend, 6, v6)
    fw = ph.gathered()
    _compare(
        ph,
        lambda proto, port, family: fw.evaluate(proto, port, family, saddr=ph.peer(family)),
        f"{backend}\n{v4}\n{v6}",
    )


@settings(
    max_examples=int(os.environ.get("NA_FW_PROP_EXAMPLES_BOTH", "10")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_legacy_and_nft_rules_both_apply(prop_host: PropHost, data: st.DataObject) -> None:
    """Non-empty rules in iptables-legacy and iptables-nft at the same time: a packet must pass both
    (each backend's tables hook into input on their own), and the gatherer reads both."""
    ph = prop_host
    legacy = {fam: data.draw(iptables_rulesets(ph, fam), label=f"legacy v{fam}") for fam in (4, 6)}
    nft = {fam: data.draw(iptables_rulesets(ph, fam), label=f"nft v{fam}") for fam in (4, 6)}
    _reset_rules(ph.host)
    for fam in (4, 6):
        _restore(ph.host, "legacy", fam, legacy[fam])
        _restore(ph.host, "nft", fam, nft[fam])
    fw = ph.gathered()
    backends = sorted({rs.backend for rs in fw.loaded if rs.tables})
    assert "iptables-legacy" in backends and "iptables-nft" in backends, backends
    text = f"legacy:\n{legacy[4]}{legacy[6]}nft:\n{nft[4]}{nft[6]}"
    _compare(ph, lambda proto, port, family: fw.evaluate(proto, port, family, saddr=ph.peer(family)), text)


def test_legacy_and_nft_rules_both_apply_example(prop_host: PropHost) -> None:
    """The same, one fixed case: legacy opens 22 and 80, iptables-nft opens 22 and 443: only 22 gets in.

    The nf_tables rules are many (over 4 KiB of iptables-nft-save output): with legacy tables present,
    iptables-nft-save warns on stderr while stdout is flushed in pieces, and a gatherer that merged the two
    read a rule split by the warning (a ufw host lost its last rules that way)."""
    ph = prop_host

    def rules(ports: tuple[int, ...], padding: int = 0) -> str:
        accept = "".join(f"-A INPUT -p tcp -m tcp --dport {p} -j ACCEPT\n" for p in ports)
        pad = "".join(f"-A INPUT -p udp -m udp --dport {30000 + i} -j ACCEPT\n" for i in range(padding))
        return f"*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{pad}{accept}COMMIT\n"

    _reset_rules(ph.host)
    for fam in (4, 6):
        _restore(ph.host, "legacy", fam, rules((22, 80)))
        _restore(ph.host, "nft", fam, rules((22, 443), padding=150))
    real = ph.probe()
    for fam in (4, 6):
        assert [p for (proto, p), ok in real[fam].items() if ok] == [22], real
    fw = ph.gathered()
    _compare(ph, lambda proto, port, family: fw.evaluate(proto, port, family, saddr=ph.peer(family)), "", real)
    for rs in fw.loaded:
        assert not rs.errors, (rs.source, rs.errors)
        if rs.backend == "iptables-nft":
            (t,) = rs.tables
            assert len(t.chains["INPUT"].rules) == 152, [r.text for r in t.chains["INPUT"].rules[-3:]]
    v = fw.evaluate("tcp", 80, 4)
    assert v.allowed is False and fw.source_of(v) == "command: iptables-nft-save", (v.describe(), fw.source_of(v))
    assert v.rule == "policy drop of ip filter INPUT", v.describe()
    v = fw.evaluate("tcp", 443, 6)
    assert v.allowed is False and fw.source_of(v) == "command: ip6tables-legacy-save", v.describe()
    assert v.rule == "policy drop of ip6 filter INPUT (iptables-legacy)", v.describe()
    _reset_rules(ph.host)


# --------------------------------------------------------------------------------------------------
# ufw: random rule sequences through the real ufw, read back by the live gatherer, against reality.
@pytest.fixture(scope="module")
def ufw_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PropHost]:
    _require()
    tmp = tmp_path_factory.mktemp("ufwprop")
    etc = {"systemd": _systemd_dir(tmp, "ufw.service"), "ufw": _empty_ufw(tmp)}
    with lab.netns_host(etc) as host:
        ph = PropHost(host)
        _listen(host, TCP_PORTS, UDP_PORTS)
        for port in TCP_PORTS:
            lab.wait_for_tcp(host.addr, port)
        lab.wait_until(lambda: _tcp_open(ph.addr6, TCP_PORTS[0]), 10, "IPv6 connect")
        yield ph


@st.composite
def ufw_commands(draw: st.DrawFn, ph: PropHost) -> list[list[str]]:
    """`ufw allow|deny|limit [from NET] to any port P proto X`, 1 to 4 of them."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["allow", "allow", "deny", "limit"]))
        proto = draw(st.sampled_from(["tcp", "udp"]))
        port = draw(st.sampled_from(TCP_PORTS if proto == "tcp" else [*UDP_PORTS, 9999]))
        src = draw(st.sampled_from([None, None, 4, 6]))
        argv = ["ufw", action]
        if src is not None:
            argv += ["from", draw(st.sampled_from(ph.nets(src)))]
        out.append([*argv, "to", "any", "port", str(port), "proto", proto])
    return out


@settings(
    max_examples=int(os.environ.get("NA_FW_UFW_EXAMPLES", "8")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_ufw_rules_match_real_connections(ufw_host: PropHost, data: st.DataObject) -> None:
    ph = ufw_host
    cmds = data.draw(ufw_commands(ph), label="ufw commands")
    _reset_rules(ph.host)
    for argv in (["ufw", "--force", "reset"], ["ufw", "--force", "enable"], *cmds):
        res = ph.host.run(argv, text=True, timeout=60)
        assert res.returncode == 0, f"{argv}: {res.stdout}{res.stderr}"
    fw = ph.gathered()
    try:
        _compare(
            ph,
            lambda proto, port, family: fw.evaluate(proto, port, family, saddr=ph.peer(family)),
            "\n".join(" ".join(c) for c in cmds),
            what="loaded",
        )
    except AssertionError as exc:
        dump = ph.host.run(["sh", "-c", _GATHER], text=True, timeout=60)
        raise AssertionError(f"{exc}\n--- gathered:\n{dump.stdout}") from None
