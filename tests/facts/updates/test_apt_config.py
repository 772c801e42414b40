"""apt's configuration parser and merge order, checked against the real apt-config."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.evidence.bundle import Bundle, CommandRecord, FileRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.updates.apt_config import (
    AptConfig,
    accepted_part,
    apt_conf_order,
    apt_config,
    merge_files,
    parse_apt_config_dump,
    parse_cword,
    parse_quote_word,
    read_config_text,
)
from tests import SAMPLES

SAMPLES = SAMPLES / "apt"
HAVE_APT = shutil.which("apt-config") is not None


def sample_files(name: str) -> dict[str, str]:
    return {f"/etc/apt/apt.conf.d/{p.name}": p.read_text() for p in sorted((SAMPLES / name).iterdir())}


def real_apt(tmp: Path, files: dict[str, str], roots: tuple[str, ...] = ()) -> tuple[int, str]:
    """Run the real apt-config dump over ``files`` (placed in a private parts directory)."""
    parts = tmp / "parts"
    parts.mkdir(exist_ok=True)
    main = tmp / "apt.conf"
    for path, text in files.items():
        name = path.rsplit("/", 1)[-1]
        if path == "/etc/apt/apt.conf":
            main.write_text(text)
        else:
            (parts / name).write_text(text)
    cfg = tmp / "bootstrap.conf"
    cfg.write_text(f'Dir::Etc::parts "{parts}/";\nDir::Etc::main "{main}";\n')
    env = dict(os.environ, APT_CONFIG=str(cfg), LC_ALL="C")
    proc = subprocess.run(
        ["apt-config", "dump", *roots], capture_output=True, text=True, env=env, timeout=30, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


def assert_subtree_equal(mine: AptConfig, real: AptConfig, name: str) -> None:
    """Every node of ours exists in apt's tree with the same value, lists in the same order."""
    node = mine.lookup(name)
    assert node is not None
    stack = [node]
    while stack:
        n = stack.pop()
        tag = n.full_tag()
        if n.tag:
            other = real.lookup(tag)
            assert other is not None, tag
            if n.value or not n.children:  # apt sets some scope values itself (binary "apt-config")
                assert other.value == n.value, tag
            mine_items = [c.value for c in n.children if not c.tag]
            real_items = [c.value for c in other.children if not c.tag]
            assert mine_items == real_items, tag
        stack.extend(c for c in n.children if c.tag)


# -- real sample sets ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["debian12", "ubuntu2204", "ubuntu2404"])
def test_sample_sets_merge(name: str) -> None:
    conf = merge_files(sample_files(name))
    assert conf.errors == []
    assert conf.find("APT::Periodic::Update-Package-Lists") == "1"
    assert conf.find("APT::Periodic::Unattended-Upgrade") == "1"
    if name == "debian12":
        patterns = [s.value for s in conf.find_list("Unattended-Upgrade::Origins-Pattern")]
        assert patterns == [
            "origin=Debian,codename=${distro_codename},label=Debian",
            "origin=Debian,codename=${distro_codename},label=Debian-Security",
            "origin=Debian,codename=${distro_codename}-security,label=Debian-Security",
        ]
        assert (
            conf.setting("APT::Periodic::Unattended-Upgrade").origin
            == "/etc/apt/apt.conf.d/20auto-upgrades:2"
        )  # type: ignore[union-attr]
    else:
        origins = [s.value for s in conf.find_list("Unattended-Upgrade::Allowed-Origins")]
        assert origins == [
            "${distro_id}:${distro_codename}",
            "${distro_id}:${distro_codename}-security",
            "${distro_id}ESMApps:${distro_codename}-apps-security",
            "${distro_id}ESM:${distro_codename}-infra-security",
        ]
        assert conf.find("APT::Periodic::Download-Upgradeable-Packages") == "0"
        assert conf.find("Unattended-Upgrade::DevRelease") == "auto"
        # 10periodic sets Update-Package-Lists "1" first; 20auto-upgrades (later) sets it again.
        assert (
            conf.setting("APT::Periodic::Update-Package-Lists").origin
            == "/etc/apt/apt.conf.d/20auto-upgrades:1"
        )  # type: ignore[union-attr]


@pytest.mark.skipif(not HAVE_APT, reason="apt-config is not installed")
@pytest.mark.parametrize("name", ["debian12", "ubuntu2204", "ubuntu2404"])
def test_sample_sets_match_real_apt_config(name: str, tmp_path: Path) -> None:
    files = sample_files(name)
    mine = merge_files(files)
    rc, out = real_apt(tmp_path, files)
    assert rc == 0, out
    real = parse_apt_config_dump(out)
    for top in mine.root.children:
        assert_subtree_equal(mine, real, top.tag)


