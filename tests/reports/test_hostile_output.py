"""What an audited host sends cannot drive the reader's terminal nor break a report: a hostile hostname,
PRETTY_NAME and file names (escapes, bidi overrides, invalid UTF-8) planted in a real Debian root."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nectar_audit.cli import REPORT_FORMATS
from tests import REPO

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "COLUMNS": "200"}
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
CLEAR = "\x1b[2J\x1b[H\x1b[32mALL CHECKS PASS\x1b[8m"
# rich's own colouring: SGR sequences (never "8", conceal, which it is not asked for).
RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")


def _cli(*args: str, stdout: int | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "nectar_audit", *args], env=ENV, timeout=180, check=False,
                          stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE)


def _plant_hostile_host(root: Path) -> None:
    (root / "etc/hostname").write_text("evil\x1b]0;owned\x07\u202ehost\n")
    release = (root / "etc/os-release").read_text()
    (root / "etc/os-release").write_text(
        re.sub(r"^PRETTY_NAME=.*$", f'PRETTY_NAME="{CLEAR}"', release, flags=re.M) + "\n")
    ssh = root / "root/.ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    (ssh / f"id_{CLEAR}").write_text(KEY)


def _on_a_terminal(args: list[str]) -> str:
    """Run the CLI with stdout on a pseudo-terminal (rich colours it), and return what the terminal got."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "nectar_audit", *args], env={**ENV, "TERM": "xterm"},
                            stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=180)
    os.close(master)
    assert proc.returncode in (0, 1), proc.stderr.read() if proc.stderr else ""
    return b"".join(chunks).decode("utf-8")


def _assert_inert(text: str) -> None:
    """No control sequence but rich's own colours, no bidi override; the hostile text shown escaped."""
    assert "\x1b[8m" not in text and "\x1b[2J" not in text and "\x1b]0;" not in text
    plain = RICH_SGR.sub("", text)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", plain.replace("\r\n", "\n"))
    assert "\\x1b[2J\\x1b[H\\x1b[32mALL CHECKS PASS\\x1b[8m" in plain  # PRETTY_NAME, seen for what it is
    assert "evil\\x1b]0;owned\\x07\\u202ehost" in plain  # the hostname
    assert "id_\\x1b[2J" in plain  # the key's file name in check 10's finding


@pytest.mark.lab
def test_text_report_escapes_a_hostile_hostname_pretty_name_and_file_name(lab_root: Path, tmp_path: Path) -> None:
    _plant_hostile_host(lab_root)
    args = ["scan", f"root:{lab_root}", "--checks", "01,10"]
    _assert_inert(_on_a_terminal(args))
    out = tmp_path / "report.txt"
    proc = _cli(*args, "-o", str(out))
    assert proc.returncode in (0, 1), proc.stderr
    _assert_inert(out.read_text(encoding="utf-8"))
    proc = _cli(*args, "--format", "markdown")
    assert "\x1b" not in proc.stdout.decode() and "\\\\x1b" in proc.stdout.decode()


@pytest.mark.lab
def test_invalid_utf8_file_names_round_trip_in_every_format(lab_root: Path, tmp_path: Path) -> None:
    """Names with bytes that are not UTF-8: no traceback, complete reports in every format, the JSON
    report and the saved bundle keep the exact bytes (and the bundle judges as the image did)."""
    key_name = b"id_\xff\xfe"
    conf_name = b"a\xff\x1b.conf"
    ssh = lab_root / "root/.ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    with open(os.path.join(os.fsencode(ssh), key_name), "w") as fh:
        fh.write(KEY)
    conf_dir = lab_root / "etc/ssh/sshd_config.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    with open(os.path.join(os.fsencode(conf_dir), conf_name), "w") as fh:
        fh.write("PermitRootLogin yes\n")
    target = f"root:{lab_root}"
    reports: dict[str, str] = {}
    bundle = tmp_path / "bundle.json"
    for fmt in REPORT_FORMATS:
        out = tmp_path / f"report.{fmt}"
        extra = ["--save-evidence", str(bundle)] if fmt == "json" else []
        proc = _cli("scan", target, "--format", fmt, "-o", str(out), *extra)
        assert proc.returncode in (0, 1), proc.stderr.decode()
        assert b"Traceback" not in proc.stderr
        reports[fmt] = out.read_bytes().decode("utf-8")  # valid UTF-8, whole
    for fmt in ("text", "html", "junit"):
        assert "id_\\xff\\xfe" in reports[fmt], fmt
    assert "id\\_\\\\xff\\\\xfe" in reports["markdown"]  # markdown-escaped: id\_\\xff
    assert reports["junit"].rstrip().endswith("</testsuites>")
    assert reports["html"].rstrip().endswith("</html>")

    report = json.loads(reports["json"])
    sources = [os.fsencode(ev["source"]) for c in report["hosts"][0]["checks"] for f in c["findings"]
               for ev in f["evidence"]]
    assert any(b"/root/.ssh/" + key_name in s for s in sources)

    assert bundle.stat().st_mode & 0o777 == 0o600
    saved = json.loads(bundle.read_text(encoding="utf-8"))
    names = {os.fsencode(p) for p in saved["files"]}
    assert b"/root/.ssh/" + key_name in names and b"/etc/ssh/sshd_config.d/" + conf_name in names
    again = _cli("scan", f"evidence:{bundle}", "--format", "json")
    assert again.returncode in (0, 1), again.stderr.decode()
    verdicts = {c["id"]: c["status"] for c in json.loads(again.stdout)["hosts"][0]["checks"]}
    assert verdicts == {c["id"]: c["status"] for c in report["hosts"][0]["checks"]}


def test_names_decode_the_same_whatever_the_locale(tmp_path: Path) -> None:
    """Names enter as UTF-8 (surrogateescape for other bytes) even where Python's file system encoding
    is ASCII (C locale without UTF-8 mode): a bundle means the same on every machine."""
    root = tmp_path / "image"
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True)
    (root / "etc/hostname").write_text("img\n")
    for name in ("clé.conf".encode(), b"raw\xff.conf"):
        with open(os.path.join(os.fsencode(root / "etc/ssh/sshd_config.d"), name), "w") as fh:
            fh.write("PermitRootLogin no\n")
    names = []
    for env in ({"PYTHONUTF8": "1"}, {"PYTHONUTF8": "0", "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0"}):
        bundle = tmp_path / "b.json"
        proc = subprocess.run([sys.executable, "-m", "nectar_audit", "scan", f"root:{root}", "--checks", "18",
                               "--save-evidence", str(bundle), "-o", str(tmp_path / "r.txt")],
                              env={**ENV, **env}, capture_output=True, timeout=120, check=False)
        assert proc.returncode in (0, 1), proc.stderr
        names.append(sorted(p for p in json.loads(bundle.read_text(encoding="utf-8"))["files"] if ".conf" in p))
    assert names[0] == names[1]
    assert "/etc/ssh/sshd_config.d/clé.conf" in names[0]
    assert b"/etc/ssh/sshd_config.d/raw\xff.conf" in [os.fsencode(n) for n in names[0]]
