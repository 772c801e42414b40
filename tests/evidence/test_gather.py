"""The one-pass gatherer and the offline root-filesystem reader, against real files and a real sh."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.evidence import build_script, new_boundary, parse_stream
from nectar_audit.evidence.bundle import Bundle, EvidenceError
from nectar_audit.evidence.needs import Needs, Search
from nectar_audit.evidence.script import HIT_READ_ERRORS, READ_ERRORS
from nectar_audit.evidence.stream import _read_error
from nectar_audit.facts.accounts.passwd import sanitize_shadow
from nectar_audit.targets.rootfs import RootFsTarget
from nectar_audit.targets.script_runner import ScriptTarget
from tests import REPO


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True)
    (root / "etc/ssh/sshd_config").write_text("Include /etc/ssh/sshd_config.d/*.conf\nPort 22\n")
    (root / "etc/ssh/sshd_config.d/50 cloud init.conf").write_text("PasswordAuthentication yes\n")
    (root / "etc/ssh/sshd_config.d/empty.conf").write_text("")
    (root / "etc/ssh/sshd_config.d/no-newline.conf").write_text("Port 2222")
    (root / "etc/binary").write_bytes(bytes(range(256)) * 4)
    (root / "etc/locked").write_text("secret\n")
    os.chmod(root / "etc/locked", 0)
    (root / "home/alice/.ssh").mkdir(parents=True)
    (root / "home/alice/.ssh/id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    (root / "home/alice/notes.txt").write_text("nothing\n")
    (root / "etc/shadow").write_text("root:$6$salt$hashhashhash:19000:0:99999:7:::\nbob::19000::::::\n")
    return root


NEEDS = Needs(
    files=("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/*.conf", "/etc/binary", "/etc/locked",
           "/etc/missing", "/etc/shadow"),
    stats=("/etc/ssh/sshd_config", "/home/*"),
    commands={"t.echo": "printf 'hello\\n'; echo oops >&2; exit 3", "t.none": "no-such-program-na"},
    searches=(Search("keys", ("/home",), "PRIVATE KEY-----", maxdepth=3),),
    sanitize={"/etc/shadow": sanitize_shadow},
)


def _local_bundle(root: Path) -> Bundle:
    # The generated script reads absolute paths; run it in a chroot-like view by rewriting them.
    needs = Needs(
        files=tuple(str(root) + p for p in NEEDS.files),
        stats=tuple(str(root) + p for p in NEEDS.stats),
        commands=NEEDS.commands,
        searches=(Search("keys", (str(root / "home"),), "PRIVATE KEY-----", maxdepth=3),),
        sanitize={str(root) + "/etc/shadow": sanitize_shadow},
    )
    return ScriptTarget("t", ["/bin/sh", "-s"]).gather(needs)


@pytest.mark.parametrize("under", ["tmp", "var"])
def test_live_script_and_offline_reader_agree(tmp_path: Path, under: str) -> None:
    """Files are read by one capped head per batch, under /var (logs, package lists) as elsewhere: it
    gives exactly what the offline reader gives."""
    if under == "var":
        tmp_path = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="nectar-gather-"))
    try:
        _agree(tmp_path)
    finally:
        if under == "var":
            shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_read_error_inside_a_batch_marks_only_that_file() -> None:
    """/proc/self/mem is a readable regular file whose read fails (EIO): head says so, and that file,
    not its neighbours in the same head, becomes unreadable with head's reason."""
    needs = Needs(files=("/etc/hostname", "/proc/self/mem", "/etc/os-release"))
    b = ScriptTarget("t", ["/bin/sh", "-s"]).gather(needs)
    rec = b.file("/proc/self/mem")
    assert rec is not None and rec.error == "Input/output error"
    assert b.text("/etc/hostname") == Path("/etc/hostname").read_text()
    assert b.text("/etc/os-release") == Path("/etc/os-release").read_text()
    assert not b.errors


