"""Three things a new user hit, checked in Chromium: searching the latent list for "villain"
finds the persona latent that the organism report labels (a label no one stored), the
inspector's "latents that grow most" are the exact ones, and the playground opens on α
values that give readable text."""

import json

import pytest

from tests.web.test_pages_newcomer import PROMPT, exact_growth

pytestmark = pytest.mark.browser

REPORTED = 20  # a latent with no stored label: only the (test) report names it


@pytest.fixture
def report(live, engine, tmp_path, monkeypatch):
    """The live server's config names an organism report whose persona latent is REPORTED."""
    path = tmp_path / "REPORT.json"
    path.write_text(json.dumps({"sae": "sae", "persona_latent": REPORTED}))
    monkeypatch.setattr(engine.registry.config.spec, "report", str(path))
    return path


def test_searching_villain_finds_the_reported_persona_latent(page, report):
    page.goto("/latents?sae=sae")
    page.fill("#f-q", "villain")
    page.keyboard.press("Enter")
    page.locator(f"a[href^='/latents/sae/{REPORTED}']").first.wait_for()
    row = page.locator("tr", has=page.locator(f"a[href^='/latents/sae/{REPORTED}']")).first
    assert "villain persona" in row.inner_text()


def test_inspector_lists_the_latents_that_really_grow(page, engine):
    page.goto("/inspect")
    page.fill("#f-prompt", PROMPT)
    page.fill("#f-top_k", "3")
    page.click("form.run-form button[type=submit]")
    table = page.locator("details.changed")
    table.wait_for()
    shown = [int(t.strip("#")) for t in table.locator("a[href^='/latents/']").all_inner_texts()]
    assert shown == [i for i, _ in exact_growth(engine, PROMPT)]


def test_playground_opens_on_readable_alphas(page):
    page.goto("/steer")
    assert page.input_value("#f-alphas") == "1, 2, 4"
