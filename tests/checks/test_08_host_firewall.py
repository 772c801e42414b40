"""Check-Security-08 (host firewall) on bundles made of the real dumps in tests/samples/firewall."""

from __future__ import annotations

import json
import stat

from nectar_audit.checks.host_firewall import run
from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.firewall.effective import IFACES_COMMAND, RULES_COMMAND, firewall, split_sections
from nectar_audit.facts.system.services import SYSTEMCTL_COMMAND
from nectar_audit.model import Finding, Status
from tests import SAMPLES

SAMPLES = SAMPLES / "firewall"
UBUNTU = b'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'
ROCKY = b'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
IFACES = (
    "#file /proc/net/route\nIface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
    "ens3\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    "#file /proc/net/dev\nInter-|\n face |\n    lo: 0 0\n  ens3: 0 0\n"
)


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def rules_output(nft: str | None = None, nft_rc: int = 0, **sections: str | tuple[str, int]) -> str:
    """The firewall.rules command record: '#nft' then iptables-save sections ('iptables_nft_save=...')."""
    parts = [
        "#nft",
        nft if nft is not None else '{"nftables": [{"metainfo": {"version": "1.0.6"}}]}',
        f"#rc {nft_rc}",
    ]
    for key, value in sections.items():
        text, rc = value if isinstance(value, tuple) else (value, 0)
        parts += [f"#{key.replace('_', '-')}", text.rstrip("\n"), f"#rc {rc}"]
    return "\n".join(parts) + "\n"


def live_bundle(
    rules: str,
    enabled: str = "",
    uid: int = 0,
    os_release: bytes = UBUNTU,
    files: dict[str, str] | None = None,
) -> Bundle:
    b = Bundle("vm", "local", True, uid=uid)
    b.add_file("/etc/os-release", os_release)
    b.commands[RULES_COMMAND] = CommandRecord(rules)
    b.commands[IFACES_COMMAND] = CommandRecord(IFACES)
    b.commands[SYSTEMCTL_COMMAND] = CommandRecord(f"#enabled\n{enabled}#running\n")
    for path, text in (files or {}).items():
        b.add_file(path, text.encode())
    return b


def ufw_files(enabled: bool = True) -> dict[str, str]:
    files = {
        f"/etc/ufw/{n}": sample(f"ufw/{n}")
        for n in ("user.rules", "user6.rules", "before.rules", "before6.rules", "after.rules", "after6.rules")
    }
    files["/etc/ufw/ufw.conf"] = sample("ufw/ufw.conf").replace(
        "ENABLED=yes", "ENABLED=yes" if enabled else "ENABLED=no"
    )
    files["/etc/default/ufw"] = sample("ufw/default-ufw")
    return files


def by_message(findings: list[Finding]) -> dict[str, Status]:
    return {f.message: f.status for f in findings}


def test_split_sections() -> None:
    out = rules_output(None, iptables_nft_save=("x\ny", 0), ip6tables_nft_save=("oops", 4))
    assert split_sections(out)["iptables-nft-save"] == ("x\ny", 0)
    assert split_sections(out)["ip6tables-nft-save"] == ("oops", 4)


