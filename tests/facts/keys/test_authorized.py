"""parse_authorized_keys against real keys from ssh-keygen and cloud-init's prefixes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.evidence.bundle import Bundle
from nectar_audit.facts import Facts
from nectar_audit.facts.keys.authorized import (
    authorized_keys,
    collect_authorized_keys,
    fingerprint,
    parse_authorized_keys,
    parse_options,
)

pytestmark = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (openssh-client)"
)

# The prefix cloud-init (cc_ssh, disable_root: true) writes in root's authorized_keys (Ubuntu 24.04).
CLOUD_INIT_PREFIX = (
    "no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command=\"echo 'Please login as the "
    'user \\"ubuntu\\" rather than the user \\"root\\".\';echo;sleep 10;exit 142"'
)


@pytest.fixture(scope="module")
def pubkeys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """type -> (public key line, fingerprint as ssh-keygen -lf prints it)."""
    d = tmp_path_factory.mktemp("ak")
    out: dict[str, tuple[str, str]] = {}
    for t, extra in (("rsa", ["-b", "2048"]), ("ed25519", []), ("ecdsa", ["-b", "384"]), ("dsa", [])):
        key = d / f"id_{t}"
        r = subprocess.run(
            ["ssh-keygen", "-q", "-t", t, *extra, "-N", "", "-C", f"alice@{t} laptop", "-f", str(key)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if r.returncode != 0:  # DSA is disabled in recent OpenSSH builds
            continue
        fp = subprocess.run(
            ["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()[1]
        out[t] = ((d / f"id_{t}.pub").read_text().strip(), fp)
    return out


def test_fingerprints_match_ssh_keygen(pubkeys: dict[str, tuple[str, str]]) -> None:
    text = "\n".join(line for line, _ in pubkeys.values()) + "\n"
    keys = parse_authorized_keys(text)
    assert [k.fingerprint for k in keys] == [fp for _, fp in pubkeys.values()]
    assert keys[0].comment.endswith("laptop")
    assert all(k.options == () and k.forced_command is None for k in keys)


def test_cloud_init_prefix_and_quoted_commas(pubkeys: dict[str, tuple[str, str]], tmp_path: Path) -> None:
    rsa, rsa_fp = pubkeys["rsa"]
    ed, ed_fp = pubkeys["ed25519"]
    text = (
        f"# added by cloud-init\n{CLOUD_INIT_PREFIX} {rsa}\n"
        f'from="10.0.0.0/8,192.168.1.1",no-pty,environment="A=b c" {ed}\r\n'
        f"   \n{ed.split()[0]} AAAAbroken x\n"
    )
    keys = parse_authorized_keys(text)
    assert [(k.line, k.fingerprint) for k in keys] == [(2, rsa_fp), (3, ed_fp)]
    root = keys[0]
    assert root.is_cloud_init_refusal
    assert root.forced_command == (
        'echo \'Please login as the user "ubuntu" rather than the user "root".\';echo;sleep 10;exit 142'
    )
    assert root.has_option("no-x11-forwarding")
    assert keys[1].option("from") == "10.0.0.0/8,192.168.1.1"
    assert keys[1].option("environment") == "A=b c"
    assert not keys[1].is_cloud_init_refusal
    # ssh-keygen agrees on the prefixed file.
    f = tmp_path / "authorized_keys"
    f.write_text(text)
    r = subprocess.run(["ssh-keygen", "-lf", str(f)], capture_output=True, text=True, timeout=30, check=False)
    assert [w[1] for w in (line.split() for line in r.stdout.splitlines()) if len(w) > 1] == [rsa_fp, ed_fp]


def test_rejected_lines() -> None:
    assert parse_authorized_keys('command="unterminated ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI x\n') == []
    # Inner type mismatch (an RSA blob announced as ed25519) is ignored by sshd.
    assert parse_authorized_keys("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQ== x\n") == []
    assert parse_options('no-pty,command="a,b \\"c\\""') == (("no-pty", None), ("command", 'a,b "c"'))
    assert parse_options("bad option") is None
    assert fingerprint("not base64!") is None


def test_fact_per_user(pubkeys: dict[str, tuple[str, str]]) -> None:
    rsa, _ = pubkeys["rsa"]
    ed, _ = pubkeys["ed25519"]
    b = Bundle("t", "local", True, uid=0)
    b.add_file(
        "/etc/passwd",
        b"root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"
        b"svc:x:998:998::/var/lib/svc:/bin/sh\n",
    )
    b.add_file("/root/.ssh/authorized_keys", f"{CLOUD_INIT_PREFIX} {rsa}\n".encode())
    b.add_file("/home/alice/.ssh/authorized_keys2", f"{ed}\n".encode())
    b.add_file("/home/bob/.ssh/authorized_keys", f"{ed}\n".encode())  # no passwd entry: keyed by directory
    from nectar_audit.evidence.bundle import CommandRecord

    b.commands["keys.extra_authorized_keys"] = CommandRecord(
        f"==> /var/lib/svc/.ssh/authorized_keys <==\n{rsa}\n"
    )
    keys = Facts(b).get(authorized_keys)
    assert sorted(keys) == ["alice", "bob", "root", "svc"]
    assert keys["root"][0].is_cloud_init_refusal and keys["root"][0].source == "/root/.ssh/authorized_keys:1"
    assert keys["svc"][0].path == "/var/lib/svc/.ssh/authorized_keys"
    b.add_unreadable("/home/carol/.ssh/authorized_keys", "Permission denied")
    got, errors = collect_authorized_keys(Facts(b))
    assert "carol" not in got and "Permission denied" in errors["/home/carol/.ssh/authorized_keys"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_parser_never_crashes(text: str) -> None:
    for k in parse_authorized_keys(text):
        assert k.fingerprint is not None and k.fingerprint.startswith("SHA256:")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(["no-pty", "restrict", 'command="x,y"', 'from="a,b"', 'environment="Q=\\"1\\""']),
        min_size=1,
        max_size=5,
    )
)
def test_any_option_prefix_keeps_the_key(opts: list[str]) -> None:
    line = (
        ",".join(opts) + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHTV30yWNlh9t1QWlGFjgGN51ECCaifuSCLBIEN3CUjt c"
    )
    keys = parse_authorized_keys(line)
    assert len(keys) == 1 and len(keys[0].options) == len(opts)
