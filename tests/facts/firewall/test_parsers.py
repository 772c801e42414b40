"""Firewall readers and evaluator on real rule dumps (tests/samples/firewall/README.md names their origin)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.facts.firewall.effective import firewalld_ruleset, parse_firewalld, parse_ufw, ufw_rulesets
from nectar_audit.facts.firewall.iptables import backend_of, parse_iptables_save, parse_rule
from nectar_audit.facts.firewall.model import Ruleset, Verdict, evaluate, open_ranges
from nectar_audit.facts.firewall.nft import parse_nft_json, parse_nft_text
from tests import SAMPLES

SAMPLES = SAMPLES / "firewall"
EXT = ("eth0",)


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def ev(rs: list[Ruleset] | Ruleset, proto: str, port: int, family: int = 4, **kw: object) -> Verdict:
    rulesets = rs if isinstance(rs, list) else [rs]
    kw.setdefault("iifs", EXT)
    return evaluate(rulesets, proto, port, family, **kw)  # type: ignore[arg-type]


def opened(rs: Ruleset, family: int) -> dict[str, str]:
    """label -> open | only:<nets> | undecided, for the ranges not closed."""
    out = {}
    for r in open_ranges([rs], family, iifs=EXT):
        if r.verdict.allowed:
            out[r.label()] = "open"
        elif r.verdict.allowed is None:
            out[r.label()] = "undecided"
        elif r.verdict.sources:
            out[r.label()] = "only:" + ",".join(r.verdict.sources)
    return out


# -- nftables ------------------------------------------------------------------------------------------
def test_debian_default_nftables_conf_accepts_everything() -> None:
    rs = parse_nft_text({"/etc/nftables.conf": sample("debian12-nftables.conf")}, "/etc/nftables.conf")
    assert rs.errors == []
    chain = rs.table("inet", "filter").chains["input"]  # type: ignore[union-attr]
    assert (chain.hook, chain.policy, chain.rules) == ("input", "accept", [])
    v = ev(rs, "tcp", 4444, 6)
    assert v.allowed is True and "policy accept of inet filter input" in v.rule


def test_firewalld_nft_ruleset() -> None:
    rs = parse_nft_json(sample("firewalld-nft.json"))
    assert rs.errors == []
    assert opened(rs, 4) == {"22/tcp": "open", "5432/tcp": "only:10.1.0.0/16", "8080/tcp": "open"}
    assert opened(rs, 6) == {"22/tcp": "open", "8080/tcp": "open"}
    closed = ev(rs, "udp", 546, 6)  # dhcpv6-client: only to fe80::/64, not to the host's unicast address
    assert closed.allowed is False
    default = ev(rs, "tcp", 4444, 4)
    assert default.allowed is False
    assert default.rule == "inet firewalld filter_IN_public: reject"
    assert ev(rs, "tcp", 5432, 4, saddr="10.1.2.3").allowed is True
    assert ev(rs, "tcp", 5432, 4, saddr="10.2.0.1").allowed is False


def test_nft_text_and_json_agree_on_firewalld() -> None:
    j = parse_nft_json(sample("firewalld-nft.json"))
    t = parse_nft_text({"/x.nft": sample("firewalld-nft.txt")}, "/x.nft")
    assert t.errors == []
    for family in (4, 6):
        assert opened(j, family) == opened(t, family)
        for proto in ("tcp", "udp"):
            for port in (1, 22, 53, 546, 5432, 8080, 40000):
                a, b = ev(j, proto, port, family), ev(t, proto, port, family)
                assert (a.allowed, a.sources) == (b.allowed, b.sources), (proto, port, family)


def test_fail2ban_table_alone_is_no_filter_but_bans() -> None:
    rs = parse_nft_json(sample("fail2ban-nft.json"))
    assert ev(rs, "tcp", 22).allowed is True
    assert ev(rs, "tcp", 4444).allowed is True
    banned = ev(rs, "tcp", 22, saddr="203.0.113.50")
    assert banned.allowed is False and "reject" in banned.rule


def test_ufw_nft_json_without_iptables_save_is_undecided_not_wrong() -> None:
    # nft shows iptables-nft's conntrack match as a bare "xt" expression: the evaluator must not guess.
    rs = parse_nft_json(sample("ufw-nft.json"))
    for port in (22, 4444):
        v = ev(rs, "tcp", port)
        assert v.allowed is None
        assert "(options hidden, rule ip filter ufw-" in (v.undecided_reason or "")


def test_nft_text_features() -> None:
    text = """
    #!/usr/sbin/nft -f
    flush ruleset
    define ADMIN = { 192.0.2.0/24, 198.51.100.7 }
    define WEB = { 80, 443 }
    include "/etc/nftables.d/*.nft"
    table inet filter {
        set blocked { type ipv4_addr; flags interval; elements = { 203.0.113.0/24 } }
        chain input {
            type filter hook input priority filter; policy drop;
            ct state vmap { established : accept, related : accept, invalid : drop }
            iif "lo" accept
            ip saddr @blocked drop
            tcp dport $WEB accept
            ip saddr $ADMIN tcp dport 22 accept  # admins only
            meta l4proto udp jump udp_in
        }
        chain udp_in {
            udp dport 1000-1999 accept
            return
        }
    }
    """
    extra = "add rule inet filter input tcp dport 8443 counter accept\n"
    rs = parse_nft_text(
        {"/etc/nftables.conf": text, "/etc/nftables.d/10-extra.nft": extra}, "/etc/nftables.conf"
    )
    assert rs.errors == []
    assert opened(rs, 4) == {
        "22/tcp": "only:192.0.2.0/24,198.51.100.7/32",
        "80/tcp": "open",
        "443/tcp": "open",
        "1000-1999/udp": "open",
        "8443/tcp": "open",
    }
    assert ev(rs, "tcp", 80, saddr="203.0.113.9").allowed is False
    assert ev(rs, "udp", 2000).rule == "policy drop of inet filter input"


def test_nft_flush_ruleset_discards_what_came_before() -> None:
    rs = parse_nft_text(
        {
            "/a": "table ip t { chain c { type filter hook input priority 0; policy drop; } }\n"
            "flush ruleset\ntable ip u { chain c { type filter hook input priority 0; } }\n"
        },
        "/a",
    )
    assert [t.name for t in rs.tables] == ["u"]


def test_unreadable_nft_statement_makes_verdicts_undecided() -> None:
    rs = parse_nft_text(
        {"/a": "table inet f { chain i { type filter hook input priority 0; policy drop; }\n"}, "/a"
    )
    assert rs.errors
    assert ev(rs, "tcp", 22).allowed is None


# -- iptables ------------------------------------------------------------------------------------------
def test_ufw_iptables_nft_save() -> None:
    v4 = parse_iptables_save(sample("ufw-iptables-nft-save.v4"), 4, "iptables-nft-save")
    v6 = parse_iptables_save(sample("ufw-ip6tables-nft-save.v6"), 6, "ip6tables-nft-save")
    assert v4.backend == v6.backend == "iptables-nft"
    assert v4.errors == v6.errors == []
    assert opened(v4, 4) == {
        "22/tcp": "open",
        "2222/tcp": "open",
        "5432/tcp": "only:10.0.0.0/8",
        "60000-61000/udp": "open",
    }
    # The loaded IPv6 limit-accept chain is empty (see README): 2222/tcp is really refused.
    assert opened(v6, 6) == {"22/tcp": "open", "60000-61000/udp": "open"}
    deny = ev(v4, "tcp", 8080)
    assert deny.allowed is False and deny.rule.endswith(
        "-A ufw-user-input -p tcp -m tcp --dport 8080 -j DROP"
    )
    assert ev(v4, "udp", 68).allowed is False  # dhcp replies only from source port 67
    assert ev(v4, "tcp", 22, iifs=("lo",)).allowed is True


def test_docker_chains_leave_input_open() -> None:
    rs = parse_iptables_save(sample("docker-iptables-nft-save.v4"), 4, "iptables-nft-save")
    assert ev(rs, "tcp", 4444).allowed is True
    assert rs.table("ip", "nat").chains["DOCKER"].rules[-1].action.text == "-j DNAT"  # type: ignore[union-attr]


def test_ipv4_only_rules() -> None:
    rs = parse_iptables_save(sample("iptables-ipv4-only.rules.v4"), 4, "/etc/iptables/rules.v4")
    assert opened(rs, 4) == {"22/tcp": "open", "80/tcp": "open", "443/tcp": "open"}
    assert ev(rs, "tcp", 22, 6).allowed is True  # nothing filters IPv6: no chain on the path


@pytest.mark.parametrize(
    ("line", "port", "proto", "src", "expect"),
    [
        ("-A INPUT -p tcp -m multiport --dports 80,443,1000:2000 -j ACCEPT", 1500, "tcp", None, "accept"),
        ("-A INPUT -p tcp ! --dport 22 -j DROP", 22, "tcp", None, "continue"),
        ("-A INPUT -p tcp ! --dport 22 -j DROP", 23, "tcp", None, "drop"),
        (
            "-A INPUT ! -i lo -p udp --dport 53 -j REJECT --reject-with icmp-port-unreachable",
            53,
            "udp",
            None,
            "reject",
        ),
        (
            "-A INPUT -s 10.0.0.0/8,192.168.0.0/16 -p tcp --dport 22 -j ACCEPT",
            22,
            "tcp",
            "192.168.1.1",
            "accept",
        ),
        (
            "-A INPUT -s 10.0.0.0/8,192.168.0.0/16 -p tcp --dport 22 -j ACCEPT",
            22,
            "tcp",
            "8.8.8.8",
            "continue",
        ),
        (
            '-A INPUT -p tcp --syn -m comment --comment "new ssh" --dport 22 -j ACCEPT',
            22,
            "tcp",
            None,
            "accept",
        ),
        (
            "-A INPUT -p tcp --tcp-flags SYN,RST,ACK,FIN SYN -j LOG --log-prefix x",
            22,
            "tcp",
            None,
            "continue",
        ),
        ("-A INPUT -m iprange --src-range 192.0.2.10-192.0.2.20 -j DROP", 1, "tcp", "192.0.2.15", "drop"),
        ("-A INPUT -p 6 --dport 22 -j ACCEPT", 22, "tcp", None, "accept"),
        ("-A INPUT -p udp --dport 22 -j ACCEPT", 22, "tcp", None, "continue"),
        (
            "-A INPUT -m conntrack --ctstate NEW -m recent --update --seconds 60 --hitcount 4 -j DROP",
            22,
            "tcp",
            None,
            "continue",
        ),
        (
            "[5:300] -A INPUT -m addrtype --dst-type LOCAL -p tcp --dport 25 -j ACCEPT",
            25,
            "tcp",
            None,
            "accept",
        ),
    ],
)
def test_iptables_rule_shapes(line: str, port: int, proto: str, src: str | None, expect: str) -> None:
    rs = parse_iptables_save(f"*filter\n:INPUT ACCEPT [0:0]\n{line}\n-A INPUT -j RETURN\nCOMMIT\n", 4, "t")
    v = ev(rs, proto, port, saddr=src or "198.51.100.9")
    got = {True: "accept", False: "drop"}.get(v.allowed)  # type: ignore[arg-type]
    if expect == "continue":
        assert v.allowed is True and "policy accept" in v.rule
    elif expect == "reject":
        assert v.allowed is False and "REJECT" in v.rule
    else:
        assert got == expect, v


def test_iptables_rule_text_and_ufw_trailing_matches() -> None:
    chain, rule = parse_rule(
        '-A ufw-logging-deny -j LOG --log-prefix "[UFW BLOCK] " -m limit --limit 3/min', 4
    )
    assert chain == "ufw-logging-deny" and rule.action.kind == "continue"
    assert [p.text for p in rule.matches] == ["-m limit --limit"]


@given(st.lists(st.text(alphabet="-_:./,!#=[]ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                        min_size=1, max_size=12), min_size=1, max_size=12),
       st.sampled_from([" ", "  ", "\t", " \t "]))
def test_rule_lines_without_quotes_split_as_shlex_would(words: list[str], sep: str) -> None:
    """parse_rule splits on whitespace unless the line has quotes or backslashes: the same words."""
    import shlex

    line = "-A INPUT " + sep.join(words) + " -j ACCEPT"
    assert line.split() == shlex.split(line)
    assert parse_rule(line, 4)[1].text == line


def test_backend_detection() -> None:
    assert backend_of("# Generated by iptables-save v1.8.7 (legacy) on x\n") == "iptables-legacy"
    assert backend_of("# Generated by ip6tables-save v1.8.9 (nf_tables)\n") == "iptables-nft"
    assert backend_of("# Generated by iptables-save v1.4.21 on Mon\n") == "iptables-legacy"


def test_legacy_and_nft_are_both_applied() -> None:
    # Legacy rules drop what nft accepts: the packet must pass both hooks.
    legacy = parse_iptables_save(
        "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n",
        4,
        "command: iptables-legacy-save",
    )
    nft = parse_nft_text(
        {"/n": "table inet f { chain i { type filter hook input priority 0; policy accept; } }"}, "/n"
    )
    assert ev([nft, legacy], "tcp", 22).allowed is True
    assert ev([nft, legacy], "tcp", 80).allowed is False


# -- ufw / firewalld configuration (offline) --------------------------------------------------------------
def test_ufw_config_rulesets_match_what_ufw_loaded() -> None:
    files = {
        f"/etc/ufw/{n}": sample(f"ufw/{n}")
        for n in ("user.rules", "user6.rules", "before.rules", "before6.rules", "after.rules", "after6.rules")
    }
    cfg = parse_ufw(sample("ufw/ufw.conf"), sample("ufw/default-ufw"))
    assert (cfg.enabled, cfg.default_input, cfg.ipv6) == (True, "DROP", True)
    v4, v6 = ufw_rulesets(cfg, files)  # type: ignore[arg-type]
    loaded4 = parse_iptables_save(sample("ufw-iptables-nft-save.v4"), 4, "iptables-nft-save")
    assert opened(v4, 4) == opened(loaded4, 4)
    # From the files, IPv6 2222/tcp is open: the kernel lost that rule (see README).
    assert opened(v6, 6) == {"22/tcp": "open", "2222/tcp": "open", "60000-61000/udp": "open"}


def test_ufw_ipv6_no_drops_ipv6() -> None:
    cfg = parse_ufw("ENABLED=yes\n", 'IPV6=no\nDEFAULT_INPUT_POLICY="ACCEPT"\n')
    files = {f"/etc/ufw/{n}": sample(f"ufw/{n}") for n in ("user.rules", "before.rules", "after.rules")}
    v4, v6 = ufw_rulesets(cfg, files)  # type: ignore[arg-type]
    assert ev(v4, "tcp", 4444).allowed is True  # DEFAULT_INPUT_POLICY=ACCEPT
    assert ev(v6, "tcp", 22, 6).allowed is False


def test_firewalld_config_ruleset() -> None:
    files = {
        "/etc/firewalld/firewalld.conf": sample("firewalld/firewalld.conf"),
        "/etc/firewalld/zones/public.xml": sample("firewalld/zones/public.xml"),
        "/usr/lib/firewalld/zones/public.xml": sample("firewalld/usr-zones/public.xml"),
    }
    cfg = parse_firewalld(files)  # type: ignore[arg-type]
    assert cfg is not None and cfg.default_zone == "public"
    rs = firewalld_ruleset(cfg, {})
    assert opened(rs, 4) == {"22/tcp": "open", "8080/tcp": "open"}
    assert opened(rs, 6) == {"22/tcp": "open", "8080/tcp": "open"}
    assert ev(rs, "tcp", 4444, iifs=(None,)).allowed is False


def test_firewalld_rich_rules_and_targets() -> None:
    zone = """<?xml version="1.0" encoding="utf-8"?>
