"""How a scan reaches SSH hosts: options shared by every SSH target, kept apart from the SSH code itself
so that a local scan never imports asyncio or asyncssh just to build its command line."""

from __future__ import annotations

from dataclasses import dataclass

HOST_KEYS_STRICT = "strict"  # known_hosts only (the default)
HOST_KEYS_ACCEPT_NEW = "accept-new"  # trust on first use, written to known_hosts; a changed key is refused
HOST_KEYS_OFF = "off"  # --no-host-key-check: anything goes (loudly)
HOST_KEY_POLICIES = (HOST_KEYS_STRICT, HOST_KEYS_ACCEPT_NEW, HOST_KEYS_OFF)

DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_COMMAND_TIMEOUT = 120.0
# Hosts in flight at once: a fleet waits on SSH logins and remote gathering, not on this machine.
DEFAULT_CONCURRENCY = 32
# What one host may send as evidence (a real host sends 1-5 MiB); past it the rest is not read.
DEFAULT_MAX_EVIDENCE_MIB = 64


@dataclass(frozen=True)
class SshOptions:
    """How to reach hosts; shared by every SSH target of a scan."""

    identities: tuple[str, ...] = ()  # -i/--identity, tried before the ssh config's IdentityFile
    # OpenSSH client config files; None = asyncssh's default (~/.ssh/config), () = none at all (-F none)
    config_files: tuple[str, ...] | None = None
    known_hosts: str | None = None  # None = UserKnownHostsFile of the config, else ~/.ssh/known_hosts
    host_keys: str = HOST_KEYS_STRICT
    sudo: bool | None = None  # None: sudo -n exactly when the login user is not root
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    use_agent: bool = True
    max_evidence_mib: float = DEFAULT_MAX_EVIDENCE_MIB

    def __post_init__(self) -> None:
        if self.host_keys not in HOST_KEY_POLICIES:
            raise ValueError(f"host key policy must be one of {HOST_KEY_POLICIES}, not {self.host_keys!r}")
