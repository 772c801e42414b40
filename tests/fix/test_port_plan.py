"""Pure parts of fix 18 and the dead-man script: firewall rule twins, ssh_config edits, the timer."""

from __future__ import annotations

import subprocess

from nectar_audit.checks.ssh_port_fix import _IPT_22, _NFT_22, _rule_lines, _ufw_rule, ufw_ssh_rules
from nectar_audit.fix import script as fix_script
from nectar_audit.fix.ssh_config import set_port
from nectar_audit.remedy import Remedy, apply_line_edits, drop_in

NFT = "table inet filter {\n\tchain input {\n\t\tip saddr 192.0.2.0/24 tcp dport 22 accept\n\t}\n}\n"


def test_nft_phase_1_twins_the_22_rule_with_its_sources_phase_2_comments_it_out() -> None:
    one = _rule_lines("/etc/nftables.conf", NFT, _NFT_22, 2222, 1, nft_style=True)
    assert one is not None
    assert "\t\tip saddr 192.0.2.0/24 tcp dport 2222 accept  # nectar-audit 18\n" in one.after
    assert apply_line_edits(NFT, one.edits) == one.after
    assert _rule_lines("/etc/nftables.conf", one.after, _NFT_22, 2222, 1, nft_style=True) is None  # idempotent
    two = _rule_lines("/etc/nftables.conf", one.after, _NFT_22, 2222, 2, nft_style=True)
    assert two is not None and "\t\tip saddr 192.0.2.0/24 tcp dport 2222 accept" in two.after
    assert "# ip saddr 192.0.2.0/24 tcp dport 22 accept" in two.after


def test_iptables_rules_twinned_and_removed() -> None:
    text = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"
    one = _rule_lines("/etc/iptables/rules.v4", text, _IPT_22, 2222, 1, nft_style=False)
    assert one is not None and "-A INPUT -p tcp -m tcp --dport 2222 -j ACCEPT\n" in one.after
    two = _rule_lines("/etc/iptables/rules.v4", one.after, _IPT_22, 2222, 2, nft_style=False)
    assert two is not None and "--dport 22 " not in two.after and "--dport 2222" in two.after


# Tuple lines as ufw 0.36.2 wrote them for: limit in on eth0 22/tcp; allow OpenSSH; allow from 10.0.0.0/8 to
# 10.200.0.2 port 22 proto tcp comment office; allow 22; allow from 2001:db8::/32 to any port 22; deny 23.
UFW_TUPLES = """### tuple ### limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in_eth0
### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in
### tuple ### allow tcp 22 10.200.0.2 any 10.0.0.0/8 in comment=6f6666696365
### tuple ### allow any 22 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### allow any 22 ::/0 any 2001:db8::/32 in
### tuple ### deny tcp 23 0.0.0.0/0 any 0.0.0.0/0 in
"""


def test_ufw_rules_for_22_read_from_tuples_and_rebuilt_as_commands() -> None:
    """Each 22 rule gets a twin for the new port (phase 1) and is deleted as written (phase 2); the lab
    (tests/fix/test_18_firewalls_lab.py) runs such commands against real ufw."""
    rules = ufw_ssh_rules(UFW_TUPLES)
    assert [_ufw_rule(r, "port 2222 proto tcp") for r in rules] == [
        "limit in on eth0 from any to any port 2222 proto tcp",
        "allow from any to any port 2222 proto tcp",
        "allow from 10.0.0.0/8 to 10.200.0.2 port 2222 proto tcp",
        "allow from any to any port 2222 proto tcp",
        "allow from 2001:db8::/32 to any port 2222 proto tcp",
    ]
    assert [r.app for r in rules] == ["", "OpenSSH", "", "", ""]
    assert [r.proto for r in rules] == ["tcp", "tcp", "tcp", "any", "any"]


def test_ssh_config_port_set_in_the_alias_stanza_only() -> None:
    text = "Host other\n    Port 22\n\nHost vm1 vm1.example\n    User debian\n    Port 22\n"
    assert set_port(text, "vm1", 2222) == "Host other\n    Port 22\n\nHost vm1 vm1.example\n    User debian\n" \
        "    Port 2222\n"
    assert set_port("Host vm2\n    User x\n", "vm2", 2222) == "Host vm2\n    Port 2222\n    User x\n"
    assert set_port("", "vm3", 2222) == "\nHost vm3\n    Port 2222\n"


def test_deadman_armed_only_for_remedies_that_need_it_and_script_parses() -> None:
    plain = Remedy("Check-Security-01", "x", changes=(drop_in("/tmp/x.conf", ["a"], None, "t"),))
    risky = Remedy("Check-Security-18", "y", changes=(drop_in("/tmp/y.conf", ["b"], None, "t"),), deadman=True)
    assert "na_arm" not in fix_script.build([plain], "20261207T000000Z-aaaaaa").text
    text = fix_script.build([plain, risky], "20261207T000000Z-bbbbbb", confirm_timeout=45).text
    assert "--on-active=45s" in text and "sleep 45;" in text and "trap '' HUP PIPE" in text
    for script in (text, fix_script.confirm_command("20261207T000000Z-bbbbbb")):
        assert subprocess.run(["sh", "-n"], input=script.encode(), check=False).returncode == 0
