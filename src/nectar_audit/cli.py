"""Command line: ``nectar-audit scan | checks | explain``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Optional

import click

from nectar_audit import __version__
from nectar_audit.checklist import BY_ID
from nectar_audit.config import Config, ConfigError, load_config, normalise_check_id
from nectar_audit.engine import audit
from nectar_audit.model import HostResult
from nectar_audit.registry import Entry, entries, implemented
from nectar_audit.targets import TargetError, parse_target

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _console(file: Optional[object] = None, *, stderr: bool = False, plain: bool = False) -> object:
    from rich.console import Console

    if plain:
        return Console(file=file, no_color=True, width=120, highlight=False, emoji=False)  # type: ignore[arg-type]
    return Console(stderr=stderr, highlight=False, emoji=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="nectar-audit")
def main() -> None:
    """Audit Linux VMs against the Nectar Research Cloud Security Administration Checklist."""


def _select(checks: Optional[str]) -> list[Entry]:
    available = implemented()
    if not checks:
        return available
    wanted = []
    for word in re.split(r"[,\s]+", checks.strip()):
        if not word:
            continue
        cid = normalise_check_id(word)
        if cid is None:
            raise click.BadParameter(f"{word!r} is not a check id (01..18 or Check-Security-NN)", param_hint="--checks")
        entry = next(e for e in entries() if e.id == cid)
        if not entry.implemented:
            raise click.BadParameter(f"{cid} is planned, not implemented yet", param_hint="--checks")
        wanted.append(entry)
    return wanted


@main.command()
@click.argument("targets", nargs=-1)
@click.option("--checks", "checks", metavar="LIST", help="Only these checks, e.g. 01,17 or Check-Security-01.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report here.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file (default /etc/nectar-audit.toml, then ~/.config/nectar-audit.toml).")
@click.option("--save-evidence", type=click.Path(), metavar="PATH",
              help="Save the raw evidence bundle (JSON); a directory when several targets are scanned.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors in findings.")
def scan(targets: tuple[str, ...], checks: Optional[str], fmt: str, output: Optional[str],
         config_path: Optional[str], save_evidence: Optional[str], debug: bool) -> None:
    """Audit TARGETS: local (default), root:PATH (an offline root filesystem) or evidence:FILE.json."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    selected = _select(checks)
    try:
        parsed = [parse_target(t) for t in (targets or ("local",))]
    except TargetError as exc:
        raise click.UsageError(str(exc)) from exc
    results = run_scan(parsed, selected, config, save_evidence, debug)
    write_report(results, fmt, output)
    if any(r.error for r in results):
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_FAIL if any(r.failing for r in results) else EXIT_OK)


def run_scan(targets: list, selected: list[Entry], config: Config, save_evidence: Optional[str],  # type: ignore[type-arg]
             debug: bool) -> list[HostResult]:
    results = []
    many = len(targets) > 1
    for target in targets:
        result, bundle = audit(target, selected, config, debug=debug)
        results.append(result)
        if save_evidence and bundle is not None:
            try:
                path = _evidence_path(Path(save_evidence), target.name, many)
                path.write_text(json.dumps(bundle.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            except OSError as exc:
                click.echo(f"nectar-audit: cannot save evidence for {target.name}: {exc}", err=True)
    return results


def _evidence_path(base: Path, target: str, many: bool) -> Path:
    if many or base.is_dir():
        base.mkdir(parents=True, exist_ok=True)
        return base / (re.sub(r"[^A-Za-z0-9._@-]+", "_", target).strip("_") + ".json")
    return base


def write_report(results: list[HostResult], fmt: str, output: Optional[str]) -> None:
    from nectar_audit.reports import json_report, text

    try:
        if fmt == "json":
            rendered = json_report.render(results)
            if output:
                Path(output).write_text(rendered, encoding="utf-8")
            else:
                sys.stdout.write(rendered)
            return
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                text.render(results, _console(fh, plain=True))  # type: ignore[arg-type]
        else:
            text.render(results, _console())  # type: ignore[arg-type]
    except OSError as exc:
        click.echo(f"nectar-audit: cannot write report to {output}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)


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


if __name__ == "__main__":  # pragma: no cover
    main()
