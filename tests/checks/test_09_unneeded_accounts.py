"""facts/accounts.py, the login-record sanitizers and Check-Security-09 (unneeded accounts)."""

from __future__ import annotations

import json
import sqlite3
import struct
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import all_needs, entries
from nectar_audit.config import Config
from nectar_audit.engine import run_check
from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.evidence.sanitize import sanitize
from nectar_audit.facts import Facts
from nectar_audit.facts.accounts.logins import sanitize_lastlog, sanitize_lastlog2, sanitize_wtmp, sanitize_wtmpdb
from nectar_audit.facts.accounts.passwd import parse_passwd, parse_shadow, password_state, sanitize_shadow
from nectar_audit.facts.accounts.users import (
    accounts,
    build_accounts,
    parse_cloud_default_user,
    parse_cloud_users,
    parse_login_defs,
)
from nectar_audit.model import Status
from tests import SAMPLES

SAMPLES = SAMPLES / "accounts"
FILE = 0o100644
DIR = 0o040755


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def entry(check_id: str):  # type: ignore[no-untyped-def]
    return next(e for e in entries() if e.id == check_id)


def make_bundle(files: dict[str, bytes | str], *, live: bool = True, uid: int | None = 0,
                stats: dict[str, StatRecord] | None = None, unreadable: tuple[str, ...] = (),
                commands: dict[str, CommandRecord] | None = None) -> Bundle:
    b = Bundle(target="test", kind="local" if live else "rootfs", live=live, uid=uid if live else None,
               sanitizers=all_needs().sanitize)
    for path, data in files.items():
        b.add_file(path, data.encode() if isinstance(data, str) else data)
    for path in unreadable:
        b.add_unreadable(path, "Permission denied")
    b.stats.update(stats or {})
    b.commands.update(commands or {})
    return b


OS_DEBIAN = 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
OS_UBUNTU = 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'
OS_ROCKY = 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\nPRETTY_NAME="Rocky Linux 9.4"\n'


def lastlog_bytes(records: dict[int, int]) -> bytes:
    """/var/log/lastlog as the kernel's x86_64 struct lastlog (292 bytes per uid)."""
    size = max(records) + 1 if records else 0
    out = bytearray(292 * size)
    for uid, t in records.items():
        struct.pack_into("<i32s256s", out, uid * 292, t, b"pts/0", b"192.0.2.7")
    return bytes(out)


def wtmp_record(ut_type: int, user: str, t: int, line: str = "pts/0") -> bytes:
    rec = bytearray(384)
    struct.pack_into("<hxxi32s4s32s256s", rec, 0, ut_type, 1234, line.encode(), b"ts/0", user.encode(),
                     b"192.0.2.7")
    struct.pack_into("<ii", rec, 340, t, 0)
    return bytes(rec)


def sqlite_bytes(tmp_path: Path, sql: str) -> bytes:
    db = tmp_path / f"db{time.monotonic_ns()}.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(sql)
    conn.commit()
    conn.close()
    return db.read_bytes()


def ubuntu_files(**extra: bytes | str) -> dict[str, bytes | str]:
    files: dict[str, bytes | str] = {
        "/etc/os-release": OS_UBUNTU,
        "/etc/passwd": sample("passwd.ubuntu2204"),
        "/etc/group": sample("group.ubuntu2204"),
        "/etc/shadow": sample("shadow.ubuntu2204.sanitized"),
        "/etc/login.defs": sample("login.defs.debian12"),
        "/etc/cloud/cloud.cfg": sample("cloud.cfg.ubuntu2204"),
        "/var/log/lastlog": lastlog_bytes({1000: int(time.time()) - 3 * 86400}),
        "/var/log/wtmp": b"",
    }
    files.update(extra)
    return files


UBUNTU_STATS = {
    "/home/ubuntu": StatRecord(0o040750, 1000, 1000, 4096, 0),
    "/home/ubuntu/.ssh/authorized_keys": StatRecord(FILE & ~0o044, 1000, 1000, 401, 0),
    "/root": StatRecord(0o040700, 0, 0, 4096, 0),
}


