"""Schemathesis against the real app (tiny real models, both databases): generated requests
for every operation of /openapi.json, each checked for server errors, for conformance to
the schema (status codes, content types, headers, response bodies) and for rejecting what
the schema forbids. Ids are filled in with ones the test world hosts, so the requests reach
the model work, not only the 404s.

Not checked: that every schema-valid request is accepted. Some limits depend on the
server's settings or on the data (a latent must be below its SAE's d_sae, a prompt within
`max_prompt_tokens` tokens, top_k within `max_top_k`); a static schema cannot hold them,
so the fields' descriptions state them and the server answers 422 naming them."""

import random

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

# The test world's ids (tests/builders.py).
REAL = {"model": "base", "sae": "sae", "base": "base", "finetuned": "tuned"}
rng = random.Random(0)


def _real_ids(value):
    if isinstance(value, dict):
        for key, real in REAL.items():
            if key in value and rng.random() < 0.8:  # mostly real, sometimes as drawn
                value[key] = [real] if isinstance(value[key], list) else real
        if isinstance(value.get("request"), dict):
            _real_ids(value["request"])
        if isinstance(value.get("steer"), dict):
            _real_ids(value["steer"])
    return value


@schemathesis.hook
def map_body(ctx, body):
    return _real_ids(body)


@schemathesis.hook
def map_query(ctx, query):
    return _real_ids(query)


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    if path_parameters:
        if "sae_id" in path_parameters:
            path_parameters["sae_id"] = "sae"
        if "model_id" in path_parameters:
            path_parameters["model_id"] = "base"
    return path_parameters


def operation_labels() -> list[str]:
    """Every operation of the schema ('POST /api/steer', ...), read from the app's routes."""
    from app.main import app

    spec = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok().label for result in spec.get_all_operations()]


@pytest.fixture(scope="session")
def api_schema(api):
    return schemathesis.openapi.from_asgi("/openapi.json", api.app)


@pytest.mark.parametrize("label", operation_labels())
def test_every_operation_conforms(api_schema, label):
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    check()
