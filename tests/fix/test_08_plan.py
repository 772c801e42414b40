"""08's firewall planner on evidence bundles: what it lets in, what it leaves alone, per distribution.

The bundles are made of the real dumps in tests/samples/firewall (Docker's and libvirt's iptables-nft
rules, ufw's files) and ``ss`` lines. The nftables file it writes is read back by the audit's own parser:
an image with that file enabled at boot passes 08. The lab (tests/fix/test_08_fix_lab.py) proves the same
with the kernel's nftables and ufw.
"""

from __future__ import annotations

import dataclasses
import subprocess

from nectar_audit.checks import host_firewall
from nectar_audit.checks.host_firewall_fix import (
    FIREWALLD_STARTED,
    NFT_CONF,
    NFT_OWN,
    NFT_WANTS,
    needed,
    parse_spec,
    plan,
)
from nectar_audit.config import Config
from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.system.processes import PS_COMMAND
from nectar_audit.facts.system.services import SYSTEMCTL_COMMAND
from nectar_audit.facts.system.sockets import SS_COMMAND
from nectar_audit.model import Status
from nectar_audit.remedy import Remedy, apply_line_edits
from tests.checks.test_08_host_firewall import ROCKY, UBUNTU, _offline, live_bundle, rules_output, sample, ufw_files

DEBIAN = b'ID=debian\nVERSION_ID="12"\n'
SSHD = ('tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=812,fd=3)) ino:11 sk:1 <->\n'
        'tcp LISTEN 0 128 [::]:22 [::]:* users:(("sshd",pid=812,fd=4)) ino:12 sk:2 v6only:1 <->\n')
WEB = 'tcp LISTEN 0 128 *:8080 *:* users:(("python3",pid=900,fd=4)) ino:14 sk:4 v6only:0 <->\n'
ADMIN = 'tcp LISTEN 0 128 0.0.0.0:9090 0.0.0.0:* users:(("cockpit",pid=901,fd=4)) ino:15 sk:5 <->\n'
PG = 'tcp LISTEN 0 128 0.0.0.0:5432 0.0.0.0:* users:(("postgres",pid=902,fd=4)) ino:16 sk:6 <->\n'
DHCP = 'udp UNCONN 0 0 0.0.0.0:68 0.0.0.0:* users:(("dhclient",pid=500,fd=7)) ino:13 sk:3 <->\n'
STOCK = sample("debian12-nftables.conf")
BIN = ("/usr/sbin/nft", "/usr/sbin/ufw", "/usr/sbin/firewalld")