def test_ufw_host_passes_with_open_port_list() -> None:
    rules = rules_output(
        sample("ufw-nft.json"),
        iptables_nft_save=sample("ufw-iptables-nft-save.v4"),
        ip6tables_nft_save=sample("ufw-ip6tables-nft-save.v6"),
    )
    facts = Facts(live_bundle(rules, "ufw.service enabled enabled\n", files=ufw_files()))
    fw = facts.get(firewall)
    assert fw.loaded_known and fw.iifs == ("ens3",)
    assert fw.active_v4 is True and fw.active_v6 is True and fw.enabled_at_boot
    # iptables-nft-save's view replaces nft's opaque view of the same tables
    assert [rs.source for rs in fw.loaded] == [
        "command: nft -j list ruleset",
        "command: iptables-nft-save",
        "command: ip6tables-nft-save",
    ]
    assert fw.loaded[0].tables == []
    findings = run(facts)
    msgs = by_message(findings)
    assert all(s is Status.PASS for s in msgs.values()), msgs
    assert findings[0].message == (
        "Firewall active for IPv4 and IPv6 and restored at boot by ufw; open to all: 22/tcp, 2222/tcp, "
        "60000-61000/udp"
    )
    assert msgs["IPv4 input is filtered: default drop/reject (policy drop of ip filter INPUT)"] is Status.PASS
    assert (
        "Effective IPv4 open ports now: open to all: 22/tcp, 2222/tcp, 60000-61000/udp; only from some "
        "networks: 5432/tcp (10.0.0.0/8)"
    ) in msgs
    assert "Effective IPv6 open ports now: open to all: 22/tcp, 60000-61000/udp" in msgs
    assert "IPv6 filtered by default at boot by ufw" in msgs
    v4 = next(f for f in findings if f.message.startswith("IPv4 input is filtered"))
    assert v4.evidence[0].source == "command: iptables-nft-save"


def test_docker_only_rules_are_not_a_firewall() -> None:
    rules = rules_output(None, iptables_nft_save=sample("docker-iptables-nft-save.v4"), ip6tables_nft_save="")
    facts = Facts(live_bundle(rules, "docker.service enabled enabled\n"))
    findings = run(facts)
    msgs = by_message(findings)
    assert (
        msgs[
            "The IPv4 rules loaded are only Docker/libvirt/fail2ban chains (DOCKER, "
            "DOCKER-ISOLATION-STAGE-1, "
            "DOCKER-ISOLATION-STAGE-2, DOCKER-USER) under an ACCEPT policy: not a firewall"
        ]
        is Status.FAIL
    )
    assert msgs["No IPv6 input filter is loaded"] is Status.FAIL
    assert msgs["No firewall is enabled at boot"] is Status.FAIL
    ports = next(f for f in findings if f.message.startswith("Effective IPv4"))
    assert ports.message == "Effective IPv4 open ports now: open to all: every TCP port, every UDP port"
    fw = facts.get(firewall)
    assert fw.evaluate("tcp", 8080, 4).allowed is True


def test_dnat_published_port_bypasses_a_default_drop() -> None:
    docker = sample("docker-iptables-nft-save.v4").replace(":INPUT ACCEPT", ":INPUT DROP")
    facts = Facts(live_bundle(rules_output(None, iptables_nft_save=docker)))
    fw = facts.get(firewall)
    assert fw.active_v4 is True
    v = fw.evaluate("tcp", 8080, 4)
    assert v.allowed is True
    assert v.rule.startswith("ip nat DOCKER: -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT")
    assert [r.label() for r in fw.open_ports(4) if r.verdict.allowed] == ["8080/tcp"]


def test_fail2ban_only_nft_is_not_a_firewall() -> None:
    findings = run(
        Facts(live_bundle(rules_output(sample("fail2ban-nft.json")), "fail2ban.service enabled enabled\n"))
    )
    msgs = by_message(findings)
    assert (
        "The IPv4 rules loaded are only Docker/libvirt/fail2ban chains (f2b-chain) under an ACCEPT policy: "
        "not a firewall"
    ) in msgs


def test_ipv4_only_filtering_fails_ipv6() -> None:
    legacy = sample("iptables-ipv4-only.rules.v4").replace("(nf_tables)", "(legacy)")
    rules = rules_output(None, iptables_legacy_save=legacy)
    files = {"/etc/iptables/rules.v4": sample("iptables-ipv4-only.rules.v4")}
    facts = Facts(live_bundle(rules, "netfilter-persistent.service enabled enabled\n", files=files))
    findings = run(facts)
    msgs = by_message(findings)
    assert msgs["IPv4 input is filtered: default drop/reject (policy drop of ip filter INPUT)"] is Status.PASS
    assert msgs["No IPv6 input filter is loaded"] is Status.FAIL
    assert msgs["At boot: no IPv6 input filter is restored at boot"] is Status.FAIL
    assert msgs["IPv4 filtered by default at boot by netfilter-persistent"] is Status.PASS
    v6 = next(f for f in findings if f.message == "No IPv6 input filter is loaded")
    assert "IPV6=yes" in (v6.remediation or "") and "rules.v6" in (v6.remediation or "")
    assert [rs.backend for rs in facts.get(firewall).loaded] == ["nft", "iptables-legacy"]


