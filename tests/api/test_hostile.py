"""Hostile input, on SQLite and on PostgreSQL: every case gets a clear 4xx (never a 5xx),
with the security headers, and nothing it sends is stored.

The cases come from an outside audit: huge paging offsets, NUL characters, empty and
1,000-model lists, oversized and chunked bodies, huge sweeps, malformed ids, wrong types,
unknown methods. `test_cases_are_many` keeps the suite at least as large as the audit."""

import json
import time

import pytest

from tests.api.test_api import steer_body

PROMPT = "User: hi\nAssistant:"
NUL = "a\x00b"
HUGE_INTS = [2**31, 2**63, 2**64, 99999999999999999999, -1]
THOUSAND = [f"m{i}" for i in range(1000)]
SURROGATE = "\ud800"


def run_body(**request_over):
    return {"kind": "steer", "title": "t", "request": steer_body(**request_over)}


CASES: list[tuple[str, str, dict, set[int]]] = []


def case(method: str, path: str, expect: set[int] | int = 422, **kw) -> None:
    CASES.append((method, path, kw, {expect} if isinstance(expect, int) else expect))


# ---------------------------------------------------------------- paging offsets and limits
for path in ("/api/runs", "/api/comparisons", "/api/saes/sae/latents"):
    for value in [*HUGE_INTS, "abc", "1e3", 1_000_001, "-0x1"]:
        case("GET", path, params={"offset": value})
    for value in [0, 101 if "saes" not in path else 201, 2**63, "x"]:
        case("GET", path, params={"limit": value})
for value in [0, -3, 2**63, 99999999999999999999, "two"]:
    case("GET", "/latents", params={"sae": "sae", "page": value})
case("GET", "/api/runs", params={"kind": ""})
case("GET", "/api/runs", params={"kind": "nope"})

# ------------------------------------------------------------------------------------ NUL
case("POST", "/api/runs", json={**run_body(), "title": NUL})
case("POST", "/api/runs", json={**run_body(), "title": "\x00"})
case("POST", "/api/comparisons", json={"title": NUL, "runs": ["x" * 22]})
case("POST", "/api/comparisons", json={"title": "t", "description": NUL, "runs": ["x" * 22]})
case("PUT", "/api/saes/sae/latents/3/annotation", json={"label": NUL})
case("PUT", "/api/saes/sae/latents/3/annotation", json={"label": "ok", "note": NUL})
case("GET", "/api/saes/sae/latents", params={"q": NUL})
case("GET", "/api/runs", params={"kind": NUL})
case("GET", "/latents", params={"sae": "sae", "q": NUL})
case("GET", "/latents", params={"sae": NUL})
case("GET", "/steer", params={"prompt": NUL, "run": 1})
case("GET", "/api/saes/sae/latents/3", params={"model": NUL})
case("GET", "/api/runs/abc%00def", expect={404, 422})
case("GET", "/r/abc%00", expect={404, 422})
case(
    "POST",
    "/latents/sae/3/annotation",
    data={"label": NUL},
    headers={"Origin": "http://testserver"},
)


# ------------------------------------------------ lone surrogates, numbers JSON cannot hold
def raw(value) -> dict:
    """A JSON body sent as written (httpx would refuse to encode these)."""
    text = json.dumps(value, allow_nan=True)
    return {
        "content": text.encode("utf-8", "surrogatepass"),
        "headers": {"content-type": "application/json"},
    }


case("POST", "/api/runs", **raw({**run_body(), "title": SURROGATE}))
case("PUT", "/api/saes/sae/latents/3/annotation", **raw({"label": SURROGATE}))
case("PUT", "/api/saes/sae/latents/3/annotation", **raw({"label": "x", "note": SURROGATE}))
case("POST", "/api/steer", **raw(steer_body(prompt=SURROGATE)))
case("POST", "/api/steer", **raw(steer_body(alphas=[float("inf")])))
case("POST", "/api/steer", **raw(steer_body(alphas=[float("nan")])))
case("POST", "/api/steer", **raw(steer_body(latent=float("inf"))))

