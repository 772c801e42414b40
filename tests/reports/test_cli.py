"""``nectar-audit scan --format text|json|html|junit|markdown|prometheus [-o FILE]`` on an offline root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nectar_audit.cli import REPORT_FORMATS, main, write_report
from tests.reports.samples import sample_hosts


def _image(tmp_path: Path) -> Path:
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("imagehost\n")
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    return root


@pytest.mark.parametrize("fmt", REPORT_FORMATS)
def test_scan_writes_each_format_to_a_file(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"report.{fmt}"
    result = CliRunner().invoke(main, ["scan", f"root:{_image(tmp_path)}", "--checks", "01,17",
                                       "--format", fmt, "-o", str(out)])
    assert result.exit_code in (0, 1), result.output
    text = out.read_text(encoding="utf-8")
    assert "imagehost" in text
    assert not list(tmp_path.glob("report.*.tmp.*"))
    if fmt == "json":
        assert json.loads(text)["hosts"][0]["hostname"] == "imagehost"
    elif fmt == "junit":
        assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites')
    elif fmt == "html":
        assert text.startswith("<!DOCTYPE html>")
    elif fmt == "prometheus":
        assert 'nectar_audit_check_status{target="root:' in text
        assert ',hostname="imagehost",check="Check-Security-01"' in text
    elif fmt == "markdown":
        assert text.startswith("# nectar-audit report\n")


def test_stdout_and_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_report(sample_hosts(), "markdown", None)
    assert capsys.readouterr().out.startswith("# nectar-audit report")
    with pytest.raises(SystemExit) as exc:
        write_report(sample_hosts(), "junit", str(tmp_path / "missing-dir" / "r.xml"))
    assert exc.value.code == 2
    assert "cannot write report" in capsys.readouterr().err


def test_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["scan", f"root:{tmp_path}", "--format", "pdf"])
    assert result.exit_code == 2 and "pdf" in result.output