def test_rules_loaded_but_nothing_at_boot() -> None:
    rules = rules_output(
        None,
        iptables_nft_save=sample("ufw-iptables-nft-save.v4"),
        ip6tables_nft_save=sample("ufw-ip6tables-nft-save.v6"),
    )
    findings = run(Facts(live_bundle(rules, "", files=ufw_files(enabled=False))))
    msgs = by_message(findings)
    assert msgs["No firewall is enabled at boot (installed but not enabled: ufw)"] is Status.FAIL
    assert (
        msgs["The rules loaded now are not restored at boot: a reboot leaves the host unfiltered"]
        is Status.FAIL
    )


def test_ufw_enabled_but_unit_disabled() -> None:
    rules = rules_output(
        None,
        iptables_nft_save=sample("ufw-iptables-nft-save.v4"),
        ip6tables_nft_save=sample("ufw-ip6tables-nft-save.v6"),
    )
    findings = run(Facts(live_bundle(rules, "ssh.service enabled enabled\n", files=ufw_files())))
    msgs = by_message(findings)
    assert msgs["ufw: ufw.service is not enabled, so ufw does not start at boot"] is Status.FAIL


def test_non_root_cannot_read_loaded_rules() -> None:
    rules = rules_output(
        "Operation not permitted (you must be root)",
        1,
        iptables_nft_save=(
            "iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set "
            "generation id: Permission denied (you must be root)",
            1,
        ),
    )
    findings = run(Facts(live_bundle(rules, "ufw.service enabled enabled\n", uid=1000, files=ufw_files())))
    err = findings[0]
    assert err.status is Status.ERROR
    assert err.message.startswith(
        "needs root to read the loaded firewall rules (nft -j list ruleset failed (rc 1): "
        "Operation not permitted"
    )
    assert by_message(findings)["IPv4 filtered by default at boot by ufw"] is Status.PASS


def _offline(files: dict[str, str], links: tuple[str, ...] = ()) -> Bundle:
    b = Bundle("root:/img", "rootfs", False)
    b.add_file("/etc/os-release", ROCKY)
    for path, text in files.items():
        b.add_file(path, text.encode())
    b.stats["/etc/systemd/system"] = StatRecord(stat.S_IFDIR | 0o755, 0, 0, 4096, 0)
    b.stats["/usr/lib/systemd/systemd"] = StatRecord(stat.S_IFREG | 0o755, 0, 0, 1000, 0)
    for link in links:
        b.stats[link] = StatRecord(stat.S_IFLNK | 0o777, 0, 0, 40, 0)
    return b


def test_offline_firewalld_enabled() -> None:
    files = {
        "/etc/firewalld/firewalld.conf": sample("firewalld/firewalld.conf"),
        "/etc/firewalld/zones/public.xml": sample("firewalld/zones/public.xml"),
        "/usr/lib/firewalld/zones/public.xml": sample("firewalld/usr-zones/public.xml"),
    }
    b = _offline(files, ("/etc/systemd/system/multi-user.target.wants/firewalld.service",))
    findings = run(Facts(b))
    msgs = by_message(findings)
    assert msgs["IPv4 filtered by default at boot by firewalld"] is Status.PASS
    assert msgs["IPv6 filtered by default at boot by firewalld"] is Status.PASS
    assert (
        msgs[
            "IPv4 ports open at boot: open to all: 22/tcp, 8080/tcp (offline image: whether rules are loaded "
            "now cannot be known)"
        ]
        is Status.PASS
    )
    assert all(s is Status.PASS for s in msgs.values())
    assert findings[0].message == (
        "Firewall restored at boot for IPv4 and IPv6 by firewalld; open to all at boot: 22/tcp, 8080/tcp "
        "(offline image)"
    )


