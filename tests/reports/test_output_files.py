"""``-o FILE`` and ``--save-evidence``: written through an exclusively created temp file in the target
directory and renamed, so no symlink planted beside or at the target redirects the write, and a reader
never sees half a file. Bundles are 0600."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from nectar_audit.cli import REPORT_FORMATS, main, write_report
from tests.reports.samples import sample_hosts


def _image(tmp_path: Path) -> Path:
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("imagehost\n")
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    return root


@pytest.mark.parametrize("fmt", REPORT_FORMATS)
def test_a_symlink_at_the_old_predictable_temp_name_is_not_followed(tmp_path: Path, fmt: str) -> None:
    """The old writer opened ``FILE.tmp.PID`` (following symlinks): another user could point it at any
    file the operator may write. Now that name is never used, and what is there stays untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "report"
    trap = Path(f"{out}.tmp.{os.getpid()}")
    trap.symlink_to(victim)
    write_report(sample_hosts(), fmt, str(out))
    assert victim.read_text() == "precious\n"
    assert trap.is_symlink()
    assert out.is_file() and not out.is_symlink() and out.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "report.tmp." + str(os.getpid()), "victim"]


def test_a_symlink_at_the_output_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "report.json"
    out.symlink_to(victim)
    write_report(sample_hosts(), "json", str(out))
    assert victim.read_text() == "precious\n"
    assert not out.is_symlink() and json.loads(out.read_text())["hosts"]


def test_report_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_report(sample_hosts(), "prometheus", str(tmp_path / "a.prom"))
    finally:
        os.umask(old)
    assert (tmp_path / "a.prom").stat().st_mode & 0o777 == 0o640


def test_a_replaced_report_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "a.prom"
    out.write_text("old\n")
    out.chmod(0o640)
    write_report(sample_hosts(), "prometheus", str(out))
    assert out.stat().st_mode & 0o777 == 0o640 and out.read_text().startswith("# HELP")


def test_a_failed_write_leaves_the_old_report_and_no_temp_file(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report.md"
    out.write_text("old report\n")
    from nectar_audit.reports import markdown

    def broken(hosts: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(markdown, "render", broken)
    with pytest.raises(SystemExit) as exc:
        write_report(sample_hosts(), "markdown", str(out))
    assert exc.value.code == 2
    assert out.read_text() == "old report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_saved_bundles_are_private_and_never_written_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    bundle = tmp_path / "bundle.json"
    bundle.symlink_to(victim)
    image = _image(tmp_path)
    old = os.umask(0o022)
    try:
        result = CliRunner().invoke(main, ["scan", f"root:{image}", "--checks", "01",
                                           "--save-evidence", str(bundle), "-o", str(tmp_path / "r.txt")])
    finally:
        os.umask(old)
    assert result.exit_code in (0, 1), result.output
    assert victim.read_text() == "precious\n"
    assert not bundle.is_symlink() and bundle.stat().st_mode & 0o777 == 0o600
    assert json.loads(bundle.read_text())["target"].startswith("root:")
    # several targets: one bundle per target in the directory, each 0600
    many = tmp_path / "bundles"
    result = CliRunner().invoke(main, ["scan", f"root:{image}", f"evidence:{bundle}", "--checks",
                                       "01", "--save-evidence", str(many), "-o", str(tmp_path / "r.txt"),
                                       "--jobs", "0"])
    assert result.exit_code in (0, 1), result.output
    saved = sorted(many.iterdir())
    assert len(saved) == 2 and all(p.stat().st_mode & 0o777 == 0o600 for p in saved)


def test_cloud_saved_evidence_is_private(tmp_path: Path) -> None:
    project = tmp_path / "in.json"
    project.write_text(json.dumps({"format": "nectar-audit-openstack-project/1", "gathered_at": "",
                                   "servers": [{"id": "s1", "name": "web\u001b[2J", "status": "ACTIVE"}],
                                   "notes": ["image x: \u001b]0;owned\u0007"]}))
    out = tmp_path / "saved"
    old = os.umask(0o022)
    try:
        result = CliRunner().invoke(main, ["cloud", "--evidence", str(project), "--save-evidence", str(out),
                                           "--checks", "15", "-o", str(tmp_path / "r.txt")])
    finally:
        os.umask(old)
    assert result.exit_code in (0, 1), result.output
    assert (out / "openstack.json").stat().st_mode & 0o777 == 0o600
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in out.iterdir())
    assert "\x1b" not in result.output and "\\x1b]0;owned\\x07" in result.output  # the API's note, on stderr
    assert "\x1b" not in (tmp_path / "r.txt").read_text() and "web\\x1b[2J" in (tmp_path / "r.txt").read_text()


def test_a_stream_is_written_directly(tmp_path: Path) -> None:
    """``-o /dev/fd/N`` (a shell's process substitution, /dev/stdout): nothing to replace there."""
    import subprocess
    import sys

    from tests import REPO

    read, write = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.Popen([sys.executable, "-m", "nectar_audit", "scan", f"root:{_image(tmp_path)}", "--checks",
                             "01", "--format", "json", "-o", f"/dev/fd/{write}"], pass_fds=(write,), env=env,
                            stderr=subprocess.PIPE)
    os.close(write)
    with os.fdopen(read, "rb") as stream:
        data = stream.read()
    assert proc.wait(timeout=120) in (0, 1), proc.stderr.read() if proc.stderr else ""
    assert json.loads(data)["hosts"][0]["hostname"] == "imagehost"


def test_evidence_to_a_stream_is_written_directly(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests import REPO

    read, write = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.Popen([sys.executable, "-m", "nectar_audit", "scan", f"root:{_image(tmp_path)}", "--checks",
                             "01", "--save-evidence", f"/dev/fd/{write}", "-o", str(tmp_path / "r.txt")],
                            pass_fds=(write,), env=env, stderr=subprocess.PIPE)
    os.close(write)
    with os.fdopen(read, "rb") as stream:
        data = stream.read()
    assert proc.wait(timeout=120) in (0, 1), proc.stderr.read() if proc.stderr else ""
    assert json.loads(data)["format"] == 1