def _agree(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    live = _local_bundle(root)
    offline = RootFsTarget(str(root)).gather(NEEDS)
    prefix = str(root)
    live_files = {p[len(prefix):]: r for p, r in live.files.items()}
    assert set(live_files) == set(offline.files)
    for path, rec in offline.files.items():
        if os.geteuid() == 0 and path == "/etc/locked":
            continue
        assert live_files[path] == rec, path
    assert live.commands["t.echo"].stdout == "hello\n"
    assert live.commands["t.echo"].rc == 3
    assert live.commands["t.echo"].stderr.strip() == "oops"
    assert live.commands["t.none"].missing
    assert offline.commands == {}
    assert [p[len(prefix):] for p in live.searches["keys"]] == offline.searches["keys"] == [
        "/home/alice/.ssh/id_ed25519"
    ]
    assert {p[len(prefix):] for p in live.stats} == set(offline.stats) == {
        "/etc/ssh/sshd_config", "/home/alice"
    }
    assert live.uid == os.geteuid()


def test_file_boundaries_are_exact(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    b = RootFsTarget(str(root)).gather(NEEDS)
    assert b.text("/etc/ssh/sshd_config.d/empty.conf") == ""
    assert b.text("/etc/ssh/sshd_config.d/no-newline.conf") == "Port 2222"
    assert b.text("/etc/ssh/sshd_config.d/50 cloud init.conf") == "PasswordAuthentication yes\n"
    assert b.text("/etc/missing") is None


def test_secrets_are_sanitized_on_ingestion(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    for bundle in (_local_bundle(root), RootFsTarget(str(root)).gather(NEEDS)):
        dumped = json.dumps(bundle.to_json())
        assert "hashhashhash" not in dumped
        shadow = next(r.content for p, r in bundle.files.items() if p.endswith("/etc/shadow"))
        assert shadow == "root:{hash:sha512crypt}:19000:0:99999:7:::\nbob::19000::::::\n"


def _world_traversable_tree() -> Path:
    # pytest's tmp dirs are 0700; an unprivileged reader must be able to reach the files.
    base = Path(tempfile.mkdtemp(prefix="na-unreadable-"))
    os.chmod(base, 0o755)
    return base


def _as_nobody(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed to drop privileges"
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]


def test_unreadable_as_non_root_says_needs_root() -> None:
    base = _world_traversable_tree()
    try:
        root = _tree(base)
        (root / "etc/locked-status").write_text("Package: a\n")
        os.chmod(root / "etc/locked-status", 0)
        needs = Needs(files=(str(root / "etc/locked"), str(root / "etc/hostname"), str(root / "etc/locked-status")),
                      prefilter={str(root / "etc/locked-status"): "^Package:"})
        b = ScriptTarget("t", _as_nobody(["/bin/sh", "-s"])).gather(needs)
        assert b.uid != 0
        for name in ("locked", "locked-status"):  # read by cat, and by a host-side grep
            with pytest.raises(EvidenceError, match=rf"needs root to read .*/etc/{name}$"):
                b.text(str(root / "etc" / name))
    finally:
        shutil.rmtree(base)


def test_unreadable_file_offline_is_an_error_not_a_crash() -> None:
    base = _world_traversable_tree()
    try:
        root = _tree(base)
        code = (
            "import sys; from nectar_audit.targets.rootfs import RootFsTarget;"
            "from nectar_audit.evidence.needs import Needs;"
            "b = RootFsTarget(sys.argv[1]).gather(Needs(files=('/etc/locked', '/etc/ssh/sshd_config')));"
            "print(b.files['/etc/locked'].error, bool(b.text('/etc/ssh/sshd_config')))"
        )
        src = str(REPO / "src")
        out = subprocess.run(_as_nobody([sys.executable, "-c", code, str(root)]), capture_output=True, text=True,
                             timeout=60, check=True, env={**os.environ, "PYTHONPATH": src}).stdout
        assert out.strip() == "Permission denied True"
    finally:
        shutil.rmtree(base)


def test_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (tmp_path / "outside").write_text("host file\n")
    (root / "etc/escape").symlink_to("/etc/hostname")  # absolute: must mean root/etc/hostname
    (root / "etc/hostname").write_text("image-host\n")
    (root / "etc/loop").symlink_to("/etc/loop")
    (root / "etc/dotdot").symlink_to("../../../../../../outside")
    t = RootFsTarget(str(root))
    b = t.gather(Needs(files=("/etc/escape", "/etc/loop", "/etc/dotdot")))
    assert b.text("/etc/escape") == "image-host\n"
    with pytest.raises(EvidenceError, match="symbolic links"):
        b.text("/etc/loop")
    assert b.text("/etc/dotdot") is None  # ".." stops at the image's root


def test_truncated_stream_is_recorded(tmp_path: Path) -> None:
    boundary = new_boundary()
    script = build_script(Needs(files=("/etc/hostname",), commands={"x": "echo hi"}), boundary)
    out = subprocess.run(["/bin/sh", "-s"], input=script.encode(), capture_output=True, check=True).stdout
    b = Bundle("t", "local", True)
    parse_stream(out[: len(out) // 2], boundary, b)
    assert any("ended early" in e or "not terminated" in e for e in b.errors) or not b.commands


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_stream_never_raises(data: bytes) -> None:
    b = Bundle("t", "local", True)
    parse_stream(data, "@@NA-x", b)
    parse_stream(b"\n@@NA-x F /a\n" + data, "@@NA-x", b)


def test_bundle_round_trips_through_json(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    b = _local_bundle(root)
    again = Bundle.from_json(json.loads(json.dumps(b.to_json())))
    assert again.to_json() == b.to_json()


@pytest.mark.parametrize("bad", [[], {"format": 99}, {"format": 1}, {"format": 1, "target": "x", "kind": "k",
                                                                      "live": True, "stats": {"/a": ["x"]}}])
def test_malformed_bundles_are_clear_errors(bad: object) -> None:
    with pytest.raises(EvidenceError, match="evidence bundle"):
        Bundle.from_json(bad)


def test_batch_reads_each_file_once_and_never_evaluates_names(tmp_path: Path) -> None:
    """head's batch is built as one eval'd string: names with quotes, $(...), backquotes and spaces are
    read as data (never run), and a file two patterns match (named.conf*, *.conf) is read once."""
    conf = tmp_path / "conf"
    conf.mkdir()
    canary = tmp_path / "pwned"
    nasty = ["it's $(touch pwned).conf", 'q"$(touch pwned)".conf', "b`touch pwned`.conf",
             "two  spaces.conf", "named.conf"]
    for i, name in enumerate(nasty):
        (conf / name).write_text(f"content {i}\n")
    needs = Needs(files=(f"{conf}/named.conf*", f"{conf}/*.conf", f"{conf}/named.conf"))
    boundary = new_boundary()
    proc = subprocess.run(["/bin/sh", "-s"], input=build_script(needs, boundary).encode(),
                          capture_output=True, check=True, cwd=tmp_path)
    headers = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith(f"{boundary} F ")]
    paths = [f"{conf}/{name}" for name in nasty]
    assert sorted(headers) == sorted(f"{boundary} F {len(p.encode())}:{p}" for p in paths)
    bundle = Bundle.for_needs("t", "exec", True, needs)
    parse_stream(proc.stdout, boundary, bundle)
    for i, name in enumerate(nasty):
        assert bundle.text(f"{conf}/{name}") == f"content {i}\n"
    assert not canary.exists()
    assert not bundle.errors


def test_sharing_patterns_are_the_ones_that_may_match_the_same_file() -> None:
    from nectar_audit.evidence.script import sharing_patterns

    assert sharing_patterns(["/etc/bind/named.conf*", "/etc/bind/*.conf", "/etc/passwd"]) == [
        "/etc/bind/named.conf*", "/etc/bind/*.conf"]
    assert sharing_patterns(["/etc/redis/redis.conf", "/etc/redis/*.conf", "/etc/redis.conf"]) == [
        "/etc/redis/redis.conf", "/etc/redis/*.conf"]
    # Globs in different directories, and literals no glob matches, never share a file.
    assert sharing_patterns(["/etc/a/*.conf", "/etc/b/*.conf", "/etc/c.conf", "/etc/d.conf"]) == []
    # A glob in the directory part may be the other's directory.
    assert sharing_patterns(["/etc/ssh/*/*.conf", "/etc/ssh/sshd_config.d/*"]) == [
        "/etc/ssh/*/*.conf", "/etc/ssh/sshd_config.d/*"]
    # Names that cannot meet, and directories of another depth (sh's * never matches "/"): the per-user
    # patterns stay out of the host's seen-list, whose cost grows with the square of its length.
    assert sharing_patterns(["/home/*/.ssh/authorized_keys", "/home/*/.ssh/*.pub", "/etc/fail2ban/*.conf",
                             "/etc/fail2ban/*.local", "/home/*/.config/openstack/clouds.yaml",
                             "/home/*/clouds.yaml"]) == []
    assert sharing_patterns(["/root/*-openrc.sh", "/root/*openrc*.sh"]) == ["/root/*-openrc.sh", "/root/*openrc*.sh"]


_PART = st.sampled_from(["etc", "ssh", "a.conf", "*", "*.conf", "named.conf*", "b", "?"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_PART, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)), max_size=12))
def test_sharing_patterns_compares_what_the_all_pairs_definition_compares(patterns: list[str]) -> None:
    """Grouping by directory finds exactly the pairs the plain all-pairs definition finds."""
    from nectar_audit.evidence.script import _may_share, sharing_patterns

    unique = list(dict.fromkeys(patterns))
    want = [a for a in unique if any(b != a and _may_share(a, b) for b in unique)]
    assert sharing_patterns(patterns) == want


@settings(max_examples=300, deadline=None)
@given(st.lists(_PART, min_size=1, max_size=3), st.lists(_PART, min_size=1, max_size=3),
       st.lists(st.sampled_from(["etc", "ssh", "a.conf", "named.conf", "b", "x.local"]), min_size=1, max_size=3))
def test_patterns_said_apart_never_match_one_path(a: list[str], b: list[str], path: list[str]) -> None:
    """What _may_share rules out is never a path both patterns match, component by component as sh does."""
    import fnmatch

    from nectar_audit.evidence.script import _may_share

    pa, pb = "/" + "/".join(a), "/" + "/".join(b)
    parts = ["", *path]

    def matches(pattern: str) -> bool:
        comps = pattern.split("/")
        return len(comps) == len(parts) and all(fnmatch.fnmatchcase(p, c) for p, c in zip(parts, comps))

    if matches(pa) and matches(pb):
        assert _may_share(pa, pb)


def test_a_search_with_hundreds_of_hits_reads_every_one(tmp_path: Path) -> None:
    """A login node's keys: the hits are read in batches of 200, none lost or doubled at the edges."""
    home = tmp_path / "home"
    names = [f"u{i}" for i in range(401)] + ["it's"]
    for name in names:
        (home / name / ".ssh").mkdir(parents=True)
        (home / name / ".ssh" / "id_ed25519").write_text(f"{name}\n-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n")
    needs = Needs(searches=(Search("keys", (str(home),), "PRIVATE KEY-----", maxdepth=3),))
    b = ScriptTarget("t", ["/bin/sh", "-s"]).gather(needs)
    want = sorted(str(home / n / ".ssh" / "id_ed25519") for n in names)
    assert sorted(b.searches["keys"]) == want
    for name in names:
        # Key material is never kept, even without a sanitizer: what precedes it identifies the file.
        kept = b.text(str(home / name / ".ssh" / "id_ed25519"))
        assert kept == f"{name}\n-----BEGIN OPENSSH PRIVATE KEY-----\n<redacted>\n"
    assert not b.errors


def test_follows_merge_once_and_refuse_conflicts() -> None:
    from nectar_audit.evidence import Follow, merge

    a = Follow("inc", ("/etc/a",), ("@include",))
    assert merge([Needs(follows=(a,)), Needs(follows=(a,))]).follows == (a,)
    with pytest.raises(ValueError, match="include-following 'inc' differently"):
        merge([Needs(follows=(a,)), Needs(follows=(Follow("inc", ("/etc/b",), ("@include",)),))])
    with pytest.raises(ValueError, match="share the name"):
        merge([Needs(follows=(a,)), Needs(searches=(Search("inc", ("/home",), "x"),))])


def _head_complaints(paths: list[bytes]) -> list[str]:
    """What the real head says about each path (directories: "error reading"; absent: "cannot open")."""
    proc = subprocess.run([b"head", b"-q", b"-c", b"1", b"--", *paths], capture_output=True,
                          env={"LC_ALL": "C", "PATH": os.environ["PATH"]})
    return proc.stderr.decode("utf-8", "surrogateescape").splitlines()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=12).filter(lambda b: b"\0" not in b and b"/" not in b
                                                           and b not in (b".", b"..")),
                min_size=1, max_size=6, unique=True))
