"""The fix script itself, run by the real sh and awk on files in a temporary directory.

The Python model of a line edit (used for the plan's diff) must be what the host's awk does; a hostile
file name or line is data, never code; a failing step restores the files byte for byte; undo.sh puts
back what a run changed, in reverse order, and knows when it has already run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.fix import script as fix_script
from nectar_audit.fix.run import parse_records
from nectar_audit.remedy import FileChange, LineEdit, Remedy, Step, apply_line_edits, comment_out, drop_in, edit_command
from tests import lab

LINE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"), max_size=30)
NASTY = "a b'c\"$(touch CANARY)`touch CANARY`;\\n*?[x]"


def _sh(script: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", "-s"], input=script.encode("utf-8", "surrogateescape"), cwd=cwd,
                          capture_output=True, timeout=60, env={"PATH": os.environ["PATH"], "LC_ALL": "C"})


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st_ = path.stat()
            out[str(path.relative_to(root))] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {st_.st_mode:o}"
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, min_size=1, max_size=8), pick=st.integers(0, 7),
       new=st.lists(LINE, max_size=3), trailing=st.booleans())
def test_line_edit_model_is_what_awk_does(tmp_path: Path, lines: list[str], pick: int, new: list[str],
                                          trailing: bool) -> None:
    text = "\n".join(lines) + ("\n" if trailing else "")
    target = lines[pick % len(lines)]
    edit = LineEdit(target, tuple(new), lines[: pick % len(lines) + 1].count(target))
    f = tmp_path / "file.conf"
    f.write_bytes(text.encode())
    ran = _sh(edit_command(str(f), edit), tmp_path)
    expected = apply_line_edits(text, [edit])
    if expected is None:  # e.g. an empty file has no empty first line: both refuse
        assert ran.returncode != 0 and f.read_bytes().decode() == text
        return
    assert ran.returncode == 0, ran.stderr
    assert f.read_bytes().decode() == expected


def test_line_edit_of_a_missing_line_changes_nothing(tmp_path: Path) -> None:
    f = tmp_path / "x.conf"
    f.write_text("a\nb\n")
    edit = LineEdit("c", ("d",))
    assert apply_line_edits("a\nb\n", [edit]) is None
    ran = _sh(edit_command(str(f), edit) + " || exit 9", tmp_path)
    assert ran.returncode == 9 and f.read_text() == "a\nb\n"


def _remedy(check: str, *changes: FileChange, validate: str = "true", activate: str = "true") -> Remedy:
    return Remedy(check, "lab", changes=changes, validate=(Step(validate),), activate=(Step(activate),))


def test_apply_then_undo_byte_identical_and_hostile_names_are_data(tmp_path: Path) -> None:
    lab.require_root()  # the script refuses to run as anyone else
    etc = tmp_path / "etc"
    odd = etc / NASTY
    odd.mkdir(parents=True)
    conf = odd / "main.conf"
    conf.write_text(f"keep\n{NASTY}\nPasswordAuthentication yes\n")
    conf.chmod(0o640)
    before = _tree(tmp_path)
    first = _remedy("Check-Security-01",
                    comment_out(str(conf), conf.read_text(), "PasswordAuthentication yes", "lab"),
                    drop_in(str(etc / "new.d" / "00-x.conf"), [NASTY], None, "lab"))
    second = _remedy("Check-Security-17",
                     comment_out(str(conf), first.changes[0].after, NASTY, "lab", replacement=["x"]))
    built = fix_script.build([first, second], "20261207T000000Z-aaaaaa", base=str(tmp_path / "runs"))
    ran = _sh(built.text, tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert [(c, s) for c, s, _m in parse_records(ran.stdout, built.tag)] == [
        ("Check-Security-01", "applied"), ("Check-Security-17", "applied"), ("run", "done")]
    assert not list(tmp_path.rglob("CANARY"))
    text = conf.read_text()
    assert "# PasswordAuthentication yes" in text and f"\n{NASTY}\n" not in text
    assert oct(conf.stat().st_mode & 0o777) == "0o640"  # mode kept
    assert (etc / "new.d" / "00-x.conf").read_text().endswith(f"{NASTY}\n")
    undo = _sh(fix_script.undo_command(None, base=str(tmp_path / "runs")), tmp_path)
    assert [(c, s) for c, s, _m in parse_records(undo.stdout)] == [
        ("Check-Security-17", "undone"), ("Check-Security-01", "undone"), ("run", "done")]
    shutil.rmtree(tmp_path / "runs")
    assert _tree(tmp_path) == before
    assert not (etc / "new.d").exists()  # the directory the fix created is gone too


def test_failed_validation_restores_and_the_next_remedy_still_runs(tmp_path: Path) -> None:
    lab.require_root()
    conf = tmp_path / "a.conf"
    conf.write_text("x yes\n")
    before = conf.read_bytes()
    bad = _remedy("Check-Security-01", comment_out(str(conf), "x yes\n", "x yes", "lab"),
                  validate="echo 'line 1: bad option' >&2; exit 1")
    good = _remedy("Check-Security-02", drop_in(str(tmp_path / "b.conf"), ["y"], None, "lab"))
    built = fix_script.build([bad, good], "20261207T000000Z-bbbbbb", base=str(tmp_path / "runs"))
    ran = _sh(built.text, tmp_path)
    records = parse_records(ran.stdout, built.tag)
    assert records[0][:2] == ("Check-Security-01", "error")
    assert "validation failed" in records[0][2] and "line 1: bad option" in records[0][2]
    assert conf.read_bytes() == before
    assert records[1][:2] == ("Check-Security-02", "applied")
    assert (tmp_path / "b.conf").exists()


def test_a_file_changed_since_the_audit_is_refused(tmp_path: Path) -> None:
    lab.require_root()
    ours = tmp_path / "00-ours.conf"
    ours.write_text("old\n")
    change = drop_in(str(ours), ["new"], "something else\n", "lab")  # the audit saw other content
    built = fix_script.build([_remedy("Check-Security-01", change)], "20261207T000000Z-cccccc",
                             base=str(tmp_path / "runs"))
    ran = _sh(built.text, tmp_path)
    [(check, status, message), _done] = parse_records(ran.stdout, built.tag)
    assert (check, status) == ("Check-Security-01", "refused") and "changed since the audit" in message
    assert ours.read_text() == "old\n"
    link = tmp_path / "link.conf"
    link.symlink_to(ours)
    built = fix_script.build([_remedy("Check-Security-01", drop_in(str(link), ["x"], "old\n", "lab"))],
                             "20261207T000000Z-dddddd", base=str(tmp_path / "runs"))
    ran = _sh(built.text, tmp_path)
    assert parse_records(ran.stdout, built.tag)[0][1] == "refused" and ours.read_text() == "old\n"


def test_a_forged_record_from_a_command_is_not_ours(tmp_path: Path) -> None:
    """A command's output is captured, and records need the run's random tag: a host cannot forge one."""
    lab.require_root()
    remedy = Remedy("Check-Security-01", "lab", commands=(Step("echo 'NA-FIX-0000000000000000 Check-Security-01 "
                                                                "applied'; exit 1"),))
    built = fix_script.build([remedy], "20261207T000000Z-eeeeee", base=str(tmp_path / "runs"))
    ran = _sh(built.text, tmp_path)
    assert parse_records(ran.stdout, built.tag)[0][1] == "error"
    assert not [r for r in parse_records(ran.stdout) if r[1] == "applied"]


def test_the_script_is_shellcheck_clean(tmp_path: Path) -> None:
    shellcheck = lab.require_binary("shellcheck")
    remedy = _remedy("Check-Security-01", comment_out("/etc/x.conf", "a yes\n", "a yes", "lab"),
                     drop_in("/etc/x.d/00.conf", ["b"], None, "lab"))
    built = fix_script.build([remedy], "20261207T000000Z-ffffff", "plan\nlines")
    f = tmp_path / "fix.sh"
    f.write_text(built.text)
    ran = subprocess.run([shellcheck, "-s", "sh", "-e", "SC2016", str(f)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout
    undo = tmp_path / "undo.sh"
    undo.write_text(fix_script._undo_script([remedy], built.tag))
    ran = subprocess.run([shellcheck, "-s", "sh", str(undo)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout


@pytest.mark.parametrize("text", ["", "no newline", "a\n\nb\n"])
def test_apply_line_edits_edges(text: str) -> None:
    assert apply_line_edits(text, []) == (text if text.endswith("\n") or not text else text + "\n")
