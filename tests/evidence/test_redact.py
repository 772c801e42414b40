"""No secret leaves the host: each kind planted in a real root, then every report format and the saved
evidence bundle searched for it; and the redaction pass itself, kind by kind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.evidence import redact, redact_args
from nectar_audit.facts.system.processes import redact as redact_ps

PEM_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQ"


@pytest.mark.parametrize("text,secret", [
    ("password: hunter2-yaml", "hunter2-yaml"),
    ('action(type="omrelp" target="x" pwd="rs-pwd-1")', "rs-pwd-1"),
    ("*.* :ommysql:localhost,Syslog,rsyslog,mysql-pw-2", "mysql-pw-2"),
    ('destination d { sql(type(mysql) password("sng-pw-3")); };', "sng-pw-3"),
    ("smtp_sasl_password_maps = static:relayuser:postfix-pw-4", "postfix-pw-4"),
    ("abuseipdb_apikey = f2b-key-5", "f2b-key-5"),
    ('Acquire::http::Proxy "http://proxyuser:proxy-pw-6@proxy:3128";', "proxy-pw-6"),
    ("chpasswd:\n  list: |\n    root:chpw-7\n    ubuntu:RANDOM\n  expire: false\n", "chpw-7"),
    ("users:\n  - name: bob\n    plain_text_passwd: ptp-8\n", "ptp-8"),
    ("  hashed_passwd: $6$salty$0123456789abcdefABCDEF\n", "0123456789abcdefABCDEF"),
    ("ubuntu:$y$j9T$saltsaltsalt$hashhashhashhash:19000::::::\n", "hashhashhashhash"),
    (f"junk\n-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----\nmore",
     PEM_BODY),
    (f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n", PEM_BODY),  # cut short: the rest is key material
    ('auth_basic_user_file /etc/nginx/.htpasswd; proxy_set_header X-Token "tok-9";', "tok-9"),
    ('proxy_set_header Authorization "Basic dXNlcjpwYXNz";', "dXNlcjpwYXNz"),
])
def test_each_kind_of_secret_is_redacted(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out and "<redacted>" in out
    assert redact(out) == out


@pytest.mark.parametrize("text", [
    "PasswordAuthentication yes\nPermitEmptyPasswords no\nKbdInteractiveAuthentication no\n",
    "Defaults passwd_tries=3\n%sudo ALL=(ALL:ALL) ALL\n", "Source: password (0.5.3-5)\n",
    "password required pam_unix.so obscure yescrypt\n", "smtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd\n",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "PASS_MAX_DAYS 99999\n",
])
def test_what_the_checks_read_is_kept(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("args,secret", [
    ("sshpass -p ps-1 ssh admin@host", "ps-1"), ("mysql -uroot -pps-2 db", "ps-2"),
    ("curl -u admin:ps-3 https://example.test", "ps-3"), ("app --password=ps-4", "ps-4"),
    ("app --password ps-5", "ps-5"), ("rsync rsync://u:ps-6@h/m /x", "ps-6"), ("x --api-token ps-7", "ps-7"),
])
def test_process_arguments(args: str, secret: str) -> None:
    assert secret not in redact_ps(args)
    assert redact_args("ssh -p 22 host") == "ssh -p 22 host"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_redaction_never_fails_and_is_stable(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@pytest.mark.lab
def test_secrets_planted_in_a_real_root_reach_no_report_and_no_bundle(lab_root: Path, tmp_path: Path) -> None:
    secrets = {
        "etc/cloud/cloud.cfg.d/99-users.cfg": ("chpasswd:\n  list: |\n    root:PLANT-chpasswd\n"
                                              "users:\n  - name: bob\n    plain_text_passwd: PLANT-ptp\n"
                                              "    hashed_passwd: $6$PLANTsalt$PLANThashPLANThashPLANThash\n"),
        "etc/apt/apt.conf.d/90proxy": 'Acquire::http::Proxy "http://u:PLANT-proxy@proxy.example:3128";\n',
        "etc/rsyslog.d/50-remote.conf": ('action(type="omrelp" target="logs.example" port="2514" '
                                         'pwd="PLANT-rsyslog")\n*.* :ommysql:localhost,Syslog,rs,PLANT-mysql\n'),
        "etc/postfix/main.cf": ("smtp_sasl_password_maps = static:relay:PLANT-postfix\n"
                                "inet_interfaces = loopback-only\n"),
        "etc/fail2ban/jail.local": "[DEFAULT]\nabuseipdb_apikey = PLANT-f2b\n[sshd]\nenabled = true\n",
        "etc/redis/redis.conf": "bind 0.0.0.0\nrequirepass PLANT-redis\n",
        "root/notes.txt": "",
        "home/big.key": ("x" * 70_000 + "\n-----BEGIN OPENSSH PRIVATE KEY-----\nPLANTKEYMATERIAL\n"
                         "-----END OPENSSH PRIVATE KEY-----\n"),
        "root/.ssh/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nPLANTROOTKEY\n-----END OPENSSH PRIVATE KEY-----\n",
    }
    for rel, text in secrets.items():
        path = lab_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with (lab_root / "etc/shadow").open("a") as f:
        f.write("planted:$6$PLANTsalt2$PLANTshadowhashPLANTshadowhash:19000:0:99999:7:::\n")
    outputs = []
    for fmt in ("text", "json", "html", "junit", "markdown", "prometheus"):
        out = tmp_path / f"report.{fmt}"
        bundle = tmp_path / f"bundle-{fmt}.json"
        proc = subprocess.run([sys.executable, "-m", "nectar_audit", "scan", f"root:{lab_root}", "--format", fmt,
                               "-o", str(out), "--save-evidence", str(bundle)],
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode in (0, 1), proc.stderr
        outputs += [out.read_text(errors="replace"), bundle.read_text(errors="replace"), proc.stdout, proc.stderr]
    blob = "\n".join(outputs)
    assert "PLANT" not in blob, [line for line in blob.splitlines() if "PLANT" in line][:5]


# The process list's KEY=VALUE / -FLAG VALUE expression as it was until 2026-12-07: right on every input,
# quadratic in a long word. The word-by-word scan must give exactly what it gave.
_OLD_KV = __import__("re").compile(
    r"((?<![^\s])--?[A-Za-z0-9_.-]*(?:pass|token|secret|key|auth|cred)[A-Za-z0-9_.-]*( )|"
    r"[A-Za-z0-9_.-]*(?:pass|token|secret|key|auth|cred)[A-Za-z0-9_.-]*(=))[^ ]+", __import__("re").IGNORECASE
)


def _old_kv(args: str) -> str:
    return _OLD_KV.sub(lambda m: m.group(0) if m.group(0).endswith("<redacted>") else f"{m.group(1)}<redacted>",
                       args)


_KV_ALPHABET = st.sampled_from(["pass", "KEY", "token", "cred", "auth", "secret", "x", "-", "--", "=", " ", "  ",
                                "\t", "\n", "/", ".", "_", "K", "ſ", "<redacted>", "é", "9", "a=b", "\u3000"])


@settings(max_examples=600)
@given(st.lists(_KV_ALPHABET, max_size=14).map("".join))
def test_word_scan_redacts_exactly_as_the_old_expression(args: str) -> None:
    from nectar_audit.facts.system.processes import _redact_kv

    assert _redact_kv(args) == _old_kv(args)


def test_a_long_word_before_a_key_is_linear() -> None:
    """A 1 MB argument then " key": the old expression needed minutes (7 s at 10 KB); the scan needs
    one pass. A quadratic scan would not finish within the test's time."""
    from nectar_audit.facts.system.processes import _redact_kv

    for word in ("x" * 1_000_000, "-" + "k" * 1_000_000):
        args = word + " key=1 --password hunter2"
        assert _redact_kv(args) == word + " key=<redacted> --password <redacted>"
