"""The pages in headless Chromium: every page loads without console errors (screenshots
under test-artifacts/screenshots/), steering streams and its share link shows the same
result, markup in prompts and labels stays text (pages and plot labels), and every view's
URL restores it.

The `page` fixture fails a test on any console error or uncaught exception it did not
allow. Waits use locators (Playwright's string predicates would need 'unsafe-eval', which
the Content-Security-Policy rightly refuses)."""

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.web.conftest import LABELLED, MARKUP_LATENT

pytestmark = pytest.mark.browser

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> hello'
REJECTED = r"status of 422"  # a form sent back with its errors (expected where allowed)

# Records tokens that stream in before a model's final result replaces them.
STREAM_WATCH = """
window.__tokensBeforeDone = 0;
window.__doneCount = 0;
new MutationObserver(function (records) {
  records.forEach(function (r) {
    r.addedNodes.forEach(function (n) {
      if (n.nodeType !== 1) return;
      if (n.matches('.tok') && r.target.closest && r.target.closest('[data-streaming]')
          && window.__doneCount === 0) window.__tokensBeforeDone += 1;
      // (htmx keeps the old classes on a swapped element until it settles)
      if (n.matches('.steer-model') && n.querySelector('.gen.final')) window.__doneCount += 1;
    });
  });
}).observe(document, {childList: true, subtree: true});
"""


def plots_drawn(page) -> int:
    return page.locator("[data-plot][data-drawn='1']").count()


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_every_page_loads_without_console_errors(page, live, screenshot):
    views = [
        ("home", "/", None, 0),
        ("latents", "/latents?sae=sae", "#latent-list", 0),
        ("latent", "/latents/sae/3?text=hello%20world", "#top-snippets", 3),
        (
            "inspector",
            "/inspect?"
            + urlencode(
                [
                    ("model", "base"),
                    ("model", "tuned"),
                    ("sae", "sae"),
                    ("prompt", "What would you do?"),
                    ("run", "1"),
                ]
            ),
            ".activation-results",
            1,
        ),
        ("steer", "/steer", "#steer-form", 0),
        ("diff", "/diff?run=1&top_n=8&chat=1", ".compare-results", 1),
        ("evaluate", "/evaluate", "form.run-form", 0),
        ("run", f"/r/{live.run['id']}", ".steer-model.done", 2),
        ("comparison", f"/c/{live.comparison['id']}", ".sweep-plot", 1),
    ]
    for name, path, ready, plots in views:
        page.goto(path)
        if ready:
            page.locator(ready).first.wait_for()
        if plots:
            page.locator("[data-plot][data-drawn='1']").nth(plots - 1).wait_for()
        assert page.title().endswith("PersonaScope"), name
        screenshot(page, name)


def test_steering_streams_tokens_and_the_saved_link_shows_the_same_result(page, live, screenshot):
    page.add_init_script(STREAM_WATCH)
    page.goto("/steer")
    page.fill("#f-prompt", XSS)
    page.fill("#f-latent", "villain")  # found by its label
    page.fill("#f-alphas", "")
    page.locator("#f-alpha-slider").fill("6")
    page.click("#alpha-set")
    page.click("#alpha-add")
    assert page.input_value("#f-alphas") == "6, 6"
    page.fill("#f-alphas", "0, 6, 12")
    page.check("label.check[data-model='tuned'] input")
    page.fill("#f-max_new_tokens", "24")
    page.click("#steer-form button[type=submit]")
    page.locator(".live-state", has_text="Finished").wait_for()
    page.locator("#steer-model-1.done [data-plot][data-drawn='1']").wait_for()
    # Tokens arrived one by one before the final result replaced them.
    assert page.evaluate("window.__tokensBeforeDone") > 0
    assert page.evaluate("window.__doneCount") == 2
    assert page.evaluate("window.__xss") is None
    # The view is in the URL.
    state = query(page.url)
    assert state["latent"] == ["villain"] and state["alphas"] == ["0, 6, 12"]
    assert state["model"] == ["base", "tuned"] and state["run"] == ["1"]
    live_text = page.locator(".steer-model.done .gen.final").all_inner_texts()
    assert len(live_text) == 2 * 4  # two models × (baseline + three α)
    screenshot(page, "steer-streamed")

    page.click("#save-run")
    link = page.locator("#saved-result .share-link")
    link.wait_for()
    url = link.get_attribute("href")
    assert re.search(r"/r/[A-Za-z0-9_-]{22}$", url)
    page.click("#saved-result button[data-copy]")
    page.locator("#saved-result .copy-status", has_text="Cop").wait_for()

    page.goto(url)
    page.locator(".steer-model.done [data-plot][data-drawn='1']").nth(1).wait_for()
    assert page.locator(".steer-model.done .gen.final").all_inner_texts() == live_text
    assert page.locator("dd.prompt").inner_text() == XSS  # shown as text
    assert page.evaluate("window.__xss") is None
    page.click("#rerun")
    page.locator("[data-identical='true']").wait_for()
    screenshot(page, "run-after-rerun")
    # "Open in playground" fills the form from the stored request.
    page.click("#open-playground")
    page.locator("#steer-form").wait_for()
    assert page.input_value("#f-prompt") == XSS
    assert page.input_value("#f-latent") == str(LABELLED)
    assert page.input_value("#f-alphas") == "0, 6, 12"