# ------------------------------------------------------------------ empty and huge lists
for path in ("/api/activations", "/api/steer", "/api/steer/stream"):
    case(
        "POST",
        path,
        json=steer_body(model=[])
        if "steer" in path
        else {"model": [], "sae": "sae", "prompt": PROMPT},
    )
    case(
        "POST",
        path,
        json=steer_body(model=THOUSAND)
        if "steer" in path
        else {"model": THOUSAND, "sae": "sae", "prompt": PROMPT},
    )
    case(
        "POST",
        path,
        json=steer_body(model=["base"] * 9)
        if "steer" in path
        else {"model": ["base"] * 9, "sae": "sae", "prompt": PROMPT},
    )
case(
    "GET",
    "/api/steer/stream",
    params={"model": THOUSAND[:300], "sae": "sae", "latent": 1, "prompt": "hi"},
)
case("POST", "/api/runs", json=run_body(model=[]))
case("POST", "/api/runs", json=run_body(model=THOUSAND))
case("POST", "/api/steer", json=steer_body(alphas=[]))
case("POST", "/api/steer", json=steer_body(alphas=[1.0] * 17))
case("POST", "/api/steer", json=steer_body(alphas=[1.0] * 10_000))
case(
    "POST",
    "/api/activations",
    json={"model": "base", "sae": "sae", "prompt": PROMPT, "latents": list(range(65))},
)
case("POST", "/api/comparisons", json={"title": "t", "runs": []})
case("POST", "/api/comparisons", json={"title": "t", "runs": ["x" * 22] * 101})
case("GET", "/api/saes/sae/annotations", params={"latents": list(range(1001))})

# --------------------------------------------------------------------------- huge sweeps
case(
    "POST",
    "/api/evaluate",
    json={
        "model": "base",
        "questions": ["why? " * 80] * 256,
        "samples_per_question": 64,
        "max_new_tokens": 256,
    },
)
case("POST", "/api/evaluate", json={"model": "base", "samples_per_question": 65})
case("POST", "/api/evaluate", json={"model": "base", "max_new_tokens": 257})
case(
    "POST",
    "/api/compare",
    json={"base": "base", "finetuned": "tuned", "sae": "sae", "prompts": ["word " * 400] * 256},
)
case(
    "POST",
    "/api/compare",
    json={"base": "base", "finetuned": "tuned", "sae": "sae", "prompts": ["x"] * 257},
)
case("POST", "/api/steer", json=steer_body(max_new_tokens=10**9))
case("POST", "/api/steer", json=steer_body(prompt="word " * 5000))
case(
    "POST",
    "/api/activations",
    json={"model": "base", "sae": "sae", "prompt": PROMPT, "top_k": 10**6},
)
case("POST", "/api/search", json={"sae": "sae", "text": "word " * 5000})

# ------------------------------------------------------------------------- wrong numbers
for bad in ["NaN", "inf", None, [], {}, 3.5, "x"]:
    case("POST", "/api/steer", json=steer_body(latent=bad), expect=422)
for bad in [-1, 2**31, 2**70, 1.5, "x"]:
    case("POST", "/api/steer", json=steer_body(seed=bad))
for bad in [-0.1, 5.1, "hot", None]:
    case("POST", "/api/steer", json=steer_body(temperature=bad))
for bad in [["x"], [None], [[1.0]], "1, x", [{}]]:
    case("POST", "/api/steer", json=steer_body(alphas=bad))
for path in (
    "/api/saes/sae/latents/-1",
    "/api/saes/sae/latents/99999999999999999999",
    "/api/saes/sae/latents/abc",
    "/api/saes/sae/latents/96",
):
    case("GET", path, expect={404, 422})
for path in ("/api/saes/sae/latents/-1/annotation", "/api/saes/sae/latents/2147483648/annotation"):
    case("PUT", path, json={"label": "x"}, expect={404, 422})
case("POST", "/api/saes/sae/pins", json={"latent": 2**63})
case("POST", "/api/saes/sae/pins", json={"latent": -5})