def check09(bundle: Bundle, config: Config | None = None):  # type: ignore[no-untyped-def]
    return run_check(entry("Check-Security-09"), Facts(bundle, config or Config()))


def by_status(result, status: Status) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.message for f in result.findings if f.status is status]


# -- parsers on real default files ------------------------------------------------------------------
def test_passwd_samples() -> None:
    deb = parse_passwd(sample("passwd.debian12"))
    assert [e.name for e in deb][:3] == ["root", "daemon", "bin"]
    assert next(e for e in deb if e.name == "sync").shell == "/bin/sync"
    rocky = parse_passwd(sample("passwd.rocky9"))
    assert {e.name for e in rocky} >= {"shutdown", "halt", "rocky", "nobody"}
    assert next(e for e in rocky if e.name == "rocky").uid == 1000


def test_passwd_skips_malformed_and_nis_lines() -> None:
    text = "root:x:0:0:root:/root:/bin/bash\n+@admins::::::\nbad line\nx:x:notanumber:0:::\n-bob\n\n" \
           "ok:x:1001:1001::/home/ok:/bin/sh\n"
    assert [e.name for e in parse_passwd(text)] == ["root", "ok"]


@pytest.mark.parametrize(("field", "state"), [
    ("", "empty"), ("{hash:sha512crypt}", "hash"), ("!{hash:yescrypt}", "locked"), ("!", "none"),
    ("!!", "none"), ("*", "none"), ("!*", "none"), ("*LK*", "none"), ("$6$salt$abc", "hash"),
])
def test_password_state(field: str, state: str) -> None:
    assert password_state(field) == state


def test_login_defs() -> None:
    deb = parse_login_defs(sample("login.defs.debian12"))
    assert deb["UID_MIN"] == "1000" and deb["UID_MAX"] == "60000"
    rocky = parse_login_defs(sample("login.defs.rocky9"))
    assert rocky["SYS_UID_MAX"] == "999" and rocky["HOME_MODE"] == "0700"


def test_cloud_init_default_user() -> None:
    assert parse_cloud_default_user(sample("cloud.cfg.ubuntu2204")) == ("ubuntu", True)
    assert parse_cloud_default_user(sample("cloud.cfg.rocky9")) == ("rocky", True)
    assert parse_cloud_default_user("system_info:\n  default_user: {name: nectar, lock_passwd: true}\n") \
        == ("nectar", True)
    assert parse_cloud_default_user("system_info:\n  distro: debian\n") == (None, False)
    assert parse_cloud_users("users:\n- default\n- name: alice\n  groups: sudo\n- bob\n") == ["alice", "bob"]
    assert parse_cloud_users(sample("cloud.cfg.ubuntu2204")) == []


def test_cloud_cfg_d_overrides_default_user() -> None:
    b = make_bundle(ubuntu_files(**{
        "/etc/cloud/cloud.cfg.d/90-nectar.cfg": "system_info:\n  default_user:\n    name: nectar\n"}))
    accts = build_accounts(b)
    assert accts.cloud_default_user == "nectar"
    assert accts.cloud_default_user_source == "/etc/cloud/cloud.cfg.d/90-nectar.cfg"


# -- sanitizers for login records -------------------------------------------------------------------
def test_lastlog_sanitizer_keeps_uid_and_time_only() -> None:
    text = sanitize(sanitize_lastlog, lastlog_bytes({0: 1_700_000_000, 1000: 1_710_000_000}))
    assert text == "# records 1001\n0 1700000000\n1000 1710000000\n"
    assert "192.0.2.7" not in text


def test_lastlog_sanitizer_64bit_time_layout() -> None:
    out = bytearray(296 * 3)
    struct.pack_into("<q", out, 2 * 296, 1_720_000_000)
    assert sanitize(sanitize_lastlog, bytes(out)) == "# records 3\n2 1720000000\n"