def host(rules: str, ss: str, os_release: bytes = DEBIAN, files: dict[str, str] | None = None,
         ps: str = "", allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> Facts:
    b: Bundle = live_bundle(rules, os_release=os_release, files={NFT_CONF: STOCK, **(files or {})})
    b.commands[SS_COMMAND] = CommandRecord("#ss\n" + ss + "#bindv6only 0\n")
    b.commands[PS_COMMAND] = CommandRecord("#ps\n" + ps + "#self 99999\n")
    for path in BIN:
        b.stats[path] = StatRecord(0o100755, 0, 0, 1000, 0)
    fix: dict[str, object] = {"allow": list(allow), "deny": list(deny)}
    return Facts(b, dataclasses.replace(Config(), extra={"fix": fix}))


def _written(remedy: Remedy, path: str) -> str:
    change = next(c for c in remedy.changes if c.path == path)
    return change.after


def test_open_debian_host_gets_a_default_drop_nftables_conf_for_both_families() -> None:
    facts = host(rules_output(None), SSHD + WEB + ADMIN + DHCP, allow=("8080/tcp",))
    remedy = plan(facts)
    assert remedy is not None and remedy.applicable and remedy.deadman and remedy.explicit, remedy
    assert remedy.guard == "key-login"
    conf = _written(remedy, NFT_CONF)
    assert conf.startswith("#!/usr/sbin/nft -f\n") and "flush ruleset" in conf  # nothing else loaded: Debian's way
    assert "policy drop;" in conf and "table inet nectar_audit {" in conf
    assert "tcp dport { 22, 8080 } accept" in conf and "9090" not in conf
    assert 'iif "lo" accept' in conf and "ct state established,related accept" in conf
    # IPv6 needs neighbour discovery and too-big; the DHCP client (dhclient runs) gets its replies.
    assert "nd-neighbor-solicit" in conf and "packet-too-big" in conf and "nd-router-advert" in conf
    assert "udp sport 67 udp dport 68 accept" in conf
    text = remedy.text()
    assert "no longer let in: 9090/tcp (cockpit)" in text and "--allow 9090/tcp" in text
    assert "let in: 8080/tcp (fix --allow)" in remedy.preconditions
    assert [s.sh for s in remedy.validate] == [f"nft -c -f {NFT_CONF}"]
    assert any(NFT_WANTS in s.backs_up for s in remedy.commands)  # enabled at boot, undone by the backup
    # The audit's own parser reads the file back: an image with it enabled at boot passes 08 (both families).
    img = _offline({NFT_CONF: conf}, (NFT_WANTS,))
    img.add_file("/etc/os-release", DEBIAN)
    findings = host_firewall.run(Facts(img))
    assert [f.status for f in findings if f.status is not Status.PASS] == [], [f.message for f in findings]
    # The activation and its undo twin are valid sh.
    for step in (*remedy.commands, *remedy.validate, *remedy.activate):
        assert subprocess.run(["sh", "-n"], input=step.sh.encode(), check=False).returncode == 0, step.sh


def test_docker_chains_are_left_alone_in_a_table_of_our_own() -> None:
    rules = rules_output(None, iptables_nft_save=sample("docker-iptables-nft-save.v4"), ip6tables_nft_save="")
    facts = host(rules, SSHD)
    need = needed(facts)
    assert need.foreign and any("DOCKER" in c for c in need.managed)
    remedy = plan(facts)
    assert remedy is not None and remedy.applicable
    conf = _written(remedy, NFT_CONF)
    assert "flush ruleset" not in conf  # would delete Docker's chains
    assert conf.index("table inet nectar_audit {}") < conf.index("delete table inet nectar_audit")
    assert any("Docker/libvirt chains left alone" in n and "DOCKER" in n for n in remedy.notes)
    assert "forward" not in conf  # Docker's forwarding is not ours to filter
    # The activation loads only our table, and removes only it once the file no longer names it.
    [activate] = remedy.activate
    assert "flush" not in activate.sh and "nft delete table inet nectar_audit" in activate.sh


def test_libvirt_chains_are_detected_too() -> None:
    rules = rules_output(None, iptables_nft_save=sample("libvirt-iptables-nft-save.v4"), ip6tables_nft_save="")
    need = needed(host(rules, SSHD))
    assert any("LIBVIRT" in c for c in need.managed), need.managed


def test_dhcpv6_from_the_network_configuration_and_no_dhcp_when_static() -> None:
    ifaces = "auto eth0\niface eth0 inet static\n  address 192.0.2.5/24\niface eth0 inet6 dhcp\n"
    need = needed(host(rules_output(None), SSHD, files={"/etc/network/interfaces": ifaces}))
    assert need.dhcp == (6,)
    conf = _written(plan(host(rules_output(None), SSHD, files={"/etc/network/interfaces": ifaces})), NFT_CONF)
    assert "udp sport 547 udp dport 546 accept" in conf and "dport 68" not in conf
    static = "auto eth0\niface eth0 inet static\n  address 192.0.2.5/24\n"
    assert needed(host(rules_output(None), SSHD, files={"/etc/network/interfaces": static})).dhcp == ()
    networkd = host(rules_output(None), SSHD,
                    ps=f"{400:>10} {1:>10} {998:>10} {'systemd-network':<32} {'systemd-network':<16} "
                       "/lib/systemd/systemd-networkd\n")
    assert needed(networkd).dhcp == (4, 6)


def test_ports_the_current_firewall_lets_in_are_kept_with_their_sources_deny_drops_them() -> None:
    v4 = ("*filter\n:INPUT DROP [0:0]\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
          "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
          "-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 5432 -j ACCEPT\n"
          "-A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT\nCOMMIT\n")
    rules = rules_output(None, iptables_nft_save=v4, ip6tables_nft_save="")
    need = needed(host(rules, SSHD + WEB + PG))
    kept = {o.label: o.sources for o in need.openings}
    assert kept == {"22/tcp": (), "8080/tcp": (), "5432/tcp": ("10.0.0.0/8",)}, need
    conf = _written(plan(host(rules, SSHD + WEB + PG)), NFT_CONF)
    assert "ip saddr { 10.0.0.0/8 } tcp dport 5432 accept" in conf
    denied = needed(host(rules, SSHD + WEB + PG, deny=("8080/tcp", "22/tcp")))
    assert {o.label for o in denied.openings} == {"22/tcp", "5432/tcp"}  # the way in always stays
    assert any(d.startswith("8080/tcp (python3): fix --deny") for d in denied.dropped)


def test_a_users_own_nftables_conf_is_kept_and_includes_ours() -> None:
    mine = "#!/usr/sbin/nft -f\ntable ip nat {\n\tchain pre {\n\t\ttype nat hook prerouting priority dstnat;\n" \
           "\t\ttcp dport 80 redirect to :8080\n\t}\n}\n"
    remedy = plan(host(rules_output(None), SSHD, files={NFT_CONF: mine}))
    assert remedy is not None and remedy.applicable
    edit = next(c for c in remedy.changes if c.path == NFT_CONF)
    assert not edit.whole and apply_line_edits(mine, edit.edits) == edit.after
    assert edit.after.endswith('}\ninclude "/etc/nftables.d/nectar-audit-08.nft"  # nectar-audit 08\n')
    assert "policy drop;" in _written(remedy, NFT_OWN)


def test_ubuntu_gets_ufw_rules_and_rhel_firewalld_ports() -> None:
    files = ufw_files(enabled=False)
    remedy = plan(host(rules_output(None), SSHD + WEB, os_release=UBUNTU, files=files, allow=("8080/tcp",)))
    assert remedy is not None and remedy.applicable and "ufw" in remedy.summary
    cmds = [s.sh for s in remedy.commands]
    assert "ufw default deny incoming >/dev/null" in cmds
    assert "ufw allow 22/tcp >/dev/null" in cmds and "ufw allow 8080/tcp >/dev/null" in cmds
    conf = next(c for c in remedy.changes if c.path == "/etc/ufw/ufw.conf")
    assert "ENABLED=yes" in conf.after.split("\n") and not conf.whole
    assert "force-stop" in remedy.activate[0].sh  # the undo twin stops ufw again
    rocky = plan(host(rules_output(None), SSHD + WEB, os_release=ROCKY, allow=("8080/tcp",)))
    assert rocky is not None and rocky.applicable and "firewalld" in rocky.summary
    rcmds = " ".join(s.sh for s in rocky.commands)
    assert "--add-port=22/tcp" in rcmds and "--add-port=8080/tcp" in rcmds and "--zone=public" in rcmds
    assert "systemctl enable firewalld" in rcmds



def test_firewalld_enabled_but_stopped_keeps_its_zone_and_is_stopped_again_by_an_undo() -> None:
    files = {"/etc/firewalld/firewalld.conf": sample("firewalld/firewalld.conf"),
             "/etc/firewalld/zones/public.xml": sample("firewalld/zones/public.xml"),  # ssh and 8080/tcp
             "/usr/lib/firewalld/zones/public.xml": sample("firewalld/usr-zones/public.xml")}

    def rocky(running: str) -> Remedy:
        facts = host(rules_output(None), SSHD + WEB + ADMIN, os_release=ROCKY, files=files)
        facts.bundle.commands[SYSTEMCTL_COMMAND] = CommandRecord(
            "#enabled\nfirewalld.service enabled enabled\n#running\nsshd.service loaded active running OpenSSH\n"
            + running)
        remedy = plan(facts)
        assert remedy is not None and remedy.applicable and "firewalld" in remedy.summary, remedy
        return remedy

    stopped = rocky("")
    # Nothing is loaded, but starting firewalld loads its zone: 8080 stays let in, it is not "no longer".
    assert any(p.startswith("let in: 8080/tcp (python3; firewalld's permanent configuration lets it in")
               for p in stopped.preconditions), stopped.preconditions
    assert [n for n in stopped.notes if n.startswith("no longer let in")] == [
        "no longer let in: 9090/tcp (cockpit): nothing but an open default lets it in; keep it with --allow 9090/tcp"]
    cmds = " ".join(s.sh for s in stopped.commands)
    assert "--add-port=22/tcp" in cmds and "--add-port=8080/tcp" not in cmds  # already in the zone
    assert "systemctl enable" not in cmds
    # Stopped before: the run records that it started firewalld; an undo restores that file, and stops it.
    assert any(FIREWALLD_STARTED in s.backs_up and '"$NA_RUN"' in s.sh for s in stopped.commands)
    [activate] = stopped.activate
    assert f'"$(cat {FIREWALLD_STARTED} 2>/dev/null)" = "$NA_RUN"' in activate.sh
    assert "else systemctl stop firewalld" in activate.sh
    # Running before: after the run or its undo it runs (and reloads); nothing recorded.
    running = rocky("firewalld.service loaded active running firewalld - dynamic firewall daemon\n")
    assert [s.sh for s in running.activate] == [
        "{ systemctl start firewalld && firewall-cmd --reload; } >/dev/null 2>&1"]
    assert not any(FIREWALLD_STARTED in s.backs_up for s in running.commands)


def test_port_specs() -> None:
    assert parse_spec("8080/TCP") == ("tcp", 8080)
    for bad in ("8080", "0/tcp", "70000/udp", "80/icmp"):
        try:
            parse_spec(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_security_groups_decide_what_an_open_host_keeps_when_the_audit_knows_them() -> None:
    facts = host(rules_output(None), SSHD + WEB + ADMIN)
    rule = {"id": "r1", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 9090,
            "port_range_max": 9090, "remote_ip_prefix": "0.0.0.0/0"}
    ssh = {**rule, "id": "r2", "port_range_min": 22, "port_range_max": 22}
    facts.bundle.cloud = {
        "format": "nectar-audit-openstack-instance/1", "server": {"id": "vm-1", "name": "vm"},
        "security_groups": [{"id": "g1", "name": "web", "security_group_rules": [rule, ssh]}],
        "ports": [{"id": "p1", "network_id": "n1", "fixed_ips": [{"ip_address": "192.0.2.5"}],
                   "security_groups": ["g1"]}],
    }
    need = needed(facts)
    assert {o.label for o in need.openings} == {"22/tcp", "9090/tcp"}
    assert any(o.label == "9090/tcp" and "security groups let it in" in o.why for o in need.openings)
    assert any(d.startswith("8080/tcp (python3): the security groups do not let it in") for d in need.dropped)


def test_an_enabled_ufw_on_debian_is_kept_rather_than_adding_nftables_beside_it() -> None:
    files = ufw_files(enabled=True)
    files["/etc/default/ufw"] = files["/etc/default/ufw"].replace("IPV6=yes", "IPV6=no")
    remedy = plan(host(rules_output(None), SSHD, files=files))
    assert remedy is not None and "with ufw" in remedy.summary
    default = next(c for c in remedy.changes if c.path == "/etc/default/ufw")
    assert "IPV6=yes" in default.after.split("\n") and not any(c.path == NFT_CONF for c in remedy.changes)
