"""Where sshd and its configuration live, and the bounds of evaluating it."""

from __future__ import annotations

SSHDIR = "/etc/ssh"
MAIN_CONFIG = "/etc/ssh/sshd_config"
DROPIN_DIR = "/etc/ssh/sshd_config.d"
# The connection the live probe asks sshd -T about: an address from TEST-NET-2, i.e. "the internet".
PROBE_ADDR = "198.51.100.7"
PROBE_ADDR6 = "2001:db8::7"
# A user name that exists nowhere: stands for an account created later (cloud-init's default user on
# an image, any new user on a VM). sshd -T is asked about it too.
GENERIC_USER = "nectar-new-user"
MAX_RUNTIME_USERS = 32
MAX_INCLUDE_DEPTH = 16
MAX_CONTEXTS = 256
T_COMMAND = "sshd.T"

# Options the service passes on sshd's command line: ssh.service reads SSHD_OPTS from /etc/default/ssh
# (Debian, Ubuntu), sshd.service OPTIONS from /etc/sysconfig/sshd (RHEL family). -o beats the file.
CMDLINE_FILES = {"/etc/default/ssh": "SSHD_OPTS", "/etc/sysconfig/sshd": "OPTIONS"}
# RHEL/Fedora's 50-redhat.conf (or 40-redhat-crypto-policies.conf) includes it.
CRYPTO_POLICY = "/etc/crypto-policies/back-ends/opensshserver.config"
SSHD_BINARIES = ("/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd", "/usr/local/sbin/sshd")
SOCKET_UNITS = ("ssh.socket", "sshd.socket")
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/run/systemd/generator",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)
GENERATORS = (
    "/usr/lib/systemd/system-generators/sshd-socket-generator",
    "/lib/systemd/system-generators/sshd-socket-generator",
)
ENABLE_LINKS = {
    "ssh.socket": (
        "/etc/systemd/system/sockets.target.wants/ssh.socket",
        "/etc/systemd/system/ssh.service.requires/ssh.socket",
    ),
    "sshd.socket": ("/etc/systemd/system/sockets.target.wants/sshd.socket",),
}