def test_wtmp_sanitizer_latest_user_login() -> None:
    data = wtmp_record(2, "reboot", 1_600_000_000) + wtmp_record(7, "alice", 1_700_000_000) \
        + wtmp_record(8, "", 1_700_000_100) + wtmp_record(7, "alice", 1_710_000_000) \
        + wtmp_record(7, "bob", 1_705_000_000) + b"\x00" * 17  # a torn last record
    assert sanitize(sanitize_wtmp, data) == "alice 1710000000\nbob 1705000000\n"


def test_lastlog2_and_wtmpdb_sanitizers(tmp_path: Path) -> None:
    ll2 = sqlite_bytes(tmp_path, "CREATE TABLE Lastlog2(Name TEXT PRIMARY KEY, Time INTEGER, TTY TEXT, "
                                 "RemoteHost TEXT, Service TEXT);"
                                 "INSERT INTO Lastlog2 VALUES ('alice', 1788249700, 'pts/0', '192.0.2.15', "
                                 "'sshd');"
                                 "INSERT INTO Lastlog2 VALUES ('root', 0, NULL, NULL, NULL);")
    assert sanitize(sanitize_lastlog2, ll2) == "alice 1788249700\n"
    wdb = sqlite_bytes(tmp_path, "CREATE TABLE wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT "
                                 "NULL, "
                                 "Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT);"
                                 "INSERT INTO wtmp (Type,User,Login) VALUES (1,'reboot',1788249600000000),"
                                 "(3,'alice',1788249700123456),(3,'alice',1788000000000000);")
    assert sanitize(sanitize_wtmpdb, wdb) == "alice 1788249700\n"


def test_wal_mode_database_is_read(tmp_path: Path) -> None:
    data = bytearray(sqlite_bytes(tmp_path, "CREATE TABLE Lastlog2(Name TEXT PRIMARY KEY, Time INTEGER, TTY "
                                            "TEXT, RemoteHost TEXT, Service TEXT);"
                                            "INSERT INTO Lastlog2 VALUES ('bob', 1700000000, '', '', '');"))
    data[18] = data[19] = 2  # as a WAL-mode database's header says
    assert sanitize(sanitize_lastlog2, bytes(data)) == "bob 1700000000\n"


@given(st.binary(max_size=4000))
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_login_sanitizers_never_raise(data: bytes) -> None:
    for name in ("lastlog", "wtmp", "lastlog2", "wtmpdb"):
        out = sanitize(name, data)
        assert isinstance(out, str)


@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789$./!*", min_size=0, max_size=40),
                min_size=1, max_size=5))
def test_shadow_sanitizer_never_keeps_a_hash(fields: list[str]) -> None:
    lines = [f"user{i}:{f}:19000:0:99999:7:::" for i, f in enumerate(fields)]
    out = sanitize(sanitize_shadow, "\n".join(lines).encode())
    for f, line in zip(fields, out.splitlines()):
        kept = line.split(":")[1]
        if f.lstrip("!").startswith("$") and len(f) > 8:
            assert f.lstrip("!") not in kept
        parsed = parse_shadow(line)
        assert len(parsed) == 1


def test_shadow_sanitizer_keeps_what_checks_need() -> None:
    raw = b"alice:!$6$salt$hashhashhash:19800:0:99999:7::20000:\nbob::19800:0:99999:7:::\n" \
          b"carol:$y$j9T$salt$hash:19801:0:99999:7:::\n"
    text = sanitize(sanitize_shadow, raw)
    assert "hashhash" not in text and "salt" not in text
    sh = parse_shadow(text)
    assert password_state(sh["alice"].password) == "locked" and sh["alice"].expire == 20000
    assert password_state(sh["bob"].password) == "empty"
    assert password_state(sh["carol"].password) == "hash" and sh["carol"].lastchg == 19801