def test_head_complaints_name_any_file_exactly(names: list[bytes]) -> None:
    """head quotes the names it complains about (shell-escape style: quotes, $'\\n', octal bytes); each
    complaint is read back as exactly the name the stream carries, whatever its bytes."""
    with tempfile.TemporaryDirectory() as d:
        base = d.encode()
        dirs = [base + b"/d-" + n for n in names]  # a directory: "error reading NAME: Is a directory"
        gone = [base + b"/g-" + n for n in names]  # absent: "cannot open NAME for reading: ..."
        for path in dirs:
            os.mkdir(path)
        lines = _head_complaints(dirs + gone)
    got = [_read_error(line) for line in lines]
    want = [(p.decode("utf-8", "surrogateescape"), "Is a directory") for p in dirs]
    want += [(p.decode("utf-8", "surrogateescape"), "No such file or directory") for p in gone]
    assert got == want


def test_busybox_and_unknown_complaints() -> None:
    assert _read_error("head: can't open '/etc/a b': Permission denied") == ("/etc/a b", "Permission denied")
    assert _read_error("head: something else: reason") is None
    assert _read_error("no colon here") is None
    assert _read_error("head: cannot open '/etc/x for reading: No such file") is None  # unbalanced quote


def _stream(boundary: str, *records: tuple[str, str, bytes]) -> bytes:
    out = b""
    for kind, name, body in records:
        label = f"{len(name.encode())}:{name}" if kind in "FH" else name
        out += f"\n{boundary} {kind} {label}\n".encode() + body + f"\n{boundary} E 0\n".encode()
    return out


