"""facts/sudoers.py (sudoers(5) parser and resolution) and Check-Security-16 (least privilege)."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.config import Config
from nectar_audit.engine import run_check
from nectar_audit.evidence.bundle import Bundle, EvidenceError, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.accounts.sudoers import (
    Policy,
    include_target,
    logical_lines,
    parse_sudoers,
    resolve,
    sudo_rights,
)
from nectar_audit.facts.accounts.users import build_accounts
from nectar_audit.model import Status
from tests import SAMPLES
from tests.checks.test_09_unneeded_accounts import OS_DEBIAN, OS_ROCKY, OS_UBUNTU, make_bundle, sample

SUDO = SAMPLES / "sudoers"
R440 = StatRecord(0o100440, 0, 0, 100, 0)
D750 = StatRecord(0o040750, 0, 0, 4096, 0)


def sudo_sample(name: str) -> str:
    return (SUDO / name).read_text()


def parse(files: dict[str, str], hostname: str | None = None) -> Policy:
    def read(path: str) -> str | None:
        if path.startswith("/unreadable"):
            raise EvidenceError(f"needs root to read {path}")
        return files.get(path)

    def list_dir(path: str) -> list[str] | None:
        prefix = path.rstrip("/") + "/"
        return [p[len(prefix):] for p in files if p.startswith(prefix) and "/" not in p[len(prefix):]]

    return parse_sudoers(read, list_dir, "/etc/sudoers", hostname)


def grants(policy: Policy, passwd: str = "", group: str = "") -> dict[str, tuple[bool, str]]:
    accts = None
    if passwd:
        accts = build_accounts(make_bundle({"/etc/passwd": passwd, "/etc/group": group, "/etc/shadow": ""}))
    rights = resolve(policy, accts, "web1")
    return {g.principal: (g.nopasswd, g.source) for g in rights.all_grants}


PASSWD = ("root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"
          "bob:x:1001:1001::/home/bob:/bin/bash\ncarol:x:1002:1002::/home/carol:/bin/bash\n"
          "dave:x:1003:27::/home/dave:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n")
GROUP = ("root:x:0:\nsudo:x:27:alice\nwheel:x:10:bob\nwww-data:x:33:\nalice:x:1000:\nbob:x:1001:\n"
         "carol:x:1002:\ndocker:x:998:carol\n")


# -- real default files -----------------------------------------------------------------------------
def test_debian12_default() -> None:
    pol = parse({"/etc/sudoers": sudo_sample("sudoers.debian12"),
                 "/etc/sudoers.d/README": sudo_sample("README.debian12")})
    assert pol.files == ["/etc/sudoers", "/etc/sudoers.d/README"]
    assert pol.problems == []
    assert [s.source for s in pol.specs] == ["/etc/sudoers:47", "/etc/sudoers:50"]
    assert [d.text.split()[1] for d in pol.defaults] == ["env_reset", "mail_badpass",
                                                         'secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:'
                                                         '/usr/bin:/sbin:/bin"', "use_pty"]
    assert grants(pol, PASSWD, GROUP) == {"root": (False, "/etc/sudoers:47"),
                                          "alice": (False, "/etc/sudoers:50"),
                                          "dave": (False, "/etc/sudoers:50")}  # dave: primary group sudo


@pytest.mark.parametrize("name", ["sudoers.ubuntu2204", "sudoers.ubuntu2004"])
def test_ubuntu_default_with_cloud_init_user(name: str) -> None:
    pol = parse({"/etc/sudoers": sudo_sample(name),
                 "/etc/sudoers.d/90-cloud-init-users": sudo_sample("90-cloud-init-users.ubuntu2204"),
                 "/etc/sudoers.d/README": sudo_sample("README.debian12")})
    assert pol.problems == []
    assert pol.files[1:] == ["/etc/sudoers.d/90-cloud-init-users", "/etc/sudoers.d/README"]
    g = grants(pol, sample("passwd.ubuntu2204"), sample("group.ubuntu2204"))
    assert g["ubuntu"] == (True, "/etc/sudoers.d/90-cloud-init-users:4")
    assert set(g) == {"root", "ubuntu", "%admin"}  # Ubuntu has no local admin group
    assert g["%admin"] == (False, "/etc/sudoers:" + ("23" if name.endswith("2004") else "47"))


@pytest.mark.parametrize("name", ["sudoers.rocky9", "sudoers.fedora41"])
def test_rhel_family_default(name: str) -> None:
    pol = parse({"/etc/sudoers": sudo_sample(name),
                 "/etc/sudoers.d/90-cloud-init-users": sudo_sample("90-cloud-init-users.rocky9")})
    assert pol.problems == []
    assert pol.aliases["cmnd"] == {}  # every Cmnd_Alias of the stock file is commented out
    assert [s.text.split()[0] for s in pol.specs] == ["root", "%wheel", "rocky"]
    group = sample("group.rocky9").replace("wheel:x:10:", "wheel:x:10:admin1")
    passwd = sample("passwd.rocky9") + "admin1:x:1001:1001::/home/admin1:/bin/bash\n"
    g = grants(pol, passwd, group)
    assert g == {"root": (False, "/etc/sudoers:100"), "admin1": (False, "/etc/sudoers:107"),
                 "rocky": (True, "/etc/sudoers.d/90-cloud-init-users:5")}
    secure = [d for d in pol.defaults if d.settings[0][0] == "secure_path"]
    assert len(secure) == 1 and secure[0].settings[0][1].startswith("/")


# -- includes ---------------------------------------------------------------------------------------
def test_every_include_form_and_relative_paths() -> None:
    files = {
        "/etc/sudoers": "#include sudoers.local\n@include /etc/other\n#includedir /etc/sudoers.d\n"
                        '@include "/etc/with space"\n@include /etc/sudoers.%h\n',
        "/etc/sudoers.local": "a1 ALL=(ALL) ALL\n@includedir more.d\n",
        "/etc/more.d/x": "a2 ALL=(ALL) ALL\n",
        "/etc/other": "a3 ALL=(ALL) ALL\n",
        "/etc/sudoers.d/10-ok": "a4 ALL=(ALL) ALL\n",
        "/etc/sudoers.d/20-skip.bak": "skipped1 ALL=(ALL) NOPASSWD: ALL\n",
        "/etc/sudoers.d/30-skip~": "skipped2 ALL=(ALL) NOPASSWD: ALL\n",
        "/etc/with space": "a5 ALL=(ALL) ALL\n",
        "/etc/sudoers.web1": "a6 ALL=(ALL) ALL\n",
    }
    pol = parse(files, hostname="web1.example.org")
    assert pol.problems == []
    assert pol.files == ["/etc/sudoers", "/etc/sudoers.local", "/etc/more.d/x", "/etc/other",
                         "/etc/sudoers.d/10-ok", "/etc/with space", "/etc/sudoers.web1"]
    assert sorted(grants(pol)) == ["a1", "a2", "a3", "a4", "a5", "a6"]


def test_include_target() -> None:
    assert include_target("foo", "/etc/sudoers.d/x", None) == "/etc/sudoers.d/foo"
    assert include_target("../x", "/etc/sudoers", None) == "/x"
    assert include_target("/etc/sudoers.%h", "/etc/sudoers", None) is None
    assert include_target('"/a b"', "/etc/sudoers", None) == "/a b"


def test_include_loop_and_missing_and_unreadable() -> None:
    files = {"/etc/sudoers": "@include /etc/a\n@include /etc/missing\n@include /unreadable/x\nroot "
                             "ALL=(ALL) ALL\n",
             "/etc/a": "@include /etc/b\na ALL=(ALL) ALL\n", "/etc/b": "@include /etc/a\n@include "
                                                                       "/etc/sudoers\n"}
    pol = parse(files)
    kinds = sorted((p.kind, p.source) for p in pol.problems)
    assert kinds == [("loop", "/etc/b:1"), ("loop", "/etc/b:2"), ("missing", "/etc/sudoers:2"),
                     ("missing", "/etc/sudoers:3")]
    assert "a" in grants(pol)


def test_self_includedir_loop_terminates() -> None:
    files = {"/etc/sudoers": "@includedir /etc/sudoers.d\n", "/etc/sudoers.d/x": "@include x\n@include "
                                                                                 "../sudoers\n"}
    pol = parse(files)
    assert {p.kind for p in pol.problems} == {"loop"}


# -- grammar ----------------------------------------------------------------------------------------
def test_logical_lines_and_comments() -> None:
    text = ("# comment\nalice ALL = \\\n  (ALL) ALL # trailing\n#1000 ALL=(ALL) ALL\n%#27 ALL=ALL\n"
            "#include x\n")
    assert logical_lines(text) == [(2, "alice ALL =   (ALL) ALL"), (4, "#1000 ALL=(ALL) ALL"),
                                   (5, "%#27 ALL=ALL"), (6, "#include x")]


def test_aliases_ids_negation_and_last_match() -> None:
    text = """
