"""Command line: ``nectar-audit scan | checks | explain``."""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Callable, TextIO

import click

from nectar_audit import __version__
from nectar_audit.checklist import BY_ID
from nectar_audit.config import Config, ConfigError, load_config, normalise_check_id
from nectar_audit.model import HostResult
from nectar_audit.registry import Entry, entries, implemented
from nectar_audit.targets import Target, TargetError, parse_target
from nectar_audit.targets.ssh_options import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONCURRENCY,
    DEFAULT_CONNECT_TIMEOUT,
    HOST_KEYS_ACCEPT_NEW,
    HOST_KEYS_OFF,
    HOST_KEYS_STRICT,
    SshOptions,
)

REPORT_FORMATS = ("text", "json", "html", "junit", "markdown", "prometheus")

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _console(file: object | None = None, *, stderr: bool = False, plain: bool = False) -> object:
    from rich.console import Console

    if plain:
        return Console(file=file, no_color=True, width=120, highlight=False, emoji=False)  # type: ignore[arg-type]
    return Console(stderr=stderr, highlight=False, emoji=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="nectar-audit")
def main() -> None:
    """Audit Linux VMs against the Nectar Research Cloud Security Administration Checklist."""


def _select(checks: str | None) -> list[Entry]:
    available = implemented()
    if not checks:
        return available
    wanted = []
    for word in re.split(r"[,\s]+", checks.strip()):
        if not word:
            continue
        cid = normalise_check_id(word)
        if cid is None:
            raise click.BadParameter(f"{word!r} is not a check id (01..18 or Check-Security-NN)",
                                     param_hint="--checks")
        entry = next(e for e in entries() if e.id == cid)
        if not entry.implemented:
            raise click.BadParameter(f"{cid} is planned, not implemented yet", param_hint="--checks")
        wanted.append(entry)
    return wanted


@main.command()
@click.argument("targets", nargs=-1)
@click.option("--checks", "checks", metavar="LIST",
              help="Only these checks, e.g. 01,17 or Check-Security-01.")
@click.option("--format", "fmt", type=click.Choice(list(REPORT_FORMATS)), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report here.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file (default /etc/nectar-audit.toml, then ~/.config/nectar-audit.toml).")
@click.option("--save-evidence", type=click.Path(), metavar="PATH",
              help="Save the raw evidence bundle (JSON); a directory when several targets are scanned.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors in findings.")
@click.option("--store", "store", is_flag=False, flag_value="default", default=None, metavar="URL",
              help="Keep this run in the history: an SQLAlchemy URL, or no value for the SQLite file in "
                   "the user's data directory.")
@click.option("--inventory", "inventory_path", type=click.Path(exists=True), metavar="FILE",
              help="Hosts to audit: a plain file (one target per line, # comments) or an Ansible inventory "
                   "(INI/YAML; needs nectar-audit[ansible]).")
@click.option("--limit", metavar="PATTERN",
              help="Only inventory hosts matching PATTERN (a group or host, Ansible patterns like web:!db).")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=DEFAULT_CONCURRENCY, show_default=True,
              help="Hosts audited at the same time.")
@click.option("-i", "--identity", "identities", multiple=True, metavar="KEYFILE",
              type=click.Path(exists=True, dir_okay=False),
              help="SSH private key to try first (repeatable); the ssh config and ssh-agent still apply.")
@click.option("-F", "--ssh-config", "ssh_config", metavar="FILE",
              help="OpenSSH client config to use instead of ~/.ssh/config ('none' for no config).")
@click.option("--known-hosts", "known_hosts", type=click.Path(dir_okay=False), metavar="FILE",
              help="known_hosts file (default: UserKnownHostsFile of the ssh config, "
                   "else ~/.ssh/known_hosts).")
@click.option("--accept-new-host-keys", is_flag=True,
              help="Trust the key of a host seen for the first time and add it to known_hosts "
                   "(a changed key is still refused).")
@click.option("--no-host-key-check", is_flag=True,
              help="DANGEROUS: do not verify SSH host keys at all (anyone on the path can forge results).")
@click.option("--sudo/--no-sudo", "sudo", default=None,
              help="Run the gatherer with sudo -n (default: exactly when the SSH login user is not root).")
@click.option("--connect-timeout", type=click.FloatRange(0.1), default=DEFAULT_CONNECT_TIMEOUT,
              show_default=True, metavar="SECONDS",
              help="Limit for reaching and logging in to a host (per hop).")
@click.option("--command-timeout", type=click.FloatRange(0.1), default=DEFAULT_COMMAND_TIMEOUT,
              show_default=True, metavar="SECONDS", help="Limit for the evidence gathering on a host.")