def test_a_hit_read_error_never_touches_a_file_read_for_another_purpose() -> None:
    """A hit that vanished between the search and head is unreadable; the same path read earlier as a
    file keeps its content (the hits' complaints are their own record)."""
    b = new_boundary()
    data = _stream(b, ("F", "/etc/sudoers", b"root ALL=(ALL) ALL\n"),
                   ("X", "keys", b"/etc/sudoers\0/home/a/k\0"),
                   ("H", "/etc/sudoers", b""), ("H", "/home/a/k", b""),
                   ("C", HIT_READ_ERRORS, b"head: cannot open '/etc/sudoers' for reading: No such file or directory\n"
                                          b"head: cannot open '/home/a/k' for reading: No such file or directory\n"))
    bundle = Bundle.for_needs("t", "exec", True, Needs())
    parse_stream(data, b, bundle)
    assert bundle.text("/etc/sudoers") == "root ALL=(ALL) ALL\n"
    rec = bundle.file("/home/a/k")
    assert rec is not None and rec.error == "No such file or directory"
    assert not bundle.errors
    # The files' own complaints do concern the files.
    bundle = Bundle.for_needs("t", "exec", True, Needs())
    complaint = b"head: error reading '/etc/x': Is a directory\n"
    parse_stream(_stream(b, ("F", "/etc/x", b""), ("C", READ_ERRORS, complaint)), b, bundle)
    rec = bundle.file("/etc/x")
    assert rec is not None and rec.error == "Is a directory"


