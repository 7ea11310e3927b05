"""The model diff page's ready-made comparison: ablate the fine-tuned − base direction and
re-evaluate the fine-tuned model with and without it."""

import json
import re
from urllib.parse import parse_qs, urlparse

import pytest


def test_ablate_the_diff_direction_and_reevaluate(live):
    form = {"base": "base", "finetuned": "tuned", "sae": "sae", "prompts": "hi\nhow are you?"}
    page = live.http.get("/diff", params={**form, "run": "1"})
    assert page.status_code == 200 and "Ablate the top-Δ direction" in page.text
    r = live.http.post(
        "/diff/ablate",
        data={**form, "run": "1"},
        headers={"Origin": live.url},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    target = urlparse(r.headers["location"])
    query = parse_qs(target.query)
    assert target.path == "/evaluate" and query["model"] == ["tuned"]
    (edit,) = json.loads(query["interventions"][0])
    assert edit["method"] == "ablate"
    made = live.http.get(f"/api/directions/{edit['direction']}").json()
    assert made["method"] == "model_diff" and made["model"] == "base"
    assert made["request"]["prompts"] == ["hi", "how are you?"]
    evaluation = live.http.get(r.headers["location"])
    assert evaluation.status_code == 200, evaluation.text
    assert "not steered" in evaluation.text and "edits: ablate direction" in evaluation.text
    # Cross-site posts make nothing.
    evil = live.http.post("/diff/ablate", data=form, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403


def test_bad_edits_on_the_evaluation_page_name_the_field(live):
    r = live.http.get(
        "/evaluate",
        params={"model": "base", "questions": "hi?", "interventions": "[{", "run": "1"},
    )
    assert r.status_code == 422 and 'id="f-interventions"' in r.text
    assert "not valid JSON" in r.text
    r = live.http.get(
        "/evaluate",
        params={
            "model": "other",
            "questions": "hi?",
            "interventions": json.dumps([{"direction": "0" * 32, "method": "ablate"}]),
            "run": "1",
        },
    )
    assert r.status_code == 422 and "no direction with id" in r.text.lower()
    assert "DirectionEdit(" not in r.text  # the edits are shown as the JSON typed


@pytest.mark.browser
def test_the_ablate_button_opens_the_evaluation_with_and_without(page, live, screenshot):
    page.goto("/diff?run=1&base=base&finetuned=tuned&sae=sae&top_n=5&prompts=hi%0Ahow%20are%20you")
    page.locator(".compare-results").wait_for()
    page.get_by_role("button", name="Ablate the top-Δ direction and re-evaluate").click()
    page.wait_for_url(re.compile(r"/evaluate\?"))
    summary = page.locator(".run-summary")
    assert "not steered" in summary.inner_text() and "edits: ablate direction" in (
        summary.inner_text()
    )
    page.locator("#eval-results details.condition").nth(1).wait_for(timeout=60_000)
    assert page.locator("#f-interventions").input_value().startswith('[{"direction"')
    screenshot(page, "diff-ablate-evaluate")
