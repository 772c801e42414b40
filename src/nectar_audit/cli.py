"""Command line: ``nectar-audit scan | checks | explain``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import stat
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, TextIO

import click

from nectar_audit import __version__
from nectar_audit.catalog import Entry, entries, implemented, needs_for
from nectar_audit.checklist import BY_ID
from nectar_audit.cli_options import make_ssh_options, ssh_options, warn_no_host_key_check
from nectar_audit.config import Config, ConfigError, load_config, normalise_check_id
from nectar_audit.evidence import Needs
from nectar_audit.model import HostResult, visible
from nectar_audit.targets import Target, TargetError, parse_target
from nectar_audit.targets.ssh_options import SshOptions

REPORT_FORMATS = ("text", "json", "html", "junit", "markdown", "prometheus")

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _console(file: object | None = None, *, stderr: bool = False, plain: bool = False) -> object:
    from rich.console import Console

    if plain:
        return Console(file=file, no_color=True, width=120, highlight=False, emoji=False)  # type: ignore[arg-type]
    return Console(stderr=stderr, highlight=False, emoji=False)


def quiet_library_warnings() -> None:
    """Standard error carries our own messages only. asyncssh still names cryptography's DSA classes,
    and importing it makes cryptography warn that DSA is deprecated (about ten lines before every remote
    scan: a note for asyncssh's developers, nothing the user can act on). Exactly that warning, from
    those two libraries, is ignored; every other warning still shows. Matched by its text (the class is a
    UserWarning) so that a local scan does not import cryptography to name it."""
    warnings.filterwarnings("ignore", message="DSA is deprecated", category=UserWarning,
                            module=r"(asyncssh|cryptography)(\.|$)")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="nectar-audit")
def main() -> None:
    """Audit Linux VMs against the Nectar Research Cloud Security Administration Checklist."""
    quiet_library_warnings()


def _select(checks: str | None) -> list[Entry]:
    available = implemented()
    if checks is None:
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
    if not wanted:  # "--checks ," or "--checks ' '": running nothing and exiting 0 would look like a pass
        raise click.BadParameter(f"{checks!r} names no check (e.g. 01,17 or Check-Security-01)",
                                 param_hint="--checks")
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
@ssh_options
@click.option("--probe/--no-probe", "do_probe", default=False, show_default=True,
              help="Also send active network probes to each SSH target's address, on the ports its own listeners "
                   "and firewall name plus common ones (see README: Active probes).")
def scan(targets: tuple[str, ...], checks: str | None, fmt: str, output: str | None,
         config_path: str | None, save_evidence: str | None, debug: bool, inventory_path: str | None,
         limit: str | None, concurrency: int, identities: tuple[str, ...], ssh_config: str | None,
         known_hosts: str | None, accept_new_host_keys: bool, no_host_key_check: bool,
         sudo: bool | None, connect_timeout: float, command_timeout: float, max_evidence: float, jobs: int | None,
         progress: bool | None, quiet: bool, store: str | None = None, do_probe: bool = False) -> None:
    """Audit TARGETS: local (default), root:PATH (an offline root filesystem), evidence:FILE.json,
    or hosts over SSH: user@host[:port], ssh://user@host[:port], [ipv6]:port or an ssh_config alias.

    Nothing is installed on SSH hosts and no Python is needed there: one connection, one command.
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    if limit and not inventory_path:
        raise click.UsageError("--limit selects hosts of an --inventory")
    ssh = make_ssh_options(identities, ssh_config, known_hosts, accept_new_host_keys, no_host_key_check,
                           sudo, connect_timeout, command_timeout, max_evidence)
    parsed = _targets(targets, ssh, inventory_path, limit, no_host_key_check)
    early = _prestart(parsed, checks, do_probe)
    try:
        _scan(parsed, checks, fmt, output, config, save_evidence, debug, concurrency, jobs, progress, quiet, store,
              do_probe)
    finally:
        if early is not None:
            early.discard_early()  # unused when the checks asked for another script, or on an error


def _prestart(parsed: list[Target], checks: str | None, do_probe: bool) -> Any:
    """This machine, all checks: start the gatherer with the prebuilt full-scan script before importing
    the checks (about a third of a local scan's time), which the host's work then overlaps. The target,
    or None when that does not apply."""
    if checks is not None or do_probe or len(parsed) != 1 or getattr(parsed[0], "kind", "") != "local":
        return None
    from nectar_audit.evidence.script import new_boundary, prebuilt_script

    boundary = new_boundary()
    script = prebuilt_script(boundary)
    if script is None:
        return None
    parsed[0].prestart(script, boundary)  # type: ignore[attr-defined]
    return parsed[0]


def _scan(parsed: list[Target], checks: str | None, fmt: str, output: str | None, config: Config,
          save_evidence: str | None, debug: bool, concurrency: int, jobs: int | None, progress: bool | None,
          quiet: bool, store: str | None, do_probe: bool) -> None:
    selected = _select(checks)
    needs = needs_for(selected)
    if do_probe:  # learn each SSH host's listeners and firewall from its evidence, to choose the ports
        from nectar_audit.probes import plan

        parsed = [plan.EvidenceTap(t, config) if getattr(t, "kind", "") == "ssh" else t for t in parsed]
        needs = needs | plan.NEEDS
    def notice(text: str) -> None:
        click.echo(f"nectar-audit: {visible(text, lines=True)}", err=True)  # may quote what a host sent

    if len(parsed) == 1 and getattr(parsed[0], "kind", "") != "ssh":
        # This machine, an image or a saved bundle: no event loop, threads or worker processes to set up
        # (the fleet machinery alone costs a tenth of a local scan's time).
        results, interrupted = _audit_here(parsed[0], selected, config, save_evidence, debug, notice, needs)
    else:
        from nectar_audit.fleet import run_fleet

        run = run_fleet(parsed, selected, config, concurrency=concurrency, save_evidence=save_evidence,
                        debug=debug, progress=_show_progress(progress, len(parsed), quiet), jobs=jobs,
                        on_notice=notice, needs=needs)
        results, interrupted = run.results, run.interrupted
    if do_probe and not interrupted:
        from nectar_audit.probes.run import PROBE_WORKERS, run_probes, scan_job

        probes = [(res, scan_job(target)) for target, res in zip(parsed, results) if res.error is None]
        interrupted = run_probes(probes, min(concurrency, PROBE_WORKERS))
    finish(results, interrupted, fmt, output, store, quiet=quiet)


def _targets(targets: tuple[str, ...], ssh: SshOptions, inventory_path: str | None, limit: str | None,
             no_host_key_check: bool) -> list[Target]:
    """The command line's targets and the inventory's hosts (this machine when there are none)."""
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
        warn_no_host_key_check()
    return parsed


def _show_progress(asked: bool | None, hosts: int, quiet: bool) -> bool:
    """--progress/--no-progress, else a bar for several hosts on a terminal unless --quiet."""
    return asked if asked is not None else (hosts > 1 and sys.stderr.isatty() and not quiet)


def finish(results: list[HostResult], interrupted: bool, fmt: str, output: str | None, store: str | None,
           incomplete: bool = False, quiet: bool = False) -> None:
    """Write the report, keep the run in the history if asked, and exit with the documented status
    (``incomplete``: some host could only be partly audited, which exits 2 like an unreachable host)."""
    write_report(results, fmt, output)
    stored = True
    if store is not None:
        from nectar_audit.store.cli import save

        stored = save(results, store, __version__, quiet)
    if interrupted:
        done = sum(1 for r in results if not r.error)
        click.echo(f"nectar-audit: interrupted; the report holds the {done} host(s) audited before Ctrl-C",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    if incomplete or not stored or any(r.error for r in results):
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_FAIL if any(r.failing for r in results) else EXIT_OK)


def _audit_here(target: Target, selected: list[Entry], config: Config, save_evidence: str | None,
                debug: bool, notice: Callable[[str], None], needs: Needs) -> tuple[list[HostResult], bool]:
    """One non-SSH target, audited in this process: (results, interrupted by Ctrl-C)."""
    from nectar_audit.engine import INTERRUPTED, audit
    from nectar_audit.evidence import save_bundle

    try:
        result, bundle = audit(target, selected, config, debug=debug, needs=needs)
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


@contextlib.contextmanager
def atomic_output(path: str, private: bool = False) -> Iterator[TextIO]:
    """A text file that becomes ``path`` only once complete: written to a temp file created exclusively
    (O_EXCL: never an existing file, never through a symlink) in the same directory, then renamed over
    ``path`` (a symlink at ``path`` is replaced, not followed). Readers (node_exporter's textfile
    collector, a browser reloading the page) never see half a report. A path under /dev or /proc (a
    stream: /dev/stdout, /dev/fd/N) is written directly. Mode: ``private`` 0600; else that of the
    regular file replaced, or 0666 less the umask for a new one. The temp file is removed if writing
    fails."""
    target = os.path.abspath(path)
    if target.startswith(("/dev/", "/proc/")):
        # A stream the operator named (/dev/stdout, a shell's /dev/fd/63): nothing to replace, written as is.
        with open(target, "w", encoding="utf-8") as stream:
            yield stream
        return
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    try:
        if not private:
            try:  # a report replaced keeps the mode it was given (a textfile collector's group, say)
                st = os.lstat(target)
                mode = stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None
            except OSError:
                mode = None
            if mode is None:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_report(results: list[HostResult], fmt: str, output: str | None) -> None:
    """The one place report formats are chosen. Text reports of several hosts end with the fleet
    summary (host x check matrix, failures grouped by check). With ``output``, every format is
    written through ``atomic_output``."""
    try:
        document = _render_document(results, fmt)
        if document is not None:
            if output:
                with atomic_output(output) as out:
                    out.write(document)
            else:
                sys.stdout.write(document)
            return
        if fmt == "json":
            if output:
                with atomic_output(output) as out:
                    write_json(results, out)
            else:
                write_json(results, sys.stdout)
            return
        from nectar_audit.reports import fleet_summary, text

        if output:
            with atomic_output(output) as fh:
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
        click.echo(f"nectar-audit: cannot write report to {visible(output or 'stdout')}: {exc.strerror or exc}",
                   err=True)
        sys.exit(EXIT_USAGE)


def write_json(results: list[HostResult], out: TextIO) -> None:
    """``json_report.render(results)``, byte for byte, written one host at a time: a fleet's report is
    never held whole in memory (200 hosts can make tens of MB of JSON and several times that in objects).
    """
    from nectar_audit.model import dumps_json, report_json
    from nectar_audit.reports import json_report

    envelope = report_json([], __version__)
    head = dumps_json(envelope)
    before, sep, after = head.rpartition('"hosts": []')
    if not results or not sep or set(envelope) != {"schema_version", "tool", "hosts"}:
        out.write(json_report.render(results))  # a new envelope field may depend on the hosts
        return
    out.write(before + '"hosts": [\n')
    for i, host in enumerate(results):
        text = dumps_json(host.to_json())
        # Not textwrap.indent: it also breaks lines at U+0085/U+2028 inside strings, which JSON keeps raw.
        out.write(("" if i == 0 else ",\n") + "    " + text.replace("\n", "\n    "))
    out.write("\n  ]" + after + "\n")


class _ScheduleCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            exc.message = (exc.message.rstrip(".") + " (options of `scan` go after --: "
                           "nectar-audit schedule --daily -- --checks 01,17)")
            raise


@main.command("schedule", cls=_ScheduleCommand)
@click.argument("scan_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- SCAN_ARGS/TARGETS...]")
@click.option("--daily", is_flag=True, help="Install (or update) the daily audit.")
@click.option("--remove", is_flag=True, help="Remove the schedule: only what `schedule` wrote.")
@click.option("--time", "at", metavar="HH:MM", help="Local time of the daily run (default 03:00).")
@click.option("--random-delay", type=click.IntRange(0, 720), metavar="MINUTES",
              help="Spread the start over this many minutes after --time (default 30; cron: a fixed offset "
                   "per host; 0: exactly at --time).")
@click.option("--config", "config_path", metavar="FILE",
              help="Config file of the scan (default: its usual lookup at each run).")
@click.option("--store", metavar="URL",
              help="History store, an SQLAlchemy URL without password (default: the SQLite file in the data "
                   "directory of the user the job runs as).")
@click.option("--format", "fmt", type=click.Choice(list(REPORT_FORMATS)), help="Report format (default text).")
@click.option("-o", "--output", metavar="FILE",
              help="Write the report here (default: stdout, i.e. the journal, or cron's mail).")
@click.option("--user/--system", "user_scope", default=None,
              help="Your own timer/crontab, or the system-wide one (default: system as root, else user).")
@click.option("--backend", type=click.Choice(["auto", "systemd", "cron"]), default="auto", show_default=True,
              help="auto: a systemd timer when systemd runs (PID 1), else cron.")
@click.option("--executable", metavar="PATH", help="The nectar-audit command the job runs (default: this one).")
@click.option("--dry-run", is_flag=True, help="Show what would be written and run; change nothing.")
@click.option("--root", "root_dir", hidden=True, type=click.Path(file_okay=False, exists=True),
              help="Write under this directory instead of / (image building, tests).")
def schedule_cmd(scan_args: tuple[str, ...], daily: bool, remove: bool, at: str | None,
                 random_delay: int | None, config_path: str | None, store: str | None, fmt: str | None,
                 output: str | None, user_scope: bool | None, backend: str, executable: str | None,
                 dry_run: bool, root_dir: str | None) -> None:
    """Audit every day: a systemd timer + service (a cron entry where systemd does not run) running
    `scan --store`, so each run is kept in the history. Scan options and TARGETS go after `--`.

    As root: /etc/systemd/system or /etc/cron.d; otherwise your user units or crontab. --remove deletes
    only what this command wrote and refuses to touch anything else.
    """
    from nectar_audit import schedule as sch

    if daily == remove:
        raise click.UsageError("say --daily to install the daily audit, or --remove to undo it")
    if remove:
        given = [name for name, value in (("--time", at), ("--random-delay", random_delay),
                                          ("--config", config_path), ("--store", store), ("--format", fmt),
                                          ("--output", output), ("--executable", executable)) if value is not None]
        if given or scan_args:
            raise click.UsageError(f"{', '.join(given) or 'scan arguments'}: only with --daily")
    try:
        host = sch.probe_host(root_dir)
        scope = sch.choose_scope(host, None if user_scope is None else (sch.USER if user_scope else sch.SYSTEM))
        if remove:
            plan = sch.plan_remove(host, scope)
        else:
            plan = sch.prepare_install(
                host, scope, backend, scan, scan_args, at=at, random_delay=random_delay, config=config_path,
                store=store, fmt=fmt, output=output, executable=executable, version=__version__)
        if dry_run:
            for action in plan.actions:
                click.echo(f"would {sch.describe(action)}")
                content = sch.content_of(action)
                if content is not None:
                    click.echo(textwrap.indent(content, "    "), nl=False)
            problems: list[str] = []
        else:
            problems = sch.apply(plan.actions, click.echo)
    except sch.ScheduleError as exc:
        click.echo(f"nectar-audit: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if not plan.actions:
        click.echo("nothing to remove: no schedule written by `nectar-audit schedule` here" if remove
                   else "nothing to change")
    for note in plan.notes:
        click.echo(f"nectar-audit: {note}", err=True)
    for text in plan.warnings + problems:
        click.echo(f"nectar-audit: warning: {text}", err=True)


@main.command("cloud")
@click.option("--os-cloud", "os_cloud", metavar="NAME", envvar="OS_CLOUD", show_envvar=True,
              help="clouds.yaml entry (default: the OS_* variables of a sourced openrc file).")
@click.option("--region", metavar="NAME", envvar="OS_REGION_NAME", show_envvar=True, help="Region to audit.")
@click.option("--limit", "limits", multiple=True, metavar="PATTERN",
              help="Only instances whose name or id matches PATTERN (shell glob; repeatable).")
@click.option("--ssh-user", metavar="USER",
              help="Also log in to each instance as USER over SSH and cross-check what really listens.")
@click.option("--address", type=click.Choice(["auto", "floating", "fixed"]), default="auto", show_default=True,
              help="Which instance address to log in at and probe (auto: floating IP, else fixed IP).")
@click.option("--probe/--no-probe", "do_probe", default=False, show_default=True,
              help="Also probe each instance's address on the ports its security groups open.")
@click.option("--checks", "checks", metavar="LIST", help="Only these checks, e.g. 08,15.")
@click.option("--format", "fmt", type=click.Choice(list(REPORT_FORMATS)), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report here.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file (as for scan).")
@click.option("--save-evidence", type=click.Path(file_okay=False), metavar="DIR",
              help="Save what the API returned (openstack.json) and each instance's bundle in DIR.")
@click.option("--evidence", "evidence_file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Judge a saved openstack.json instead of calling the API.")
@click.option("--store", "store", is_flag=False, flag_value="default", default=None, metavar="URL",
              help="Keep this run in the history (as for scan).")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors in findings.")
@ssh_options
def cloud_cmd(os_cloud: str | None, region: str | None, limits: tuple[str, ...], ssh_user: str | None,
              address: str, do_probe: bool, checks: str | None, fmt: str, output: str | None,
              config_path: str | None, save_evidence: str | None, evidence_file: str | None,
              store: str | None, debug: bool, concurrency: int, identities: tuple[str, ...],
              ssh_config: str | None, known_hosts: str | None, accept_new_host_keys: bool,
              no_host_key_check: bool, sudo: bool | None, connect_timeout: float, command_timeout: float,
              max_evidence: float,
              jobs: int | None, progress: bool | None, quiet: bool) -> None:
    """Audit every instance of an OpenStack project: security groups, ports and key pairs from the API,
    cross-checked with each host's own evidence when --ssh-user is given.

    Credentials as for the OpenStack CLI: source the project's openrc file, or set OS_CLOUD to a
    clouds.yaml entry (application credentials work). Needs nectar-audit[cloud].
    """
    from nectar_audit.cloud.audit import instance_targets, limit_servers, probe_instances
    from nectar_audit.cloud.auth import CloudError, connect
    from nectar_audit.cloud.gather import CallFailed, ProjectEvidence, gather_project

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    selected = _select(checks)
    ssh = make_ssh_options(identities, ssh_config, known_hosts, accept_new_host_keys, no_host_key_check,
                           sudo, connect_timeout, command_timeout, max_evidence)
    try:
        if evidence_file:
            with open(evidence_file, encoding="utf-8") as fh:
                project = ProjectEvidence.from_json(json.load(fh))
        else:
            project = gather_project(connect(os_cloud, region))
    except (CloudError, CallFailed) as exc:
        click.echo(f"nectar-audit: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except (OSError, ValueError, RecursionError) as exc:
        raise click.UsageError(f"cannot read {evidence_file}: {exc}") from exc
    limit_servers(project, limits)
    if save_evidence:
        try:
            from nectar_audit.model import dumps_json

            Path(save_evidence).mkdir(parents=True, exist_ok=True)
            with atomic_output(str(Path(save_evidence) / "openstack.json"), private=True) as out:
                out.write(dumps_json(project.to_json(), indent=1) + "\n")
        except OSError as exc:
            raise click.UsageError(f"cannot save evidence in {save_evidence}: {exc.strerror or exc}") from exc
    for note in project.notes:
        click.echo(f"nectar-audit: {visible(note, lines=True)}", err=True)  # the API's data is not trusted
    if not project.servers:
        click.echo(f"nectar-audit: no instances in project {project.project_id or '?'}"
                   f"{' matching ' + ', '.join(limits) if limits else ''}", err=True)
    if no_host_key_check and ssh_user:
        warn_no_host_key_check()
    targets = instance_targets(project, ssh_user, ssh, address)
    from nectar_audit.cloud.checks.base import NEEDS as CLOUD_NEEDS
    from nectar_audit.fleet import run_fleet
    from nectar_audit.probes.plan import NEEDS as PROBE_NEEDS

    run = run_fleet(targets, selected, config, concurrency=concurrency, save_evidence=save_evidence,
                    debug=debug, progress=_show_progress(progress, len(targets), quiet), jobs=jobs,
                    on_notice=lambda text: click.echo(f"nectar-audit: {visible(text, lines=True)}", err=True),
                    needs=needs_for(selected, CLOUD_NEEDS, *([PROBE_NEEDS] if do_probe else [])))
    interrupted = run.interrupted
    if do_probe and not interrupted:
        interrupted = probe_instances(targets, run.results, address, workers=concurrency)
    incomplete = any(str(r.extra.get("cloud", {}).get("host_audit", "")).startswith("failed") for r in run.results)
    finish(run.results, interrupted, fmt, output, store, incomplete=incomplete, quiet=quiet)


@main.command("fix")
@click.argument("targets", nargs=-1)
@click.option("--checks", "checks", metavar="LIST", help="Only these checks, e.g. 01,17 (07 only when named).")
@click.option("--apply", "do_apply", is_flag=True, help="Make the changes (default: show the plan only).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before changing each host.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sh", "ansible"]), default="text",
              show_default=True,
              help="The plan (or, with --apply, the outcome) as text, JSON, or (plan only) one POSIX script per "
                   "host, or an Ansible playbook.")
@click.option("--undo", "undo", is_flag=False, flag_value="latest", default=None, metavar="RUN",
              help="Restore what fix run RUN changed (default: the newest run on each host).")
@click.option("--runs", "list_runs", is_flag=True, help="List the fix runs kept on each host.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file (as for scan).")
@click.option("--inventory", "inventory_path", type=click.Path(exists=True), metavar="FILE",
              help="Hosts to fix: a plain file or an Ansible inventory (as for scan).")
@click.option("--limit", metavar="PATTERN", help="Only inventory hosts matching PATTERN.")
@click.option("--log-server", "log_server", metavar="HOST:PORT",
              help="The TLS log server for check 14's plan (the exact rsyslog/journal-upload configuration).")
@click.option("--ssh-port", "ssh_port", type=click.IntRange(1024, 65535), metavar="PORT",
              help="18: the port SSH moves to (opened in the firewall, SELinux, fail2ban first; 22 closed only "
                   "after a new login on PORT works).")
@click.option("--confirm-timeout", "confirm_timeout", type=click.IntRange(10, 3600), default=120, show_default=True,
              metavar="SECONDS", help="Fixes that can cut you off (18, 08) are undone by the host itself unless a "
                                      "new connection confirms them within this time.")
@click.option("--allow", "allow", multiple=True, metavar="PORT/PROTO",
              help="08: also let PORT/PROTO (e.g. 8080/tcp) in through the firewall the fix turns on (repeatable).")
@click.option("--deny", "deny", multiple=True, metavar="PORT/PROTO",
              help="08: do not let PORT/PROTO in although a listener or the current firewall has it (repeatable; "
                   "sshd's own ports always stay open).")
@click.option("--update-ssh-config", "update_ssh_config", is_flag=True,
              help="18: after the move, set Port in ~/.ssh/config for targets given by ssh_config alias "
                   "(backed up first).")
@click.option("--os-cloud", "os_cloud", metavar="NAME",
              help="The instance's security groups (clouds.yaml entry as for `cloud --os-cloud`; `envvars`: a "
                   "sourced openrc file). 18: the new port is let in there too (undone with the run). 08: the "
                   "services they let in are kept (read only).")
@click.option("--close-old-port", "close_old_port", is_flag=True,
              help="18 with --os-cloud: once a login on the new port is confirmed, remove the rules for 22.")
@ssh_options
def fix_cmd(targets: tuple[str, ...], checks: str | None, do_apply: bool, yes: bool, fmt: str, undo: str | None,
            list_runs: bool, config_path: str | None, inventory_path: str | None, limit: str | None,
            log_server: str | None, ssh_port: int | None, confirm_timeout: int, allow: tuple[str, ...],
            deny: tuple[str, ...], update_ssh_config: bool, os_cloud: str | None, close_old_port: bool,
            concurrency: int, identities: tuple[str, ...],
            ssh_config: str | None, known_hosts: str | None,
            accept_new_host_keys: bool, no_host_key_check: bool, sudo: bool | None, connect_timeout: float,
            command_timeout: float, max_evidence: float, jobs: int | None, progress: bool | None,
            quiet: bool) -> None:
    """Fix failing checks on TARGETS (as for scan; default: this machine).

    Without --apply, prints the plan: per host and check, what was verified, each file change as a diff,
    each command, how it is validated and activated, and what is left for a human. With --apply, every
    changed file is backed up on the host first (fix --undo restores it), each change is validated by the
    daemon's own checker, and the fixed checks are audited again. Exit 0 only when every applied fix passes.
    """
    from nectar_audit.fix import render
    from nectar_audit.fix.run import apply_all, for_each, plan_host, undo_host
    from nectar_audit.fix.run import list_runs as runs_of

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    if log_server is not None:  # reaches the planners through the config (check 14 reads it)
        if not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}", log_server):
            raise click.BadParameter(f"{log_server!r} is not HOST:PORT", param_hint="--log-server")
        config = dataclasses.replace(config, extra={**config.extra, "log_server": log_server})
    if undo is not None and (do_apply or list_runs):
        raise click.UsageError("--undo restores a run: it goes without --apply and --runs")
    fix_options: dict[str, object] = {"confirm_timeout": confirm_timeout}
    if ssh_port is not None:
        fix_options["ssh_port"] = ssh_port
    if os_cloud:  # 18's security-group side (fix/cloud_port.py)
        fix_options.update(os_cloud=os_cloud, close_old_port=close_old_port)
    elif close_old_port:
        raise click.UsageError("--close-old-port closes 22 in the security groups: it needs --os-cloud")
    for name, specs in (("allow", allow), ("deny", deny)):  # 08's planner reads them (PORT/PROTO, checked here)
        for spec in specs:
            if not re.fullmatch(r"(\d{1,5})/(tcp|udp)", spec.lower()) or not 1 <= int(spec.split("/")[0]) <= 65535:
                raise click.BadParameter(f"{spec!r} is not PORT/tcp or PORT/udp", param_hint=f"--{name}")
        if specs:
            fix_options[name] = [s.lower() for s in specs]
    config = dataclasses.replace(config, extra={**config.extra, "fix": fix_options})
    if undo not in (None, "latest") and not re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]+", undo):
        raise click.BadParameter(f"{undo!r} is not a fix run id (see --runs)", param_hint="--undo")
    if fmt in ("sh", "ansible") and (do_apply or undo is not None or list_runs):
        raise click.UsageError(f"--format {fmt} prints the plan: it goes without --apply/--undo/--runs")
    selected = _select(checks)
    named = {e.id for e in selected} if checks is not None else set()
    ssh = make_ssh_options(identities, ssh_config, known_hosts, accept_new_host_keys, no_host_key_check,
                           sudo, connect_timeout, command_timeout, max_evidence)
    parsed = _targets(targets, ssh, inventory_path, limit, no_host_key_check)
    from nectar_audit.fix.cloud_port import has_records as has_cloud_records
    from nectar_audit.fix.cloud_port import reconcile, unsettled

    if list_runs or undo is not None:
        failed = False
        for target in parsed:
            if list_runs:
                runs, error = runs_of(target)
                click.echo(f"== {visible(target.name)}")
                for run_id, state, count in runs:
                    click.echo(f"  {run_id}  {state}  ({count} fixes applied)")
                if not runs and error is None:
                    click.echo("  no fix runs")
                if error is None and has_cloud_records():  # a controller that stopped half-way (18 --os-cloud)
                    for line in reconcile(unsettled(target), runs, os_cloud, settle=False):
                        click.echo(f"  {visible(line)}")
            else:
                from nectar_audit.fix import cloud_port

                run = undo if undo != "latest" else (cloud_port.newest_open(runs_of(target)[0])
                                                     if cloud_port.has_records() else None)
                records, error = undo_host(target, None if undo == "latest" else undo)
                click.echo(f"== {visible(target.name)}")
                for check, state, message in records:
                    if check != "run":
                        click.echo(f"  {visible(check)}: {visible(state)}")
                    elif message:
                        click.echo(f"  {visible(message)}")
                for line in cloud_port.undo_run(run, os_cloud) if run and error is None else ():
                    click.echo(f"  {visible(line)}")
            if error is not None:
                failed = True
                click.echo(f"  error: {visible(error)}")
        sys.exit(EXIT_FAIL if failed else EXIT_OK)

    from nectar_audit.fix.cloud_port import attach

    if do_apply and os_cloud and has_cloud_records():  # settle what a stopped controller left in the cloud
        for target in parsed:
            left = unsettled(target)
            if left:
                runs, error = runs_of(target)
                for line in reconcile(left, runs, os_cloud, settle=True) if error is None else ():
                    click.echo(f"{visible(target.name)}: {visible(line)}", err=fmt == "json")
    fixes = for_each(parsed, lambda t: attach(plan_host(t, selected, config), config, named), concurrency)
    if not do_apply:
        if fmt == "json":
            click.echo(render.as_json(fixes, named, applied=False))
        elif fmt == "sh":
            click.echo(render.as_shell(fixes, named), nl=False)
        elif fmt == "ansible":
            from nectar_audit.fix.ansible import as_playbook

            groups = None  # an Ansible inventory's hosts and their groups: a play may name its group
            if inventory_path:
                from nectar_audit.inventory import load_inventory

                groups = {h.name: h.groups for h in load_inventory(inventory_path) if h.spec is None} or None
            click.echo(as_playbook(fixes, named, groups, confirm_timeout), nl=False)
        else:
            click.echo("\n\n".join(render.plan_text(f, named) for f in fixes))
            if any(f.to_apply(named) for f in fixes):
                click.echo("\nNothing was changed. Run again with --apply to make these changes.")
        sys.exit(EXIT_FAIL if any(f.error for f in fixes) else EXIT_OK)

    chosen = []
    for f in fixes:
        if fmt == "text":
            click.echo(render.plan_text(f, named) + "\n")
        if not f.to_apply(named):
            continue
        if not yes and not click.confirm(f"Apply these fixes to {visible(f.name)}?", default=False, err=True):
            click.echo(f"{visible(f.name)}: skipped", err=True)
            continue
        chosen.append(f)
    for f in chosen:
        f.plan_text = render.plan_text(f, named)
    apply_all(chosen, selected, config, named, concurrency)
    if fmt == "json":
        click.echo(render.as_json(fixes, named, applied=True))
    else:
        for f in chosen:
            click.echo(render.outcome_text(f))
    if ssh_port is not None:
        from nectar_audit.fix.ssh_config import report_ssh_config

        for line in report_ssh_config(chosen, ssh_port, update_ssh_config):
            click.echo(line, err=fmt == "json")
    ok = all(f.ok for f in chosen) and not any(f.error for f in fixes)
    refused = any(r.refused for f in fixes for r in f.remedies if r.check in named)
    sys.exit(EXIT_OK if ok and not refused else EXIT_FAIL)


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
@click.option("--allow-special-address", "allow_special", is_flag=True,
              help="Also probe a multicast, broadcast, unspecified or reserved address (refused otherwise: "
                   "every host of the group or network would receive the probes).")