<zone target="DROP"><service name="https"/><port port="6000-6005" protocol="udp"/>
<rule family="ipv4"><source address="192.0.2.0/24"/><service name="postgresql"/><accept/></rule>
</zone>"""
    files = {"/etc/firewalld/firewalld.conf": "DefaultZone=work\n", "/etc/firewalld/zones/work.xml": zone}
    cfg = parse_firewalld(files)  # type: ignore[arg-type]
    assert cfg is not None
    rs = firewalld_ruleset(cfg, {})
    assert opened(rs, 4) == {"443/tcp": "open", "5432/tcp": "only:192.0.2.0/24", "6000-6005/udp": "open"}
    assert ev(rs, "tcp", 4444).rule.endswith("target DROP")


# -- robustness -----------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_iptables_parser_never_raises(text: str) -> None:
    rs = parse_iptables_save("*filter\n:INPUT DROP [0:0]\n" + text, 4, "fuzz")
    ev(rs, "tcp", 22)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(
        alphabet=st.sampled_from(
            list(
                "table inet f{chain i;type filter hook input priority 0 policy drop "
                'tcp dport 22 accept}"$@/.:-,!=\n#'
            )
        ),
        max_size=300,
    )
)
def test_nft_text_parser_never_raises(text: str) -> None:
    rs = parse_nft_text({"/f": text}, "/f")
    ev(rs, "tcp", 22)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.sampled_from(
        ["tcp", "dport", "saddr", "ip", "accept", "drop", "@s", "10.0.0.0", "state", "established"]
    ),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "match",
                    "op",
                    "left",
                    "right",
                    "payload",
                    "protocol",
                    "field",
                    "set",
                    "range",
                    "prefix",
                    "accept",
                    "jump",
                    "target",
                    "vmap",
                    "key",
                    "data",
                    "ct",
                    "meta",
                ]
            ),
            c,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_json, max_size=4))
def test_nft_json_reader_never_raises(expr: list[object]) -> None:
    doc = {
        "nftables": [
            {"table": {"family": "inet", "name": "f"}},
            {
                "chain": {
                    "family": "inet",
                    "table": "f",
                    "name": "i",
                    "type": "filter",
                    "hook": "input",
                    "prio": 0,
                    "policy": "drop",
                }
            },
            {"rule": {"family": "inet", "table": "f", "chain": "i", "expr": expr}},
        ]
    }
    rs = parse_nft_json(json.dumps(doc))
    ev(rs, "tcp", 22)


def test_malformed_nft_json() -> None:
    with pytest.raises(ValueError):
        parse_nft_json("{not json")
    with pytest.raises(ValueError):
        parse_nft_json('{"other": 1}')