def test_disable_file_overrides_by_order() -> None:
    files = sample_files("debian12")
    files["/etc/apt/apt.conf.d/99disable"] = 'APT::Periodic::Unattended-Upgrade "0";\n'
    files["/etc/apt/apt.conf.d/10early"] = 'APT::Periodic::Unattended-Upgrade "7";\n'
    files["/etc/apt/apt.conf.d/50unattended-upgrades.ucf-dist"] = 'APT::Periodic::Unattended-Upgrade "9";\n'
    files["/etc/apt/apt.conf.d/zz~"] = 'APT::Periodic::Unattended-Upgrade "9";\n'
    conf = merge_files(files)
    assert conf.setting("APT::Periodic::Unattended-Upgrade").value == "0"  # type: ignore[union-attr]
    assert "/etc/apt/apt.conf.d/50unattended-upgrades.ucf-dist" not in conf.files
    assert "/etc/apt/apt.conf.d/zz~" not in conf.files
    files["/etc/apt/apt.conf"] = 'APT::Periodic::Unattended-Upgrade "1";\n'
    assert merge_files(files).find("APT::Periodic::Unattended-Upgrade") == "1"  # main file is read last


def test_file_name_rules() -> None:
    assert accepted_part("20auto-upgrades")
    assert accepted_part("99local.conf")
    assert accepted_part("00_a.b.conf")
    assert not accepted_part("50unattended-upgrades.dpkg-old")
    assert not accepted_part("local.conf.save")
    assert not accepted_part(".hidden")
    assert not accepted_part("foo~")
    assert not accepted_part("with space")
    assert not accepted_part("trailingdot.")
    assert apt_conf_order(["/d/b", "/d/B", "/d/a.conf", "/d/10x", "/d/x.bak"]) == [
        "/d/10x",
        "/d/B",
        "/d/a.conf",
        "/d/b",
    ]


# -- syntax ------------------------------------------------------------------------------------------


def parse(text: str, files: dict[str, str] | None = None) -> AptConfig:
    conf = AptConfig()
    read_config_text(conf, text, "/t.conf", files=files)
    return conf


def test_nested_scopes_lists_and_paths() -> None:
    conf = parse(
        'APT {\n  Periodic {\n    Update-Package-Lists "1";\n    Unattended-Upgrade "0";\n  };\n};\n'
        'apt::periodic::UNATTENDED-UPGRADE "2"; // keys are case-insensitive\n'
        'Unattended-Upgrade::Allowed-Origins { "a:b"; "c:d"; };\n'
        'Unattended-Upgrade::Allowed-Origins:: "e:f";\n'
        'X::Y unquoted;\nX::Z "two" "words";\n'
    )
    assert conf.errors == []
    assert conf.find("APT::Periodic::Update-Package-Lists") == "1"
    assert conf.find("APT::Periodic::Unattended-Upgrade") == "2"
    assert conf.setting("APT::Periodic::Unattended-Upgrade").origin == "/t.conf:7"  # type: ignore[union-attr]
    assert [s.value for s in conf.find_list("Unattended-Upgrade::Allowed-Origins")] == ["a:b", "c:d", "e:f"]
    assert conf.find("X::Y") == "unquoted"
    assert conf.find("X::Z") == "two words"


def test_comments() -> None:
    conf = parse(
        '# a comment\nA "1"; # trailing\nB "2"; // trailing\n/* block\nC "3";\n*/ D "4";\n'
        'E "has // and # and /* inside";\nF /* inline */ "6";\n'
    )
    assert conf.errors == []
    assert conf.find("A") == "1" and conf.find("B") == "2"
    assert conf.find("C") is None
    assert conf.find("D") == "4"
    assert conf.find("E") == "has // and # and /* inside"
    assert conf.find("F") == "6"


def test_clear_and_include() -> None:
    conf = parse(
        'L { "a"; "b"; };\n#clear L;\nL:: "c";\n#include "/inc.conf";\n', files={"/inc.conf": 'I "1";\n'}
    )
    assert [s.value for s in conf.find_list("L")] == ["c"]
    assert conf.find("I") == "1"
    conf = parse('#include "/missing.conf";\n', files={})
    assert conf.notes and conf.errors == []


