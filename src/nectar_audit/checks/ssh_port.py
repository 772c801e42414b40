"""Check-Security-18: are other ports used for SSH?

Every port sshd listens on: all Port lines, ListenAddress host:port, and on Ubuntu 22.10+ the
``ssh.socket`` unit (socket activation: its ListenStream decides, sshd's Port is not used unless
Ubuntu's sshd-socket-generator copied it). Live, the sockets the running sshd holds are added, which
catches a changed Port that was never applied. Each must be other than 22 and not below 1024.
"""

from __future__ import annotations

from nectar_audit.checks.base import Check, for_family
from nectar_audit.checks.ssh_password_login import ssh_unit
from nectar_audit.checks.ssh_port_fix import NEEDS as PLAN_NEEDS
from nectar_audit.checks.ssh_port_fix import plan
from nectar_audit.facts import Facts
from nectar_audit.facts import host as host_facts
from nectar_audit.facts import net as net_facts
from nectar_audit.facts import ssh as ssh_facts
from nectar_audit.facts.ssh import ListenInfo, SshdConfig, includes_dropins, sshd_config, sshd_listeners
from nectar_audit.model import Evidence, Finding, Status

FOLLOW = (
    "the Nectar security group of this instance must allow TCP {port} (and then no longer 22), and "
    "the fail2ban sshd jail must watch port {port}"
)


def _port_evidence(info: ListenInfo, port: int) -> list[Evidence]:
    ev = [Evidence(p.where, p.detail) for p in info.ports if p.port == port]
    if info.running is not None and port in info.running:
        ev.append(Evidence(info.running_source or "listening sockets", f"the running sshd listens on {port}"))
    return ev


def _fix(facts: Facts, cfg: SshdConfig, info: ListenInfo) -> str:
    unit = ssh_unit(facts)
    remove = [p for p in info.config_ports if p.port < 1024 and p.where.startswith("/")]
    remove_text = "".join(f"; remove `{p.detail}` at {p.where}" for p in remove)
    if includes_dropins(cfg):
        set_port = (
            'echo "Port $NEWPORT" | sudo tee /etc/ssh/sshd_config.d/00-nectar-audit-port.conf' + remove_text
        )
    else:
        set_port = "set `Port $NEWPORT` in /etc/ssh/sshd_config (one Port line only)" + remove_text
    socket = info.socket
    if socket is not None and socket.generator:
        apply = (
            f"sudo sshd -t && sudo systemctl daemon-reload && sudo systemctl restart {socket.name}"
            f" && sudo systemctl restart {unit}"
        )
    elif socket is not None:
        apply = (
            f"{socket.name} decides the port here: sudo systemctl edit {socket.name}, add "
            f"`[Socket]` `ListenStream=` `ListenStream=$NEWPORT`, then sudo systemctl restart "
            f"{socket.name} (or stop socket activation: sudo systemctl disable --now {socket.name} && "
            f"sudo systemctl enable --now {unit}.service); sudo sshd -t"
        )
    else:
        apply = f"sudo sshd -t && sudo systemctl restart {unit}"
    fail2ban = (
        "printf '[sshd]\\nport = %s\\n' \"$NEWPORT\" | sudo tee /etc/fail2ban/jail.d/"
        "nectar-audit-ssh-port.local && sudo systemctl restart fail2ban  (if fail2ban is installed)"
    )
    group = (
        'openstack security group rule create --ingress --protocol tcp --dst-port "$NEWPORT" '
        "--remote-ip YOUR_NETWORK/24 YOUR_GROUP  (or the dashboard: Network > Security Groups)"
    )
    return (
        for_family(
            facts,
            {
                "debian": (
                    f"NEWPORT=2222  # any free port from 1024 to 65535. 1) {group}; if ufw is active: "
                    f'sudo ufw allow "$NEWPORT"/tcp. 2) {fail2ban}. 3) {set_port}; {apply}. '
                    '4) keep this session open and test: ssh -p "$NEWPORT" USER@HOST'
                ),
                "rhel": (
                    f"NEWPORT=2222  # any free port from 1024 to 65535. 1) {group}. 2) SELinux: sudo "
                    'semanage port -a -t ssh_port_t -p tcp "$NEWPORT" (from policycoreutils-python-utils); '
                    'firewalld: sudo firewall-cmd --permanent --add-port="$NEWPORT"/tcp && sudo firewall-cmd '
                    f"--reload. 3) {fail2ban}. 4) {set_port}; {apply}. 5) keep this session open and test: "
                    'ssh -p "$NEWPORT" USER@HOST'
                ),
            },
        )
        or apply
    )


