"""Check-Security-18 (SSH port) on evidence bundles."""

from __future__ import annotations

from nectar_audit.checks import ssh_password_login, ssh_port
from nectar_audit.evidence.bundle import CommandRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.model import Status
from tests.checks.ssh_bundles import (
    MAIN,
    PASSWD,
    ROCKY,
    SAMPLES,
    SSHD_T_BASE,
    D,
    bundle,
    debian12,
    distro_files,
    judge,
    runtime,
    statuses,
)

# ==================================================================================================
# Check 18
# ==================================================================================================
LINK = 0o120777


def test_18_default_port_fails() -> None:
    r = judge(ssh_port, bundle(debian12()))
    assert statuses(r) == ["fail"]
    assert r.summary == "SSH listens on port 22: 22 is the default port every scanner tries"
    rem = r.findings[0].remediation or ""
    assert rem.startswith("NEWPORT=2222")
    assert "sudo ufw allow" in rem and "jail.d/nectar-audit-ssh-port.local" in rem
    assert 'echo "Port $NEWPORT" | sudo tee /etc/ssh/sshd_config.d/00-nectar-audit-port.conf' in rem
    assert "sudo systemctl restart ssh" in rem


def test_18_custom_port_passes_with_reminder() -> None:
    files = debian12()
    files[f"{D}/port.conf"] = "Port 2222\n"
    r = judge(ssh_port, bundle(files))
    assert statuses(r) == ["pass"]
    assert r.summary == (
        "SSH listens on port 2222, not 22 and not below 1024; remember: the Nectar security group "
        "of this instance must allow TCP 2222 (and then no longer 22), and the fail2ban sshd jail "
        "must watch port 2222"
    )
    assert r.findings[0].evidence[0].source == f"{D}/port.conf:1"


def test_18_low_port_and_second_port() -> None:
    r = judge(ssh_port, bundle({MAIN: "Port 222\n"}))
    assert r.summary == (
        "SSH listens on port 222: ports below 1024 are reserved for system services; use one "
        "from 1024 to 65535"
    )
    r = judge(ssh_port, bundle({MAIN: "Port 22\nPort 2222\n"}))
    assert statuses(r) == ["fail"]
    assert r.summary.endswith("(it also listens on 2222)")
    assert f"remove `Port 22` at {MAIN}:1" in (r.findings[0].remediation or "")


def test_18_listen_address_with_port() -> None:
    r = judge(ssh_port, bundle({MAIN: "Port 22\nListenAddress 0.0.0.0:2200\n"}))
    assert r.status is Status.PASS and "port 2200" in r.summary


def test_18_rhel_remediation() -> None:
    r = judge(ssh_port, bundle(distro_files("rocky-9"), os_release=ROCKY))
    rem = r.findings[0].remediation or ""
    assert 'semanage port -a -t ssh_port_t -p tcp "$NEWPORT"' in rem
    assert "firewall-cmd --permanent --add-port" in rem
    assert "sudo systemctl restart sshd" in rem


def socket_stats(generator: bool = False) -> dict[str, StatRecord]:
    st_ = {
        "/etc/systemd/system/sockets.target.wants/ssh.socket": StatRecord(LINK, 0, 0, 32, 0),
        "/etc/systemd/system/ssh.service.requires/ssh.socket": StatRecord(LINK, 0, 0, 32, 0),
    }
    if generator:
        st_["/usr/lib/systemd/system-generators/sshd-socket-generator"] = StatRecord(0o100755, 0, 0, 9000, 0)
    return st_


def ubuntu_socket_files(port: str | None) -> dict[str, str]:
    files = distro_files("ubuntu-22.04")
    files["/usr/lib/systemd/system/ssh.socket"] = (SAMPLES / "ubuntu-24.04" / "ssh.socket").read_text()
    if port:
        files[f"{D}/port.conf"] = f"Port {port}\n"
    return files


def test_18_socket_activation_ignores_sshd_port_without_generator() -> None:
    # Ubuntu 22.10/23.04: ssh.socket decides, the Port line in sshd_config is not used.
    r = judge(ssh_port, bundle(ubuntu_socket_files("2222"), stats=socket_stats()))
    assert statuses(r) == ["fail"]
    assert r.summary == (
        "SSH listens on port 22 by ssh.socket (socket activation): 22 is the default port every scanner tries"
    )
    details = " ".join(e.detail for e in r.findings[0].evidence)
    assert "sshd's own Port/ListenAddress (2222) is not used" in details
    assert "sudo systemctl edit ssh.socket" in (r.findings[0].remediation or "")


def test_18_socket_activation_with_generator_offline_image() -> None:
    # Ubuntu 24.04 image: at boot sshd-socket-generator copies Port 2222 into the socket.
    r = judge(ssh_port, bundle(ubuntu_socket_files("2222"), stats=socket_stats(generator=True)))
    assert statuses(r) == ["pass"]
    assert r.summary.startswith("SSH listens on port 2222 by ssh.socket (socket activation)")


