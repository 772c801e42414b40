"""DNS recursion (Check-Security-05): parsers on real default configs, ACL semantics, check statuses."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import Entry, all_needs
from nectar_audit.checks import dns_recursion
from nectar_audit.config import Config
from nectar_audit.engine import run_check
from nectar_audit.evidence.bundle import Bundle, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.net import (
    ANY4,
    LOOPBACK,
    Grant,
    LocalNets,
    intersect,
    judge,
    local_networks,
    longest_prefix_grant,
    parse_fib_trie,
    parse_if_inet6,
    parse_net,
    subtract,
)
from nectar_audit.facts.network.dns import dns_servers, parse_dnsmasq_conf, parse_named_conf, parse_unbound_conf
from nectar_audit.facts.network.reach import Reach, merge_reach
from nectar_audit.model import Status
from tests import SAMPLES

SAMPLES = SAMPLES / "dns"
N = ipaddress.ip_network
DEBIAN_BIND = {
    "/etc/bind/named.conf": "named.conf.debian12",
    "/etc/bind/named.conf.options": "named.conf.options.debian12",
    "/etc/bind/named.conf.local": "named.conf.local.debian12",
    "/etc/bind/named.conf.default-zones": "named.conf.default-zones.debian12",
}
ENTRY = Entry(dns_recursion.CHECK.id, "dns?", "dns_recursion", dns_recursion.CHECK)
OS_DEBIAN = 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def ss_line(proto: str, addr: str, proc: str | None, pid: int = 100) -> str:
    state = "LISTEN" if proto == "tcp" else "UNCONN"
    users = f' users:(("{proc}",pid={pid},fd=5))' if proc else ""
    peer = "[::]:*" if addr.startswith("[") else "0.0.0.0:*"
    return f"{proto} {state} 0 0 {addr} {peer}{users} uid:0 ino:1 sk:1 <->"


def make_bundle(
    files: dict[str, str],
    live: bool = False,
    listeners: list[str] | None = None,
    stats: tuple[str, ...] = (),
    public: bool = False,
) -> Bundle:
    b = Bundle(
        "t", "local" if live else "rootfs", live, uid=0 if live else None, sanitizers=all_needs().sanitize
    )
    b.add_file("/etc/os-release", OS_DEBIAN.encode())
    for path, text in files.items():
        b.add_file(path, text.encode())
    for path in stats:
        b.stats[path] = StatRecord(0o100755, 0, 0, 1000, 0)
    if live:
        from nectar_audit.evidence.bundle import CommandRecord
        from nectar_audit.facts.system.sockets import SS_COMMAND

        body = "\n".join(listeners or [])
        b.commands[SS_COMMAND] = CommandRecord(f"#ss\n{body}\n#bindv6only 0\n")
        if public:
            b.add_file("/proc/net/fib_trie", sample("fib_trie.public-115.146.84.5").encode())
            b.add_file("/proc/net/if_inet6", sample("if_inet6.public-2001-388-608c-8a").encode())
    return b


def debian_bind(options: str | None = None) -> dict[str, str]:
    files = {path: sample(name) for path, name in DEBIAN_BIND.items()}
    if options is not None:
        files["/etc/bind/named.conf.options"] = options
    return files


def check(b: Bundle, config: Config | None = None) -> tuple[Status, list[tuple[Status, str]]]:
    res = run_check(ENTRY, Facts(b, config or Config()))
    return res.status, [(f.status, f.message) for f in res.findings]


# ---------------------------------------------------------------------------------------------------
# Network sets and access lists
def test_subtract_intersect() -> None:
    assert subtract([N("10.0.0.0/8")], [N("10.1.0.0/16")]) != []
    assert subtract([N("10.1.0.0/16")], [N("10.0.0.0/8")]) == []
    assert intersect([ANY4], [N("192.168.0.0/16")]) == [N("192.168.0.0/16")]
    assert intersect([N("10.0.0.0/8")], [N("::/0")]) == []
    assert parse_net("10/8") == N("10.0.0.0/8")
    assert parse_net("192.168.1") is None
    assert parse_net("fe80::1%eth0") == N("fe80::1/128")


def test_bind_acl_first_match_negation_nested_and_named() -> None:
    text = """
    acl "lab" { 10.1.0.0/16; !10.1.2.0/24; };
    options {
      allow-recursion { !10.9.0.0/16; lab; 10.0.0.0/8; key tsig1; };
    };
    """
    _, problems = parse_named_conf(text)
    assert problems == []
    b = make_bundle({"/etc/bind/named.conf": text})
    srv = dns_servers(Facts(b, Config()))[0]
    g = srv.recursion[0].grant
    allowed = set(g.networks)
    # 10.9/16 is excluded first; the named ACL's negation of 10.1.2/24 is "no match" in the outer list, so
    # 10.0.0.0/8 grants it again (BIND's rule for negative matches inside nested ACLs).
    assert not intersect(allowed, [N("10.9.0.0/16")])
    assert intersect(allowed, [N("10.1.2.0/24")]) == [N("10.1.2.0/24")]
    assert g.keys == ("tsig1",)
    v = judge(g, [], None)
    assert v.level == "untrusted" and v.text == "lab, 10.0.0.0/8"
    assert judge(g, [N("10.0.0.0/8")], None).level == "trusted"


def test_unbound_longest_prefix_wins() -> None:
    g = longest_prefix_grant(
        [
            (N("0.0.0.0/0"), False, "0.0.0.0/0 refuse", "x:1"),
            (N("10.0.0.0/8"), True, "10.0.0.0/8 allow", "x:2"),
            (N("10.5.0.0/16"), False, "10.5.0.0/16 refuse", "x:3"),
        ]
    )
    assert intersect(g.networks, [N("10.5.1.0/24")]) == []
    assert intersect(g.networks, [N("10.6.0.0/16")]) == [N("10.6.0.0/16")]


def test_fib_trie_and_if_inet6() -> None:
    addrs, nets = parse_fib_trie(sample("fib_trie.public-115.146.84.5"))
    assert ipaddress.ip_address("115.146.84.5") in addrs
    assert N("115.146.84.0/22") in nets
    a6, n6 = parse_if_inet6(sample("if_inet6.public-2001-388-608c-8a"))
    assert ipaddress.ip_address("2001:388:608c:8a::5") in a6 and N("2001:388:608c:8a::/64") in n6
    b = make_bundle({}, live=True, public=True)
    local = local_networks(Facts(b, Config()))
    assert local is not None and N("115.146.84.0/22") in local.networks


# ---------------------------------------------------------------------------------------------------
# Real default configurations
def test_debian_named_conf_defaults() -> None:
    b = make_bundle(debian_bind())
    [srv] = dns_servers(Facts(b, Config()))
    assert srv.kind == "bind" and srv.problems == []
    [scope] = srv.recursion
    assert scope.recursion
    assert judge(scope.grant, [], None).level == "localnets"
    assert srv.listen.beyond_loopback is True
    assert "listen-on-v6 { any; }" in srv.listen.text


def test_rocky_named_conf_is_localhost_only() -> None:
    b = make_bundle({"/etc/named.conf": sample("named.conf.rocky9")})
    [srv] = dns_servers(Facts(b, Config()))
    assert srv.listen.beyond_loopback is False
    v = judge(srv.recursion[0].grant, [], None)
    assert v.level == "local"  # allow-query { localhost; } is the fallback of allow-recursion
    assert any("allow-query" in e.detail for e in srv.recursion[0].evidence)
    # The RHEL includes (zones, root key, crypto policy) are not gathered and need not be.
    assert [p for p in srv.problems if "named.rfc1912.zones" not in p] == []


def test_debian_unbound_conf_default() -> None:
    b = make_bundle({"/etc/unbound/unbound.conf": sample("unbound.conf.debian12")})
    [srv] = dns_servers(Facts(b, Config()))
    assert srv.listen.beyond_loopback is False
    assert judge(srv.recursion[0].grant, [], None).level == "local"


def test_rocky_unbound_conf_default() -> None:
    entries, _ = parse_unbound_conf(sample("unbound.conf.rocky9-effective"))
    assert ("remote-control", "control-enable", "yes") in [(e.section, e.key, e.value) for e in entries]
    b = make_bundle({"/etc/unbound/unbound.conf": sample("unbound.conf.rocky9-effective")})
    [srv] = dns_servers(Facts(b, Config()))
    assert srv.listen.beyond_loopback is False
    assert judge(srv.recursion[0].grant, [], None).level == "local"


def test_debian_dnsmasq_defaults_local_service() -> None:
    opts = parse_dnsmasq_conf(sample("dnsmasq.conf.debian12"))
    assert opts == []  # everything is commented out
    b = make_bundle(
        {
            "/etc/dnsmasq.conf": sample("dnsmasq.conf.debian12"),
            "/etc/default/dnsmasq": sample("default-dnsmasq.debian12"),
            "/usr/share/dnsmasq/init-system-common": sample("init-system-common.debian12"),
        }
    )
    [srv] = dns_servers(Facts(b, Config()))
    assert srv.kind == "dnsmasq"
    assert judge(srv.recursion[0].grant, [], None).level == "localnets"


def test_dnsmasq_without_debian_init_answers_everyone_and_listen_address_is_loopback() -> None:
    b = make_bundle({"/etc/dnsmasq.conf": "domain-needed\n"})
    [srv] = dns_servers(Facts(b, Config()))
    assert judge(srv.recursion[0].grant, [], None).level == "untrusted"
    b = make_bundle(
        {
            "/etc/dnsmasq.conf": "listen-address=127.0.0.1\nbind-interfaces\n",
            "/etc/dnsmasq.d/lab.conf": "server=9.9.9.9\n",
        }
    )
    [srv] = dns_servers(Facts(b, Config()))
    assert srv.listen.beyond_loopback is False
    b = make_bundle({"/etc/dnsmasq.conf": "port=0\n"})
    [srv] = dns_servers(Facts(b, Config()))
    assert not srv.recursion[0].recursion


def test_recursor_and_resolved() -> None:
    b = make_bundle(
        {"/etc/powerdns/recursor.conf": "local-address=0.0.0.0\nallow-from=0.0.0.0/0\napi-key=s3cr3t\n"}
    )
    assert "s3cr3t" not in (b.text("/etc/powerdns/recursor.conf") or "")
    [srv] = dns_servers(Facts(b, Config()))
    assert srv.listen.beyond_loopback and judge(srv.recursion[0].grant, [], None).level == "untrusted"
    b = make_bundle({"/etc/powerdns/recursor.conf": "# defaults\n"})
    [srv] = dns_servers(Facts(b, Config()))
    assert srv.listen.beyond_loopback is False
    b = make_bundle(
        {"/etc/systemd/resolved.conf": "[Resolve]\n#DNS=\n"}, stats=("/usr/lib/systemd/systemd-resolved",)
    )
    status, findings = check(b)
    assert status is Status.PASS and "loopback only" in findings[0][1]


def test_bind_tsig_secret_is_sanitised() -> None:
    b = make_bundle({"/etc/bind/named.conf": 'key "k" { algorithm hmac-sha256; secret "c2VjcmV0"; };\n'})
    assert "c2VjcmV0" not in (b.text("/etc/bind/named.conf") or "")


# ---------------------------------------------------------------------------------------------------
# The check's statuses
NAMED_ANY = sample("named.conf.options.debian12").replace(
    "listen-on-v6 { any; };", "listen-on-v6 { any; };\n\tallow-recursion { any; };"
)
NAMED_LISTENERS = [
    ss_line("udp", "10.0.0.5:53", "named"),
    ss_line("tcp", "10.0.0.5:53", "named"),
    ss_line("udp", "127.0.0.1:53", "named"),
]


def test_not_applicable_without_dns_server() -> None:
    assert check(make_bundle({}))[0] is Status.NOT_APPLICABLE


def test_fail_open_recursion_running() -> None:
    b = make_bundle(debian_bind(NAMED_ANY), live=True, listeners=NAMED_LISTENERS)
    status, findings = check(b)
    assert status is Status.FAIL
    assert findings[0][1].startswith(
        "BIND (named) allows recursion to any host, listening on 10.0.0.5:53/tcp, 10.0.0.5:53/udp"
    )


def test_warn_open_recursion_offline() -> None:
    status, findings = check(make_bundle(debian_bind(NAMED_ANY)))
    assert status is Status.WARN
    assert "allows recursion to any host, configured to listen on" in findings[0][1]


def test_warn_localnets_on_public_subnet() -> None:
    b = make_bundle(debian_bind(), live=True, listeners=NAMED_LISTENERS, public=True)
    status, findings = check(b)
    assert status is Status.WARN
    msg = findings[0][1]
    assert "localnets = 115.146.84.0/22, 2001:388:608c:8a::/64 (public subnets)" in msg
    assert "other tenants" in msg


def test_pass_localnets_trusted() -> None:
    b = make_bundle(debian_bind(), live=True, listeners=NAMED_LISTENERS, public=True)
    cfg = Config(trusted_networks=(N("115.146.84.0/22"), N("2001:388:608c:8a::/64")))
    status, findings = check(b, cfg)
    assert status is Status.PASS
    assert (
        findings[0][1] == "BIND (named) allows recursion to trusted networks only (115.146.84.0/22, "
        "2001:388:608c:8a::/64)"
    )


def test_fail_untrusted_network_names_it() -> None:
    opts = NAMED_ANY.replace("allow-recursion { any; };", "allow-recursion { localhost; 192.168.0.0/16; };")
    b = make_bundle(debian_bind(opts), live=True, listeners=NAMED_LISTENERS)
    status, findings = check(b)
    assert status is Status.FAIL
    assert "allows recursion to 192.168.0.0/16, which is not a trusted network" in findings[0][1]
    assert check(b, Config(trusted_networks=(N("192.168.0.0/16"),)))[0] is Status.PASS


def test_pass_when_only_loopback_listeners() -> None:
    b = make_bundle(debian_bind(NAMED_ANY), live=True, listeners=[ss_line("udp", "127.0.0.1:53", "named")])
    status, findings = check(b)
    assert status is Status.PASS
    assert findings[0][1].startswith("BIND (named) listens on loopback only (127.0.0.1:53/udp)")
    assert "its access list would allow any host" in findings[0][1]


def test_recursion_no_and_views() -> None:
    opts = (
        'options { recursion no; };\nview "inside" { match-clients { 10.0.0.0/8; }; recursion yes; '
        'allow-recursion { any; }; };\nview "outside" { match-clients { any; }; };\n'
    )
    b = make_bundle({"/etc/bind/named.conf": opts}, live=True, listeners=NAMED_LISTENERS)
    status, findings = check(b)
    assert status is Status.FAIL  # match-clients 10/8 ∩ any = 10/8, not trusted
    assert findings[0][0] is Status.FAIL and "(view inside) allows recursion to" in findings[0][1]
    assert findings[1] == (Status.PASS, "BIND (named) (view outside): recursion is disabled")
    status, _ = check(b, Config(trusted_networks=(N("10.0.0.0/8"),)))
    assert status is Status.PASS


def test_unresolved_include_warns() -> None:
    files = debian_bind()
    files["/etc/bind/named.conf"] += 'include "/srv/dns/extra.conf";\n'
    status, findings = check(
        make_bundle(files, live=True, listeners=[ss_line("udp", "127.0.0.1:53", "named")])
    )
    assert status is Status.WARN
    assert any("included file /srv/dns/extra.conf was not gathered" in m for _, m in findings)


def test_unknown_process_on_port_53_is_attributed_or_warned() -> None:
    lst = [ss_line("udp", "10.0.0.5:53", None)]
    b = make_bundle(debian_bind(NAMED_ANY), live=True, listeners=lst)
    assert check(b)[0] is Status.FAIL  # the only installed server owns it
    b = make_bundle({}, live=True, listeners=[ss_line("udp", "10.0.0.5:53", "coredns")])
    status, findings = check(b)
    assert status is Status.WARN and "not a known DNS server" in findings[0][1]


def test_firewall_evaluation_error_is_not_a_pass() -> None:
    # With no firewall evidence the host firewall counts as open: never a pass by assumption.
    b = make_bundle(debian_bind(NAMED_ANY), live=True, listeners=NAMED_LISTENERS)
    assert check(b)[0] is Status.FAIL


# ---------------------------------------------------------------------------------------------------
# Malformed input
@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_named_conf_garbage_never_raises(text: str) -> None:
    parse_named_conf(text)
    b = make_bundle(
        {"/etc/bind/named.conf": text, "/etc/unbound/unbound.conf": text, "/etc/dnsmasq.conf": text}
    )
    status, _ = check(b)
    assert status in (Status.PASS, Status.WARN, Status.FAIL)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "any",
                "none",
                "localhost",
                "localnets",
                "!",
                "10/8",
                "192.168.1.0/24",
                "{",
                "}",
                ";",
                "!10.0.0.0/8",
                "fe80::/10",
                "key",
                "acl",
                "x",
            ]
        ),
        max_size=30,
    )
)
def test_acl_token_soup(tokens: list[str]) -> None:
    text = "options { allow-recursion { " + " ".join(tokens) + " }; };"
    b = make_bundle({"/etc/bind/named.conf": text})
    srv = dns_servers(Facts(b, Config()))[0]
    for scope in srv.recursion:
        judge(scope.grant, [], LocalNets((), (*LOOPBACK[:2], N("10.0.0.0/24"))))


def test_huge_and_binary_files() -> None:
    big = "options { allow-recursion { " + "10.0.0.1; " * 20000 + "}; };\n"
    b = make_bundle({"/etc/bind/named.conf": big})
    assert check(b)[0] is Status.WARN
    b = Bundle("t", "rootfs", False)
    b.add_file("/etc/bind/named.conf", bytes(range(256)) * 50)
    assert check(b)[0] in (Status.WARN, Status.PASS)
    b = Bundle("t", "local", True, uid=1000)
    b.add_unreadable("/etc/bind/named.conf", "Permission denied")
    status, findings = check(b)
    assert status is Status.ERROR and "needs root to read /etc/bind/named.conf" in findings[0][1]


@pytest.mark.parametrize(
    "grant,level",
    [
        (Grant.of([ANY4]), "untrusted"),
        (Grant.of(LOOPBACK), "local"),
        (Grant.nobody(), "none"),
    ],
)
def test_judge_levels(grant: Grant, level: str) -> None:
    assert judge(grant, [], None).level == level


# ---------------------------------------------------------------------------------------------------
# The host firewall: DNS is UDP and TCP
def _ipt(*accept: str) -> str:
    rules = "".join(f"-A INPUT -p {p} -m {p} --dport {port} -j ACCEPT\n" for p, port in
                    (a.split("/") for a in accept))
    return (
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        f"{rules}COMMIT\n"
    )


def firewalled_bind(*accept: str, listeners: list[str] | None = None) -> Bundle:
    from nectar_audit.evidence.bundle import CommandRecord
    from nectar_audit.facts.firewall.effective import RULES_COMMAND
    from tests.checks.test_08_host_firewall import rules_output

    b = make_bundle(debian_bind(NAMED_ANY), live=True, listeners=listeners or NAMED_LISTENERS)
    b.commands[RULES_COMMAND] = CommandRecord(
        rules_output(None, iptables_save=_ipt(*accept), ip6tables_save=_ipt(*accept))
    )
    return b


def test_firewall_dropping_udp_53_but_accepting_tcp_53_still_fails() -> None:
    res = run_check(ENTRY, Facts(firewalled_bind("tcp/22", "tcp/53"), Config()))
    assert res.status is Status.FAIL
    [f] = [f for f in res.findings if f.message.startswith("BIND (named)")]
    assert f.message == (
        "BIND (named) allows recursion to any host, listening on 10.0.0.5:53/tcp, 10.0.0.5:53/udp: an open "
        "resolver can be abused for DNS amplification attacks (the host firewall admits it over TCP/53 only)"
    )
    fw = [e.detail for e in f.evidence if e.source == "host firewall"]
    assert len(fw) == 2
    assert fw[0].startswith("IPv4 tcp/53: ") and "; IPv6 tcp/53: " in fw[0]
    assert fw[1].startswith("IPv4 udp/53: ") and "; IPv6 udp/53: " in fw[1]


def test_firewall_dropping_both_protocols_passes_with_the_reason() -> None:
    res = run_check(ENTRY, Facts(firewalled_bind("tcp/22"), Config()))
    assert res.status is Status.PASS
    assert res.findings[0].message == (
        "BIND (named)'s access list allows recursion to any host, but the host firewall lets no other host "
        "reach port 53 (TCP or UDP)"
    )


def test_firewall_only_protocols_the_server_listens_on_count() -> None:
    # named listening on UDP only: a firewall accepting TCP/53 (nothing behind it) opens no resolver.
    udp_only = [ss_line("udp", "10.0.0.5:53", "named"), ss_line("udp", "127.0.0.1:53", "named")]
    res = run_check(ENTRY, Facts(firewalled_bind("tcp/22", "tcp/53", listeners=udp_only), Config()))
    assert res.status is Status.PASS
    assert res.findings[0].message.endswith("lets no other host reach port 53 (UDP)")
    res = run_check(ENTRY, Facts(firewalled_bind("tcp/22", "udp/53", listeners=udp_only), Config()))
    assert res.status is Status.FAIL


def test_merge_reach_unions_networks_and_keeps_unknown() -> None:
    a = Reach((N("10.0.0.0/8"),), "IPv4 udp/53: x", True)
    b = Reach((N("192.168.0.0/16"),), "IPv4 tcp/53: y", False)
    m = merge_reach([a, b])
    assert m.networks == (N("10.0.0.0/8"), N("192.168.0.0/16")) and not m.known
    assert m.text == "IPv4 udp/53: x; IPv4 tcp/53: y"
    none = Reach((), "host firewall not evaluated", False)
    assert merge_reach([none, none]).text == "host firewall not evaluated"


# ---------------------------------------------------------------------------------------------------
# Config paths: BIND's allow-query-cache fallback, resolved extra stub listeners, PowerDNS Recursor files
def test_bind_allow_query_cache_any_without_allow_recursion_is_open() -> None:
    # BIND: allow-recursion defaults to allow-query-cache when only that is set.
    opts = sample("named.conf.options.debian12").replace(
        "listen-on-v6 { any; };", "listen-on-v6 { any; };\n\tallow-query-cache { any; };"
    )
    [srv] = dns_servers(Facts(make_bundle(debian_bind(opts)), Config()))
    assert judge(srv.recursion[0].grant, [], None).level == "untrusted"
    status, findings = check(make_bundle(debian_bind(opts), live=True, listeners=NAMED_LISTENERS))
    assert (status, findings) == (
        Status.FAIL,
        [
            (
                Status.FAIL,
                "BIND (named) allows recursion to any host, listening on 10.0.0.5:53/tcp, 10.0.0.5:53/udp: an "
                "open resolver can be abused for DNS amplification attacks",
            )
        ],
    )


RESOLVED_EXTRA = {"/etc/systemd/resolved.conf": "[Resolve]\nDNSStubListenerExtra=0.0.0.0\n"}
RESOLVED_BIN = ("/usr/lib/systemd/systemd-resolved",)


def test_resolved_extra_stub_listener_on_every_address_is_not_a_pass() -> None:
    assert check(make_bundle(RESOLVED_EXTRA, stats=RESOLVED_BIN)) == (
        Status.WARN,
        [
            (
                Status.WARN,
                "systemd-resolved allows recursion to any host (DNSStubListenerExtra=0.0.0.0), configured to "
                "listen on DNSStubListenerExtra=0.0.0.0: an open resolver can be abused for DNS amplification "
                "attacks",
            )
        ],
    )
    lst = [
        ss_line("udp", "127.0.0.53%lo:53", "systemd-resolve"),
        ss_line("udp", "0.0.0.0:53", "systemd-resolve"),
        ss_line("tcp", "0.0.0.0:53", "systemd-resolve"),
    ]
    assert check(make_bundle(RESOLVED_EXTRA, live=True, listeners=lst, stats=RESOLVED_BIN)) == (
        Status.FAIL,
        [
            (
                Status.FAIL,
                "systemd-resolved allows recursion to any host (DNSStubListenerExtra=0.0.0.0), listening on "
                "0.0.0.0:53/tcp, 0.0.0.0:53/udp: an open resolver can be abused for DNS amplification attacks",
            )
        ],
    )


def test_recursor_debian12_default_is_loopback_only() -> None:
    b = make_bundle({"/etc/powerdns/recursor.conf": sample("recursor.conf.debian12")})
    [srv] = dns_servers(Facts(b, Config()))
    assert srv.kind == "pdns-recursor" and srv.config == "/etc/powerdns/recursor.conf"
    assert srv.listen.beyond_loopback is False and srv.listen.text == "127.0.0.1"
    assert check(b) == (
        Status.PASS,
        [
            (
                Status.PASS,
                "PowerDNS Recursor is configured to listen on loopback only (127.0.0.1): other hosts cannot use "
                "it; its access list would allow 10.0.0.0/8, 100.64.0.0/10, 169.254.0.0/16, 192.168.0.0/16, "
                "172.16.0.0/12, fc00::/7, fe80::/10",
            )
        ],
    )
    # Same file with local-address opened up: the default allow-from (RFC 1918 and more) is not trusted.
    opened = sample("recursor.conf.debian12").replace("local-address=127.0.0.1", "local-address=0.0.0.0")
    status, findings = check(make_bundle({"/etc/powerdns/recursor.conf": opened}))
    assert status is Status.WARN
    assert findings[0][1].startswith("PowerDNS Recursor allows recursion to 10.0.0.0/8, 100.64.0.0/10")


def test_recursor_yml() -> None:
    yml = "incoming:\n  listen: [0.0.0.0, '::']\n  allow_from:\n    - 127.0.0.0/8\n    - 203.0.113.0/24\n"
    b = make_bundle({"/etc/powerdns/recursor.yml": yml})
    [srv] = dns_servers(Facts(b, Config()))
    assert srv.config == "/etc/powerdns/recursor.yml" and srv.listen.beyond_loopback is True
    assert check(b) == (
        Status.WARN,
        [
            (
                Status.WARN,
                "PowerDNS Recursor allows recursion to 203.0.113.0/24, which is not a trusted network, "
                "configured to listen on 0.0.0.0, ::: an open resolver can be abused for DNS amplification "
                "attacks (if these networks are yours, list them in [network] trusted_networks of the config "
                "file)",
            )
        ],
    )
    assert check(make_bundle({"/etc/powerdns/recursor.yml": yml}), Config(trusted_networks=(N("203.0.113.0/24"),)))[
        0
    ] is Status.PASS
    loop = "incoming:\n  listen:\n    - 127.0.0.1\n    - '::1'\n  allow_from: [0.0.0.0/0]\n"
    status, findings = check(make_bundle({"/etc/powerdns/recursor.yml": loop}))
    assert status is Status.PASS and "listen on loopback only (127.0.0.1, ::1)" in findings[0][1]