User_Alias ADMINS = alice, %wheel, #1002 : NOBODY = !ALL
Runas_Alias ROOTS = root, #0
Host_Alias WEB = web1, web2
Cmnd_Alias EVERYTHING = ALL
ADMINS WEB = (ROOTS) EVERYTHING
%#27 ALL = (ALL:ALL) ALL
ALL, !www-data ALL = (root) /usr/bin/id
bob ALL = (ALL) NOPASSWD: ALL
bob ALL = (ALL) !ALL
NOBODY ALL = (ALL) NOPASSWD: ALL
"""
    g = grants(parse({"/etc/sudoers": text}), PASSWD, GROUP)
    # alice: also in group sudo (gid 27), the later rule decides; bob: the later !ALL wins
    assert g == {"alice": (False, "/etc/sudoers:7"), "carol": (False, "/etc/sudoers:6"),
                 "dave": (False, "/etc/sudoers:7")}


def test_tags_inherit_along_the_command_list() -> None:
    text = ("alice ALL = (root) NOPASSWD: /usr/bin/ls, /usr/bin/id, PASSWD: ALL\n"
            "bob ALL = (root) NOPASSWD: /usr/bin/ls, ALL\n"
            "carol ALL = (alice) NOPASSWD: ALL, (root) ALL\n"
            "dave ALL = (:wheel) NOPASSWD: ALL\n")
    g = grants(parse({"/etc/sudoers": text}))
    assert g == {"alice": (False, "/etc/sudoers:1"), "bob": (True, "/etc/sudoers:2"),
                 "carol": (True, "/etc/sudoers:3")}  # carol: tags carry over to (root) ALL; dave: no root


def test_defaults_authenticate_forms() -> None:
    base = "alice ALL=(ALL) ALL\nbob ALL=(ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n"
    assert grants(parse({"/etc/sudoers": "Defaults !authenticate\n" + base}), PASSWD, GROUP)["bob"][0] is True
    g = grants(parse({"/etc/sudoers": "Defaults:alice !authenticate\n" + base}), PASSWD, GROUP)
    assert g["alice"][0] is True and g["bob"][0] is False
    g = grants(parse({"/etc/sudoers": "Defaults:%sudo authenticate=false\n" + base}), PASSWD, GROUP)
    assert g["alice"][0] is True and g["dave"][0] is True and g["bob"][0] is False
    g = grants(parse({"/etc/sudoers": "Defaults>root !authenticate\n" + base}), PASSWD, GROUP)
    assert g["bob"][0] is True
    g = grants(parse({"/etc/sudoers": "Defaults !authenticate\nDefaults:bob authenticate\n" + base}),
               PASSWD, GROUP)
    assert g["bob"][0] is False and g["alice"][0] is True


def test_options_digests_quotes_and_host_lists() -> None:
    text = ('Defaults env_keep += "A, B"\n'
            "alice web1, web2 = (root) TIMEOUT=5m CWD=* sha256:ab+/cd== /usr/bin/id, ALL : db = /bin/true\n"
            '"bob smith" ALL=(ALL) NOPASSWD:ALL\n'
            "carol db = (ALL) ALL\n")
    pol = parse({"/etc/sudoers": text})
    assert pol.problems == []
    g = grants(pol)
    assert g["alice"] == (False, "/etc/sudoers:2") and g["bob smith"][0] is True
    assert "carol" not in g  # only on host db; this host is web1


def test_shell_equivalent_commands() -> None:
    text = "alice ALL=(root) NOPASSWD: /bin/bash\nbob ALL=(root) /usr/bin/vim /etc/hosts\nc ALL=/usr/bin/id\n"
    rights = resolve(parse({"/etc/sudoers": text}), None)
    assert rights.all_grants == []
    assert [(g.principal, g.command, g.nopasswd) for g in rights.shell_grants] == [
        ("alice", "/bin/bash", True), ("bob", "/usr/bin/vim /etc/hosts", False)]


def test_syntax_errors_are_problems_not_crashes() -> None:
    pol = parse({"/etc/sudoers": "alice ALL=(ALL\nbob\n= ALL\nUser_Alias lower = x\nok ALL=(ALL) ALL\n"})
    assert [p.source for p in pol.problems] == ["/etc/sudoers:1", "/etc/sudoers:2", "/etc/sudoers:3",
                                               "/etc/sudoers:4"]
    assert list(grants(pol)) == ["ok"]


@given(st.text(max_size=600))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_garbage_never_raises(text: str) -> None:
    pol = parse({"/etc/sudoers": text, "/etc/sudoers.d/x": text})
    resolve(pol, None)


@given(st.lists(st.sampled_from([
    "alice", "%sudo", "ALL", "!bob", "ADMINS", "(ALL)", "(root:wheel)", "NOPASSWD:", "PASSWD:", ",", ":",
    "=", "/bin/sh", "\\", "\n", " ", "#", "@include", "x", "Defaults", "User_Alias", "Cmnd_Alias", '"',
    "sha256:abc", "!", "TIMEOUT=3", "%#27", "#0"]), max_size=40))
@settings(max_examples=400, deadline=None)
def test_token_soup_never_raises(tokens: list[str]) -> None:
    text = " ".join(tokens)
    resolve(parse({"/etc/sudoers": text}), None)


def test_binary_garbage_in_sudoers() -> None:
    data = bytes(range(256)) * 40 + b"\nalice ALL=(ALL) NOPASSWD: ALL\n" + b"\xff\xfe\x00" * 100
    b = make_bundle({"/etc/os-release": OS_DEBIAN, "/etc/passwd": PASSWD, "/etc/group": GROUP,
                     "/etc/sudoers": data}, stats={"/etc/sudoers": R440})
    res = check16(b)
    assert res.status is Status.FAIL
    assert "alice can run any command as root without a password" in res.summary
    assert any("binary data" in f.message or "sudo skips" in f.message for f in res.findings)


def test_big_sudoers_is_fast() -> None:
    text = "".join(f"user{i} ALL=(root) /usr/bin/systemctl restart svc{i}\n" for i in range(20000))
    t0 = time.perf_counter()
    pol = parse({"/etc/sudoers": text})
    resolve(pol, None)
    assert len(pol.specs) == 20000 and time.perf_counter() - t0 < 30


# -- Check-Security-16 ------------------------------------------------------------------------------
def check16(bundle: Bundle, config: Config | None = None):  # type: ignore[no-untyped-def]
    from nectar_audit.catalog import entries

    entry = next(e for e in entries() if e.id == "Check-Security-16")
    return run_check(entry, Facts(bundle, config or Config()))


def ubuntu_bundle(extra: dict[str, str] | None = None, stats: dict[str, StatRecord] | None = None,
                  **kw: object) -> Bundle:
    files: dict[str, bytes | str] = {
        "/etc/os-release": OS_UBUNTU,
        "/etc/passwd": sample("passwd.ubuntu2204"), "/etc/group": sample("group.ubuntu2204"),
        "/etc/shadow": sample("shadow.ubuntu2204.sanitized"),
        "/etc/cloud/cloud.cfg": sample("cloud.cfg.ubuntu2204"),
        "/etc/sudoers": sudo_sample("sudoers.ubuntu2204"),
        "/etc/sudoers.d/README": sudo_sample("README.debian12"),
        "/etc/sudoers.d/90-cloud-init-users": sudo_sample("90-cloud-init-users.ubuntu2204"),
    }
    files.update(extra or {})
    st = {"/etc/shadow": StatRecord(0o100640, 0, 42, 900, 0),
          "/etc/gshadow": StatRecord(0o100640, 0, 42, 700, 0),
          "/etc/passwd": StatRecord(0o100644, 0, 0, 1800, 0),
          "/etc/group": StatRecord(0o100644, 0, 0, 800, 0),
          "/etc/sudoers": R440, "/etc/sudoers.d": D750, "/etc/sudoers.d/README": R440,
          "/etc/sudoers.d/90-cloud-init-users": R440, "/root": StatRecord(0o040700, 0, 0, 4096, 0),
          "/home/ubuntu": StatRecord(0o040750, 1000, 1000, 4096, 0),
          "/usr/bin/sudo": StatRecord(0o104755, 0, 0, 1, 0)}
    st.update(stats or {})
    return make_bundle(files, stats=st, **kw)  # type: ignore[arg-type]


def test_16_ubuntu_image_default_warns() -> None:
    res = check16(ubuntu_bundle())
    assert res.status is Status.WARN
    warns = [f for f in res.findings if f.status is Status.WARN]
    assert warns[0].message.startswith("ubuntu (the cloud image's default user) can run any command as root "
                                       "without a password (NOPASSWD:ALL at "
                                       "/etc/sudoers.d/90-cloud-init-users:4)")
    assert warns[0].evidence[0].source == "/etc/sudoers.d/90-cloud-init-users:4"
    assert "visudo -f /etc/sudoers.d/90-cloud-init-users" in (warns[0].remediation or "")
    assert any(f.message.startswith("ubuntu (the cloud image's default user) is in group lxd") for f in warns)
    passes = [f.message for f in res.findings if f.status is Status.PASS]
    assert any("adm: syslog, ubuntu" in m and "sudo: ubuntu" in m for m in passes)
    assert "permissions of shadow, sudoers and home directories are tight" in passes


def test_16_nopasswd_for_someone_else_fails() -> None:
    passwd = sample("passwd.ubuntu2204") + "alice:x:1001:1001::/home/alice:/bin/bash\n"
    res = check16(ubuntu_bundle({"/etc/passwd": passwd,
                                 "/etc/sudoers.d/deploy": "# deploy access\nalice ALL=(ALL) NOPASSWD:ALL\n"},
                                stats={"/etc/sudoers.d/deploy": R440}))
    assert res.status is Status.FAIL
    assert res.summary == ("alice can run any command as root without a password "
                           "(NOPASSWD:ALL at /etc/sudoers.d/deploy:2)")


def test_16_defaults_not_authenticate_fails_and_names_it() -> None:
    res = check16(ubuntu_bundle({"/etc/sudoers.d/zz": "Defaults:%sudo !authenticate\n"},
                                stats={"/etc/sudoers.d/zz": R440}))
    fails = [f for f in res.findings if f.status is Status.FAIL]
    assert res.status is Status.WARN or not fails  # ubuntu is the default user: still a warning
    passwd = sample("passwd.ubuntu2204") + "ops:x:1001:1001::/home/ops:/bin/bash\n"
    group = sample("group.ubuntu2204").replace("sudo:x:27:ubuntu", "sudo:x:27:ubuntu,ops")
    res = check16(ubuntu_bundle({"/etc/passwd": passwd, "/etc/group": group,
                                 "/etc/sudoers.d/zz": "Defaults:%sudo !authenticate\n"},
                                stats={"/etc/sudoers.d/zz": R440}))
    assert res.status is Status.FAIL
    assert res.summary == ("ops can run any command as root without a password (!authenticate:ALL via %sudo "
                           "at /etc/sudoers:50)")
    f = next(f for f in res.findings if f.status is Status.FAIL)
    assert any("Defaults:%sudo !authenticate" in e.detail for e in f.evidence)


def test_16_docker_member_fails() -> None:
    passwd = sample("passwd.ubuntu2204") + "carol:x:1001:1001::/home/carol:/bin/bash\n"
    group = sample("group.ubuntu2204") + "docker:x:998:carol\n"
    res = check16(ubuntu_bundle({"/etc/passwd": passwd, "/etc/group": group}))
    assert res.status is Status.FAIL
    assert res.summary.startswith("carol is in group docker, which can start a container with the host's / "
                                  "mounted read-write")
    f = next(f for f in res.findings if f.status is Status.FAIL)
    assert f.remediation == "gpasswd -d carol docker" and f.evidence[0].detail == "docker:x:998:carol"


def test_16_root_equivalent_shell_commands() -> None:
    passwd = sample("passwd.ubuntu2204") + "dev:x:1001:1001::/home/dev:/bin/bash\n"
    res = check16(ubuntu_bundle({"/etc/passwd": passwd,
                                 "/etc/sudoers.d/dev":
                                     "dev ALL=(root) NOPASSWD: /usr/bin/su, /usr/bin/vim\n"},
                                stats={"/etc/sudoers.d/dev": R440}))
    msgs = {f.status: [] for f in res.findings}  # type: ignore[var-annotated]
    for f in res.findings:
        msgs[f.status].append(f.message)
    assert any(m.startswith("dev can get a root shell without a password: sudo /usr/bin/su")
               for m in msgs[Status.FAIL])
    assert any(m.startswith("dev may run /usr/bin/vim as root without a password") for m in msgs[Status.WARN])


def test_16_rocky_wheel_with_password_passes() -> None:
    passwd = sample("passwd.rocky9") + "admin1:x:1001:1001::/home/admin1:/bin/bash\n"
    group = sample("group.rocky9").replace("wheel:x:10:", "wheel:x:10:admin1")
    files: dict[str, bytes | str] = {"/etc/os-release": OS_ROCKY, "/etc/passwd": passwd, "/etc/group": group,
                                     "/etc/sudoers": sudo_sample("sudoers.rocky9")}
    st = {"/etc/shadow": StatRecord(0o100000, 0, 0, 900, 0), "/etc/sudoers": R440, "/etc/sudoers.d": D750,
          "/home/admin1": StatRecord(0o040700, 1001, 1001, 4096, 0)}
    res = check16(make_bundle(files, stats=st))
    assert res.status is Status.PASS, [f.message for f in res.findings]
    assert "can run any command as root with their password: admin1 (via %wheel)" in res.summary


def test_16_file_modes() -> None:
    res = check16(ubuntu_bundle(stats={
        "/etc/shadow": StatRecord(0o100644, 0, 42, 900, 0),
        "/etc/sudoers.d/90-cloud-init-users": StatRecord(0o100664, 0, 1000, 40, 0),
        "/etc/sudoers": StatRecord(0o100444, 0, 0, 1700, 0),
        "/etc/sudoers.d/old.bak": StatRecord(0o100666, 1000, 1000, 40, 0),  # sudo never reads it
        "/home/ubuntu": StatRecord(0o040777, 1000, 1000, 4096, 0)}))
    fails = [f.message for f in res.findings if f.status is Status.FAIL]
    warns = [f.message for f in res.findings if f.status is Status.WARN]
    assert "/etc/shadow (password hashes) is readable or writable by every user: mode 0644" in fails
    assert any(m.startswith("/etc/sudoers.d/90-cloud-init-users can be changed by someone other than root "
                            "(mode 0664") for m in fails)
    assert "home directory /home/ubuntu of ubuntu is world-writable (mode 0777)" in fails
    assert "/etc/sudoers is world-readable (mode 0444): every user can read the sudo policy" in warns
    assert not any("old.bak" in m for m in fails + warns)
    f = next(f for f in res.findings if f.message.startswith("/etc/shadow"))
    assert f.remediation == "chown root:shadow /etc/shadow && chmod 0640 /etc/shadow"


def test_16_world_readable_home_warns() -> None:
    res = check16(ubuntu_bundle(stats={"/home/ubuntu": StatRecord(0o040755, 1000, 1000, 4096, 0)}))
    w = next(f for f in res.findings if f.message.startswith("home directory"))
    assert w.status is Status.WARN
    assert w.message == "home directory /home/ubuntu of ubuntu is readable by every user (mode 0755)"
    assert (w.remediation or "").startswith("chmod 0750 /home/ubuntu; for new accounts set DIR_MODE=0750")


def test_16_non_root_errors_with_reason_but_reports_groups() -> None:
    b = ubuntu_bundle(uid=1000)
    for path in ("/etc/sudoers", "/etc/sudoers.d/README", "/etc/sudoers.d/90-cloud-init-users",
                 "/etc/shadow"):
        b.files.pop(path, None)
        b.add_unreadable(path, "Permission denied")
    res = check16(b)
    assert res.status is Status.ERROR
    assert any(f.status is Status.WARN and "group lxd" in f.message for f in res.findings)  # decidable
    errors = [f.message for f in res.findings if f.status is Status.ERROR]
    assert errors == ["needs root to read /etc/sudoers: cannot tell who may use sudo"]


def test_16_include_not_gathered_is_error() -> None:
    res = check16(ubuntu_bundle({"/etc/sudoers.d/zz": "@include /opt/site/sudoers\n"},
                                stats={"/etc/sudoers.d/zz": R440}))
    errors = [f for f in res.findings if f.status is Status.ERROR]
    assert errors and errors[0].message == ("sudo policy incomplete: /opt/site/sudoers is included by "
                                            "sudoers but "
                                            "was not gathered; audit it by hand")
    assert errors[0].evidence[0].source == "/etc/sudoers.d/zz:1"


def test_16_no_sudo_installed() -> None:
    b = make_bundle({"/etc/os-release": OS_DEBIAN, "/etc/passwd": sample("passwd.debian12"),
                     "/etc/group": sample("group.debian12")},
                    stats={"/etc/shadow": StatRecord(0o100640, 0, 42, 1, 0)})
    res = check16(b)
    assert res.status is Status.PASS and res.findings[0].message == "sudo is not installed"


def test_16_ldap_sudoers_is_manual() -> None:
    res = check16(ubuntu_bundle({"/etc/nsswitch.conf": "passwd: files sss\nsudoers: files sss\n"}))
    assert any(f.status is Status.MANUAL and "sss" in f.message for f in res.findings)


def test_sudo_rights_fact_resolves_groups_from_accounts() -> None:
    rights = Facts(ubuntu_bundle()).get(sudo_rights)
    assert [g.principal for g in rights.nopasswd_all] == ["ubuntu"]
    assert rights.grant_for("root") is not None


def test_16_second_uid0_account_fails_with_its_passwd_line() -> None:
    passwd = sample("passwd.ubuntu2204") + "toor:x:0:0::/root:/bin/bash\n"
    res = check16(ubuntu_bundle({"/etc/passwd": passwd}))
    assert res.status is Status.FAIL
    fail = next(f for f in res.findings if f.status is Status.FAIL)
    assert fail.message.startswith("account toor has UID 0: it holds every permission root has")
    line = len(passwd.splitlines())
    assert fail.evidence[0].source == f"/etc/passwd:{line}"
    assert "usermod -L" in (fail.remediation or "")