# ------------------------------------------------------------------- ids, kinds, shapes
for run_id in ["x", "x" * 22 + "y", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "a" * 5000]:
    case("GET", f"/api/runs/{run_id}", expect={404, 405})
    case("DELETE", f"/api/runs/{run_id}", expect={401, 404, 405})
case("POST", "/api/runs", json={**run_body(), "kind": "nope"})
case("POST", "/api/runs", json={**run_body(), "kind": ["steer"]})
case("POST", "/api/runs", json={**run_body(), "request": []})
case("POST", "/api/runs", json={**run_body(), "title": ""})
case("POST", "/api/runs", json={**run_body(), "title": "t" * 201})
case("POST", "/api/runs/" + "a" * 22 + "/rerun", expect=404, content=b"")
case("POST", "/api/comparisons/" + "a" * 22 + "/rerun", expect=404)
for body in [b"", b"{", b"[]", b"null", b'"x"', b"1", b"{" * 5000 + b"}" * 5000]:
    case(
        "POST",
        "/api/steer",
        content=body,
        headers={"content-type": "application/json"},
        expect={400, 422},
    )
case("POST", "/api/steer", content=b"model=base", headers={"content-type": "text/plain"})
case("POST", "/api/steer", json=steer_body(unknown_field=1))
case("POST", "/api/steer", json=steer_body(method="boost"))
case("POST", "/api/steer", json=steer_body(positions=""))
case("POST", "/api/steer", json=steer_body(prompt=""))
case("POST", "/api/steer", json=steer_body(prompt=" \n\t "))
case("POST", "/api/steer", json=steer_body(sae=""), expect={404, 422})
case("POST", "/api/steer", json=steer_body(model="../base"), expect=404)

# ------------------------------------------------------------------------ bodies, methods
case(
    "POST",
    "/api/steer",
    content=b"x" * 2_000_000,
    headers={"content-type": "application/json"},
    expect=413,
)
case(
    "POST",
    "/api/runs",
    content=b"x" * 1_000_001,
    headers={"content-type": "application/json"},
    expect=413,
)
case(
    "POST",
    "/api/steer",
    content=[b"x" * 65536] * 40,  # an iterable: sent chunked, every time
    headers={"content-type": "application/json"},
    expect=413,
)
case(
    "POST",
    "/steer/save",
    content=[b"x" * 65536] * 40,  # an iterable: sent chunked, every time
    headers={"content-type": "application/x-www-form-urlencoded"},
    expect=413,
)
for method, path in [
    ("PUT", "/api/runs/" + "a" * 22),
    ("PATCH", "/api/steer"),
    ("DELETE", "/api/models"),
    ("PUT", "/api/comparisons"),
]:
    case(method, path, expect=405)


def test_cases_are_many():
    assert len(CASES) >= 133, len(CASES)


@pytest.mark.parametrize(("method", "path", "kw", "expect"), CASES)
def test_hostile_input_is_a_clear_4xx(client, method, path, kw, expect):
    before = client.get("/api/runs", params={"limit": 1}).json()["count"]
    r = client.request(method, path, **kw)
    assert r.status_code in expect, (r.status_code, r.text[:300])
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert "content-security-policy" in r.headers
    if path.startswith("/api/") and r.status_code != 405:
        body = r.json()
        assert isinstance(body["detail"], str) and body["detail"]
    else:
        assert r.status_code == 405 or "Traceback" not in r.text
    if r.status_code == 405:
        assert r.headers["allow"]
    assert client.get("/api/runs", params={"limit": 1}).json()["count"] == before


def test_a_thousand_models_are_refused_at_once_and_the_next_request_answers(client):
    started = time.perf_counter()
    r = client.post("/api/steer", json=steer_body(model=THOUSAND))
    refused = time.perf_counter() - started
    assert r.status_code == 422 and "at most 64" in r.json()["detail"]
    assert refused < 1.0, refused
    nine = client.post("/api/steer", json=steer_body(model=["base"] * 9))
    assert nine.status_code == 422 and "max_models" in nine.json()["detail"]
    ok = client.post("/api/steer", json=steer_body(max_new_tokens=4))
    assert ok.status_code == 200, ok.text