def probe(addresses: tuple[str, ...], ports: str | None, fmt: str, timeout: float, allow_special: bool) -> None:
    """Actively probe IP ADDRESS(es) from here (bounded, rate-limited, read-only requests)."""
    import ipaddress

    from nectar_audit.probes.guard import special_address
    from nectar_audit.probes.run import DEFAULT_PORTS, PROBE_WORKERS, host_job, new_probe_result, run_probes

    for a in addresses:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise click.BadParameter(f"{a!r} is not an IP address (probes go only to literal addresses)",
                                     param_hint="ADDRESS") from None
        reason = None if allow_special else special_address(a)
        if reason is not None:
            raise click.BadParameter(f"{a} is {reason}; add --allow-special-address if that is really meant",
                                     param_hint="ADDRESS")
    port_list: tuple[int, ...] = DEFAULT_PORTS
    if ports:
        try:
            port_list = tuple(int(p) for p in re.split(r"[,\s]+", ports.strip()) if p)
        except ValueError:
            raise click.BadParameter(f"{ports!r} is not a list of port numbers", param_hint="--ports") from None
        if not port_list or any(not 0 < p < 65536 for p in port_list):
            raise click.BadParameter(f"{ports!r}: ports are 1..65535", param_hint="--ports")
        from nectar_audit.probes.plan import MAX_PORTS

        port_list = tuple(dict.fromkeys(port_list))
        if len(port_list) > MAX_PORTS:
            # A probe is a few questions to named services, not a port scan.
            raise click.BadParameter(f"at most {MAX_PORTS} ports per address ({len(port_list)} given)",
                                     param_hint="--ports")
    results = [new_probe_result(a) for a in addresses]
    interrupted = run_probes([(r, host_job(a, port_list, timeout, allow_special))
                              for r, a in zip(results, addresses)], PROBE_WORKERS)
    if fmt == "json":
        write_json(results, sys.stdout)
    else:
        from nectar_audit.reports import text

        text.render(results, _console())  # type: ignore[arg-type]
    if interrupted:
        click.echo("nectar-audit: interrupted; probes not finished by Ctrl-C are marked so", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_FAIL if any(r.failing for r in results) else EXIT_OK)


from nectar_audit.store.cli import register  # noqa: E402  (history, diff, report, store)

register(main, finish)

if __name__ == "__main__":  # pragma: no cover
    main()
