"""Markdown report: overview table per host, failing/warning findings, hostile strings escaped."""

from __future__ import annotations

from nectar_audit.reports import markdown
from tests.reports.samples import sample_hosts


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_overview_and_findings() -> None:
    text = markdown.render(sample_hosts())
    assert "## web1 \\(ssh:web1\\)" in text
    assert "OS: Debian GNU/Linux 12" in text
    assert "pass: 1, fail: 2, warn: 1, manual: 1, not\\_applicable: 1, error: 1" not in text  # not escaped twice
    assert "pass: 1, fail: 2, warn: 1, manual: 1, not_applicable: 1, error: 1" in text
    assert ("| Check\\-Security\\-02 | Title 2 | high | **FAIL** "
            "| PasswordAuthentication yes in /etc/ssh/sshd\\_config:12 |") in text
    assert "| **FAIL** (waived) |" in text
    assert "#### Check\\-Security\\-02: Title 2 — **FAIL**" in text
    assert "  - /etc/ssh/sshd\\_config:12: PasswordAuthentication yes" in text
    # The fix is copy-ready: verbatim inside a fenced block.
    assert "  sed -i 's/^PasswordAuthentication yes/PasswordAuthentication no/' /etc/ssh/sshd_config" in text
    assert "#### Check\\-Security\\-03" in text and "#### Check\\-Security\\-06" in text
    assert "#### Check\\-Security\\-01" not in text and "#### Check\\-Security\\-05" not in text
    assert "Waived until 2027\\-01\\-01: legacy app" in text
    assert "**Host could not be audited:** ssh: connect to host down port 22: Connection refused" in text


def test_hostile_strings_cannot_break_tables_or_inject_html() -> None:
    text = markdown.render(sample_hosts())
    fence_free = []
    in_fence = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        if not in_fence:
            fence_free.append(line)
    outside = "\n".join(fence_free)
    assert "<script>" not in outside and "</style>" not in outside and "<" not in outside
    assert "&lt;script&gt;" in outside
    for row in _table_rows(text):
        # Every row has exactly 6 unescaped pipes (5 cells).
        unescaped = len(row.replace("\\|", "")) - len(row.replace("\\|", "").replace("|", ""))
        assert unescaped == 6, row
    assert "\x01" not in text


def test_code_block_fence_outgrows_backticks() -> None:
    block = markdown.code_block("echo ```` done")
    assert block.startswith("`````\n") and block.endswith("\n`````")


def test_escape() -> None:
    assert markdown.escape("a|b*c\nd<e>") == "a\\|b\\*c d&lt;e&gt;"
    assert markdown.render([]) == "# nectar-audit report\n"