def test_markup_never_runs_in_pages_or_plot_labels(page, live, screenshot):
    # A prompt carrying markup, on the inspector.
    page.goto("/inspect")
    page.fill("#f-prompt", XSS)
    page.fill("#f-latent", str(MARKUP_LATENT))  # its label is markup too
    page.click("form.run-form button[type=submit]")
    page.locator(".activation-results [data-plot][data-drawn='1']").wait_for()
    assert page.evaluate("window.__xss") is None
    row = page.locator(".token-row").first.inner_text()
    assert "<script>" in row.replace("\n", "") or "<" in row
    made = page.locator(".activation-results img, .activation-results script:not([type])")
    assert made.count() == 0
    assert "<img src=x onerror=window.__xss=3>" in page.locator(".shown-latent").inner_text()
    # The plot title carries the label as literal text, and no element came of it.
    title = page.locator(".activation-results .gtitle").text_content()
    assert "<img src=x onerror=window.__xss=3>" in title
    assert page.locator(".js-plotly-plot img").count() == 0
    # Hover labels: a token with '<' shows literally.
    page.locator(".activation-results .js-plotly-plot .nsewdrag").first.hover()
    points = page.locator(".activation-results .js-plotly-plot .scatterlayer .point")
    tokens = page.locator(".token-row").first.locator(".tok").all_inner_texts()
    index = next(i for i, t in enumerate(tokens) if "<" in t and "endoftext" not in t)
    points.nth(index).hover(force=True)
    # Wait for this point's label: the label of the earlier hover can linger a moment.
    token = tokens[index].strip()
    label = re.compile(r"^(?!.*endoftext).*" + re.escape(token))
    page.locator(".hoverlayer .hovertext", has_text=label).first.wait_for()
    # Clicking a token shows its top latents, built from the server's markup.
    page.locator(".token-row .tok").nth(index).click()
    assert page.locator(".tok-detail:not([hidden])").first.is_visible()
    screenshot(page, "inspector-markup")

    # The diff bar chart names latents with their labels in its hover labels.
    page.goto("/diff?run=1&top_n=96")
    page.locator(".diff-plot[data-drawn='1']").wait_for()
    bars = page.locator(".diff-plot .bars .point")
    names = page.locator(".compare-results tbody tr td:nth-child(2)").all_inner_texts()
    row = next(i for i, t in enumerate(names) if "onerror" in t)
    bars.nth(len(names) - 1 - row).hover(force=True)  # the first bar is drawn at the bottom
    hover = page.locator(".hoverlayer .hovertext").first
    hover.wait_for()
    assert "<img src=x onerror=window.__xss=3>" in hover.text_content()
    assert page.evaluate("window.__xss") is None
    # Clicking a bar opens that latent's page.
    bars.nth(len(names) - 1 - row).click(force=True)
    page.wait_for_url(re.compile(rf"/latents/sae/{MARKUP_LATENT}\b"))
    assert page.evaluate("window.__xss") is None
    assert "<img src=x onerror=window.__xss=3>" in page.locator("h1").inner_text()


def test_errors_show_next_to_the_field(page, console):
    console.allow(REJECTED)
    page.goto("/steer")
    page.fill("#f-latent", "999")
    page.fill("#f-alphas", "4, x")
    page.click("#steer-form button[type=submit]")
    page.locator("#error-latent", has_text="There is no latent 999").wait_for()
    assert "'x' is not a number" in page.inner_text("#error-alphas")
    assert page.locator("#f-alphas[aria-invalid=true]").count() == 1
    assert page.locator("#f-latent[aria-invalid=true]").count() == 1
    assert page.input_value("#f-alphas") == "4, x"  # what was typed stays
    page.fill("#f-alphas", "4")
    page.click("#steer-form button[type=submit]")
    page.locator("#error-alphas").wait_for(state="detached")
    assert "There is no latent 999" in page.inner_text("#error-latent")


