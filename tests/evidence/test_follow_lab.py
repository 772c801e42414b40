"""evidence.Follow: the gather script (real sh inside a Debian root) and the offline reader find and read
the same files through include directives, whatever the paths' shapes, and stay bounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nectar_audit.evidence import Bundle, Follow, Needs
from nectar_audit.facts.accounts.sudoers import sanitize_sudoers
from nectar_audit.targets.rootfs import RootFsTarget
from nectar_audit.targets.script_runner import ScriptTarget

pytestmark = pytest.mark.lab

HOST = "follow-host"
FOLLOW = Follow(name="t.includes", roots=("/etc/top",), file_directives=("#include", "@include"),
                dir_directives=("#includedir", "@includedir"), dir_skip=("*.*", "*~"), max_depth=6,
                max_files=40, sanitizer=sanitize_sudoers)
TREE = {
    "/etc/top": ('#include rel/a\n  @include "/opt/with space/b"\n@include /opt/esc\\ aped/c\n'
                 "#includedir /srv/d\n# include /not/a/directive\n#include ./loop/%h\n@include /etc/top\n"
                 "@include /absent/file\n@includedir /absent/dir\n"),
    "/etc/rel/a": "@include ../../opt/deep/1\n",
    "/opt/with space/b": "b\n",
    "/opt/esc aped/c": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n",
    "/srv/d/one": "one\n",
    "/srv/d/skip.me": "never read\n",
    "/srv/d/skip~": "never read\n",
    "/srv/d/two\nx": "a name with a newline is never listed\n",
    f"/etc/loop/{HOST}": "@include /etc/loop/" + HOST + "\nuser:$6$salt$hash:1:2\n",
    **{f"/opt/deep/{i}": f"@include /opt/deep/{i + 1}\n" for i in range(1, 12)},
}


def _tree(root: Path) -> None:
    for path, text in TREE.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (root / "etc/hostname").write_text(HOST + ".example.org\n")


def _live(root: Path) -> Bundle:
    argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec chroot "$1" sh -s', HOST + ".example.org",
            str(root)]
    return ScriptTarget("lab", argv).gather(Needs(follows=(FOLLOW,)))


def test_script_and_offline_reader_follow_the_same_files(lab_root: Path) -> None:
    _tree(lab_root)
    offline = RootFsTarget(str(lab_root)).gather(Needs(follows=(FOLLOW,)))
    live = _live(lab_root)
    assert not live.errors, live.errors
    found = offline.searches["t.includes"]
    assert live.searches["t.includes"] == found
    # Level by level, 6 below the root at most; a path is followed once as written (the loop through
    # "/etc/./loop" reads its file a second time under its other name, then stops).
    assert found == ["/etc/top", "/etc/rel/a", "/opt/with space/b", "/opt/esc aped/c", "/srv/d/one",
                     f"/etc/./loop/{HOST}", "/etc/rel/../../opt/deep/1", f"/etc/loop/{HOST}", "/opt/deep/2",
                     "/opt/deep/3", "/opt/deep/4", "/opt/deep/5"]
    assert {p: r.content for p, r in live.files.items()} == {p: r.content for p, r in offline.files.items()}
    # Whatever an include names, key material and hashes never reach the evidence.
    assert offline.files["/opt/esc aped/c"].content == "\n\n<private key withheld>\n"
    assert "{hash}" in str(offline.files[f"/etc/./loop/{HOST}"].content)
    assert "b3Blbn" not in repr(live) + repr(offline) and "$6$" not in repr(live) + repr(offline)


def test_following_is_bounded(lab_root: Path) -> None:
    many = lab_root / "srv/many"
    many.mkdir(parents=True)
    for i in range(100):
        (many / f"f{i:03d}").write_text("#includedir /srv/many\n")
    (lab_root / "etc/top").write_text("#includedir /srv/many\n")
    live = _live(lab_root)
    offline = RootFsTarget(str(lab_root)).gather(Needs(follows=(FOLLOW,)))
    assert len(live.searches["t.includes"]) == len(offline.searches["t.includes"]) == FOLLOW.max_files
    assert os.path.basename(live.searches["t.includes"][-1]) == "f038"
