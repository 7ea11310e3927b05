"""Database fixtures (a pytest plugin of tests/conftest.py): the persistence and API suites
run twice, on SQLite and on a real PostgreSQL server.

PostgreSQL: `TEST_POSTGRES_URL` (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres)
must reach a server where the user may create databases; `.ci/run` starts the local one
(scripts/ensure-services). Each test session creates uniquely named databases and drops
them at the end. When the server is unreachable the Postgres half fails, with the reason.
"""

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from app.db import migrate
from app.db.session import normalise_url, redact
from app.engine.engine import Engine
from app.engine.registry import Registry
from app.main import create_app
from app.settings import REPO_ROOT

BACKENDS = ["sqlite", "postgres"]
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def connect_postgres_admin():
    """An AUTOCOMMIT engine on the maintenance database; fails the test, saying why, when
    the server is unreachable."""
    url = normalise_url(os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES)
    engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {redact(url)}: {exc.orig}. The persistence "
            "tests run on SQLite and on Postgres; start Postgres with scripts/ensure-services "
            "(.ci/run does) or point TEST_POSTGRES_URL at a server where you may create "
            "databases.",
            pytrace=False,
        )
    return engine


class Databases:
    """Makes empty databases of either backend and removes them at the end."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.prefix = f"personascope_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.count = 0
        self.postgres: list[str] = []
        self._admin = None

    def admin(self):
        if self._admin is None:
            self._admin = connect_postgres_admin()
        return self._admin

    def new(self, backend: str) -> str:
        self.count += 1
        name = f"{self.prefix}_{self.count}"
        if backend == "sqlite":
            return f"sqlite:///{self.tmp / (name + '.db')}"
        admin = self.admin()
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.postgres.append(name)
        return make_url(admin.url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            for name in self.postgres:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory):
    dbs = Databases(tmp_path_factory.mktemp("databases"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def db_url(backend, databases) -> str:
    """A database at head shared by the session's tests of one backend (ids are random,
    so tests do not see each other's rows unless they list)."""
    url = databases.new(backend)
    migrate.upgrade(url)
    return url


@pytest.fixture
def fresh_db_url(backend, databases) -> str:
    """An empty database (no tables) of the current backend."""
    return databases.new(backend)


def app_settings(settings, url: str, **over):
    return settings.model_copy(update={"database_url": url, **over})


@pytest.fixture(scope="session")
def api(db_url, engine, settings):
    """A TestClient on an app backed by `db_url` and the tiny real models."""
    app = create_app(settings=app_settings(settings, db_url), engine=engine)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def fresh_api(fresh_db_url, engine, settings):
    """A TestClient on an app over an empty database (migrated at start-up)."""
    app = create_app(settings=app_settings(settings, fresh_db_url), engine=engine)
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def variant_config(world_config, tmp_path_factory) -> Path:
    """The test world with other weights under the id 'base', default pins from the
    config and a persona latent from an organism report."""
    root = world_config.parent
    config = yaml.safe_load(world_config.read_text())
    config["models"]["base"]["path"] = "other"
    config["default_sae"] = "sae"
    config["pins"] = [{"sae": "sae", "latent": 7, "label": "config pin"}]
    report = tmp_path_factory.mktemp("report") / "REPORT.json"
    # The report names the organism's SAE id; this config calls it 'sae' (default_sae).
    report.write_text('{"sae": "organism-sae", "persona_latent": 11}')
    config["report"] = str(report)
    path = root / "variant.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def variant_engine(variant_config, settings):
    return Engine(Registry.from_file(variant_config), settings)


# --------------------------------------------------------------------- a real server process
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`uvicorn app.main:app` in a subprocess, as deployed (migrations run at start-up)."""

    def __init__(self, config: Path, url: str, data_dir: Path, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONASCOPE_")}
        env.update(
            PERSONASCOPE_MODELS_CONFIG=str(config),
            PERSONASCOPE_DATA_DIR=str(data_dir),
            PERSONASCOPE_QUEUE_SIZE="64",
            DATABASE_URL=url,
        )
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(self.port)],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        pytest.fail(f"server not ready after {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no shutdown code runs
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_server(world_config, tmp_path):
    servers: list[Server] = []

    def start(url: str) -> Server:
        log = tmp_path / f"server{len(servers)}.log"
        server = Server(world_config, url, tmp_path / "data", log)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.kill()