def test_hash_in_passwd_never_enters_the_bundle() -> None:
    passwd = "root:x:0:0::/root:/bin/bash\nold:$1$salt$md5hashvalue:1000:1000::/home/old:/bin/sh\n"
    b = make_bundle({"/etc/passwd": passwd})
    content = b.files["/etc/passwd"].content or ""
    assert "md5hashvalue" not in content and "salt" not in content
    old = build_accounts(b).user("old")
    assert old is not None and old.password_state == "hash" and old.algorithm == "md5crypt"
    assert old.password_source == "/etc/passwd:2"


# -- the accounts fact ------------------------------------------------------------------------------
def test_ubuntu_image_accounts() -> None:
    b = make_bundle(ubuntu_files(), stats=UBUNTU_STATS)
    accts = Facts(b).get(accounts)
    ubuntu = accts.user("ubuntu")
    assert ubuntu is not None and ubuntu.has_login_shell and ubuntu.password_state == "none"
    assert ubuntu.authorized_keys == ("/home/ubuntu/.ssh/authorized_keys",)
    assert ubuntu.login_capable is True
    assert accts.cloud_default_user == "ubuntu" and accts.expected("ubuntu")
    assert accts.uid_min == 1000 and accts.sys_uid_max == 999
    assert set(accts.groups["sudo"].members) == {"ubuntu"}
    assert "ubuntu" in accts.groups["ubuntu"].members  # primary-group member
    last = accts.last_login("ubuntu")
    assert last is not None and (datetime.now(timezone.utc) - last).days == 3
    assert accts.login_sources == ("/var/log/wtmp", "/var/log/lastlog")
    assert [a.name for a in accts.login_capable] == ["ubuntu"]
    tss = accts.user("tss")
    assert tss is not None and not tss.has_login_shell


def test_rocky_special_shells_and_ranges() -> None:
    b = make_bundle({"/etc/passwd": sample("passwd.rocky9"), "/etc/group": sample("group.rocky9"),
                     "/etc/shadow": sample("shadow.rocky9.sanitized"),
                     "/etc/login.defs": sample("login.defs.rocky9")})
    accts = build_accounts(b)
    for name in ("sync", "shutdown", "halt"):
        a = accts.user(name)
        assert a is not None and a.special_shell and a.login_capable is False
    assert accts.is_system(accts.user("nobody"))  # type: ignore[arg-type]
    assert accts.user("rocky").password_state == "none"  # type: ignore[union-attr]


def test_last_login_is_the_latest_over_all_sources(tmp_path: Path) -> None:
    ll2 = sqlite_bytes(tmp_path, "CREATE TABLE Lastlog2(Name TEXT PRIMARY KEY, Time INTEGER, TTY TEXT, "
                                 "RemoteHost TEXT, Service TEXT);"
                                 "INSERT INTO Lastlog2 VALUES ('ubuntu', 1700000500, 'pts/0', '', 'sshd');")
    b = make_bundle(ubuntu_files(**{"/var/log/lastlog": lastlog_bytes({1000: 1_700_000_000}),
                                    "/var/log/wtmp": wtmp_record(7, "ubuntu", 1_690_000_000),
                                    "/var/lib/lastlog/lastlog2.db": ll2}))
    accts = build_accounts(b)
    assert accts.last_login("ubuntu") == datetime.fromtimestamp(1_700_000_500, timezone.utc)


def test_unreadable_shadow_is_unknown_not_wrong() -> None:
    files = ubuntu_files()
    del files["/etc/shadow"]
    b = make_bundle(files, uid=1000, unreadable=("/etc/shadow",))
    accts = build_accounts(b)
    assert accts.shadow_error == "needs root to read /etc/shadow"
    assert {a.password_state for a in accts.users} == {"unknown"}
    assert accts.user("ubuntu").login_capable is None  # type: ignore[union-attr]