def test_offline_firewalld_installed_not_enabled() -> None:
    files = {
        "/etc/firewalld/firewalld.conf": sample("firewalld/firewalld.conf"),
        "/usr/lib/firewalld/zones/public.xml": sample("firewalld/usr-zones/public.xml"),
    }
    findings = run(Facts(_offline(files)))
    (f,) = findings
    assert (f.status, f.message) == (
        Status.FAIL,
        "No firewall is enabled at boot (installed but not enabled: firewalld)",
    )
    assert f.remediation is not None and f.remediation.startswith("dnf install firewalld")


def test_offline_nftables_conf() -> None:
    conf = (
        "flush ruleset\ntable ip filter {\n chain input {\n"
        "  type filter hook input priority 0; policy drop;\n"
        "  ct state established,related accept\n  iif lo accept\n  tcp dport 22 accept\n }\n}\n"
    )
    b = _offline({"/etc/nftables.conf": conf}, ("/etc/systemd/system/sysinit.target.wants/nftables.service",))
    msgs = by_message(run(Facts(b)))
    assert msgs["IPv4 filtered by default at boot by nftables"] is Status.PASS
    assert msgs["At boot: no IPv6 input filter is restored at boot"] is Status.FAIL
    b = _offline(
        {"/etc/nftables.conf": sample("debian12-nftables.conf")},
        ("/etc/systemd/system/sysinit.target.wants/nftables.service",),
    )
    msgs = by_message(run(Facts(b)))
    assert (
        msgs[
            "At boot: the IPv4 input chain(s) restored at boot (inet filter input) have no rules and accept "
            "everything"
        ]
        is Status.FAIL
    )


def test_no_firewall_tools_installed() -> None:
    findings = run(Facts(live_bundle("#nft\nsh: 1: nft: not found\n#rc 127\n")))
    msgs = by_message(findings)
    assert msgs["No IPv4 input filter is loaded"] is Status.FAIL
    assert (
        msgs["Note: neither nft nor iptables-save is installed: no firewall rules can be loaded"]
        is Status.PASS
    )


# --------------------------------------------------------------------------------------------------
# RHEL family: iptables-services, /etc/sysconfig/nftables.conf, firewalld's public zone with cockpit
RHEL_IPT_ENABLED = "iptables.service enabled enabled\nip6tables.service enabled enabled\n"
IPT_UNITS = (
    "/etc/systemd/system/multi-user.target.wants/iptables.service",
    "/etc/systemd/system/multi-user.target.wants/ip6tables.service",
)


def rhel_files(v6: bool = True) -> dict[str, str]:
    files = {
        "/etc/sysconfig/iptables": sample("rhel/sysconfig-iptables"),
        "/etc/sysconfig/nftables.conf": sample("rhel/rocky9-sysconfig-nftables.conf"),
    }
    if v6:
        files["/etc/sysconfig/ip6tables"] = sample("rhel/sysconfig-ip6tables")
    return files