def test_cost_admission_names_the_limit(client, engine):
    big = steer_body(model=["base"] * 8, alphas=[1.0] * 16, max_new_tokens=64)
    small_cap = engine.settings.model_copy(update={"max_request_cost": 1000})
    old = engine.settings
    engine.settings = small_cap
    try:
        r = client.post("/api/steer", json=big)
    finally:
        engine.settings = old
    assert r.status_code == 422 and "max_request_cost" in r.json()["detail"]
    assert r.json()["field"] == "request"


def test_405_lists_every_method_of_the_path(client):
    r = client.put("/api/runs/" + "a" * 22)
    assert r.status_code == 405
    assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "DELETE"}


def test_reruns_are_rate_limited_per_client(client, engine):
    saved = client.post("/api/runs", json=run_body(max_new_tokens=2)).json()
    ctx = client.app.state.services
    old = ctx.reruns
    from app.services.limits import RateLimit

    ctx.reruns = RateLimit(2, "reruns")
    try:
        codes = [client.post(f"/api/runs/{saved['id']}/rerun").status_code for _ in range(3)]
    finally:
        ctx.reruns = old
    assert codes[:2] == [200, 200] and codes[2] == 429


def test_edit_token_guards_label_note_and_pin_writes(client, engine):
    old = engine.settings
    engine.settings = old.model_copy(update={"edit_token": "s3cret"})
    try:
        path = "/api/saes/sae/latents/5/annotation"
        assert client.put(path, json={"label": "x"}).status_code == 401
        assert (
            client.put(path, json={"label": "x"}, headers={"X-Edit-Token": "no"}).status_code == 403
        )
        assert client.post("/api/saes/sae/pins", json={"latent": 5}).status_code == 401
        ok = client.put(path, json={"label": "x"}, headers={"X-Edit-Token": "s3cret"})
        assert ok.status_code == 200 and ok.json()["label"] == "x"
        assert client.delete(path, headers={"X-Edit-Token": "s3cret"}).status_code == 204
        assert client.get(path).status_code == 200  # reads stay open
    finally:
        engine.settings = old


def test_a_listed_comparison_cannot_show_an_unlisted_run(client):
    hidden = client.post("/api/runs", json={**run_body(max_new_tokens=2), "unlisted": True}).json()
    r = client.post("/api/comparisons", json={"title": "t", "runs": [hidden["id"]]})
    assert r.status_code == 409 and r.json()["field"] == "runs[0]"
    ok = client.post(
        "/api/comparisons", json={"title": "t", "runs": [hidden["id"]], "unlisted": True}
    )
    assert ok.status_code == 201
    listed = client.get("/api/comparisons", params={"limit": 100}).json()["data"]
    assert all(hidden["id"] not in c["run_ids"] for c in listed)


def test_server_errors_keep_the_connection_and_the_headers(client, monkeypatch):
    from app.services import catalog

    def broken(ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(catalog, "models_public", broken)
    r = client.get("/api/models")
    assert r.status_code == 500 and r.json()["detail"] == "internal error: RuntimeError"
    assert "content-security-policy" in r.headers and r.headers["x-frame-options"] == "DENY"
    assert r.headers.get("connection") != "close"
    monkeypatch.undo()
    assert client.get("/api/models").status_code == 200


def test_json_errors_are_documented_as_strings(client):
    spec = client.get("/openapi.json").json()
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["properties"]["detail"]["type"] == "string"
    steer = spec["paths"]["/api/steer"]["post"]["responses"]
    assert steer["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    stream = spec["paths"]["/api/steer/stream"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]
    assert stream["text/event-stream"]["schema"]["properties"]["event"]["enum"][-1] == "end"
    assert {"401", "403", "409"} <= set(spec["paths"]["/api/runs/{run_id}"]["delete"]["responses"])
    body = json.dumps(spec)
    assert "HTTPValidationError" not in body