def test_homes_outside_home_from_live_command() -> None:
    passwd = sample("passwd.debian12") + "svc:x:1500:1500::/data/svc:/bin/bash\n"
    cmd = CommandRecord("41ed 1500 1500 4096 0 /data/svc\n"
                        "8180 1500 1500 90 0 /data/svc/.ssh/authorized_keys\n")
    b = make_bundle({"/etc/passwd": passwd, "/etc/shadow": "svc:!:19000::::::\n"},
                    commands={"accounts.homes": cmd})
    svc = build_accounts(b).user("svc")
    assert svc is not None and svc.authorized_keys == ("/data/svc/.ssh/authorized_keys",)
    assert svc.login_capable is True
    # offline, nothing looked at /data/svc: keys are unknown, not absent
    off = make_bundle({"/etc/passwd": passwd, "/etc/shadow": "svc:!:19000::::::\n"}, live=False)
    svc = build_accounts(off).user("svc")
    assert svc is not None and not svc.keys_known and svc.login_capable is None


def test_gather_script_homes_snippet_is_valid_sh(tmp_path: Path) -> None:
    import subprocess

    from nectar_audit.facts.accounts.users import NEEDS

    out = subprocess.run(["sh", "-n"], input=NEEDS.commands["accounts.homes"], text=True, capture_output=True,
                         timeout=10, check=False)
    assert out.returncode == 0, out.stderr