@click.option("--jobs", type=click.IntRange(0, 64), default=None, metavar="N",
              help="Processes judging the evidence of a fleet (default: one per CPU, at most 4, from 8 hosts "
                   "on; 0: judge in the main process).")
@click.option("--progress/--no-progress", "progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal and there are several hosts).")
@click.option("--probe/--no-probe", "do_probe", default=False, show_default=True,
              help="Also send active network probes to each SSH target's address (see README: Active probes).")
def scan(targets: tuple[str, ...], checks: str | None, fmt: str, output: str | None,
         config_path: str | None, save_evidence: str | None, debug: bool, inventory_path: str | None,
         limit: str | None, concurrency: int, identities: tuple[str, ...], ssh_config: str | None,
         known_hosts: str | None, accept_new_host_keys: bool, no_host_key_check: bool,
         sudo: bool | None, connect_timeout: float, command_timeout: float, jobs: int | None,
         progress: bool | None, store: str | None = None, do_probe: bool = False) -> None:
    """Audit TARGETS: local (default), root:PATH (an offline root filesystem), evidence:FILE.json,
    or hosts over SSH: user@host[:port], ssh://user@host[:port], [ipv6]:port or an ssh_config alias.

    Nothing is installed on SSH hosts and no Python is needed there: one connection, one command.
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    selected = _select(checks)
    if accept_new_host_keys and no_host_key_check:
        raise click.UsageError("--accept-new-host-keys and --no-host-key-check contradict each other")
    if limit and not inventory_path:
        raise click.UsageError("--limit selects hosts of an --inventory")
    ssh = SshOptions(
        identities=tuple(identities),
        config_files=None if ssh_config is None else (() if ssh_config.lower() == "none" else (ssh_config,)),
        known_hosts=known_hosts,
        host_keys=HOST_KEYS_OFF if no_host_key_check else (
            HOST_KEYS_ACCEPT_NEW if accept_new_host_keys else HOST_KEYS_STRICT),
        sudo=sudo,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
    )
    try:
        parsed = [parse_target(t, ssh) for t in targets]
    except TargetError as exc:
        raise click.UsageError(str(exc)) from exc
    if inventory_path:
        from nectar_audit.inventory import InventoryError, inventory_targets, load_inventory

        try:
            parsed += inventory_targets(load_inventory(inventory_path, limit), ssh)
        except InventoryError as exc:
            raise click.UsageError(str(exc)) from exc
    if not parsed:
        parsed = [parse_target("local")]
    if no_host_key_check and any(getattr(t, "kind", "") == "ssh" for t in parsed):
        click.secho("WARNING: --no-host-key-check: SSH host keys are NOT verified. Anyone on the network "
                    "path can impersonate these hosts, read their evidence and forge the audit results.",
                    err=True, fg="red", bold=True)
    def notice(text: str) -> None:
        click.echo(f"nectar-audit: {text}", err=True)

    if len(parsed) == 1 and getattr(parsed[0], "kind", "") != "ssh":
        # This machine, an image or a saved bundle: no event loop, threads or worker processes to set up
        # (the fleet machinery alone costs a tenth of a local scan's time).
        results, interrupted = _audit_here(parsed[0], selected, config, save_evidence, debug, notice)
    else:
        from nectar_audit.fleet import run_fleet

        show_progress = progress if progress is not None else (len(parsed) > 1 and sys.stderr.isatty())
        run = run_fleet(parsed, selected, config, concurrency=concurrency, save_evidence=save_evidence,
                        debug=debug, progress=show_progress, jobs=jobs, on_notice=notice)
        results, interrupted = run.results, run.interrupted
    if do_probe and not interrupted:
        from nectar_audit.probes.run import scan_probe

        for target, res in zip(parsed, results):
            if res.error is None:
                scan_probe(res, str(getattr(target, "kind", "")), getattr(target, "host", None))
    write_report(results, fmt, output)
    if store is not None:
        from nectar_audit import history

        url = history.default_url() if store == "default" else store
        try:
            run_id = history.save_run(url, results, __version__)
        except history.HistoryError as exc:
            click.echo(f"nectar-audit: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        click.echo(f"nectar-audit: stored as run {run_id} in {url}", err=True)
    if interrupted:
        done = sum(1 for r in results if not r.error)
        click.echo(f"nectar-audit: interrupted; the report holds the {done} host(s) audited before Ctrl-C",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    if any(r.error for r in results):
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_FAIL if any(r.failing for r in results) else EXIT_OK)


def _audit_here(target: Target, selected: list[Entry], config: Config, save_evidence: str | None,
                debug: bool, notice: Callable[[str], None]) -> tuple[list[HostResult], bool]:
    """One non-SSH target, audited in this process: (results, interrupted by Ctrl-C)."""
    from nectar_audit.engine import INTERRUPTED, audit
    from nectar_audit.evidence.bundle import save_bundle

    try:
        result, bundle = audit(target, selected, config, debug=debug)
    except KeyboardInterrupt:
        return [HostResult(target=target.name, error=INTERRUPTED)], True
    for text in getattr(target, "notices", ()):
        notice(text)
    if bundle is not None and save_evidence:
        try:
            save_bundle(bundle, Path(save_evidence), target.name, False)
        except OSError as exc:
            notice(f"cannot save evidence for {target.name}: {exc.strerror or exc}")
    return [result], False


def _render_document(results: list[HostResult], fmt: str) -> str | None:
    """Formats rendered whole into one string (None for text/json, which stream)."""
    if fmt == "junit":
        from nectar_audit.reports import junit

        return junit.render(results)
    if fmt == "markdown":
        from nectar_audit.reports import markdown

        return markdown.render(results)
    if fmt == "prometheus":
        from nectar_audit.reports import prometheus

        return prometheus.render(results)
    if fmt == "html":
        from nectar_audit.reports import html

        return html.render(results)
    return None


def write_report(results: list[HostResult], fmt: str, output: str | None) -> None:
    """The one place report formats are chosen. Text reports of several hosts end with the fleet
    summary (host x check matrix, failures grouped by check)."""
    try:
        document = _render_document(results, fmt)
        if document is not None:
            if output:
                # Written next to the target and renamed: node_exporter's textfile collector (and a
                # browser reloading the page) never sees a half-written file.
                tmp = f"{output}.tmp.{os.getpid()}"
                try:
                    with open(tmp, "w", encoding="utf-8") as out:
                        out.write(document)
                    os.replace(tmp, output)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            else:
                sys.stdout.write(document)
            return
        if fmt == "json":
            if output:
                with open(output, "w", encoding="utf-8") as out:
                    write_json(results, out)
            else:
                write_json(results, sys.stdout)
            return
        from nectar_audit.reports import fleet_summary, text

        if output:
            with open(output, "w", encoding="utf-8") as fh:
                console = _console(fh, plain=True)
                text.render(results, console)  # type: ignore[arg-type]
                if len(results) > 1:
                    fleet_summary.render(results, console)  # type: ignore[arg-type]
        else:
            console = _console()
            text.render(results, console)  # type: ignore[arg-type]
            if len(results) > 1:
                fleet_summary.render(results, console)  # type: ignore[arg-type]
    except OSError as exc:
        click.echo(f"nectar-audit: cannot write report to {output}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)


def write_json(results: list[HostResult], out: TextIO) -> None:
    """``json_report.render(results)``, byte for byte, written one host at a time: a fleet's report is
    never held whole in memory (200 hosts can make tens of MB of JSON and several times that in objects).
    """
    from nectar_audit.model import report_json
    from nectar_audit.reports import json_report

    envelope = report_json([], __version__)
    head = json.dumps(envelope, indent=2, ensure_ascii=False)
    before, sep, after = head.rpartition('"hosts": []')
    if not results or not sep or set(envelope) != {"schema_version", "tool", "hosts"}:
        out.write(json_report.render(results))  # a new envelope field may depend on the hosts
        return
    out.write(before + '"hosts": [\n')
    for i, host in enumerate(results):
        text = json.dumps(host.to_json(), indent=2, ensure_ascii=False)
        out.write(("" if i == 0 else ",\n") + textwrap.indent(text, "    "))
    out.write("\n  ]" + after + "\n")


def _store_url(store: str | None) -> str:
    from nectar_audit import history

    return store or history.default_url()


@main.command("history")
@click.argument("host", required=False)
@click.option("--store", metavar="URL", help="SQLAlchemy URL of the history (default: the user's SQLite file).")
def history_cmd(host: str | None, store: str | None) -> None:
    """List stored runs (only those that audited HOST, when given)."""
    from nectar_audit import history

    try:
        runs = history.list_runs(_store_url(store), host)
    except history.HistoryError as exc:
        click.echo(f"nectar-audit: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if not runs:
        click.echo("no runs stored")
    for run in runs:
        click.echo(f"run {run.id}  {run.created}  {run.hosts} host(s), {run.failing_hosts} failing")


@main.command("diff")
@click.argument("run_a", type=int, required=False)
@click.argument("run_b", type=int, required=False)
@click.option("--store", metavar="URL", help="SQLAlchemy URL of the history (default: the user's SQLite file).")
def diff_cmd(run_a: int | None, run_b: int | None, store: str | None) -> None:
    """What changed between two runs (default: the last two): newly failing, fixed, new and vanished hosts."""
    from nectar_audit import history

    try:
        diff = history.diff_runs(_store_url(store), run_a, run_b)
    except history.HistoryError as exc:
        click.echo(f"nectar-audit: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"run {diff.run_a} -> run {diff.run_b}")
    for title, items in (("newly failing", diff.newly_failing), ("fixed", diff.fixed)):
        click.echo(f"{title}: {len(items)}")
        for host, check, summary in items:
            click.echo(f"  {host}  {check}  {summary}")
    click.echo(f"new hosts: {', '.join(diff.new_hosts) or 'none'}")
    click.echo(f"vanished hosts: {', '.join(diff.vanished_hosts) or 'none'}")
    sys.exit(EXIT_FAIL if diff.newly_failing else EXIT_OK)


@main.command("checks")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_checks(fmt: str) -> None:
    """List the checklist items and whether each is implemented."""
    if fmt == "json":
        click.echo(json.dumps([
            {"id": e.id, "title": e.title, "implemented": e.implemented,
             "severity": e.check.severity if e.check else None}
            for e in entries()
        ], indent=2))
        return
    from rich.table import Table
    from rich.text import Text

    table = Table("Check", "Question", "Severity", "Status", box=None, header_style="bold")
    for e in entries():
        state = Text("implemented", "green") if e.implemented else Text("planned", "dim")
        table.add_row(e.id, e.title, e.check.severity if e.check else "", state)
    _console().print(table)  # type: ignore[attr-defined]


@main.command()
@click.argument("check_id")
def explain(check_id: str) -> None:
    """The checklist text, why it matters, how it is verified and how to fix it."""
    from rich.markdown import Markdown

    cid = normalise_check_id(check_id)
    if cid is None:
        raise click.BadParameter(f"{check_id!r} is not a check id (01..18 or Check-Security-NN)")
    item = BY_ID[cid]
    entry = next(e for e in entries() if e.id == cid)
    parts = [f"# {cid}: {item.question}", "## The checklist says", item.text]
    if entry.check is None:
        parts += ["## Status", "Planned: not implemented yet, so `scan` does not report it."]
    else:
        c = entry.check
        parts += ["## Why it matters", c.why, "## How nectar-audit verifies it", c.how]
        if c.fix:
            parts.append("## How to fix it")
            for family, fix in c.fix.items():
                parts.append(f"**{_FAMILY_NAMES.get(family, family)}**\n\n{fix}")
    _console().print(Markdown("\n\n".join(parts)))  # type: ignore[attr-defined]


_FAMILY_NAMES = {
    "debian": "Debian and Ubuntu",
    "rhel": "Rocky, AlmaLinux, CentOS Stream (and RHEL)",
    "fedora": "Fedora",
}


@main.command()
@click.argument("addresses", nargs=-1, required=True)
@click.option("--ports", default=None, metavar="LIST",
              help="Ports to probe, e.g. 22,53,123,443 (default: common service ports).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--timeout", type=click.FloatRange(0.1, 30.0), default=2.0, show_default=True,
              help="Seconds per probe.")
def probe(addresses: tuple[str, ...], ports: str | None, fmt: str, timeout: float) -> None:
    """Actively probe IP ADDRESS(es) from here (bounded, rate-limited, read-only requests)."""
    import ipaddress

    from nectar_audit.probes.run import DEFAULT_PORTS, probe_host

    for a in addresses:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise click.BadParameter(f"{a!r} is not an IP address (probes go only to literal addresses)",
                                     param_hint="ADDRESS") from None
    port_list: tuple[int, ...] = DEFAULT_PORTS
    if ports:
        try:
            port_list = tuple(int(p) for p in re.split(r"[,\s]+", ports.strip()) if p)
        except ValueError:
            raise click.BadParameter(f"{ports!r} is not a list of port numbers", param_hint="--ports") from None
        if not port_list or any(not 0 < p < 65536 for p in port_list):
            raise click.BadParameter(f"{ports!r}: ports are 1..65535", param_hint="--ports")
    results = [probe_host(a, port_list, timeout) for a in addresses]
    if fmt == "json":
        write_json(results, sys.stdout)
    else:
        from nectar_audit.reports import text

        text.render(results, _console())  # type: ignore[arg-type]
    sys.exit(EXIT_FAIL if any(r.failing for r in results) else EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()