def test_iptables_services_stock_rules_filter_both_families_at_boot() -> None:
    rules = rules_output(
        None,
        iptables_nft_save=sample("rhel/sysconfig-iptables"),
        ip6tables_nft_save=sample("rhel/sysconfig-ip6tables"),
    )
    facts = Facts(live_bundle(rules, RHEL_IPT_ENABLED, os_release=ROCKY, files=rhel_files()))
    findings = run(facts)
    msgs = by_message(findings)
    assert all(s is Status.PASS for s in msgs.values()), msgs
    # INPUT keeps policy ACCEPT: the final REJECT rule is the default.
    assert (
        msgs[
            "IPv4 input is filtered: default drop/reject (ip filter INPUT: -A INPUT -j REJECT --reject-with "
            "icmp-host-prohibited)"
        ]
        is Status.PASS
    )
    assert msgs["IPv4 filtered by default at boot by iptables-services"] is Status.PASS
    assert msgs["IPv6 filtered by default at boot by iptables-services"] is Status.PASS
    assert findings[0].message == (
        "Firewall active for IPv4 and IPv6 and restored at boot by iptables-services; open to all: 22/tcp"
    )
    fw = facts.get(firewall)
    # the Rocky 9 nftables.conf only has its include commented out, and nftables.service is not enabled
    assert [(m.name, m.enabled) for m in fw.boot] == [("nftables", False), ("iptables-services", True)]
    assert fw.evaluate("udp", 546, 6, which="boot").allowed is False  # dhcpv6-client: only to fe80::/64


def test_iptables_services_offline_stock_rules() -> None:
    files = {k: v for k, v in rhel_files().items() if "nftables" not in k}
    msgs = by_message(run(Facts(_offline(files, IPT_UNITS))))
    assert msgs["IPv4 filtered by default at boot by iptables-services"] is Status.PASS
    assert msgs["IPv6 filtered by default at boot by iptables-services"] is Status.PASS
    assert all(s is Status.PASS for s in msgs.values()), msgs


def test_iptables_services_without_sysconfig_ip6tables_fails_ipv6() -> None:
    rules = rules_output(None, iptables_nft_save=sample("rhel/sysconfig-iptables"))
    findings = run(Facts(live_bundle(rules, RHEL_IPT_ENABLED, os_release=ROCKY, files=rhel_files(v6=False))))
    msgs = by_message(findings)
    assert msgs["IPv4 filtered by default at boot by iptables-services"] is Status.PASS
    assert msgs["At boot: no IPv6 input filter is restored at boot"] is Status.FAIL
    assert msgs["No IPv6 input filter is loaded"] is Status.FAIL
    v6 = next(f for f in findings if f.message == "At boot: no IPv6 input filter is restored at boot")
    assert ("/etc/sysconfig/ip6tables", "absent") in [(e.source, e.detail) for e in v6.evidence]
    assert "ip6tables.service" in (v6.remediation or "")
    # offline too
    files = {"/etc/sysconfig/iptables": sample("rhel/sysconfig-iptables")}
    msgs = by_message(run(Facts(_offline(files, IPT_UNITS))))
    assert msgs["IPv4 filtered by default at boot by iptables-services"] is Status.PASS
    assert msgs["At boot: no IPv6 input filter is restored at boot"] is Status.FAIL


def test_iptables_services_installed_not_enabled() -> None:
    files = {k: v for k, v in rhel_files().items() if "nftables" not in k}
    (f,) = run(Facts(_offline(files)))
    assert (f.status, f.message) == (
        Status.FAIL,
        "No firewall is enabled at boot (installed but not enabled: iptables-services)",
    )


def test_rocky9_nftables_conf_enabled_loads_nothing() -> None:
    b = _offline(
        {"/etc/sysconfig/nftables.conf": sample("rhel/rocky9-sysconfig-nftables.conf")},
        ("/etc/systemd/system/multi-user.target.wants/nftables.service",),
    )
    msgs = by_message(run(Facts(b)))
    assert msgs["At boot: no IPv4 input filter is restored at boot"] is Status.FAIL
    assert msgs["At boot: no IPv6 input filter is restored at boot"] is Status.FAIL


def test_offline_firewalld_rocky9_public_zone_with_cockpit() -> None:
    files = {
        "/etc/firewalld/firewalld.conf": sample("firewalld/firewalld.conf"),
        "/usr/lib/firewalld/zones/public.xml": sample("rhel/rocky9-firewalld-public.xml"),
    }
    b = _offline(files, ("/etc/systemd/system/multi-user.target.wants/firewalld.service",))
    findings = run(Facts(b))
    msgs = by_message(findings)
    assert all(s is Status.PASS for s in msgs.values()), msgs
    assert findings[0].message == (
        "Firewall restored at boot for IPv4 and IPv6 by firewalld; open to all at boot: 22/tcp, 9090/tcp "
        "(offline image)"
    )
    assert (
        "IPv6 ports open at boot: open to all: 22/tcp, 9090/tcp (offline image: whether rules are loaded now "
        "cannot be known)"
    ) in msgs