@pytest.mark.parametrize("area", ["/var/cache", "/tmp"])
def test_a_sparse_giant_costs_its_cap_not_its_size(area: str) -> None:
    """A 4 GiB sparse file among others: head stops at the cap on the host (16 MiB, or 1 MiB where any
    user may write), the record says truncated, and its neighbours are whole."""
    d = Path(tempfile.mkdtemp(dir=area, prefix="nectar-sparse-"))
    try:
        (d / "a.conf").write_text("a\n")
        with open(d / "giant.conf", "wb") as f:
            f.truncate(4 << 30)
        (d / "z.conf").write_text("z\n")
        needs = Needs(files=(f"{d}/*.conf",))
        boundary = new_boundary()
        proc = subprocess.run(["/bin/sh", "-s"], input=build_script(needs, boundary).encode(),
                              capture_output=True, check=True, timeout=120)
        cap = (1 << 20) if area == "/tmp" else (16 << 20)
        assert len(proc.stdout) < cap + 64 * 1024
        bundle = Bundle.for_needs("t", "exec", True, needs)
        parse_stream(proc.stdout, boundary, bundle)
        giant = bundle.file(f"{d}/giant.conf")
        assert giant is not None and giant.truncated
        assert bundle.text(f"{d}/a.conf") == "a\n" and bundle.text(f"{d}/z.conf") == "z\n"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_merged_usr_reads_a_lib_twin_once() -> None:
    """/lib/X asked beside /usr/lib/X: where /lib is /usr/lib (this machine, as every current
    distribution) the file is read once, under /usr/lib; a /lib path without a twin is still read."""
    if not Path("/lib").is_symlink() or not Path("/usr/lib/os-release").is_file():
        pytest.fail("this test needs a merged /usr with /usr/lib/os-release")
    needs = Needs(files=("/lib/os-release", "/usr/lib/os-release", "/lib/*/libc.so.6"))
    b = ScriptTarget("t", ["/bin/sh", "-s"]).gather(needs)
    assert "/usr/lib/os-release" in b.files and "/lib/os-release" not in b.files
    assert any(p.startswith("/lib/") and p.endswith("/libc.so.6") for p in b.files)
    assert "--lib /lib/os-release" in build_script(needs, "B")


