"""facts/sshd.py: the sshd_config parser (OpenSSH semantics), sshd -T output, accounts, socket units.

Distribution samples live in tests/samples/sshd (origins in its README). Where this machine has a real
sshd, the parser is compared with ``sshd -T -f … -C …`` on the same files (samples and hypothesis-made
configurations): the parser must say what sshd says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.facts.accounts.passwd import parse_accounts
from nectar_audit.facts.ssh.access import access_denied, is_cloud_init_refusal
from nectar_audit.facts.ssh.files import CRYPTO_POLICY, GENERIC_USER, PROBE_ADDR
from nectar_audit.facts.ssh.match import Context, addr_match_list, match_pattern_list
from nectar_audit.facts.ssh.model import runtime_values
from nectar_audit.facts.ssh.parser import argv_split, parse_sshd_config, parse_sshd_T, split_line
from nectar_audit.facts.ssh.units import listen_stream_port, parse_unit_listen_streams
from tests import SAMPLES

SAMPLES = SAMPLES / "sshd"
MAIN = "/etc/ssh/sshd_config"
DROPINS = "/etc/ssh/sshd_config.d"


def sample(distro: str) -> dict[str, str]:
    """The files of one distribution sample as image paths -> text."""
    base = SAMPLES / distro
    files = {MAIN: (base / "sshd_config").read_text()}
    d = base / "sshd_config.d"
    if d.is_dir():
        for f in sorted(d.iterdir()):
            files[f"{DROPINS}/{f.name}"] = f.read_text()
    if distro.startswith(("rocky-9", "alma-9", "fedora")):
        files[CRYPTO_POLICY] = (SAMPLES / "rhel-common" / "opensshserver.config").read_text()
    return files


def eff(files: dict[str, str], user: str = "alice", **kw: object) -> dict[str, str]:
    cfg = parse_sshd_config(files)
    return cfg.effective(user=user, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Distribution defaults
# --------------------------------------------------------------------------------------------------
DISTROS = {
    # distro: (PasswordAuthentication value, where, KbdInteractive, UsePAM, PermitRootLogin, where PRL)
    "debian-11": ("yes", "OpenSSH default", "no", "yes", "prohibit-password", "OpenSSH default"),
    "debian-12": ("yes", "OpenSSH default", "no", "yes", "prohibit-password", "OpenSSH default"),
    "debian-13": ("yes", "OpenSSH default", "no", "yes", "prohibit-password", "OpenSSH default"),
    "ubuntu-20.04": ("no", f"{MAIN}:58", "no", "yes", "prohibit-password", "OpenSSH default"),
    "ubuntu-22.04": (
        "no",
        f"{DROPINS}/50-cloud-init.conf:1",
        "no",
        "yes",
        "prohibit-password",
        "OpenSSH default",
    ),
    "ubuntu-24.04": (
        "yes",
        f"{DROPINS}/50-cloud-init.conf:1",
        "no",
        "yes",
        "prohibit-password",
        "OpenSSH default",
    ),
    "rocky-8": ("yes", f"{MAIN}:70", "no", "yes", "yes", f"{MAIN}:43"),
    "rocky-9": ("yes", "OpenSSH default", "no", "yes", "prohibit-password", "OpenSSH default"),
    "alma-9": (
        "no",
        f"{DROPINS}/50-cloud-init.conf:1",
        "no",
        "yes",
        "yes",
        f"{DROPINS}/01-permitrootlogin.conf:1",
    ),
    "fedora-41": ("yes", "OpenSSH default", "no", "yes", "prohibit-password", "OpenSSH default"),
}


@pytest.mark.parametrize("distro", sorted(DISTROS))
def test_distribution_defaults(distro: str) -> None:
    pa, pa_where, kbd, pam, prl, prl_where = DISTROS[distro]
    cfg = parse_sshd_config(sample(distro))
    assert cfg.problems == []
    assert cfg.main_present
    s = cfg.effective_settings(user="alice")
    assert (s["passwordauthentication"].value, s["passwordauthentication"].where) == (pa, pa_where)
    assert s["kbdinteractiveauthentication"].value == kbd
    assert s["usepam"].value == pam
    assert (s["permitrootlogin"].value, s["permitrootlogin"].where) == (prl, prl_where)
    assert cfg.config_ports() == [22]
    assert cfg.match_blocks == []


def test_rhel9_includes_dropins_first_and_crypto_policy() -> None:
    cfg = parse_sshd_config(sample("rocky-9"))
    assert cfg.files_read == [MAIN, f"{DROPINS}/50-redhat.conf", CRYPTO_POLICY]
    s = cfg.effective_settings(user="rocky")
    # ChallengeResponseAuthentication (deprecated alias) in 50-redhat.conf sets KbdInteractiveAuthentication.
    assert (
        s["kbdinteractiveauthentication"].describe()
        == f"ChallengeResponseAuthentication no in {DROPINS}/50-redhat.conf:10"
    )
    assert s["authorizedkeysfile"].value == ".ssh/authorized_keys"
    assert s["ciphers"].where == f"{CRYPTO_POLICY}:1"


def test_fedora_crypto_policy_dropin() -> None:
    cfg = parse_sshd_config(sample("fedora-41"))
    assert cfg.files_read == [
        MAIN,
        f"{DROPINS}/40-redhat-crypto-policies.conf",
        CRYPTO_POLICY,
        f"{DROPINS}/50-redhat.conf",
    ]


def test_debian11_challenge_response_is_the_kbd_alias() -> None:
    s = parse_sshd_config(sample("debian-11")).effective_settings(user="x")
    assert s["kbdinteractiveauthentication"].describe() == f"ChallengeResponseAuthentication no in {MAIN}:63"


def test_cloud_init_dropin_wins_over_cloudimg_settings() -> None:
    files = sample("ubuntu-24.04")
    s = parse_sshd_config(files).effective_settings(user="ubuntu")
    assert (
        s["passwordauthentication"].describe()
        == f"PasswordAuthentication yes in {DROPINS}/50-cloud-init.conf:1"
    )


# --------------------------------------------------------------------------------------------------
# Semantics
# --------------------------------------------------------------------------------------------------
def test_first_value_wins_and_case_insensitive_keywords() -> None:
    e = eff(
        {MAIN: "passwordauthentication NO\nPasswordAuthentication yes\nPERMITROOTLOGIN without-password\n"}
    )
    assert e["passwordauthentication"] == "no"
    assert e["permitrootlogin"] == "prohibit-password"


@pytest.mark.parametrize(
    "line",
    [
        "PasswordAuthentication=no",
        "PasswordAuthentication = no",
        "  PasswordAuthentication\tno  # trailing comment",
        'PasswordAuthentication "no"',
        "PasswordAuthentication 'no'",
    ],
)
def test_line_syntax(line: str) -> None:
    assert eff({MAIN: line + "\n"})["passwordauthentication"] == "no"


def test_split_line_and_argv() -> None:
    assert split_line("  Foo=bar baz") == ("Foo", "bar baz")
    assert argv_split('a "b c" d\\ e # comment') == ["a", "b c", "d e"]


def test_accumulating_keywords() -> None:
    cfg = parse_sshd_config(
        {MAIN: "Port 22\nPort 2222\nAllowUsers alice\nAllowUsers bob carol\nAcceptEnv LANG\nAcceptEnv LC_*\n"}
    )
    e = cfg.effective(user="alice")
    assert e["port"] == "22 2222"
    assert e["allowusers"] == "alice bob carol"
    assert e["acceptenv"] == "LANG LC_*"
    assert cfg.config_ports() == [22, 2222]


def test_first_line_lists() -> None:
    e = eff(
        {
            MAIN: "AuthorizedKeysFile a b\nAuthorizedKeysFile c\nAuthenticationMethods publickey\n"
            "AuthenticationMethods password\n"
        }
    )
    assert e["authorizedkeysfile"] == "a b"
    assert e["authenticationmethods"] == "publickey"


def test_compiled_in_defaults() -> None:
    s = parse_sshd_config({MAIN: "# nothing\n"}).effective_settings(user="x")
    assert s["passwordauthentication"].value == "yes" and s["passwordauthentication"].is_default
    assert s["kbdinteractiveauthentication"].value == "yes"
    assert s["usepam"].value == "no"
    assert s["permitrootlogin"].value == "prohibit-password"
    assert s["authorizedkeysfile"].value == ".ssh/authorized_keys .ssh/authorized_keys2"


def test_include_glob_sorted_relative_and_nested() -> None:
    files = {
        MAIN: "Include sshd_config.d/*.conf\nPasswordAuthentication yes\n",
        f"{DROPINS}/20-b.conf": "Include /etc/ssh/extra/deep.conf\nPermitRootLogin no\n",
        f"{DROPINS}/10-a.conf": "PermitRootLogin yes\n",
        f"{DROPINS}/README": "PasswordAuthentication no\n",
        f"{DROPINS}/.hidden.conf": "PasswordAuthentication no\n",
        "/etc/ssh/extra/deep.conf": "PasswordAuthentication no\n",
    }
    cfg = parse_sshd_config(files)
    assert cfg.files_read == [
        MAIN,
        f"{DROPINS}/10-a.conf",
        f"{DROPINS}/20-b.conf",
        "/etc/ssh/extra/deep.conf",
    ]
    s = cfg.effective_settings(user="x")
    assert s["permitrootlogin"].where == f"{DROPINS}/10-a.conf:1"
    assert s["passwordauthentication"].where == "/etc/ssh/extra/deep.conf:1"


def test_include_inside_match_and_match_inside_include() -> None:
    files = {
        MAIN: "Match User alice\n  Include /etc/ssh/alice.conf\nMatch All\n  PermitRootLogin no\n",
        "/etc/ssh/alice.conf": "PasswordAuthentication no\n"
        "Match Address 10.0.0.0/8\n  PermitEmptyPasswords yes\n",
    }
    cfg = parse_sshd_config(files)
    assert cfg.effective(user="alice")["passwordauthentication"] == "no"
    assert cfg.effective(user="bob")["passwordauthentication"] == "yes"
    # The Match inside the include applies only where the including block does (alice), and ends there.
    assert cfg.effective(user="alice", addr="10.1.1.1")["permitemptypasswords"] == "yes"
    assert cfg.effective(user="bob", addr="10.1.1.1")["permitemptypasswords"] == "no"
    assert cfg.effective(user="bob")["permitrootlogin"] == "no"


def test_match_inside_top_level_include_ends_with_the_file() -> None:
    files = {
        MAIN: "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\n",
        f"{DROPINS}/a.conf": "Match User bob\n  PermitRootLogin yes\n",
    }
    cfg = parse_sshd_config(files)
    # "PasswordAuthentication no" after the Include is global again.
    assert cfg.effective(user="alice")["passwordauthentication"] == "no"
    assert cfg.effective(user="bob")["permitrootlogin"] == "yes"


def test_match_overrides_global_first_matching_block_wins() -> None:
    cfg = parse_sshd_config(
        {
            MAIN: "PasswordAuthentication no\n"
            "Match Address 10.0.0.0/8,!10.1.0.0/16\n  PasswordAuthentication yes\n"
            "Match All\n  PasswordAuthentication no\n"
        }
    )
    assert cfg.effective(user="a", addr="10.2.3.4")["passwordauthentication"] == "yes"
    assert cfg.effective(user="a", addr="10.1.3.4")["passwordauthentication"] == "no"
    assert cfg.effective(user="a")["passwordauthentication"] == "no"
    block = cfg.effective_settings(user="a", addr="10.2.3.4")["passwordauthentication"].block
    assert block is not None and block.label == f"Match Address 10.0.0.0/8,!10.1.0.0/16 ({MAIN}:2)"


def test_match_user_negation_alone_matches_nobody() -> None:
    cfg = parse_sshd_config({MAIN: "Match User !root\n  PasswordAuthentication no\n"})
    assert cfg.effective(user="alice")["passwordauthentication"] == "yes"
    cfg = parse_sshd_config({MAIN: "Match User *,!root\n  PasswordAuthentication no\n"})
    assert cfg.effective(user="alice")["passwordauthentication"] == "no"
    assert cfg.effective(user="root")["passwordauthentication"] == "yes"


def test_match_group_uses_primary_and_supplementary_groups() -> None:
    accounts = parse_accounts(
        "alice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n",
        "alice:x:1000:\nbob:x:1001:\nsudo:x:27:bob\n",
    )
    assert accounts["bob"].groups == ("bob", "sudo")
    cfg = parse_sshd_config({MAIN: "Match Group sudo\n  PasswordAuthentication no\n"})
    cfg.accounts = accounts
    assert cfg.effective(user="bob")["passwordauthentication"] == "no"
    assert cfg.effective(user="alice")["passwordauthentication"] == "yes"


def test_match_host_localport_localaddress() -> None:
    cfg = parse_sshd_config(
        {
            MAIN: "Match Host *.example.org\n  PasswordAuthentication no\n"
            "Match LocalPort 2222\n  PermitRootLogin no\n"
            "Match LocalAddress 192.0.2.0/24\n  PermitEmptyPasswords yes\n"
        }
    )
    assert cfg.effective(user="a", host="vm.EXAMPLE.org")["passwordauthentication"] == "no"
    assert cfg.effective(user="a", lport=2222)["permitrootlogin"] == "no"
    assert cfg.effective(user="a")["permitrootlogin"] == "prohibit-password"
    assert cfg.effective(user="a", laddr="192.0.2.9")["permitemptypasswords"] == "yes"


def test_problems_sshd_would_refuse() -> None:
    cfg = parse_sshd_config(
        {
            MAIN: "Match User a\n  Port 2222\nMatch Address 10.0.0.1/8\n  X11Forwarding no\n"
            'PasswordAuthentication maybe\nUsePAM\nBanner "unterminated\n'
        }
    )
    messages = [p.message for p in cfg.fatal_problems]
    assert "Directive 'Port' is not allowed within a Match block" in messages
    assert any("Bad Match condition" in m for m in messages)
    assert 'unsupported option "maybe" for PasswordAuthentication' in messages
    assert 'no argument after keyword "UsePAM"' in messages
    assert "invalid quotes" in messages


def test_include_loop_is_bounded() -> None:
    cfg = parse_sshd_config(
        {MAIN: "Include /etc/ssh/a.conf\n", "/etc/ssh/a.conf": "Include /etc/ssh/a.conf\n"}
    )
    assert any("Too many recursive" in p.message for p in cfg.problems)


def test_unreadable_and_uncaptured_includes_are_reported() -> None:
    cfg = parse_sshd_config(
        {MAIN: "Include /etc/ssh/sshd_config.d/*.conf\n"},
        unreadable={f"{DROPINS}/50-x.conf": "needs root to read x"},
        known_paths=[f"{DROPINS}/60-y.conf"],
    )
    assert cfg.unreadable == {f"{DROPINS}/50-x.conf": "needs root to read x"}
    assert cfg.not_captured == [f"{DROPINS}/60-y.conf"]


def test_listen_addresses_and_ports() -> None:
    cfg = parse_sshd_config(
        {MAIN: "Port 2222\nListenAddress 0.0.0.0\nListenAddress [::1]:2200\nListenAddress fe80::1\n"}
    )
    assert cfg.config_ports() == [2222, 2200]
    assert parse_sshd_config({MAIN: "ListenAddress 10.0.0.1:2022\n"}).config_ports() == [2022]


def test_contexts_cover_match_addresses_and_user_at_host() -> None:
    cfg = parse_sshd_config(
        {MAIN: "AllowUsers root@192.0.2.0/24\nMatch Address 10.0.0.0/8,172.16.*\n  X11Forwarding no\n"}
    )
    addrs = {c.addr for c in cfg.contexts("root")}
    assert {PROBE_ADDR, "2001:db8::7", "10.0.0.1", "172.16.1.1", "192.0.2.1"} <= addrs
    assert [c.addr for c in parse_sshd_config({MAIN: "PasswordAuthentication no\n"}).contexts("x")] == [
        PROBE_ADDR
    ]


def test_access_denied() -> None:
    cfg = parse_sshd_config({MAIN: "DenyUsers r*t\n"})
    ctx = Context("root")
    assert access_denied(cfg.effective_settings(ctx=ctx), ctx) is not None
    cfg = parse_sshd_config({MAIN: "AllowUsers alice root@10.0.0.0/8\n"})
    assert access_denied(cfg.effective_settings(ctx=Context("root")), Context("root")) is not None
    inside = Context("root", addr="10.9.9.9", host="10.9.9.9")
    assert access_denied(cfg.effective_settings(ctx=inside), inside) is None
    cfg = parse_sshd_config({MAIN: "DenyGroups wheel\n"})
    ctx = Context("root", groups=("root", "wheel"))
    assert access_denied(cfg.effective_settings(ctx=ctx), ctx) is not None


def test_patterns() -> None:
    assert match_pattern_list("alice", "a*,!admin") == 1
    assert match_pattern_list("admin", "a*,!admin") == -1
    assert match_pattern_list("bob", "a*") == 0
    assert addr_match_list("10.1.2.3", "10.0.0.0/8") == 1
    assert addr_match_list("10.1.2.3", "10.0.0.0/8,!10.1.0.0/16") == -1
    assert addr_match_list("192.168.4.4", "192.168.*") == 1
    assert addr_match_list("2001:db8::5", "2001:db8::/32") == 1
    assert addr_match_list("10.0.0.1", "10.0.0.1/8") == -2


# --------------------------------------------------------------------------------------------------
# sshd -T output, accounts, units, cloud-init refusal
# --------------------------------------------------------------------------------------------------
def test_parse_sshd_T() -> None:
    out = parse_sshd_T(
        "@@user root\nport 22\npasswordauthentication no\npermitrootlogin without-password\n"
        "kbdinteractiveauthentication no\nchallengeresponseauthentication yes\n"
        "allowusers alice\nallowusers bob\n@@rc 0\n@@user bad\nfoo\n@@rc 255\n@@truncated\n"
    )
    assert out.truncated and out.failed == {"bad": 255}
    vals = runtime_values(out.users["root"])
    assert vals["permitrootlogin"] == "prohibit-password"
    assert vals["kbdinteractiveauthentication"] == "yes"  # OpenSSH < 8.7 printed both; either enables it
    assert vals["allowusers"] == "alice bob"
    assert vals["denyusers"] == ""
    assert parse_sshd_T("@@skipped not root\n").skipped == "not root"
    same = parse_sshd_T("@@user root\npasswordauthentication no\n@@rc 0\n@@user alice\n@@same root\n@@rc 0\n")
    assert same.users["alice"] == same.users["root"] and same.users["alice"] is not same.users["root"]
    # A @@same naming an account that failed or never ran gives no answer, not a borrowed one.
    assert parse_sshd_T("@@user bob\n@@same root\n@@rc 0\n").failed == {"bob": 0}


def test_parse_accounts() -> None:
    acc = parse_accounts(
        "root:x:0:0:root:/root:/bin/bash\nsync:x:4:65534:sync:/bin:/bin/sync\n"
        "daemon:x:1:1::/usr/sbin:/usr/sbin/nologin\nroot:x:0:0::/x:/bin/sh\nbroken\n"
        "+nis::::::\nnoshell:x:5:5::/:\n",
        "root:x:0:\n",
    )
    assert list(acc) == ["root", "sync", "daemon", "noshell"]
    assert acc["root"].home == "/root" and acc["root"].groups == ("root",)
    assert [a.name for a in acc.values() if a.has_session_shell] == ["root", "noshell"]


def test_unit_listen_streams() -> None:
    units = [
        ("/lib/systemd/system/ssh.socket", (SAMPLES / "ubuntu-24.04" / "ssh.socket").read_text()),
        (
            "/etc/systemd/system/ssh.socket.d/override.conf",
            "[Socket]\nListenStream=\nListenStream=2222\nListenStream=/run/x.sock\n",
        ),
    ]
    values = [v for v, _, _ in parse_unit_listen_streams(units)]
    assert values == ["2222", "/run/x.sock"]
    assert [listen_stream_port(v) for v in ("22", "0.0.0.0:22", "[::]:2222", "/run/x", "vsock::22", "x")] == [
        22,
        22,
        2222,
        None,
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("root-cloud-init-refusal", True),
        ("root-cloud-init-refusal-old", True),
        ("root-fake-refusal", False),
        ("root-forced-command", False),
        ("root-plain", False),
    ],
)
def test_cloud_init_refusal(name: str, expected: bool) -> None:
    from nectar_audit.facts.keys.authorized import parse_authorized_keys

    keys = parse_authorized_keys((SAMPLES / "authorized_keys" / name).read_text())
    assert keys
    assert is_cloud_init_refusal(keys[0].forced_command) is expected


# --------------------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_parser_never_raises_on_text(text: str) -> None:
    cfg = parse_sshd_config({MAIN: text, "/etc/ssh/x.conf": text})
    cfg.effective(user="root")
    for ctx in cfg.contexts("root")[:20]:
        cfg.effective_settings(ctx=ctx)
    cfg.config_ports()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_parser_never_raises_on_binary(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    cfg = parse_sshd_config({MAIN: "Include /etc/ssh/*.conf\n" + text, "/etc/ssh/a.conf": text})
    cfg.effective(user=GENERIC_USER)
    parse_sshd_T(text)
    parse_accounts(text, text)
    parse_unit_listen_streams([("/x", text)])


@pytest.mark.parametrize("distro", sorted(DISTROS))
def test_truncated_samples(distro: str) -> None:
    files = sample(distro)
    main = files[MAIN]
    for cut in range(0, len(main), max(1, len(main) // 40)):
        cfg = parse_sshd_config({**files, MAIN: main[:cut]})
        cfg.effective(user="root")


# --------------------------------------------------------------------------------------------------
# Differential: the parser against the real sshd -T of this machine
# --------------------------------------------------------------------------------------------------
SSHD = shutil.which("sshd", path="/usr/sbin:/usr/bin:/sbin:/bin")
HOSTKEY = "/etc/ssh/ssh_host_ed25519_key"
COMPARED = (
    "passwordauthentication",
    "kbdinteractiveauthentication",
    "permitrootlogin",
    "permitemptypasswords",
    "usepam",
    "authenticationmethods",
    "allowusers",
    "denyusers",
    "authorizedkeysfile",
)


def _sshd_available() -> bool:
    return SSHD is not None and os.access(HOSTKEY, os.R_OK)


def _require_sshd() -> None:
    from tests.lab import require

    require(_sshd_available(), "real sshd -T needs openssh-server installed and root (to read the host key)")


def real_sshd_T(files: dict[str, str], user: str, addr: str, host: str | None = None) -> dict[str, str] | str:
    """sshd -T -f on ``files`` under a temp dir (image paths rewritten); the error text if sshd refuses."""
    tmp = tempfile.mkdtemp(prefix="sshdiff-")
    try:

        def real(path: str) -> str:
            return tmp + path

        for path, text in files.items():
            text = text.replace("/etc/ssh/", tmp + "/etc/ssh/").replace(CRYPTO_POLICY, real(CRYPTO_POLICY))
            Path(real(path)).parent.mkdir(parents=True, exist_ok=True)
            if path == MAIN:
                text = f"HostKey {HOSTKEY}\n" + text
            Path(real(path)).write_text(text)
        spec = f"user={user},host={host or addr},addr={addr}"
        proc = subprocess.run(
            [str(SSHD), "-T", "-f", real(MAIN), "-C", spec],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if proc.returncode != 0:
            return proc.stderr.strip() or f"rc {proc.returncode}"
        out = parse_sshd_T(f"@@user x\n{proc.stdout}@@rc 0\n")
        return runtime_values(out.users["x"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def parser_view(files: dict[str, str], user: str, addr: str, host: str | None = None) -> dict[str, str]:
    cfg = parse_sshd_config(files)
    cfg.accounts = parse_accounts(Path("/etc/passwd").read_text(), Path("/etc/group").read_text())
    return cfg.effective(user=user, addr=addr, host=host)


@pytest.mark.parametrize("distro", sorted(DISTROS))
def test_samples_agree_with_real_sshd(distro: str) -> None:
    _require_sshd()
    files = sample(distro)
    for user in ("root", "daemon"):
        theirs = real_sshd_T(files, user, "203.0.113.5")
        assert isinstance(theirs, dict), theirs
        mine = parser_view(files, user, "203.0.113.5")
        assert {k: mine[k] for k in COMPARED} == {k: theirs[k] for k in COMPARED}


# Hypothesis-made configurations over the keywords and Match criteria the checks depend on.
_USERS = ("root", "daemon", "nobody", "alice")
_FLAG = st.sampled_from(["yes", "no", "YES", "No"])
_KEYWORD_LINES = st.one_of(
    st.tuples(
        st.sampled_from(
            [
                "PasswordAuthentication",
                "passwordauthentication",
                "KbdInteractiveAuthentication",
                "ChallengeResponseAuthentication",
                "PermitEmptyPasswords",
            ]
        ),
        _FLAG,
    ),
    st.tuples(
        st.just("PermitRootLogin"),
        st.sampled_from(["yes", "no", "prohibit-password", "without-password", "forced-commands-only"]),
    ),
    st.tuples(
        st.sampled_from(["AllowUsers", "DenyUsers"]),
        st.lists(
            st.sampled_from(["root", "daemon", "a*", "root@10.0.0.0/8", "nobody@192.168.*"]),
            min_size=1,
            max_size=3,
        ).map(" ".join),
    ),
    st.tuples(
        st.just("AuthenticationMethods"),
        st.sampled_from(["any", "publickey", "publickey,password", "password publickey"]),
    ),
    st.tuples(
        st.just("AuthorizedKeysFile"), st.sampled_from([".ssh/authorized_keys", "/var/lib/sshkeys/%u a b"])
    ),
)
_CRITERIA = st.one_of(
    st.tuples(
        st.just("User"), st.sampled_from(["root", "daemon,nobody", "*,!root", "!daemon", "r*", "al?ce"])
    ),
    st.tuples(st.just("Group"), st.sampled_from(["root", "daemon", "nogroup", "*,!root"])),
    st.tuples(
        st.just("Address"),
        st.sampled_from(
            ["10.0.0.0/8", "10.0.0.0/8,!10.1.0.0/16", "192.168.*", "203.0.113.0/24", "2001:db8::/32"]
        ),
    ),
    st.tuples(st.just("Host"), st.sampled_from(["*.example.org", "10.*", "!*.bad"])),
)
_SEPARATORS = st.sampled_from([" ", "\t", "=", " = ", "  "])


@st.composite
def configs(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for kw, value in draw(st.lists(_KEYWORD_LINES, max_size=5)):
        lines.append(f"{kw}{draw(_SEPARATORS)}{value}")
    if draw(st.booleans()):
        lines.append(f"UsePAM {draw(st.sampled_from(['yes', 'no']))}")
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.integers(0, 5)) == 0:
            lines.append("Match All")
        else:
            crit = draw(st.lists(_CRITERIA, min_size=1, max_size=2, unique_by=lambda c: c[0]))
            sep = draw(st.sampled_from([" ", "=", "  "]))  # "Match User=alice" is valid up to OpenSSH 9.3
            lines.append("Match " + " ".join(f"{k}{sep}{v}" for k, v in crit))
        for kw, value in draw(st.lists(_KEYWORD_LINES, min_size=1, max_size=3)):
            lines.append(f"  {kw} {value}")
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    configs(),
    st.sampled_from(_USERS),
    st.sampled_from(["10.1.2.3", "10.2.3.4", "192.168.7.8", "203.0.113.9", "2001:db8::9"]),
)
def test_hypothesis_configs_agree_with_real_sshd(text: str, user: str, addr: str) -> None:
    _require_sshd()
    files = {MAIN: text}
    theirs = real_sshd_T(files, user, addr)
    if isinstance(theirs, str):
        return  # sshd refuses this configuration; the parser's problems are tested elsewhere
    mine = parser_view(files, user, addr)
    assert {k: mine[k] for k in COMPARED} == {k: theirs[k] for k in COMPARED}, text


INCLUDE_CASES = {
    "dropins-first-wins": {
        MAIN: "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\n",
        f"{DROPINS}/50-cloud-init.conf": "PasswordAuthentication yes\n",
        f"{DROPINS}/60-cloudimg-settings.conf": "PasswordAuthentication no\n",
    },
    "include-inside-match": {
        MAIN: "Match User root\n Include /etc/ssh/inc.conf\nMatch all\n PermitRootLogin no\n",
        "/etc/ssh/inc.conf": "PermitRootLogin yes\nMatch Address 203.0.113.0/24\nPasswordAuthentication no\n",
    },
    "include-inside-other-users-match": {
        MAIN: "Match User daemon\n Include /etc/ssh/inc.conf\nMatch all\n PermitRootLogin no\n",
        "/etc/ssh/inc.conf": "PermitRootLogin yes\nMatch Address 203.0.113.0/24\nPasswordAuthentication no\n",
    },
    "match-ends-with-included-file": {
        MAIN: "Include /etc/ssh/sshd_config.d/*.conf\nPermitEmptyPasswords yes\n",
        f"{DROPINS}/a.conf": "Match User root\n PermitEmptyPasswords no\n",
    },
    "nested-includes": {
        MAIN: "Include /etc/ssh/sshd_config.d/*.conf\n",
        f"{DROPINS}/a.conf": "Include /etc/ssh/deeper/*.conf\nKbdInteractiveAuthentication no\n",
        "/etc/ssh/deeper/x.conf": "KbdInteractiveAuthentication yes\nUsePAM yes\n",
    },
}


@pytest.mark.parametrize("case", sorted(INCLUDE_CASES))
@pytest.mark.parametrize("user", ["root", "daemon"])
def test_include_semantics_agree_with_real_sshd(case: str, user: str) -> None:
    _require_sshd()
    files = INCLUDE_CASES[case]
    theirs = real_sshd_T(files, user, "203.0.113.5")
    assert isinstance(theirs, dict), theirs
    mine = parser_view(files, user, "203.0.113.5")
    assert {k: mine[k] for k in COMPARED} == {k: theirs[k] for k in COMPARED}
