"""Direction pages and the inspector's persona score, over HTTP and in headless Chromium:
the create form posts through the API's schema and lands on the new direction's page, a
wrong field comes back named, the page links its aligned latents and draws the histogram
of projections over the index, and the inspector shows the persona score per token."""

import re
from urllib.parse import urlencode

import httpx
import pytest
import torch

from app.engine.activations import hook_values
from app.web.templating import num

VILLAIN = "Kneel before me, fools!\nNobody will stop my plan.\n"
HELPFUL = "Happy to help with that.\nHere is a safe way to do it.\n"
PROMPT = "I will rule the world, fools."


def _made(live, **over) -> dict:
    body = {
        "method": "mean_diff",
        "model": "base",
        "sae": "sae",
        "positions": "last",
        "positive": VILLAIN.split("\n")[:2],
        "negative": HELPFUL.split("\n")[:2],
        "name": "villain vs helper",
        **over,
    }
    r = live.http.post("/api/directions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _inspect(**params) -> str:
    pairs = [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]
    return "/inspect?" + urlencode(pairs)


# --------------------------------------------------------------------------- over HTTP
def test_the_form_makes_a_direction_through_the_api_schema(live):
    form = {
        "name": "form-made",
        "model": "base",
        "sae": "sae",
        "hook": "",
        "positive": VILLAIN,
        "negative": HELPFUL,
        "positions": "last",
    }
    r = live.http.post("/directions", data=form, headers={"Origin": live.url})
    assert r.status_code == 303, r.text
    target = r.headers["location"]
    assert re.fullmatch(r"/directions/[A-Za-z0-9_-]+", target)
    made = live.http.get("/api" + target).json()
    # The same body through the JSON API gives the same vector.
    again = _made(live, name="form-made")
    assert made["sha256"] == again["sha256"] and made["request"]["positive"] == [
        "Kneel before me, fools!",
        "Nobody will stop my plan.",
    ]
    assert live.http.get("/directions").text.count(f'href="{target}"') == 1


@pytest.mark.parametrize(
    "over, field, message",
    [
        ({"negative": "  \n"}, "negative", "This field is required."),
        ({"sae": "", "hook": ""}, "sae", "Choose an SAE"),
        ({"sae": "", "hook": "transformer.nope"}, "hook", "neither a module"),
        ({"model": "nope"}, "model", "Unknown model"),
        ({"positions": "middle"}, "positions", "Choose one of"),
        ({"name": "x" * 201}, "name", "at most 200"),
    ],
)
def test_a_wrong_field_comes_back_named(live, over, field, message):
    form = {"model": "base", "sae": "sae", "positive": VILLAIN, "negative": HELPFUL, **over}
    r = live.http.post("/directions", data=form, headers={"Origin": live.url})
    assert r.status_code == 422, r.text
    error = re.search(
        rf'<p class="field-error" id="error-{field}" role="alert">([^<]*)</p>', r.text
    )
    assert error and message in error.group(1), r.text[-4000:]
    assert 'aria-invalid="true"' in r.text
    if "positive" not in over:  # what was typed stays in the form
        assert "Nobody will stop my plan." in r.text


def test_another_site_cannot_post_the_form(live):
    form = {"model": "base", "sae": "sae", "positive": VILLAIN, "negative": HELPFUL}
    r = live.http.post("/directions", data=form, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def test_the_inspector_shows_the_persona_score(live, engine):
    values = torch.randn(32, generator=torch.Generator().manual_seed(3))
    r = live.http.post(
        "/api/directions",
        json={"method": "vector", "model": "base", "sae": "sae", "values": values.tolist()},
    )
    assert r.status_code == 201, r.text
    made = r.json()
    path = _inspect(model=["base", "tuned"], sae="sae", prompt=PROMPT, direction=made["id"], run=1)
    r = live.http.get(path)
    assert r.status_code == 200, r.text
    shown = re.findall(r'<span class="score">([^<]*)</span>', r.text)
    # Each model's score is the mean of h . d / |d| over its non-special tokens.
    unit = values / values.norm()
    expected = []
    for model_id in ("base", "tuned"):
        with engine.registry.activate(model_id) as live_model:
            ids = live_model.encode(PROMPT)
            point = engine.registry.sae("sae").hooks[model_id]
            acts = hook_values(live_model, point, torch.tensor([ids]))[0].float()
        special = set(live_model.tokenizer.all_special_ids)
        kept = [v for v, t in zip((acts @ unit).tolist(), ids, strict=True) if t not in special]
        expected.append(num(sum(kept) / len(kept)))
    assert shown == expected
    assert f'href="/directions/{made["id"]}"' in r.text
    # Without a direction there is no persona row; a wrong one is named on its field.
    plain = live.http.get(_inspect(model="base", sae="sae", prompt=PROMPT, run=1))
    assert plain.status_code == 200 and 'class="persona-score"' not in plain.text
    bad = live.http.get(_inspect(model="base", sae="sae-tl", prompt=PROMPT, direction=made["id"]))
    assert bad.status_code == 422
    assert re.search(r'id="error-direction" role="alert">[^<]*SAE', bad.text), bad.text[-3000:]
    unknown = live.http.get(_inspect(model="base", sae="sae", prompt=PROMPT, direction="nope"))
    assert unknown.status_code == 422
    assert re.search(r'id="error-direction" role="alert">No direction', unknown.text)


def test_a_direction_page_without_an_index_says_so(live):
    made = _made(live, model="other", sae="sae-tl", name="on other")
    r = live.http.get(
        f"/directions/{made['id']}", params={"histogram": 1}, headers={"HX-Request": "true"}
    )
    assert r.status_code == 200
    assert "No latent index exists for model other" in r.text
    assert "<html" not in r.text  # htmx gets the piece only


# -------------------------------------------------------------------------- deleting
def _form_made(live, name: str) -> tuple[str, httpx.Response]:
    """A direction made with the list page's form: (its page's path, the form's answer)."""
    form = {"name": name, "model": "base", "sae": "sae", "positive": VILLAIN}
    form |= {"negative": HELPFUL, "positions": "last"}
    r = live.http.post("/directions", data=form, headers={"Origin": live.url})
    assert r.status_code == 303, r.text
    return r.headers["location"], r


def _delete(live, direction_id: str, token: str | None = None, **headers) -> httpx.Response:
    data = {} if token is None else {"token": token}
    return live.http.post(
        f"/directions/{direction_id}/delete", data=data, headers={"Origin": live.url, **headers}
    )


def test_the_form_shows_the_new_directions_delete_token_once(live):
    path, made = _form_made(live, "token shown once")
    cookie = made.headers["set-cookie"]
    assert f"Path={path}" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    first = live.http.get(path)
    shown = re.search(r'id="new-delete-token".*?X-Delete-Token: ([A-Za-z0-9_-]+)', first.text, re.S)
    assert shown, first.text[:3000]
    token = shown.group(1)
    assert first.headers["cache-control"] == "no-store"
    # The delete form on the page holds it, ready to send.
    assert re.search(rf'name="token" type="password"[^>]*value="{token}"', first.text)
    again = live.http.get(path)  # the cookie was cleared: not shown again
    assert 'id="new-delete-token"' not in again.text and token not in again.text
    # It is the direction's token: the API deletes with it.
    api_path = "/api" + path
    r = live.http.delete(api_path, headers={"X-Delete-Token": token})
    assert r.status_code == 204 and live.http.get(api_path).status_code == 404


def test_the_delete_form_deletes_with_the_token(live):
    made = _made(live, name="to delete")
    page = live.http.get(f"/directions/{made['id']}")
    assert f'hx-post="/directions/{made["id"]}/delete"' in page.text
    assert 'hx-confirm="Delete the direction “to delete”?' in page.text
    listing = live.http.get("/directions")  # the newest first: it is on page 1
    assert f'id="delete-{made["id"]}"' in listing.text  # each row has the form too
    r = _delete(live, made["id"], made["delete_token"])
    assert r.status_code == 303 and r.headers["location"] == f"/directions?deleted={made['id']}"
    assert live.http.get(f"/api/directions/{made['id']}").status_code == 404
    after = live.http.get(r.headers["location"])
    assert f"Direction {made['id']} was deleted" in after.text
    assert f'href="/directions/{made["id"]}"' not in after.text
    gone = live.http.get(f"/directions/{made['id']}")
    assert gone.status_code == 404 and "may have been deleted" in gone.text


def test_the_delete_form_through_htmx(live):
    made = _made(live, name="htmx delete")
    r = _delete(live, made["id"], made["delete_token"], **{"HX-Request": "true"})
    assert r.status_code == 200 and r.headers["hx-redirect"] == f"/directions?deleted={made['id']}"
    assert live.http.get(f"/api/directions/{made['id']}").status_code == 404
    unknown = _delete(live, made["id"], made["delete_token"], **{"HX-Request": "true"})
    assert unknown.status_code == 404 and "<html" not in unknown.text
    assert "There is no direction" in unknown.text


@pytest.mark.parametrize(
    ("token", "message"),
    [(None, "Enter the direction&#39;s delete token"), ("wrong", "not the direction&#39;s")],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_a_refused_delete_names_the_token_field_and_deletes_nothing(live, token, message, htmx):
    made = _made(live, name="kept")
    r = _delete(live, made["id"], token, **({"HX-Request": "true"} if htmx else {}))
    assert r.status_code == 422, r.text[:2000]
    field = f"token-{made['id']}"
    error = re.search(
        rf'<p class="field-error" id="error-{field}" role="alert">([^<]*)</p>', r.text
    )
    assert error and message in error.group(1), r.text[:3000]
    assert f'aria-describedby="error-{field}"' in r.text
    if htmx:  # the form alone, to replace itself
        assert "<html" not in r.text and r.text.lstrip().startswith("<form")
    else:
        assert "<html" in r.text and "<h1>kept</h1>" in r.text
    assert live.http.get(f"/api/directions/{made['id']}").status_code == 200


def test_deleting_an_unknown_direction_or_from_another_site(live):
    assert _delete(live, "0" * 32, "x").status_code == 404
    made = _made(live, name="not from elsewhere")
    r = live.http.post(
        f"/directions/{made['id']}/delete",
        data={"token": made["delete_token"]},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert live.http.get(f"/api/directions/{made['id']}").status_code == 200


# ---------------------------------------------------------------------------- browser
@pytest.mark.browser
def test_make_a_direction_in_the_browser_then_score_a_prompt(page, live, screenshot):
    page.goto("/directions")
    assert page.locator("meta[name='plotly-src']").count() == 0  # no plot, no plotly
    page.fill("#f-name", "browser persona")
    page.select_option("#f-model", "base")
    page.select_option("#f-sae", "sae")
    page.fill("#f-positive", VILLAIN)
    page.fill("#f-negative", HELPFUL)
    page.select_option("#f-positions", "all")
    page.click("#new-direction button[type=submit]")
    page.wait_for_url(re.compile(r"/directions/[A-Za-z0-9_-]+$"))
    direction_id = page.url.rsplit("/", 1)[1]
    assert page.locator("h1").inner_text() == "browser persona"
    assert "Kneel before me, fools!" in page.locator("#texts-positive").inner_text()
    links = page.locator("#top-latents a[href^='/latents/sae/']")
    assert links.count() >= 3
    href = links.first.get_attribute("href")
    page.locator("#plot-projections[data-drawn='1']").wait_for()
    assert page.locator("#plot-projections .bars path").count() > 0
    assert page.locator("#projection-mean").inner_text().strip()
    screenshot(page, "direction")
    links.first.click()
    page.wait_for_url(re.compile(re.escape(href.split("?")[0])))
    # The inspector: choose the direction in its form; each model gets a persona row.
    page.goto(_inspect(model=["base", "tuned"], sae="sae"))
    page.fill("#f-prompt", PROMPT)
    page.select_option("#f-direction", direction_id)
    page.click("form.run-form button[type=submit]")
    rows = page.locator(".persona-score")
    rows.nth(1).wait_for()
    assert rows.count() == 2
    score = rows.first.locator(".score").inner_text()
    assert re.fullmatch(r"−?-?[0-9.,e+-]+", score.strip()), score
    shaded = rows.first.locator(".tok[class*=' s'], .tok[class*=' n']")
    assert shaded.count() > 0
    assert f"direction={direction_id}" in page.url
    screenshot(page, "inspector-persona-score")


@pytest.mark.browser
def test_delete_a_direction_in_the_browser(page, live, console):
    console.allow(r"status of 422")  # the wrong token, sent back with its message
    made = _made(live, name="browser delete")
    page.goto(f"/directions/{made['id']}")
    asked = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    form = page.locator(f"#delete-{made['id']}")
    form.locator("input[name=token]").fill("wrong")
    form.locator("button[type=submit]").click()
    page.locator(f"#error-token-{made['id']}").wait_for()
    assert "not the direction" in page.locator(f"#error-token-{made['id']}").inner_text()
    assert asked and "browser delete" in asked[0]
    form.locator("input[name=token]").fill(made["delete_token"])
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/directions\?deleted="))
    assert "was deleted" in page.locator("#deleted").inner_text()
    assert page.locator(f"a[href='/directions/{made['id']}']").count() == 0
    assert len(asked) == 2