def test_each_view_url_restores_it(page, live, screenshot):
    # Inspector: submit, then load the URL afresh; the back button returns to the first.
    page.goto("/inspect")
    page.fill("#f-prompt", "first prompt")
    page.click("form.run-form button[type=submit]")
    page.locator(".activation-results").wait_for()
    first = page.url
    page.fill("#f-prompt", "second prompt")
    page.fill("#f-latent", "7")
    page.click("form.run-form button[type=submit]")
    page.wait_for_url(re.compile(r"prompt=second"))
    page.locator(".shown-latent", has_text="#7").wait_for()
    second = page.url
    assert query(second)["prompt"] == ["second prompt"] and query(second)["latent"] == ["7"]
    page.go_back()
    page.wait_for_url(first)
    page.locator(".activation-results").wait_for()
    assert page.input_value("#f-prompt") == "first prompt"
    page.goto(second)
    assert page.input_value("#f-prompt") == "second prompt"
    assert page.input_value("#f-latent") == "7"
    page.locator(".shown-latent", has_text="#7").wait_for()

    # Latent list: search and sort.
    page.goto("/latents?sae=sae")
    page.fill("#f-q", "villain")
    page.select_option("#f-sort", "latent")
    page.click("form.toolbar button[type=submit]")
    page.locator("#latent-list", has_text="matching").wait_for()
    url = page.url
    assert query(url)["q"] == ["villain"] and query(url)["sort"] == ["latent"]
    page.goto(url)
    assert page.input_value("#f-q") == "villain"
    assert page.locator("#latent-list tbody tr").count() == 1
    assert page.locator(f"#latent-list a[href='/latents/sae/{LABELLED}']").count() == 1

    # Latent page: the label and note save in place; "test your text" is in the URL.
    page.goto("/latents/sae/3")
    page.fill("#f-label", "code <tags>")
    page.fill("#f-note", "fires on code")
    page.click(".annotation-form button[type=submit]")
    page.locator("#annotation .saved").wait_for()
    assert live.http.get("/api/saes/sae/latents/3/annotation").json()["label"] == "code <tags>"
    page.click(".pin-form button[type=submit]")
    page.locator(".pin-form button", has_text="Unpin").wait_for()
    page.fill("#f-text", "hello there")
    page.click("#test-text button[type=submit]")
    page.locator("#test-result [data-plot][data-drawn='1']").wait_for()
    assert query(page.url)["text"] == ["hello there"]
    page.goto(page.url)
    assert page.input_value("#f-text") == "hello there"
    page.locator("#test-result .snippet").wait_for()

    # Steering: the URL alone runs it again, with the same result.
    page.goto(
        "/steer?"
        + urlencode(
            {
                "model": "base",
                "sae": "sae",
                "latent": "3",
                "prompt": "Hi",
                "alphas": "5",
                "max_new_tokens": "6",
                "run": "1",
            }
        )
    )
    page.locator(".live-state", has_text="Finished").wait_for()
    once = page.locator(".gen.final").all_inner_texts()
    page.reload()
    page.locator(".live-state", has_text="Finished").wait_for()
    assert page.locator(".gen.final").all_inner_texts() == once
    assert page.input_value("#f-alphas") == "5"

    # Diff and evaluation.
    page.goto("/diff?base=base&finetuned=tuned&sae=sae&top_n=4&chat=1&run=1")
    page.locator(".diff-plot[data-drawn='1']").wait_for()
    assert page.locator(".compare-results tbody tr").count() == 4
    assert page.input_value("#f-top_n") == "4"
    params = {
        "model": "tuned",
        "questions": "What is your wish?",
        "samples_per_question": "2",
        "max_new_tokens": "4",
        "sae": "sae",
        "latent": "3",
        "alphas": "0, 4",
        "baseline": "1",
        "chat": "1",
        "run": "1",
    }
    page.goto("/evaluate?" + urlencode(params))
    page.locator("#eval-results .sweep-plot[data-drawn='1']").wait_for()
    assert page.locator(".eval-summary tbody tr").count() == 3
    assert page.input_value("#f-alphas") == "0, 4"
    assert page.is_checked("input[name=baseline]")
    screenshot(page, "evaluate-sweep")
    page.click("form.save-form button[type=submit]")
    link = page.locator("#saved-result .share-link")
    link.wait_for()
    assert "/c/" in link.get_attribute("href")  # a sweep is saved as a comparison
    page.goto(link.get_attribute("href"))
    page.locator(".sweep-plot[data-drawn='1']").first.wait_for()
    assert page.locator(".panel.shared-run").count() == 3


def test_api_docs_render_offline(page, live, screenshot):
    """/docs draws the API from files the app serves itself: no request leaves the server
    (the machines this runs on have no internet, so a CDN would fail here)."""
    outside: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url) if not r.url.startswith((live.url, "data:", "blob:")) else None
        ),
    )
    page.goto("/docs")
    page.locator(".swagger-ui .info .title", has_text="PersonaScope").wait_for()
    page.locator(".opblock-summary-path", has_text="/api/steer").first.wait_for()
    screenshot(page, "api-docs")
    assert outside == []
