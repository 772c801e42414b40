"""fail2ban configuration with fail2ban's own precedence, on the real default files "
"(tests/samples/fail2ban)."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.facts.ssh.fail2ban import (
    parse_actions,
    parse_conf,
    parse_failed_logins,
    parse_jail_status,
    parse_ports,
    parse_status,
    parse_status_command,
    read_config,
    sshd_ports_from_config,
)
from tests import SAMPLES

SAMPLES = SAMPLES / "fail2ban"


def sample_files(name: str, **extra: str) -> dict[str, str]:
    """The sample directory as /etc/fail2ban paths, plus extra files (relative path -> text)."""
    base = SAMPLES / name
    files = {f"/etc/fail2ban/{p.relative_to(base)}": p.read_text() for p in base.rglob("*") if p.is_file()}
    files.update({f"/etc/fail2ban/{k}": v for k, v in extra.items()})
    return files


def test_debian12_defaults_enable_sshd_reading_auth_log() -> None:
    cfg = read_config(sample_files("debian12-1.0.2"), "/etc/fail2ban/jail")
    assert cfg.files == [
        "/etc/fail2ban/paths-common.conf",
        "/etc/fail2ban/paths-debian.conf",
        "/etc/fail2ban/jail.conf",
        "/etc/fail2ban/jail.d/defaults-debian.conf",
    ]
    jail = cfg.jail("sshd")
    assert jail.enabled and jail.watches_sshd
    assert jail.source("enabled") == "/etc/fail2ban/jail.d/defaults-debian.conf:2"
    assert jail.port == "ssh"
    assert jail.logpath == ("/var/log/auth.log",)
    assert jail.backend == "auto"  # %(sshd_backend)s -> %(default_backend)s -> %(default/backend)s
    assert jail.banaction == "iptables-multiport"
    assert [a.name for a in jail.actions] == ["iptables-multiport"]
    assert 'port="ssh"' in jail.actions[0].params
    assert not jail.actions[0].all_ports
    assert jail.filter == "sshd" and jail.filter_raw == "sshd[mode=normal]"
    # Every other jail of jail.conf stays off.
    assert [n for n, j in cfg.jails().items() if j.enabled] == ["sshd"]


def test_rocky9_epel_defaults_use_journal_and_firewalld_but_enable_nothing() -> None:
    cfg = read_config(sample_files("rocky9-epel-1.0.2"), "/etc/fail2ban/jail")
    jail = cfg.jail("sshd")
    assert not jail.enabled
    assert jail.source("enabled") == "/etc/fail2ban/jail.conf:158"
    assert jail.backend == "systemd"
    assert jail.logpath == ("/var/log/secure",)
    assert jail.banaction == "firewallcmd-rich-rules[actiontype=<multiport>]"
    assert jail.actions[0].name == "firewallcmd-rich-rules" and not jail.actions[0].all_ports


def test_precedence_conf_d_then_local_then_local_d() -> None:
    files = sample_files(
        "debian12-1.0.2",
        **{
            "jail.local": "[sshd]\nenabled = false\nport = 2222\n",
            "jail.d/zz-custom.local": "[sshd]\nenabled = true\n",
            "jail.d/00-early.conf": "[sshd]\nport = 1111\n",
        },
    )
    cfg = read_config(files, "/etc/fail2ban/jail")
    assert cfg.files[-3:] == [
        "/etc/fail2ban/jail.d/defaults-debian.conf",
        "/etc/fail2ban/jail.local",
        "/etc/fail2ban/jail.d/zz-custom.local",
    ]
    jail = cfg.jail("sshd")
    assert jail.enabled and jail.source("enabled") == "/etc/fail2ban/jail.d/zz-custom.local:2"
    assert jail.port == "2222"  # jail.local beats jail.d/*.conf


def test_local_overrides_conf_of_same_name_and_default_section() -> None:
    files = sample_files(
        "debian12-1.0.2",
        **{
            "jail.d/custom.conf": "[DEFAULT]\nbanaction = nftables-multiport\n[sshd]\nenabled = false\n",
            "jail.d/custom.local": "[sshd]\nenabled = yes\n",
            "jail.local": "[DEFAULT]\nbackend = systemd\n",
        },
    )
    jail = read_config(files, "/etc/fail2ban/jail").jail("sshd")
    assert jail.enabled
    assert jail.banaction == "nftables-multiport"
    # [DEFAULT] backend reaches the sshd jail through %(sshd_backend)s -> %(default/backend)s.
    assert jail.backend == "systemd" and jail.uses_journal


def test_paths_overrides_local_and_known_interpolation() -> None:
    files = sample_files(
        "debian12-1.0.2",
        **{
            "paths-overrides.local": "[DEFAULT]\nsshd_log = /var/log/sshd.log\n",
            "jail.local": "[sshd]\nport = %(known/port)s,2222\n",
        },
    )
    cfg = read_config(files, "/etc/fail2ban/jail")
    assert "/etc/fail2ban/paths-overrides.local" in cfg.files
    jail = cfg.jail("sshd")
    assert jail.logpath == ("/var/log/sshd.log",)
    assert jail.port == "ssh,2222"


def test_sshd_filter_daemon_and_journalmatch() -> None:
    filt = read_config(sample_files("debian12-1.0.2"), "/etc/fail2ban/filter.d/sshd")
    assert filt.files == ["/etc/fail2ban/filter.d/common.conf", "/etc/fail2ban/filter.d/sshd.conf"]
    assert filt.get("DEFAULT", "_daemon") == "sshd"
    assert filt.get("Definition", "journalmatch") == "_SYSTEMD_UNIT=sshd.service + _COMM=sshd"
    fixed = read_config(
        sample_files("debian12-1.0.2", **{"filter.d/sshd.local": "[DEFAULT]\n_daemon = sshd(?:-session)?\n"}),
        "/etc/fail2ban/filter.d/sshd",
    )
    assert fixed.get("DEFAULT", "_daemon") == "sshd(?:-session)?"


def test_parse_conf_syntax() -> None:
    text = "# comment\n[DEFAULT]\nA = 1 ; inline\n[j]\nlogpath = /a\n  /b\n\n; c\nPort: 22\nenabled=true\n"
    entries = parse_conf(text, "/x")
    assert [(e.section, e.key, e.value, e.line) for e in entries] == [
        ("DEFAULT", "a", "1", 3),
        ("j", "logpath", "/a\n/b", 5),
        ("j", "port", "22", 9),
        ("j", "enabled", "true", 10),
    ]


def test_parse_ports() -> None:
    assert parse_ports("ssh").covers(22) and not parse_ports("ssh").covers(2222)
    p = parse_ports("ssh, 2222")
    assert p.covers(22) and p.covers(2222)
    assert parse_ports("0:65535").all_ports
    assert parse_ports("1000:3000").covers(2222)
    assert parse_ports("myservice").unknown == ("myservice",)


def test_actions() -> None:
    acts = parse_actions('iptables-allports[name=x]\nsendmail-whois[dest="a"]')
    assert [a.name for a in acts] == ["iptables-allports", "sendmail-whois"]
    assert acts[0].all_ports and acts[0].bans and not acts[1].bans
    assert parse_actions("nftables[type=allports]")[0].all_ports
    assert parse_actions("hostsdeny")[0].all_ports


# Output of fail2ban-client 1.0.2 (Debian 12), as printed by the lab's real fail2ban-server.
STATUS = "Status\n|- Number of jail:\t2\n`- Jail list:\tsshd, recidive\n"
JAIL_STATUS = (
    "Status for the jail: sshd\n|- Filter\n|  |- Currently failed:\t1\n|  |- Total failed:\t7\n"
    "|  `- File list:\t/var/log/auth.log\n`- Actions\n   |- Currently banned:\t2\n"
    "   |- Total banned:\t3\n   `- Banned IP list:\t192.0.2.1 192.0.2.2\n"
)


def test_live_status() -> None:
    assert parse_status(STATUS) == ["sshd", "recidive"]
    js = parse_jail_status("sshd", JAIL_STATUS)
    assert js.files == ("/var/log/auth.log",)
    assert (js.currently_failed, js.total_failed, js.currently_banned, js.total_banned) == (1, 7, 2, 3)
    live = parse_status_command(f"#status 0\n{STATUS}#jail sshd 0\n{JAIL_STATUS}")
    assert live.state == "ok" and live.jails == ["sshd", "recidive"]
    assert live.jail_status["sshd"].total_banned == 3
    assert parse_status_command("#not-running\n").state == "not-running"
    down = parse_status_command(
        "#status 255\nFailed to access socket path: /var/run/fail2ban/fail2ban.sock. Is fail2ban running?\n"
    )
    assert down.state == "unreachable" and "Is fail2ban running" in down.detail


def test_failed_logins_last_7_days() -> None:
    now = datetime(2025, 1, 3, 12, 0, tzinfo=timezone.utc)
    text = "#files /var/log/auth.log\n5 2025-01-02\n7 2024-12-20\n3 Jan 1\n4 Dec 30\n100 Dec 1\n"
    got = parse_failed_logins(text, now)
    assert got is not None and got.count == 5 + 3 + 4 and got.source == "/var/log/auth.log"
    j = parse_failed_logins("#journal\n9 2025-01-03\n", now)
    assert j is not None and (j.count, j.source) == (9, "journal")
    assert parse_failed_logins("#none\n", now) is None


def test_sshd_ports_from_config() -> None:
    ports, src = sshd_ports_from_config(
        {
            "/etc/ssh/sshd_config": "Port 2222\nPort 22\nMatch User x\n Port 9\n",
            "/etc/ssh/sshd_config.d/a.conf": "ListenAddress 0.0.0.0:2200\n",
        }
    )
    assert ports == [22, 2200, 2222]
    assert "/etc/ssh/sshd_config:1" in src
    assert sshd_ports_from_config({"/etc/ssh/sshd_config": "#Port 22\n"}) == (
        [22],
        "OpenSSH default (no Port line)",
    )


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400), st.text(max_size=200))
def test_config_reader_never_crashes(a: str, b: str) -> None:
    files = {
        "/etc/fail2ban/jail.conf": a,
        "/etc/fail2ban/jail.d/x.conf": b,
        "/etc/fail2ban/jail.local": "[INCLUDES]\nbefore = jail.conf\nafter = jail.local\n" + b,
    }
    cfg = read_config(files, "/etc/fail2ban/jail")
    for jail in cfg.jails().values():
        _ = (jail.enabled, jail.actions, parse_ports(jail.port), jail.uses_journal)


def _action_files() -> dict[str, str]:
    base = SAMPLES / "debian12-1.0.2"
    return {f"/etc/fail2ban/{p.relative_to(base)}": p.read_text() for p in base.rglob("*.conf")}


def test_action_commands_resolve_includes_init_and_tags() -> None:
    from nectar_audit.facts.ssh.fail2ban import action_commands, parse_actions, parse_params

    files = _action_files()
    ref = parse_actions('iptables-multiport[port="ssh,2222", protocol="tcp", chain="INPUT"]')[0]
    assert parse_params(ref.params) == {"port": "ssh,2222", "protocol": "tcp", "chain": "INPUT"}
    ipt = action_commands(files, ref, "sshd")
    assert ipt.found and ipt.programs == ("iptables",)
    assert ipt.source == "/etc/fail2ban/action.d/iptables.conf:48"
    assert "iptables -w -I INPUT -p $proto -m multiport --dports ssh,2222 -j f2b-sshd" in "\n".join(ipt.lines)
    assert ipt.lines[-1] == "iptables -w -I f2b-sshd 1 -s <ip> -j REJECT --reject-with icmp-port-unreachable"
    nft = action_commands(files, parse_actions("nftables-multiport")[0], "sshd")
    assert nft.programs == ("nft",) and nft.lines[-1] == "nft add element inet f2b-table addr-set-sshd \\{ <ip> \\}"
    # A .local overrides the .conf; an unknown action is not found (and not judged).
    files["/etc/fail2ban/action.d/nftables.local"] = "[Init]\nnftables = /usr/local/sbin/nft-wrapper\n"
    assert action_commands(files, parse_actions("nftables-multiport")[0], "sshd").programs == ()
    assert not action_commands(files, parse_actions("my-own")[0], "sshd").found
