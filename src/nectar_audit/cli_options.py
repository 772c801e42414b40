"""Command-line options shared by commands that log in to hosts over SSH (``scan``, ``cloud``)."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import click

from nectar_audit.targets.ssh_options import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONCURRENCY,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_EVIDENCE_MIB,
    HOST_KEYS_ACCEPT_NEW,
    HOST_KEYS_OFF,
    HOST_KEYS_STRICT,
    SshOptions,
)

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("--concurrency", type=click.IntRange(1, 1024), default=DEFAULT_CONCURRENCY, show_default=True,
                 help="Hosts audited at the same time."),
    click.option("-i", "--identity", "identities", multiple=True, metavar="KEYFILE",
                 type=click.Path(exists=True, dir_okay=False),
                 help="SSH private key to try first (repeatable); the ssh config and ssh-agent still apply."),
    click.option("-F", "--ssh-config", "ssh_config", metavar="FILE",
                 help="OpenSSH client config to use instead of ~/.ssh/config ('none' for no config)."),
    click.option("--known-hosts", "known_hosts", type=click.Path(dir_okay=False), metavar="FILE",
                 help="known_hosts file (default: UserKnownHostsFile of the ssh config, "
                      "else ~/.ssh/known_hosts)."),
    click.option("--accept-new-host-keys", is_flag=True,
                 help="Trust the key of a host seen for the first time and add it to known_hosts "
                      "(a changed key is still refused)."),
    click.option("--no-host-key-check", is_flag=True,
                 help="DANGEROUS: do not verify SSH host keys at all (anyone on the path can forge results)."),
    click.option("--sudo/--no-sudo", "sudo", default=None,
                 help="Run the gatherer with sudo -n (default: exactly when the SSH login user is not root)."),
    click.option("--connect-timeout", type=click.FloatRange(0.1), default=DEFAULT_CONNECT_TIMEOUT,
                 show_default=True, metavar="SECONDS", help="Limit for reaching and logging in to a host (per hop)."),
    click.option("--command-timeout", type=click.FloatRange(0.1), default=DEFAULT_COMMAND_TIMEOUT,
                 show_default=True, metavar="SECONDS", help="Limit for the evidence gathering on a host."),
    click.option("--max-evidence", "max_evidence", type=click.FloatRange(1), default=DEFAULT_MAX_EVIDENCE_MIB,
                 show_default=True, metavar="MIB",
                 help="Evidence one host may send; past it the rest is not read and the checks that needed it say "
                      "error (a real host sends 1-5 MiB)."),
    click.option("--jobs", type=click.IntRange(0, 64), default=None, metavar="N",
                 help="Processes judging the evidence of a fleet (default: one per CPU but one, at most 4, from "
                      "8 hosts on; 0: judge in the main process)."),
    click.option("--progress/--no-progress", "progress", default=None,
                 help="Progress bar on stderr (default: when stderr is a terminal and there are several hosts)."),
    click.option("-q", "--quiet", is_flag=True,
                 help="No progress bar and no `stored as run N` line: with --output, a run prints nothing unless "
                      "something goes wrong (cron mails any output)."),
]


def ssh_options(func: F) -> F:
    """Decorate a click command with the SSH and fleet options (see ``make_ssh_options``)."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def make_ssh_options(identities: tuple[str, ...], ssh_config: str | None, known_hosts: str | None,
                     accept_new_host_keys: bool, no_host_key_check: bool, sudo: bool | None,
                     connect_timeout: float, command_timeout: float,
                     max_evidence: float = DEFAULT_MAX_EVIDENCE_MIB) -> SshOptions:
    if accept_new_host_keys and no_host_key_check:
        raise click.UsageError("--accept-new-host-keys and --no-host-key-check contradict each other")
    return SshOptions(
        identities=tuple(identities),
        config_files=None if ssh_config is None else (() if ssh_config.lower() == "none" else (ssh_config,)),
        known_hosts=known_hosts,
        host_keys=HOST_KEYS_OFF if no_host_key_check else (
            HOST_KEYS_ACCEPT_NEW if accept_new_host_keys else HOST_KEYS_STRICT),
        sudo=sudo,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        max_evidence_mib=max_evidence,
    )


def warn_no_host_key_check() -> None:
    click.secho("WARNING: --no-host-key-check: SSH host keys are NOT verified. Anyone on the network "
                "path can impersonate these hosts, read their evidence and forge the audit results.",
                err=True, fg="red", bold=True)