def test_gather_script_homes_snippet_stats_every_home_in_batches(tmp_path: Path) -> None:
    """250 accounts homed outside /home (750 paths): stat'ed 100 homes at a time, none lost at the edges."""
    import shlex
    import subprocess

    from nectar_audit.evidence import STAT_FORMAT, parse_stat_lines
    from nectar_audit.facts.accounts.users import NEEDS

    homes = [tmp_path / "srv" / f"u{i}" for i in range(250)]
    for h in homes:
        (h / ".ssh").mkdir(parents=True)
        (h / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA x\n")
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(f"u{i}:x:{2000 + i}:{2000 + i}::{h}:/bin/sh\n" for i, h in enumerate(homes)))
    snippet = NEEDS.commands["accounts.homes"].replace("/etc/passwd", str(passwd))
    prelude = f'with_timeout() {{ shift; "$@"; }}\nSTAT_FORMAT={shlex.quote(STAT_FORMAT)}\n'
    out = subprocess.run(["sh", "-c", prelude + snippet], text=True, capture_output=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    stated = set(parse_stat_lines(out.stdout))
    assert stated == {str(h) for h in homes} | {str(h / ".ssh" / "authorized_keys") for h in homes}


# -- Check-Security-09 ------------------------------------------------------------------------------
def test_09_ubuntu_image_passes_and_lists_login_accounts() -> None:
    res = check09(make_bundle(ubuntu_files(), stats=UBUNTU_STATS))
    assert res.status is Status.PASS, res.findings
    assert res.summary.startswith("1 account(s) can log in: ubuntu [SSH key] (cloud default user)")
    assert res.findings[-1].evidence[0].source == "/etc/passwd:34"


def test_09_extra_uid0_fails() -> None:
    files = ubuntu_files()
    files["/etc/passwd"] = str(files["/etc/passwd"]) + "toor:x:0:0::/root:/bin/bash\n"
    files["/etc/shadow"] = str(files["/etc/shadow"]) + "toor:$6$nectar$fakehashfortests:19600:0:99999:7:::\n"
    res = check09(make_bundle(files, stats=UBUNTU_STATS))
    assert res.status is Status.FAIL
    assert res.summary == "account toor has UID 0: it is a second root account (/bin/bash)"
    fail = res.findings[0]
    assert "fakehash" not in json.dumps(res.to_json())
    assert fail.evidence[0].source == "/etc/passwd:35"
    assert fail.remediation is not None and "vipw" in fail.remediation
    assert "usermod -L -e 1 -s /usr/sbin/nologin toor" in fail.remediation
    assert "{hash" not in fail.evidence[0].detail or "sha512crypt" in fail.evidence[0].detail


def test_09_empty_password_fails() -> None:
    files = ubuntu_files()
    files["/etc/passwd"] = str(files["/etc/passwd"]) + "guest:x:1001:1001::/home/guest:/bin/bash\n"
    files["/etc/shadow"] = str(files["/etc/shadow"]) + "guest::19600:0:99999:7:::\n"
    res = check09(make_bundle(files, stats=UBUNTU_STATS))
    assert res.status is Status.FAIL
    assert "account guest has an empty password: anyone can log in as guest without one" in \
        by_status(res, Status.FAIL)
    f = next(f for f in res.findings if f.status is Status.FAIL)
    assert f.evidence[0].source == "/etc/shadow:35" and f.remediation and "passwd -l guest" in f.remediation


def test_09_system_account_with_shell_warns_but_not_sync() -> None:
    b = make_bundle({"/etc/os-release": OS_DEBIAN,
                     "/etc/passwd": sample("passwd.debian12")
                     + "postgres:x:104:110::/var/lib/postgresql:/bin/bash\n",
                     "/etc/shadow": sample("shadow.debian12") + "postgres:!:19600::::::\n",
                     "/etc/group": sample("group.debian12"), "/var/log/lastlog": b""},
                    commands={"accounts.homes": CommandRecord("")})
    res = check09(b)
    assert res.status is Status.WARN
    assert by_status(res, Status.WARN) == [
        "system account postgres (UID 104) has login shell /bin/bash (no usable password or key yet)"]
    w = next(f for f in res.findings if f.status is Status.WARN)
    assert w.remediation == "usermod -s /usr/sbin/nologin postgres"


def test_09_rocky_remediation_and_special_shells() -> None:
    b = make_bundle({"/etc/os-release": OS_ROCKY,
                     "/etc/passwd": sample("passwd.rocky9")
                     + "jenkins:x:990:990::/var/lib/jenkins:/bin/bash\n",
                     "/etc/shadow": sample("shadow.rocky9.sanitized"), "/etc/group": sample("group.rocky9"),
                     "/etc/login.defs": sample("login.defs.rocky9"), "/var/log/lastlog": b""},
                    commands={"accounts.homes": CommandRecord("")})
    res = check09(b)
    warns = [f for f in res.findings if f.status is Status.WARN]
    assert [w.message.split(" (")[0] for w in warns] == ["system account jenkins"]
    assert warns[0].remediation == "usermod -s /sbin/nologin jenkins"


def test_09_stale_account_warns_with_date() -> None:
    old = int((datetime.now(timezone.utc) - timedelta(days=200)).timestamp())
    files = ubuntu_files()
    files["/etc/passwd"] = str(files["/etc/passwd"]) + "alice:x:1001:1001::/home/alice:/bin/bash\n"
    files["/etc/shadow"] = str(files["/etc/shadow"]) + "alice:$y$j9T$nectar$fakehash:19600:0:99999:7:::\n"
    files["/var/log/lastlog"] = lastlog_bytes({1000: int(time.time()), 1001: old})
    res = check09(make_bundle(files, stats=UBUNTU_STATS))
    assert res.status is Status.WARN
    day = datetime.fromtimestamp(old, timezone.utc).strftime("%Y-%m-%d")
    assert res.summary == f"account alice has not logged in for 200 days (last login {day}, limit 90)"
    w = next(f for f in res.findings if f.status is Status.WARN)
    assert w.remediation and w.remediation.startswith("If alice is not needed: deluser --remove-home alice")
    # a longer limit from the config accepts it
    res = check09(make_bundle(files, stats=UBUNTU_STATS), Config(max_days_since_login=365))
    assert res.status is Status.PASS


def test_09_never_logged_in_warns_unless_expected() -> None:
    files = ubuntu_files()
    files["/etc/passwd"] = str(files["/etc/passwd"]) + "bob:x:1002:1002::/home/bob:/bin/bash\n"
    files["/etc/shadow"] = str(files["/etc/shadow"]) + "bob:$6$nectar$fakehashfortests:19600:0:99999:7:::\n"
    res = check09(make_bundle(files, stats=UBUNTU_STATS))
    assert res.summary == "account bob can log in (password) but has never logged in"
    res = check09(make_bundle(files, stats=UBUNTU_STATS), Config(expected_accounts=("bob",)))
    assert res.status is Status.PASS
    assert "bob [password] (expected)" in res.summary


def test_09_default_user_never_logged_in_is_expected() -> None:
    res = check09(make_bundle(ubuntu_files(**{"/var/log/lastlog": b""}), stats=UBUNTU_STATS))
    assert res.status is Status.PASS


def test_09_locked_human_account_is_not_stale() -> None:
    files = ubuntu_files()
    files["/etc/passwd"] = str(files["/etc/passwd"]) + "old:x:1003:1003::/home/old:/bin/bash\n"
    files["/etc/shadow"] = str(files["/etc/shadow"]) + "old:!$6$nectar$fakehashfortests:19600:0:99999:7:::\n"
    assert check09(make_bundle(files, stats=UBUNTU_STATS)).status is Status.PASS


def test_09_expired_account_cannot_log_in() -> None:
    files = ubuntu_files()
    files["/etc/passwd"] = str(files["/etc/passwd"]) + "gone:x:1004:1004::/home/gone:/bin/bash\n"
    files["/etc/shadow"] = str(files["/etc/shadow"]) + "gone:$6$nectar$fakehashfortests:19600:0:99999:7::1:\n"
    assert check09(make_bundle(files, stats=UBUNTU_STATS)).status is Status.PASS


def test_09_no_login_records_is_manual() -> None:
    files = ubuntu_files()
    del files["/var/log/lastlog"], files["/var/log/wtmp"]
    files["/etc/passwd"] = str(files["/etc/passwd"]) + "carl:x:1005:1005::/home/carl:/bin/bash\n"
    files["/etc/shadow"] = str(files["/etc/shadow"]) + "carl:$6$nectar$fakehashfortests:19600:0:99999:7:::\n"
    res = check09(make_bundle(files, stats=UBUNTU_STATS))
    assert res.status is Status.MANUAL
    assert res.summary.startswith(
        "cannot tell when carl last logged in (no lastlog, lastlog2, wtmp or wtmpdb")


def test_09_non_root_reports_error_and_what_it_can() -> None:
    files = ubuntu_files()
    del files["/etc/shadow"]
    files["/etc/passwd"] = str(files["/etc/passwd"]) + "toor:x:0:0::/root:/bin/bash\n" \
        "postgres:x:120:120::/var/lib/postgresql:/bin/bash\n"
    res = check09(make_bundle(files, uid=1000, unreadable=("/etc/shadow",), stats=UBUNTU_STATS))
    assert res.status is Status.FAIL  # the extra UID 0 is decidable without root
    assert "needs root to read /etc/shadow: cannot tell which accounts have a usable or empty password" in \
        by_status(res, Status.ERROR)
    assert any("postgres" in m and "unknown" in m for m in by_status(res, Status.WARN))
    files["/etc/passwd"] = sample("passwd.ubuntu2204")
    res = check09(make_bundle(files, uid=1000, unreadable=("/etc/shadow",), stats=UBUNTU_STATS))
    assert res.status is Status.ERROR
    assert res.summary.startswith("needs root to read /etc/shadow")


def test_09_missing_or_truncated_passwd_is_error() -> None:
    res = check09(make_bundle({"/etc/shadow": ""}))
    assert res.status is Status.ERROR and res.summary == "/etc/passwd is missing"
    b = make_bundle({"/etc/passwd": "root:x:0:0::/root:/bin/bash\n"})
    b.files["/etc/passwd"].truncated = True
    assert check09(b).status is Status.ERROR


def test_09_ten_megabyte_passwd() -> None:
    lines = [f"user{i}:x:{2000 + i}:{2000 + i}::/home/user{i}:/usr/sbin/nologin" for i in range(180_000)]
    text = "root:x:0:0:root:/root:/bin/bash\n" + "\n".join(lines) + "\n"
    assert len(text) > 10_000_000
    t0 = time.perf_counter()
    res = check09(make_bundle({"/etc/passwd": text, "/etc/shadow": "root:*:1:::::\n",
                               "/var/log/lastlog": b""}))
    assert res.status is Status.PASS, res.summary
    assert time.perf_counter() - t0 < 60


@given(st.text(max_size=3000))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_09_garbage_passwd_never_crashes(text: str) -> None:
    res = check09(make_bundle({"/etc/passwd": text, "/etc/shadow": text, "/etc/group": text,
                               "/etc/login.defs": text, "/etc/cloud/cloud.cfg": text}))
    assert not any("internal error" in f.message for f in res.findings), res.findings


@given(st.binary(max_size=3000))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_09_binary_garbage_never_crashes(data: bytes) -> None:
    res = check09(make_bundle({"/etc/passwd": b"root:x:0:0::/root:/bin/bash\n" + data, "/etc/shadow": data,
                               "/var/log/lastlog": data, "/var/log/wtmp": data}))
    assert not any("internal error" in f.message for f in res.findings), res.findings


def test_rootfs_with_symlink_loop_in_home(tmp_path: Path) -> None:
    from nectar_audit.targets.rootfs import RootFsTarget

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "home" / "alice" / ".ssh").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/bash\n"
                                         "alice:x:1000:1000::/home/alice:/bin/bash\n"
                                         "loop:x:1001:1001::/home/loop:/bin/bash\n")
    (root / "etc" / "shadow").write_text("root:*:1:::::\nalice:!:1:::::\nloop:!:1:::::\n")
    (root / "home" / "loop").symlink_to("loop")
    (root / "home" / "alice" / ".ssh" / "authorized_keys").symlink_to("authorized_keys")
    bundle = RootFsTarget(str(root)).gather(all_needs())
    res = check09(bundle)
    assert not any("internal error" in f.message for f in res.findings)
    accts = build_accounts(bundle)
    alice = accts.user("alice")
    assert alice is not None and alice.authorized_keys == ("/home/alice/.ssh/authorized_keys",)


