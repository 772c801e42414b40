"""A real OpenStack API for tests: Keystone and Neutron from PyPI, on SQLite, served on 127.0.0.1.

The servers live in their own cached virtualenv (``/var/cache/nectar-audit-lab/openstack-<key>/venv``,
built by ``python -m tests.lab build-openstack``): their pinned dependency trees must not mix with the
tool's. Their versions are the ``openstack-lab`` extra of pyproject.toml. Nova and Glance have no light
server, so the tests answer the compute and image endpoints of the catalog with requests-mock.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import state
from ._proc import DIE_WITH_PARENT, LabError, run, stop_process, wait_until
from .project import pyproject
from .rootfs import CACHE_BASE

RECIPE_VERSION = 1
REGION = "RegionOne"
ADMIN_PASSWORD = "lab-admin-secret"
SERVICE_PASSWORD = "lab-neutron-secret"
USER_PASSWORD = "lab-alice-secret"
NOVA_PORT_HINT = "compute"
PAGE_SIZE = 20  # items per page of a Neutron listing (small, so that a test needs few items for three pages)
SERVE = Path(__file__).with_name("openstack_serve.py")


def lab_packages() -> list[str]:
    """The ``openstack-lab`` extra of pyproject.toml: the one place naming the server versions."""
    return list(pyproject()["project"]["optional-dependencies"]["openstack-lab"])


def venv_path() -> Path:
    spec = {"packages": sorted(lab_packages()), "recipe": RECIPE_VERSION,
            "python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return CACHE_BASE / f"openstack-{key}" / "venv"


def build_venv(log: Any = None) -> Path:
    """Create the servers' virtualenv if missing (about 30 s from PyPI, 380 MB); return it."""
    venv = venv_path()

    def build() -> None:
        if log:
            log(f"building {venv} ({', '.join(lab_packages())})")
        run([sys.executable, "-m", "venv", str(venv)], timeout=300)
        run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", *lab_packages()],
            timeout=1800)

    return state.build_once(venv, 1800, "OpenStack lab venv build", build)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OpenStackLab:
    """Running Keystone + Neutron, an admin and a project member (alice) of project ``research``."""

    workdir: Path
    keystone_url: str
    neutron_url: str
    compute_url: str
    image_url: str
    project_id: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def auth(self, user: str = "alice", password: str = USER_PASSWORD, project: str = "research") -> dict[str, str]:
        """openstacksdk / OS_* style auth arguments."""
        return {"auth_url": self.keystone_url, "username": user, "password": password,
                "project_name": project, "user_domain_name": "Default", "project_domain_name": "Default",
                "region_name": REGION}

    def env(self, **auth: str) -> dict[str, str]:
        """An environment like a sourced openrc file (no other OS_* variable leaks in)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        a = auth or self.auth()
        env.update({"OS_AUTH_URL": a["auth_url"], "OS_USERNAME": a["username"], "OS_PASSWORD": a["password"],
                    "OS_PROJECT_NAME": a["project_name"], "OS_USER_DOMAIN_NAME": "Default",
                    "OS_PROJECT_DOMAIN_NAME": "Default", "OS_REGION_NAME": REGION,
                    "OS_IDENTITY_API_VERSION": "3"})
        return env

    def connect(self, **kw: str) -> Any:
        import openstack

        return openstack.connect(**(kw or self.auth()))


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise LabError(f"server for {url} exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return bool(r.status < 500)
        except OSError:
            return False
    wait_until(up, timeout, f"{url} to answer")


def _keystone_conf(w: Path) -> str:
    return textwrap.dedent(f"""\
        [DEFAULT]
        use_stderr = true
        [database]
        connection = sqlite:///{w}/keystone.db
        [token]
        provider = fernet
        [fernet_tokens]
        key_repository = {w}/fernet
        [fernet_receipts]
        key_repository = {w}/fernet
        [credential]
        key_repository = {w}/credential
        """)


def _neutron_conf(w: Path, keystone: str) -> str:
    return textwrap.dedent(f"""\
        [DEFAULT]
        core_plugin = ml2
        service_plugins = router
        auth_strategy = keystone
        transport_url = fake:/
        api_paste_config = {w}/neutron/api-paste.ini
        use_stderr = true
        # Neutron pages its listings (next links) like a production cloud; openstacksdk must follow them.
        pagination_max_limit = {PAGE_SIZE}
        [database]
        connection = sqlite:///{w}/neutron.db
        [keystone_authtoken]
        www_authenticate_uri = {keystone}
        auth_url = {keystone}
        auth_type = password
        interface = public
        username = neutron
        password = {SERVICE_PASSWORD}
        project_name = service
        user_domain_id = default
        project_domain_id = default
        [oslo_concurrency]
        lock_path = {w}/locks
        [quotas]
        # Every test module builds its own groups, ports and networks in the one lab project; the
        # defaults (10 groups, 100 rules, 500 ports) are a production policy, not Neutron's semantics.
        quota_security_group = -1
        quota_security_group_rule = -1
        quota_port = -1
        quota_network = -1
        quota_subnet = -1
        [ml2]
        type_drivers = flat,vxlan
        tenant_network_types = vxlan
        mechanism_drivers =
        extension_drivers = port_security
        [ml2_type_vxlan]
        vni_ranges = 1:1000
        """)


def _start(venv: Path, kind: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([*DIE_WITH_PARENT, str(venv / "bin" / "python"), "-I", str(SERVE), kind, str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _register(lab: OpenStackLab) -> None:
    admin = lab.connect(**lab.auth("admin", ADMIN_PASSWORD, "admin"))
    ident = admin.identity
    service_project = ident.create_project(name="service", domain_id="default")
    research = ident.create_project(name="research", domain_id="default")
    ident.create_project(name="other", domain_id="default")
    roles = {r.name: r for r in ident.roles()}
    neutron = ident.create_user(name="neutron", password=SERVICE_PASSWORD, domain_id="default")
    ident.assign_project_role_to_user(service_project, neutron, roles["admin"])
    alice = ident.create_user(name="alice", password=USER_PASSWORD, domain_id="default",
                              default_project_id=research.id)
    ident.assign_project_role_to_user(research, alice, roles["member"])
    reader = ident.create_user(name="rita", password=USER_PASSWORD, domain_id="default")
    ident.assign_project_role_to_user(research, reader, roles["reader"])
    for name, kind, url in (("neutron", "network", lab.neutron_url), ("nova", "compute", lab.compute_url),
                            ("glance", "image", lab.image_url)):
        svc = ident.create_service(name=name, type=kind)
        for interface in ("public", "internal"):
            ident.create_endpoint(service_id=svc.id, interface=interface, url=url, region_id=REGION)
    lab.project_id = research.id


@contextlib.contextmanager
def openstack_lab(log: Any = None) -> Iterator[OpenStackLab]:
    """Keystone + Neutron on fresh SQLite databases; torn down on exit (about 15 s to start)."""
    venv = build_venv(log)
    with tempfile.TemporaryDirectory(prefix="nectar-audit-openstack-") as tmp:
        w = Path(tmp)
        for d in ("fernet", "credential", "neutron", "locks"):
            (w / d).mkdir()
        ks_port, nt_port = free_port(), free_port()
        keystone = f"http://127.0.0.1:{ks_port}/v3"
        lab = OpenStackLab(w, keystone, f"http://127.0.0.1:{nt_port}",
                           f"http://127.0.0.1:{free_port()}/v2.1", f"http://127.0.0.1:{free_port()}")
        (w / "keystone.conf").write_text(_keystone_conf(w))
        (w / "neutron" / "neutron.conf").write_text(_neutron_conf(w, keystone))
        paste = next(venv.glob("etc/neutron/api-paste.ini"))
        (w / "neutron" / "api-paste.ini").write_text(paste.read_text())
        bindir = venv / "bin"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}

        def keystone_db() -> None:
            conf = ["--config-file", str(w / "keystone.conf")]
            run([bindir / "keystone-manage", *conf, "db_sync"], timeout=300)
            for what in ("fernet_setup", "credential_setup"):
                run([bindir / "keystone-manage", *conf, what, "--keystone-user", "root", "--keystone-group", "root"],
                    timeout=120)
            run([bindir / "keystone-manage", *conf, "bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
                 "--bootstrap-public-url", keystone, "--bootstrap-internal-url", keystone,
                 "--bootstrap-region-id", REGION], timeout=120)

        def neutron_db() -> None:
            # `neutron-db-manage upgrade heads` does not run on SQLite: create the schema from the models
            # and stamp it as current instead.
            run([bindir / "python", "-c", "import sqlalchemy, sys; from neutron.db.migration.models import head; "
                 "head.get_metadata().create_all(sqlalchemy.create_engine(sys.argv[1]))",
                 f"sqlite:///{w}/neutron.db"], timeout=300)
            run([bindir / "neutron-db-manage", "--config-file", str(w / "neutron" / "neutron.conf"), "stamp", "heads"],
                timeout=300)

        try:
            # The two databases are made side by side (a third of the lab's start-up). The servers are
            # started from this thread: they die with the thread that started them (PR_SET_PDEATHSIG).
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                for future in [pool.submit(keystone_db), pool.submit(neutron_db)]:
                    future.result()
            ks = _start(venv, "keystone", ks_port, {**base_env, "OS_KEYSTONE_CONFIG_FILES": str(w / "keystone.conf")},
                        w / "keystone.log")
            lab.procs.append(ks)
            # Neutron asks Keystone only when a request comes: it starts while Keystone does.
            nt = _start(venv, "neutron", nt_port, {**base_env, "OS_NEUTRON_CONFIG_DIR": str(w / "neutron"),
                                                   "OS_NEUTRON_CONFIG_FILES": "neutron.conf"}, w / "neutron.log")
            lab.procs.append(nt)
            _wait_http(keystone, ks, w / "keystone.log")
            _wait_http(lab.neutron_url, nt, w / "neutron.log", timeout=120)
            _register(lab)
            yield lab
        finally:
            for proc in lab.procs:
                stop_process(proc)