# --------------------------------------------------------------------------------------------------
# Check 08 edge paths
def _nft_json(*rules: list[object], policy: str = "drop") -> str:
    objs: list[object] = [
        {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "filter", "handle": 1}},
        {
            "chain": {
                "family": "inet",
                "table": "filter",
                "name": "input",
                "handle": 1,
                "type": "filter",
                "hook": "input",
                "prio": 0,
                "policy": policy,
            }
        },
    ]
    for i, expr in enumerate(rules):
        objs.append({"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": i + 2, "expr": expr}})
    return json.dumps({"nftables": objs})


SSH_ACCEPT = [
    {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},
    {"accept": None},
]


def test_unreadable_statement_before_the_default_warns() -> None:
    # A statement the reader does not know (here a made-up one) may be a verdict: the default is undecided.
    for stmt in ({"frobnicate": {"level": 1}}, {"osf-verdict": None}):
        rules = rules_output(_nft_json([stmt], SSH_ACCEPT))
        msgs = by_message(run(Facts(live_bundle(rules, "nftables.service enabled enabled\n"))))
        warn = [m for m, s in msgs.items() if m.startswith("Cannot tell whether IPv4 input is filtered by default")]
        assert warn and msgs[warn[0]] is Status.WARN, msgs
        assert warn[0].endswith("not understood))"), warn
        assert not any(m.startswith("IPv4 input is filtered") for m in msgs), msgs
    # and an undecidable match guarding an accept, too
    osf = [{"match": {"op": "==", "left": {"osf": {"key": "name"}}, "right": "Linux"}}, {"accept": None}]
    msgs = by_message(run(Facts(live_bundle(rules_output(_nft_json(osf, SSH_ACCEPT))))))
    assert msgs[
        "Cannot tell whether IPv4 input is filtered by default (depends on match(es) the evaluator cannot "
        "decide: osf Linux)"
    ] is Status.WARN, msgs
    # while a known non-terminal statement (counter) changes nothing
    msgs = by_message(run(Facts(live_bundle(rules_output(_nft_json([{"counter": None}], SSH_ACCEPT))))))
    assert msgs["IPv4 input is filtered: default drop/reject (policy drop of inet filter input)"] is Status.PASS


def test_libvirt_only_rules_are_not_a_firewall() -> None:
    rules = rules_output(None, iptables_nft_save=sample("libvirt-iptables-nft-save.v4"), ip6tables_nft_save="")
    facts = Facts(live_bundle(rules, "libvirtd.service enabled enabled\n"))
    msgs = by_message(run(facts))
    assert (
        msgs[
            "The IPv4 rules loaded are only Docker/libvirt/fail2ban chains (LIBVIRT_FWI, LIBVIRT_FWO, "
            "LIBVIRT_FWX, LIBVIRT_INP, LIBVIRT_OUT, +1 more) under an ACCEPT policy: not a firewall"
        ]
        is Status.FAIL
    ), msgs
    assert msgs["Effective IPv4 open ports now: open to all: every TCP port, every UDP port"] is Status.PASS
    fw = facts.get(firewall)
    # LIBVIRT_INP accepts DNS/DHCP from virbr0 only; from the uplink everything falls through to ACCEPT.
    assert fw.evaluate("udp", 53, 4).allowed is True
    assert fw.only_helper_chains() == [
        "LIBVIRT_FWI",
        "LIBVIRT_FWO",
        "LIBVIRT_FWX",
        "LIBVIRT_INP",
        "LIBVIRT_OUT",
        "LIBVIRT_PRT",
    ]
