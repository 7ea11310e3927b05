"""Engines: URL handling and the SQLite settings that make concurrent saves safe."""

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import text

from app.db.session import SQLITE_BUSY_TIMEOUT_MS, Database, make_engine, normalise_url, redact
from app.errors import ConfigError
from app.main import create_app
from app.settings import Settings


@pytest.mark.parametrize(
    "url,expected",
    [
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_postgres_urls_mean_psycopg3(url, expected):
    assert normalise_url(url) == expected


def test_unsupported_databases_fail_at_start_up(tmp_path):
    with pytest.raises(ConfigError, match="unsupported database 'mysql'"):
        make_engine("mysql://u:secret@h/db")
    with pytest.raises(ConfigError, match="psycopg 3"):
        make_engine("postgresql+psycopg2://u:secret@h/db")
    with pytest.raises(ValidationError, match="postgresql\\+psycopg"):
        Settings(database_url="mysql://u@h/db", data_dir=tmp_path)
    assert "secret" not in redact("postgresql://u:secret@h/db")


def test_default_is_a_sqlite_file_in_the_data_dir(tmp_path, monkeypatch):
    for name in ("DATABASE_URL", "PERSONASCOPE_DATABASE_URL"):  # the default, not this shell's
        monkeypatch.delenv(name, raising=False)
    settings = Settings(data_dir=tmp_path / "state", _env_file=None)
    assert settings.database_url is None
    url = settings.resolved_database_url
    assert url == f"sqlite:///{tmp_path / 'state' / 'personascope.db'}"
    db = Database(url)  # creates the directory
    try:
        assert db.ping()
    finally:
        db.dispose()
    assert (tmp_path / "state" / "personascope.db").exists()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout_and_foreign_keys(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == SQLITE_BUSY_TIMEOUT_MS
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        db.dispose()


def test_ping_is_false_when_the_database_is_unreachable():
    db = Database("postgresql+psycopg://nobody@127.0.0.1:9/none")  # port 9: discard
    try:
        assert db.ping() is False
    finally:
        db.dispose()


def test_a_database_that_goes_away_is_503_not_500(engine, settings):
    down = "postgresql+psycopg://nobody@127.0.0.1:9/none"
    app = create_app(
        settings=settings.model_copy(update={"database_url": down, "migrate_on_start": False}),
        engine=engine,
    )
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] is False
        r = client.get("/api/runs")
        assert r.status_code == 503 and "database is unavailable" in r.json()["detail"]
        assert r.headers["retry-after"]
        assert client.get("/healthz").status_code == 200


def test_start_up_fails_clearly_when_the_database_is_unreachable(engine, settings):
    down = "postgresql+psycopg://nobody:secret@127.0.0.1:9/none"
    app = create_app(settings=settings.model_copy(update={"database_url": down}), engine=engine)
    with pytest.raises(RuntimeError, match="is not usable") as info, TestClient(app):
        pass
    assert "secret" not in str(info.value)
