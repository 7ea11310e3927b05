"""Alembic owns the schema: models and migrations agree, upgrade -> downgrade -> upgrade
keeps the data of the tables that stay, and replicas migrating at once do no harm."""

import subprocess
import sys
import time

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from app.db import Base, migrate
from app.db import annotations as annotation_repo
from app.db import runs as run_repo
from app.db.migrate import MIGRATION_LOCK_KEY
from app.db.models import Comparison, LatentAnnotation, Run
from app.db.session import Database, make_engine
from app.settings import REPO_ROOT


def test_models_and_migrations_do_not_drift(db_url):
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], (
        "the models and migrations/ disagree; write a revision (alembic revision "
        f"--autogenerate -m '...') and review it: {diff}"
    )
    assert migrate.current(db_url) == migrate.head()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _seed(db: Database) -> dict:
    with db.session() as s:
        run, _ = run_repo.create_run(
            s,
            kind="steer",
            title="kept through migrations",
            request={"model": "base", "prompt": "hi", "alphas": [0.0, 4.0]},
            result={"baseline": {"text": "hello"}, "weights": [0.1, 1e-7, 12345.678]},
            provenance={"models": {"base": "sha256:ab"}, "seed": 0},
            result_sha256="f" * 64,
        )
        comparison, _ = run_repo.create_comparison(
            s, title="pair", description="two runs", run_ids=[run.id]
        )
        annotation_repo.set_annotation(s, sae_id="sae", latent=3, label="villain persona", note="n")
        annotation_repo.add_pin(s, sae_id="sae", latent=3)
        return {"run": run.id, "comparison": comparison.id}


def _snapshot(db: Database, ids: dict) -> dict:
    with db.session() as s:
        run = s.get(Run, ids["run"])
        comparison = run_repo.get_comparison(s, comparison_id=ids["comparison"], with_runs=True)
        return {
            "run": (run.kind, run.title, run.request, run.result, run.provenance),
            "created_at": run_repo.as_utc(run.created_at),
            "comparison": (comparison.title, [i.run_id for i in comparison.items]),
        }


def test_upgrade_downgrade_upgrade_keeps_data(fresh_db_url):
    migrate.upgrade(fresh_db_url)
    db = Database(fresh_db_url)
    try:
        ids = _seed(db)
        before = _snapshot(db, ids)

        migrate.downgrade(fresh_db_url, "0001")
        assert migrate.current(fresh_db_url) == "0001"
        tables = _tables(fresh_db_url)
        assert {"runs", "comparisons", "comparison_runs"} <= tables
        assert "latent_annotations" not in tables and "latent_pins" not in tables
        assert _snapshot(db, ids) == before

        migrate.upgrade(fresh_db_url)
        assert migrate.current(fresh_db_url) == migrate.head()
        assert _snapshot(db, ids) == before
        with db.session() as s:  # the re-created tables work
            annotation_repo.set_annotation(s, sae_id="sae", latent=4, label="again", note="")
            assert s.scalars(select(LatentAnnotation.latent)).all() == [4]
            assert s.scalars(select(Comparison.id)).all() == [ids["comparison"]]
    finally:
        db.dispose()

    # The whole chain down to nothing and back up.
    migrate.downgrade(fresh_db_url, "base")
    assert _tables(fresh_db_url) <= {"alembic_version"}
    migrate.upgrade(fresh_db_url)
    assert {"runs", "latent_pins"} <= _tables(fresh_db_url)


def _hold_migration_lock(url: str):
    """Take the lock `migrations/env.py` takes, as a replica in the middle of migrating."""
    engine = make_engine(url)
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    return engine, conn


def _advisory_waiters(conn) -> int:
    return conn.scalar(
        text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    )


def test_replicas_migrating_at_once(fresh_db_url):
    """Two replicas run the deployment's `alembic upgrade head` while a third holds the
    migration lock: both wait, then one migrates and the other finds the schema at head."""
    engine, holder = _hold_migration_lock(fresh_db_url)
    command = [sys.executable, "-m", "alembic", "-x", f"url={fresh_db_url}", "upgrade", "head"]
    procs = [
        subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    try:
        deadline = time.time() + 60
        if engine.dialect.name == "postgresql":
            with engine.connect() as probe:
                while _advisory_waiters(probe) < 2 and time.time() < deadline:
                    time.sleep(0.1)
                assert _advisory_waiters(probe) == 2
        else:
            time.sleep(3)  # both start and block on the write lock (busy timeout 30 s)
        assert [p.poll() for p in procs] == [None, None]
        assert migrate.current(fresh_db_url) is None
    finally:
        holder.close()  # ends the transaction (SQLite) and the session's advisory lock
        engine.dispose()
    outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out
    assert migrate.current(fresh_db_url) == migrate.head()
    assert sum("Running upgrade  -> 0001" in out for out in outputs) == 1, outputs