def run(facts: Facts) -> list[Finding]:
    cfg = facts.get(sshd_config)
    if not cfg.installed:
        return [Finding(Status.NOT_APPLICABLE, "no SSH server (sshd) is installed")]
    info = facts.get(sshd_listeners)
    config_ports = [p.port for p in info.ports]
    running = list(info.running) if info.running is not None else []
    notes = [Evidence(info.socket.name if info.socket else "sshd", n) for n in info.notes]
    if info.socket is not None:
        notes.append(
            Evidence(
                info.socket.enabled_source or info.socket.name,
                f"{info.socket.name} is enabled: systemd listens for sshd (socket activation)",
            )
        )
    findings: list[Finding] = []
    fix = _fix(facts, cfg, info)
    decided_by = f" by {info.socket.name} (socket activation)" if info.socket is not None else ""
    for port in info.all_ports:
        only_running = port not in config_ports
        ev = _port_evidence(info, port)
        if only_running:
            what = (
                f"the running sshd still listens on port {port}, which the configuration no longer "
                f"names: restart it (sudo systemctl restart {ssh_unit(facts)})"
            )
        else:
            what = f"SSH listens on port {port}{decided_by}"
        if port == 22:
            findings.append(
                Finding(
                    Status.FAIL, f"{what}: 22 is the default port every scanner tries", [*ev, *notes], fix
                )
            )
        elif port < 1024:
            findings.append(
                Finding(
                    Status.FAIL,
                    f"{what}: ports below 1024 are reserved for system services; use one from 1024 to 65535",
                    [*ev, *notes],
                    fix,
                )
            )
        elif only_running:
            findings.append(Finding(Status.WARN, what, ev))
    if info.running is not None and not running:
        notes.append(Evidence(info.running_source or "listening sockets", "sshd is not listening right now"))
    if not findings:
        ports = ", ".join(str(p) for p in info.all_ports) or "none"
        port_word = "ports" if len(info.all_ports) > 1 else "port"
        msg = (
            f"SSH listens on {port_word} {ports}{decided_by}, not 22 and not below 1024; remember: "
            + FOLLOW.format(port=ports)
        )
        ev = [e for p in info.all_ports for e in _port_evidence(info, p)]
        findings.append(Finding(Status.PASS, msg, [*ev, *notes]))
    else:
        good = [p for p in info.all_ports if p != 22 and p >= 1024 and p in config_ports]
        for f in findings:
            if f.status is Status.FAIL and good:
                f.message += f" (it also listens on {', '.join(map(str, good))})"
    return findings


CHECK = Check(
    id="Check-Security-18",
    severity="low",
    run=run,
    needs=host_facts.NEEDS | net_facts.NEEDS | ssh_facts.NEEDS,
    why="Port 22 is scanned by every bot on the internet; another port (1024 or above, since lower ports "
    "are reserved for system services) cuts the noise of automated login attempts.",
    how="Every port sshd listens on: all Port lines and ListenAddress host:port (sshd -T when live and "
    "root, else the parsed configuration), or the ListenStream of ssh.socket when socket activation "
    "is enabled (Ubuntu 22.10+, where it decides the real listener); live, also the ports the running "
    "sshd holds. Each must differ from 22 and be 1024 or above. A new port must also be opened in the "
    "security group and set in the fail2ban sshd jail; `nectar-audit cloud --ssh-user` checks the security "
    "groups against sshd's ports (locked out, or 22 left open).",
    fix={
        "debian": "echo 'Port 2222' | sudo tee /etc/ssh/sshd_config.d/00-nectar-audit-port.conf; "
        "open 2222/tcp in the security group (and ufw), set port = 2222 in the fail2ban sshd jail; "
        "Ubuntu 22.10+: sudo systemctl daemon-reload && sudo systemctl restart ssh.socket; "
        "else sudo systemctl restart ssh",
        "rhel": "semanage port -a -t ssh_port_t -p tcp 2222; firewall-cmd --permanent --add-port=2222/tcp && "
        "firewall-cmd --reload; Port 2222 in sshd_config; port = 2222 in the fail2ban sshd jail; "
        "sudo systemctl restart sshd",
    },
    plan=plan,
    plan_needs=PLAN_NEEDS,
)
