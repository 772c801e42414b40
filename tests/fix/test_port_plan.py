"""Pure parts of fix 18 and the dead-man script: firewall rule twins, ssh_config edits, the timer."""

from __future__ import annotations

import subprocess

from nectar_audit.checks.ssh_port_fix import _IPT_22, _NFT_22, _rule_lines
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