def test_18_socket_activation_generator_live_not_reloaded() -> None:
    # Live 24.04, Port changed but no daemon-reload: no generated drop-in, the socket still has 22.
    b = bundle(
        ubuntu_socket_files("2222"),
        live=True,
        stats=socket_stats(generator=True),
        commands={"sshd.T": CommandRecord("@@skipped not root\n")},
    )
    r = judge(ssh_port, b)
    assert r.status is Status.FAIL and "port 22 by ssh.socket" in r.summary
    rem = r.findings[0].remediation or ""
    assert "sudo systemctl daemon-reload && sudo systemctl restart ssh.socket" in rem
    # After daemon-reload the generated drop-in moves the socket.
    files = ubuntu_socket_files("2222")
    files["/run/systemd/generator/ssh.socket.d/addresses.conf"] = (
        "# Automatically generated by sshd-socket-generator\n\n"
        "[Socket]\nListenStream=\nListenStream=0.0.0.0:2222\n"
    )
    r = judge(
        ssh_port,
        bundle(
            files,
            live=True,
            stats=socket_stats(generator=True),
            commands={"sshd.T": CommandRecord("@@skipped not root\n")},
        ),
    )
    assert r.status is Status.PASS


def test_18_masked_socket_uses_sshd_ports() -> None:
    st_ = {**socket_stats(), "/etc/systemd/system/ssh.socket": StatRecord(LINK, 0, 0, 9, 0)}
    r = judge(ssh_port, bundle(ubuntu_socket_files("2222"), stats=st_))
    assert r.status is Status.PASS


def test_18_running_sshd_still_on_old_port() -> None:
    ss = (
        '#ss\ntcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=812,fd=3)) uid:0 ino:1 sk:1 <->\n'
        'tcp LISTEN 0 128 127.0.0.1:25 0.0.0.0:* users:(("exim4",pid=90,fd=3)) uid:101 ino:2 sk:2 <->\n'
        "#bindv6only 0\n"
    )
    cmd = runtime(
        {
            "root": SSHD_T_BASE.format(pa="no")
            .replace("port 22\n", "port 2222\n")
            .replace("[::]:22", "[::]:2222")
            .replace("0.0.0.0:22", "0.0.0.0:2222")
        }
    )
    b = bundle({MAIN: "Port 2222\n"}, live=True, commands={"sshd.T": cmd, "sockets.ss": CommandRecord(ss)})
    r = judge(ssh_port, b)
    assert statuses(r) == ["fail"]
    assert r.summary == (
        "the running sshd still listens on port 22, which the configuration no longer names: "
        "restart it (sudo systemctl restart ssh): 22 is the default port every scanner tries "
        "(it also listens on 2222)"
    )


def test_18_not_installed() -> None:
    assert judge(ssh_port, bundle({}, installed=False)).status is Status.NOT_APPLICABLE


def test_public_fact_api() -> None:
    from nectar_audit.facts.ssh.sshd import sshd_config, sshd_listen_ports, sshd_uses_pam

    f = Facts(bundle(distro_files("ubuntu-24.04")))
    assert sshd_listen_ports(f) == [22]
    assert sshd_uses_pam(f) is True
    cfg = f.get(sshd_config)
    assert cfg.installed and cfg.match_blocks == []
    assert cfg.global_settings["passwordauthentication"].where == f"{D}/50-cloud-init.conf:1"
    assert (
        cfg.effective(user="ubuntu", groups=["sudo"], host="x", addr="192.0.2.1")["passwordauthentication"]
        == "yes"
    )


def test_01_many_login_accounts_are_grouped() -> None:
    passwd = PASSWD + "".join(f"u{i}:x:{2000 + i}:100::/home/u{i}:/bin/bash\n" for i in range(100000))
    files = {
        MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\nMatch User u7\n"
        "  PasswordAuthentication yes\n"
    }
    r = judge(ssh_password_login, bundle(files, passwd=passwd))
    assert (
        r.summary
        == f"Match User u7 ({MAIN}:3) turns on password login for u7: PasswordAuthentication yes in {MAIN}:4"
    )


def test_service_command_line_options_win() -> None:
    # ssh.service runs `sshd -D $SSHD_OPTS`: -o beats every file, -p replaces the Port lines.
    files = {
        MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPort 22\n",
        "/etc/default/ssh": "# Default settings for openssh-server.\n"
        'SSHD_OPTS="-o PasswordAuthentication=yes -p 2222"\n',
    }
    r = judge(ssh_password_login, bundle(files))
    assert r.summary.startswith("password login is on: PasswordAuthentication yes in /etc/default/ssh:2")
    assert judge(ssh_port, bundle(files)).summary.startswith("SSH listens on port 2222, not 22")
    # sshd -T is not given the service's options: the command line still wins over its answer.
    cmd = runtime({u: SSHD_T_BASE.format(pa="no") for u in ("root", "nectar-new-user", "ubuntu", "alice")})
    r = judge(ssh_password_login, bundle(files, live=True, commands={"sshd.T": cmd}))
    assert r.summary.startswith("password login is on: PasswordAuthentication yes in /etc/default/ssh:2")
    assert judge(ssh_port, bundle(files, live=True, commands={"sshd.T": cmd})).status is Status.PASS


def test_service_started_with_other_config_file_warns() -> None:
    files = {
        MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\n",
        "/etc/sysconfig/sshd": "OPTIONS='-f /srv/sshd.conf'\n",
    }
    r = judge(ssh_password_login, bundle(files, os_release=ROCKY))
    assert statuses(r) == ["pass", "warn"]
    assert (
        r.summary
        == "sshd is started with -f /srv/sshd.conf: its configuration is that file, not /etc/ssh/sshd_config"
    )
