import pytest
from fastapi.testclient import TestClient

from app.engine.engine import Engine
from app.engine.registry import Registry
from app.main import create_app
from app.settings import Settings
from tests.builders import build_world

# Databases of both backends, apps over them, real server processes.
pytest_plugins = ["tests.fixtures_db"]


@pytest.fixture(scope="session")
def world_config(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def registry(world_config):
    return Registry.from_file(world_config)


@pytest.fixture(scope="session")
def settings(world_config, tmp_path_factory):
    # Tests rerun many runs from one client; the rerun limit has its own test.
    return Settings(
        models_config=world_config,
        data_dir=tmp_path_factory.mktemp("data"),
        reruns_per_minute=10_000,
    )


@pytest.fixture(scope="session")
def engine(registry, settings):
    return Engine(registry, settings)


@pytest.fixture(scope="session")
def client(engine, settings):
    app = create_app(settings=settings, engine=engine)
    with TestClient(app) as c:
        yield c