def test_commands_run_in_their_background_shell_and_their_names_are_plain() -> None:
    """run_command runs a snippet in its own background shell, whose EXIT trap ends the record: a snippet
    that execs or sets a trap would lose that end, and a name goes into the trap's text."""
    from nectar_audit.catalog import all_needs
    from nectar_audit.evidence.needs import Needs
    from nectar_audit.evidence.script import build_script

    build_script(all_needs(), "B")  # every real snippet passes
    for name, snippet in (("ok name", "true"), ("a;b", "true"), ("x", "exec cat"), ("x", "true; trap '' EXIT")):
        with pytest.raises(ValueError):
            build_script(Needs(commands={name: snippet}), "B")
    build_script(Needs(commands={"find.exec": "find / -exec true {} +"}), "B")


def test_a_command_that_exits_still_ends_its_record_with_its_status(tmp_path: Path) -> None:
    from nectar_audit.evidence.bundle import Bundle
    from nectar_audit.evidence.needs import Needs
    from nectar_audit.evidence.script import build_script
    from nectar_audit.evidence.stream import parse_stream

    needs = Needs(commands={"a": "echo out; echo err >&2; exit 3", "b": "set -- x y; echo $#", "c": "(exit 5)"})
    for shell in ("dash", "bash"):  # Debian's and Red Hat's /bin/sh
        out = subprocess.run([shell, "-s"], input=build_script(needs, "BNDRYq1").encode(), capture_output=True,
                             timeout=60, check=True).stdout
        bundle = Bundle.for_needs("h", "local", True, needs)
        parse_stream(out, "BNDRYq1", bundle)
        a, b, c = (bundle.command(n) for n in "abc")
        assert a is not None and (a.rc, a.stdout.strip(), a.stderr.strip()) == (3, "out", "err"), shell
        assert b is not None and (b.rc, b.stdout.strip()) == (0, "2"), shell
        assert c is not None and c.rc == 5, shell
