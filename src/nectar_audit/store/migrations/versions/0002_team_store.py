"""The team store: run ids chosen by writers, host identity, whole host documents, insert-only writers.

Every run of the legacy tables is kept, under its number: its hosts become documents holding what the
legacy store knew (target, hostname, error, each check's status, summary and whether it was waived).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from alembic import op

from nectar_audit.store import codec
from nectar_audit.store.schema import MAX_DOCUMENT_BYTES, METADATA, RUN_HOSTS, RUNS

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_LEGACY = uuid.UUID("5b0e7c53-8d55-4c5e-9a55-0f4e8a1f6c01")  # namespace of the ids given to legacy runs
_BATCH = 500


def _legacy_document(host: Any, created: str, checks: list[Any]) -> dict[str, Any]:
    from nectar_audit.checklist import BY_ID

    return {
        "target": host.host, "hostname": host.hostname,
        "os": {"id": "unknown", "version_id": "", "pretty_name": ""},
        "error": host.error, "started": created, "duration_s": 0.0,
        "checks": [{
            "id": c.check_id, "title": BY_ID[c.check_id].question if c.check_id in BY_ID else c.check_id,
            "status": c.status, "severity": "unknown", "summary": c.summary,
            "findings": [{"status": c.status, "message": c.summary, "evidence": [], "remediation": None}],
            "waiver": {"reason": "waived (the store of that time kept no reason)", "expires": None}
            if c.waived else None,
        } for c in checks],
    }


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    for name in ("run_checks", "run_hosts", "runs"):
        op.rename_table(name, f"legacy_{name}")
    # The tables as schema.py defines them at this revision: a later revision that changes schema.py must
    # first freeze a copy of these definitions here.
    METADATA.create_all(bind)
    if pg:
        op.alter_column("runs", "submitted_by", server_default=sa.text("CURRENT_USER"))
        op.alter_column("run_hosts", "run_seq",
                        server_default=sa.text("currval(pg_get_serial_sequence('runs', 'seq'))"))
        op.create_check_constraint("document_size", "run_hosts",
                                   f"octet_length(document::text) <= {MAX_DOCUMENT_BYTES}")
    meta = sa.MetaData()
    l_runs, l_hosts, l_checks = (sa.Table(f"legacy_{n}", meta, autoload_with=bind)
                                 for n in ("runs", "run_hosts", "run_checks"))
    last = 0
    while True:
        runs = list(bind.execute(sa.select(l_runs).where(l_runs.c.id > last).order_by(l_runs.c.id).limit(_BATCH)))
        if not runs:
            break
        last = runs[-1].id
        ids = [r.id for r in runs]
        hosts: dict[int, list[Any]] = {}
        for h in bind.execute(sa.select(l_hosts).where(l_hosts.c.run_id.in_(ids))
                              .order_by(l_hosts.c.run_id, l_hosts.c.host)):
            hosts.setdefault(h.run_id, []).append(h)
        checks: dict[tuple[int, str], list[Any]] = {}
        for c in bind.execute(sa.select(l_checks).where(l_checks.c.run_id.in_(ids))
                              .order_by(l_checks.c.run_id, l_checks.c.host, l_checks.c.check_id)):
            checks.setdefault((c.run_id, c.host), []).append(c)
        run_rows, host_rows = [], []
        for run in runs:
            when = codec.parse_time(run.created)
            docs = [_legacy_document(h, run.created, checks.get((run.id, h.host), [])) for h in hosts.get(run.id, [])]
            rid = uuid.uuid5(_LEGACY, str(run.id))
            run_rows.append({"seq": run.id, "id": rid, "created": when, "stored": when,
                             "tool_version": run.tool_version, "hosts": len(docs),
                             "failing_hosts": sum(1 for d in docs if codec.failing(d))})
            for idx, doc in enumerate(docs):
                ident = codec.identity(doc)
                host_rows.append({"run_id": rid, "idx": idx, "run_seq": run.id, "host_key": ident.key,
                                  "target": ident.target, "hostname": ident.hostname, "started": when,
                                  "stored": when, "error": doc["error"], "failing": codec.failing(doc),
                                  "document": doc})
        bind.execute(sa.insert(RUNS), run_rows)
        if host_rows:
            bind.execute(sa.insert(RUN_HOSTS), host_rows)
    if pg and last:
        bind.execute(sa.text("SELECT setval(pg_get_serial_sequence('runs', 'seq'), :n)"), {"n": last})
    for name in ("run_checks", "run_hosts", "runs"):
        op.drop_table(f"legacy_{name}")


def downgrade() -> None:
    raise NotImplementedError("the history store is not downgraded")
