"""HTML report: self-contained, everything escaped, overview matrix, host sections, filters."""

from __future__ import annotations

import html.parser
import re

from nectar_audit.model import HostResult
from nectar_audit.reports import html as html_report
from tests.reports.samples import HOSTILE, sample_hosts


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.styles = 0
        self._in_script = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if tag == "style":
            self.styles += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
        self.text.append(data)


def _parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


def test_hostile_strings_are_escaped() -> None:
    page = html_report.render(sample_hosts())
    parsed = _parse(page)
    assert [t for t, _ in parsed.tags].count("script") == 1  # only our own
    assert parsed.styles == 1
    assert "__pwned" not in "".join(parsed.scripts)
    for _tag, attrs in parsed.tags:
        assert not any(name.startswith("on") for name in attrs), attrs
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;&#34;onload=alert(1) &lt;/style&gt;" in page
    visible = "".join(parsed.text)
    clean = HOSTILE.replace("\x01", "\\x01")
    assert visible.count(clean) >= 6  # hostname, summary, evidence source/detail, fix, ...
    assert "\x01" not in page


def test_self_contained() -> None:
    page = html_report.render(sample_hosts())
    parsed = _parse(page)
    for tag, attrs in parsed.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed")
        assert "src" not in attrs, (tag, attrs)
        href = attrs.get("href")
        assert href is None or href.startswith("#"), href
    assert not re.search(r"https?://", page.split("<script>")[0].split("</style>")[1])
    assert "default-src 'none'" in page


def test_overview_matrix_sections_and_filters() -> None:
    page = html_report.render(sample_hosts())
    parsed = _parse(page)
    cells = [a for t, a in parsed.tags if t == "td" and a.get("data-status")]
    assert {"data-check": "Check-Security-02", "data-status": "fail", "class": "cell-fail",
            "title": "Check-Security-02: PasswordAuthentication yes in /etc/ssh/sshd_config:12"} in cells
    articles = [a for t, a in parsed.tags if t == "article"]
    assert len(articles) == 9
    assert {a["data-status"] for a in articles} == {"pass", "fail", "warn", "manual", "not_applicable", "error"}
    boxes = [a["value"] for t, a in parsed.tags if t == "input" and a.get("class") == "f-status"]
    assert boxes == ["fail", "error", "warn", "manual", "pass", "not_applicable"]
    options = [a["value"] for t, a in parsed.tags if t == "option"]
    assert options == ["", *(f"Check-Security-{n:02d}" for n in range(1, 10))]
    assert "Host could not be audited: ssh: connect to host down port 22: Connection refused" in page
    assert ("<p class=\"how\">How to fix: sed -i &#39;s/^PasswordAuthentication yes/PasswordAuthentication no/&#39; "
            in page)
    assert "Waived until 2027-01-01: legacy app" in page
    assert "@media print" in page and 'name="viewport"' in page


def test_empty_fleet() -> None:
    page = html_report.render([])
    assert "0 host(s)" in page
    page = html_report.render([HostResult(target="t")])
    assert "<h2>t" in page


def test_copy_fix_copies_the_commands_of_the_structured_fix_only() -> None:
    """The button copies what a shell runs (the remedy's commands), never the prose around them."""
    from nectar_audit.model import CheckResult, Finding, Status
    from nectar_audit.remedy import Remedy, Step, drop_in

    remedy = Remedy("Check-Security-01", "SSH password login off",
                    changes=(drop_in("/etc/ssh/sshd_config.d/00-x.conf", ["PasswordAuthentication no"], None, "01"),),
                    validate=(Step("sshd -t"),))
    check = CheckResult("Check-Security-01", "t", "high",
                        [Finding(Status.FAIL, "passwords on", remediation="First make sure you can log in")], "s",
                        fix={**remedy.to_json(), "commands_sh": remedy.shell()})
    page = html_report.render([HostResult(target="h", checks=[check])])
    parsed = _parse(page)
    pres = [k for k, (tag, attrs) in enumerate(parsed.tags) if tag == "pre" and attrs.get("class") == "fix"]
    assert len(pres) == 1
    assert "How to fix: First make sure you can log in" in page
    assert "nectar-audit fix --checks 01 shows the exact changes" in page
    body = page.split('<pre class="fix">', 1)[1].split("</pre>", 1)[0]
    assert body.startswith("sudo mkdir -p /etc/ssh/sshd_config.d") and "sudo sh -c &#39;sshd -t&#39;" in body
    assert "First make sure" not in body
