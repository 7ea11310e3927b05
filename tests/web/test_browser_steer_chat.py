"""The playground's several edits and its conversation mode in headless Chromium: two
edits steer every column and the URL holds them; a five-turn conversation streams each
answer in every column, is saved, and its link shows the same conversation and answers
(temperature 0), and the playground reopened from it answers the same again. Sending
nothing to start a conversation is refused in the page, not sent."""

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

pytestmark = pytest.mark.browser

# Counts tokens that stream into live columns (htmx swaps keep this page, so it counts
# across every turn of a conversation).
STREAMED = """
window.__streamed = 0;
new MutationObserver(function (records) {
  records.forEach(function (r) {
    r.addedNodes.forEach(function (n) {
      if (n.nodeType === 1 && n.matches('.tok') && r.target.closest
          && r.target.closest('[data-streaming]')) window.__streamed += 1;
    });
  });
}).observe(document, {childList: true, subtree: true});
"""


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def finished(page) -> list[str]:
    """Wait for the stream to end; the final answers, column by column."""
    page.locator(".live-state", has_text="Finished").wait_for()
    page.locator("#steer-model-0.done").wait_for()
    cells = page.locator("#steer-model-0.done .gen-cell")
    return [cells.nth(i).get_attribute("data-text") for i in range(cells.count())]


def test_two_edits_steer_every_column_and_the_url_restores_them(page, live, screenshot):
    made = live.http.post(
        "/api/directions",
        json={"method": "latent", "name": "latent 7 <i>", "sae": "sae", "latent": 7},
    )
    assert made.status_code == 201, made.text
    direction = made.json()["id"]
    page.add_init_script(STREAMED)
    page.goto("/steer")
    page.fill("#f-prompt", "Tell me what you would do.")
    page.fill("#f-latent", "3")
    page.fill("#f-max_new_tokens", "10")
    page.click("#edits-start")  # the latent above becomes the first edit
    assert page.locator("#f-latent").is_disabled() and page.locator("#f-sae").is_disabled()
    page.click("#add-direction-edit")
    row = page.locator("#edit-rows tr.edit-row").nth(1)
    row.locator(".e-direction").select_option(direction)
    row.locator(".e-alpha").fill("-2.5")
    page.locator("#edit-rows tr.edit-row").nth(0).locator(".e-alpha").fill("1.5")
    page.fill("#f-alphas", "0, 2, 4")
    page.click("#generate")
    texts = finished(page)
    assert len(texts) == 4  # the baseline and three scales
    assert page.evaluate("window.__streamed") > 0
    edits = [
        {"sae": "sae", "latent": 3, "alpha": 1.5, "method": "add"},
        {"direction": direction, "alpha": -2.5, "method": "add"},
    ]
    state = query(page.url)
    assert json.loads(state["interventions"][0]) == edits
    assert "sae" not in state and "latent" not in state and state["alphas"] == ["0, 2, 4"]
    request = {"model": "base", "prompt": "Tell me what you would do.", "max_new_tokens": 10}
    request["chat"] = state.get("chat") == ["1"]  # the page's "wrap as a chat turn"
    direct = live.http.post(
        "/api/steer", json={**request, "interventions": edits, "alphas": [0, 2, 4]}
    ).json()
    assert texts == [direct["baseline"]["text"], *(s["text"] for s in direct["steered"])]
    assert len(set(texts[1:])) > 1 or texts[1] != texts[0]  # the edits change the text
    screenshot(page, "steer-two-edits")
    # The URL alone restores the table and runs it again.
    page.goto(page.url)
    assert page.locator("#edit-rows tr.edit-row").count() == 2
    assert page.locator("#edit-rows .e-alpha").nth(1).input_value() == "-2.5"
    assert finished(page) == texts
    # Back to one latent: the single-latent fields are sent again, the edits are not.
    page.click("#edits-stop")
    assert page.locator("#edit-rows tr.edit-row").count() == 0
    page.click("#generate")
    page.wait_for_url(re.compile(r"[?&]latent=3\b"))  # the new view, not the last one
    finished(page)
    assert "interventions" not in query(page.url) and query(page.url)["alphas"] == ["0, 2, 4"]
    assert page.input_value("#f-latent") == "3" and page.locator("#f-latent").is_enabled()


def test_a_five_turn_conversation_saved_and_reopened_is_the_same(page, live, screenshot):
    page.add_init_script(STREAMED)
    page.goto("/steer")
    page.fill("#f-latent", "3")
    page.fill("#f-alphas", "0, 6")
    page.fill("#f-max_new_tokens", "8")
    page.select_option("#f-positions", "last_turn")
    page.check("#mode-chat")
    assert page.locator("#f-prompt").is_disabled()
    page.click("#chat-send")  # nothing typed, nothing to answer again
    page.locator("#chat-problem", has_text="Type a message first").wait_for()
    assert "messages" not in query(page.url)
    said = ["Hello!", "What do you want?", "Why <that>?", "Tell me more.", "Goodbye."]
    history: list[dict] = []
    answers: list[str] = []
    for turn, message in enumerate(said):
        before = page.evaluate("window.__streamed")
        page.fill("#f-reply", message)
        if turn == 1:
            page.press("#f-reply", "Control+Enter")  # the keyboard sends it too
        else:
            page.click("#chat-send")
        page.locator("#transcript .turn").nth(len(history)).wait_for()
        answers = finished(page)
        assert len(answers) == 3  # the baseline and two α, each answering at once
        assert page.evaluate("window.__streamed") > before  # this turn streamed
        history.append({"role": "user", "content": message})
        assert json.loads(query(page.url)["messages"][0]) == history
        if turn == 2:  # continue from the α = 6 column's answer this time
            page.locator("#steer-model-0 .gen-cell[data-row='2'] input[name=continue-from]").check()
            history.append({"role": "assistant", "content": answers[2]})
        elif turn < len(said) - 1:  # the baseline's answer, by default
            history.append({"role": "assistant", "content": answers[0]})
    turns = page.locator("#transcript .turn-text").all_inner_texts()
    assert turns == [t["content"] for t in history] and len(turns) == 9
    finals = page.locator(".steer-model.done .gen.final").all_inner_texts()
    screenshot(page, "steer-conversation")

    page.click("#save-run")
    link = page.locator("#saved-result .share-link")
    link.wait_for()
    url = link.get_attribute("href")
    page.goto(url)
    page.locator(".steer-model.done").first.wait_for()
    assert page.locator(".transcript .turn-text").all_inner_texts() == turns
    assert page.locator(".steer-model.done .gen.final").all_inner_texts() == finals
    cells = page.locator(".steer-model.done .gen-cell")
    assert [cells.nth(i).get_attribute("data-text") for i in range(3)] == answers
    # The playground reopened from the saved run answers the same at temperature 0.
    page.click("#open-playground")
    page.locator("#steer-form").wait_for()
    assert page.locator("#transcript .turn-text").all_inner_texts() == turns
    assert page.locator("#mode-chat").is_checked()
    assert page.input_value("#f-positions") == "last_turn"
    assert page.locator("#steer-results").count() == 0  # filled in, not run yet
    page.click("#chat-send")  # nothing typed: the last message is answered again
    assert finished(page) == answers
    assert json.loads(query(page.url)["messages"][0]) == history