def test_saved_bundle_judges_the_same() -> None:
    files = ubuntu_files()
    files["/etc/passwd"] = str(files["/etc/passwd"]) + "toor:x:0:0::/root:/bin/bash\n"
    b = make_bundle(files, stats=UBUNTU_STATS)
    again = Bundle.from_json(json.loads(json.dumps(b.to_json())))
    assert check09(again).to_json() == check09(b).to_json()
    assert "192.0.2.7" not in json.dumps(b.to_json())  # lastlog hosts never kept


def test_lookups_follow_getpwnam_and_getgrgid_on_duplicates() -> None:
    """The indexes keep the first entry of a name or gid, as the C library does, and list each account's
    groups sorted, once."""
    passwd = ("root:x:0:0:root:/root:/bin/bash\n"
              "alice:x:1000:1000::/home/alice:/bin/bash\n"
              "alice:x:1001:1001::/home/alice2:/bin/sh\n")
    group = ("root:x:0:\nalice:x:1000:\nstaff:x:50:alice,alice\nadm:x:4:alice\nsame:x:1000:\n")
    files = {"/etc/passwd": passwd, "/etc/group": group, "/etc/shadow": "", "/etc/os-release": OS_DEBIAN}
    facts = Facts(make_bundle(files), Config())
    accts = facts.get(accounts)
    alice = accts.user("alice")
    assert alice is not None and alice.uid == 1000 and alice.home == "/home/alice"
    assert accts.user("bob") is None
    # Members include the accounts whose primary group it is: alice's gid 1000 is "alice" and "same".
    assert accts.group_names_of("alice") == ["adm", "alice", "same", "staff"]
    for name in ("root", "alice", "nobody"):
        assert accts.group_names_of(name) == sorted(g.name for g in accts.groups.values() if name in g.members)
    g = accts.group_by_gid(1000)
    assert g is not None and g.name == "alice"
