"""The JSON API's tests run on both databases: `client` is the app over SQLite, then over
PostgreSQL (tests/fixtures_db.py)."""

import pytest


@pytest.fixture(scope="session")
def client(api):
    return api