def test_comma_value_is_a_list() -> None:
    conf = parse('L "a,b,c";\n')
    assert [s.value for s in conf.find_list("L")] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('A "1" junk;\n', "Extra junk after value"),
        ('{ "x"; };\n', "Block starts with no name."),
        ('A "1"\n', "Extra junk at end of file"),
        ("S { #clear X; };\n", "Directives can only be done at the top level"),
        ("#includes X;\n", "Unsupported directive 'includes'"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    conf = parse(text)
    assert conf.errors and conf.errors[0].endswith(message)


def test_error_keeps_earlier_values() -> None:
    conf = parse('A "1";\nB "2" junk;\nC "3";\n')
    assert conf.find("A") == "1" and conf.find("C") is None
    assert conf.errors == ["Syntax error /t.conf:2: Extra junk after value"]


def test_word_parsers() -> None:
    assert parse_quote_word('"a b"c%41 rest') == ("a bcA", "rest")
    # apt copies leading blanks into the word (they never occur: its line buffer is stripped)
    assert parse_quote_word("  x") == ("  x", "")
    assert parse_quote_word("[x y] z") == ("[x y]", "z")
    assert parse_quote_word('"unterminated') is None
    assert parse_cword('"a"  "b"') == ("a b", "")
    assert parse_cword("bare") is None


# -- the fact -----------------------------------------------------------------------------------------


def test_fact_prefers_apt_config_dump_and_keeps_origins() -> None:
    files = sample_files("debian12")
    b = Bundle("t", "local", live=True, files={p: FileRecord(t) for p, t in files.items()})
    b.commands["apt.config"] = CommandRecord(
        'APT "";\nAPT::Periodic "";\nAPT::Periodic::Update-Package-Lists "1";\n'
        'APT::Periodic::Unattended-Upgrade "0";\n'
        'Unattended-Upgrade "";\nUnattended-Upgrade::Origins-Pattern "";\n'
        'Unattended-Upgrade::Origins-Pattern:: "origin=Debian,codename=${distro_codename},label=Debian";\n'
    )
    conf = Facts(b).get(apt_config)
    assert conf.source == "command: apt-config dump"
    # The dump wins (an override file the bundle lacked, e.g. from APT_CONFIG) ...
    assert conf.find("APT::Periodic::Unattended-Upgrade") == "0"
    assert conf.setting("APT::Periodic::Unattended-Upgrade").origin == "command: apt-config dump"  # type: ignore
    # ... and values the files agree on keep their file:line.
    assert (
        conf.setting("APT::Periodic::Update-Package-Lists").origin == "/etc/apt/apt.conf.d/20auto-upgrades:1"
    )  # type: ignore[union-attr]


def test_fact_offline_parses_files() -> None:
    files = sample_files("ubuntu2204")
    b = Bundle("t", "rootfs", live=False, files={p: FileRecord(t) for p, t in files.items()})
    conf = Facts(b).get(apt_config)
    assert conf.source == "files"
    assert conf.find("APT::Periodic::Unattended-Upgrade") == "1"


# -- differential fuzzing against the real apt-config -------------------------------------------------

_words = st.text("abcXYZ019-_", min_size=1, max_size=6)
_values = st.text("abc 019;{}#/*:-_.,", max_size=12).filter(lambda v: '"' not in v)
_comment = st.sampled_from(["", " // c", " # c", " /* c */", "\n/* multi\n line */"])


@st.composite
def _statement(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 6))
    a, b = draw(_words), draw(_words)
    v = draw(_values)
    c = draw(_comment)
    if kind == 0:
        return f'NaTest::{a}::{b} "{v}";{c}'
    if kind == 1:
        items = draw(st.lists(_values, max_size=3))
        body = " ".join(f'"{i}";' for i in items)
        return f"NaTest {{ {a} {{ {body} }}; }};{c}"
    if kind == 2:
        return f"#clear NaTest::{a};{c}"
    if kind == 3:
        return f'NaTest::{a}:: "{v}";{c}'
    if kind == 4:
        return f'NaTest {{\n  {a} "{v}";\n  {b} {{ "{v}"; }};\n}};{c}'
    if kind == 5:
        return f"NaTest::{a} {draw(_words)};{c}"
    return f'NaTest::{a} "{v}" {b};{c}'  # junk after the value: apt rejects the file


@pytest.mark.skipif(not HAVE_APT, reason="apt-config is not installed")
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.lists(_statement(), min_size=1, max_size=6), min_size=1, max_size=3))
def test_fuzz_matches_real_apt_config(tmp_path: Path, docs: list[list[str]]) -> None:
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    files = {f"/etc/apt/apt.conf.d/{i:02d}f": "\n".join(doc) + "\n" for i, doc in enumerate(docs)}
    mine = merge_files(files)
    rc, out = real_apt(work, files, ("NaTest",))
    if mine.errors:
        assert rc != 0, (files, out)
        return
    assert rc == 0, (files, out)
    assert mine.dump("NaTest") == out, files


# -- the fast paths agree with the character-by-character port -------------------------------------------

def _lookup_path_by_chars(name: str) -> list[str]:
    """The tags Configuration::Lookup walks for ``name``, scanned as apt scans it."""
    tags, start, i = [], 0, 0
    while len(name) - i >= 2:
        if name[i] == ":" and name[i + 1] == ":":
            tags.append(name[start:i])
            start = i = i + 2
        i += 1
    return [*tags, name[start:]]


_WORD_PARTS = st.lists(st.sampled_from(['a', 'Ab', ' ', '  ', '\t', '\n', '"', '"x y"', '[', ']', '%41', '%4', '%zz',
                                        ';', '::', ':', 'é']), max_size=12).map("".join)


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(_WORD_PARTS)
def test_quote_word_fast_path_agrees_with_apt_scan(s: str) -> None:
    from nectar_audit.facts.updates.apt_config import _quote_word_by_chars

    assert parse_quote_word(s) == _quote_word_by_chars(s)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["a", "B", ":", "::", ":::", "x::y"]), max_size=8).map("".join))
def test_lookup_walks_the_tags_apt_walks(name: str) -> None:
    conf = AptConfig()
    node = conf.lookup(name, create=True)
    assert node is not None
    walked = []
    while node is not None and node.parent is not None:
        walked.append(node.tag)
        node = node.parent
    assert walked[::-1] == _lookup_path_by_chars(name)
