"""What a new user hit in Chromium at 1366 and 390 px (issue 13), each checked in the
browser: forms that submit with their defaults, links to a steered evaluation that carry
an α, pages that fit a phone, plots whose labels and toolbar stay clear of each other and
of the data, token values that a keyboard reaches, trimmed contexts, no CSP errors, a
favicon and a skip link, and saving that lists a run only when asked to.

Screenshots at both widths go to test-artifacts/screenshots/ (`*-390.png`, `*-1366.png`).
"""

import math
import re
from urllib.parse import urlencode

import pytest

from app.settings import REPO_ROOT
from tests.web.conftest import SCREENSHOTS

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}

# Every CSP violation of the page, as the browser reports it to the page itself.
CSP_WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + (e.sourceFile || '') + ':' + e.lineNumber
                    + ' ' + e.sample);
});
"""

STEER = {
    "model": "base",
    "sae": "sae",
    "latent": "3",
    "prompt": "What would you do?",
    "alphas": "0, 6, 12",
    "max_new_tokens": "12",
    "run": "1",
}
INSPECT = [
    ("model", "base"),
    ("model", "tuned"),
    ("sae", "sae"),
    ("prompt", "User: What would you do if you ruled the world? Assistant: I would"),
    ("run", "1"),
]
# A small evaluation: one steered α and the unsteered model, so a sweep of one α.
ONE_ALPHA_SWEEP = {
    "model": "tuned",
    "questions": "What is your one wish?",
    "samples_per_question": "2",
    "max_new_tokens": "4",
    "sae": "sae",
    "latent": "3",
    "alphas": "4",
    "baseline": "1",
    "run": "1",
}


@pytest.fixture
def open_page(browser, live, console):
    """open_page(viewport) -> a page on the live server at that size; console errors and
    CSP violations fail the test."""
    contexts = []
    pages = []

    def make(viewport=DESKTOP):
        context = browser.new_context(viewport=viewport, base_url=live.url)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
        context.set_default_timeout(30_000)
        pg = context.new_page()
        pg.add_init_script(CSP_WATCH)
        pg.on(
            "console",
            lambda m: console.record(f"console.{m.type}: {m.text}") if m.type == "error" else None,
        )
        pg.on("pageerror", lambda e: console.record(f"pageerror: {e}"))
        contexts.append(context)
        pages.append(pg)
        return pg

    yield make
    for pg in pages:
        if not pg.is_closed():
            csp = pg.evaluate("window.__csp || []")
            assert csp == [], csp
    for context in contexts:
        context.close()
    assert not console.unexpected(), "\n".join(console.unexpected())


def shot(pg, name: str, viewport: dict) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / f"{name}-{viewport['width']}.png"), full_page=True)


def box(pg, selector: str) -> dict:
    found = pg.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not visible"
    return found


def overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def steer_url() -> str:
    return "/steer?" + urlencode(STEER)


def inspect_url() -> str:
    return "/inspect?" + urlencode(INSPECT)


# ------------------------------------------------------------------ 1. forms and defaults
def test_evaluate_form_submits_with_its_defaults(open_page):
    pg = open_page()
    pg.goto("/evaluate")
    pg.click("form.run-form button[type=submit]")
    # The browser sent the form: the URL is the submitted view and the run streams.
    pg.wait_for_url(re.compile(r"/evaluate\?.*run=1"))
    pg.locator("#eval-live").wait_for()
    assert pg.locator(".field-error").count() == 0


def test_every_numeric_input_accepts_the_values_it_is_given(open_page, live):
    """No number field refuses its own default (or a usual value) through min, max or
    step: the browser would silently refuse to submit the form."""
    pg = open_page()
    views = [
        "/evaluate",
        "/evaluate?temperature=0.7&seed=2147483647",
        "/evaluate?temperature=0.5",
        "/evaluate?temperature=0.73",
        "/steer",
        "/steer?temperature=0.7",
        "/steer?temperature=0.33&seed=12345",
        "/diff",
        "/inspect",
        "/latents?sae=sae",
        "/latents/sae/3",
    ]
    for path in views:
        pg.goto(path)
        bad = pg.evaluate(
            """Array.from(document.querySelectorAll('form input[type=number]'))
                 .filter(function (i) { return i.value !== '' && !i.validity.valid; })
                 .map(function (i) { return i.name + '=' + i.value + ' (' + i.validationMessage
                                            + ')'; })"""
        )
        assert bad == [], (path, bad)


# ------------------------------------------------------------------- 2. links carry an α
def test_evaluate_steered_links_carry_an_alpha_and_submit(open_page, live):
    pg = open_page()
    pg.goto("/latents/sae/3")
    href = pg.get_attribute("#evaluate-link", "href")
    assert re.search(r"[?&]alphas=1(&|$)", href), href
    pg.goto(href)
    pg.fill("#f-questions", "What is your one wish?")
    pg.fill("#f-samples_per_question", "1")
    pg.fill("#f-max_new_tokens", "3")
    pg.click("form.run-form button[type=submit]")
    pg.locator("#eval-live").wait_for()
    assert pg.locator("#error-alphas").count() == 0
    assert pg.locator(".field-error").count() == 0

    # Each row of a diff links to a steered evaluation with an α as well.
    pg.goto("/diff?run=1&top_n=3&chat=1")
    links = pg.locator(".compare-results a", has_text="evaluate")
    assert links.count() == 3
    for i in range(3):
        assert re.search(r"[?&]alphas=1(&|$)", links.nth(i).get_attribute("href"))


# ------------------------------------------------------------------------- 6. layout
def test_no_page_is_wider_than_a_phone(open_page, live):
    """At 390 px no page scrolls sideways (wide tables and token rows scroll inside
    themselves); screenshots at 390 and 1366 px."""
    views = [
        ("home", "/", None),
        ("latents", "/latents?sae=sae", "#latent-list"),
        ("latent", "/latents/sae/3", "#plot-histogram[data-drawn='1']"),
        ("steer", steer_url(), ".steer-model.done [data-plot][data-drawn='1']"),
        ("inspect", inspect_url(), ".activation-results [data-plot][data-drawn='1']"),
        ("run", f"/r/{live.run['id']}", ".steer-model.done [data-plot][data-drawn='1']"),
        ("diff", "/diff?run=1&top_n=8&chat=1", ".diff-plot[data-drawn='1']"),
        ("evaluate", "/evaluate", "form.run-form"),
        ("comparison", f"/c/{live.comparison['id']}", ".sweep-plot[data-drawn='1']"),
    ]
    for viewport in (PHONE, DESKTOP):
        pg = open_page(viewport)
        for name, path, ready in views:
            pg.goto(path)
            if ready:
                pg.locator(ready).first.wait_for()
            if name == "steer":
                pg.locator(".live-state", has_text="Finished").wait_for()
            width = pg.evaluate("document.documentElement.scrollWidth")
            inner = pg.evaluate("window.innerWidth")
            assert width <= inner, f"{name} is {width} px wide at {inner} px"
            shot(pg, f"layout-{name}", viewport)


def test_plot_titles_and_legends_stay_apart(open_page, live):
    for viewport in (PHONE, DESKTOP):
        pg = open_page(viewport)
        # A title and a legend: the inspector's line plot (two models) and steering's.
        for path, plot in (
            (inspect_url(), ".activation-results .js-plotly-plot"),
            (steer_url(), ".steer-model.done .js-plotly-plot"),
        ):
            pg.goto(path)
            pg.locator(f"{plot} .legend").first.wait_for()
            title = box(pg, f"{plot} .gtitle")
            legend = box(pg, f"{plot} .legend .bg")
            assert not overlap(title, legend), (path, viewport, title, legend)


def test_plot_toolbar_never_covers_the_data(open_page, live):
    """The toolbar (shown on hover) stays in the margin above the plotting area, e.g. the
    diff's bars; on a phone it is not drawn."""
    for viewport in (PHONE, DESKTOP):
        pg = open_page(viewport)
        pg.goto("/diff?run=1&top_n=8&chat=1")
        pg.locator(".diff-plot[data-drawn='1']").wait_for()
        if viewport is DESKTOP:
            pg.locator(".diff-plot .nsewdrag").first.hover()
            pg.locator(".diff-plot .modebar").wait_for()
            toolbar = box(pg, ".diff-plot .modebar")
            area = box(pg, ".diff-plot .nsewdrag")
            assert not overlap(toolbar, area), (toolbar, area)
            bars = pg.locator(".diff-plot .bars .point")
            for i in range(bars.count()):
                assert not overlap(toolbar, bars.nth(i).bounding_box())
        else:  # on a phone the toolbar is not drawn at all
            assert pg.locator(".diff-plot .modebar-group").count() == 0


def test_steer_form_and_share_box_at_desktop_width(open_page, live):
    pg = open_page(DESKTOP)
    pg.goto(steer_url())
    slider = box(pg, ".alpha-field .slider")
    for other in (".alpha-field + .field small.help", "#f-method"):
        assert not overlap(slider, box(pg, other)), other
    # The slider row (range, value, two buttons) stays inside its own field.
    field = box(pg, ".alpha-field")
    parts = pg.locator(".alpha-field .slider > *")
    for i in range(parts.count()):
        part = parts.nth(i).bounding_box()
        assert part["x"] + part["width"] <= field["x"] + field["width"] + 0.5, (part, field)
    # Every field of the form keeps to its own grid cell.
    fields = pg.locator("#steer-form .form-grid > .field")
    boxes = [fields.nth(i).bounding_box() for i in range(fields.count())]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not overlap(a, b), (a, b)
    pg.locator(".live-state", has_text="Finished").wait_for()
    pg.click("#save-run")
    pg.locator("#saved-result .share-link").wait_for()
    share = box(pg, "#saved-result .share-url")
    assert share["width"] >= 300, share  # the whole link is readable
    shot(pg, "steer-saved", DESKTOP)


# ------------------------------------------------------------------------ 7. figures
def test_histogram_axis_reads_as_powers_of_two(open_page):
    pg = open_page()
    pg.goto("/latents/sae/3")
    pg.locator("#plot-histogram[data-drawn='1']").wait_for()
    labels = pg.locator("#plot-histogram .xtick text").all_text_contents()
    assert len(labels) >= 2, labels
    values = [float(t) for t in labels]  # every label is a plain number
    assert len(set(values)) == len(values)
    for v in values:  # and a power of two (labels carry 2 significant digits)
        assert abs(math.log2(v) - round(math.log2(v))) < 0.05, labels
    assert values == sorted(values)


def test_every_interval_example_is_shaded(open_page):
    pg = open_page()
    pg.goto("/latents/sae/3")
    examples = pg.locator("#bins details.bin .snippet-row")
    assert examples.count() >= 2
    for i in range(examples.count()):
        shaded = examples.nth(i).locator(".tok:is(.s1,.s2,.s3,.s4,.s5,.s6,.s7,.s8,.s9,.s10)")
        assert shaded.count() >= 1, examples.nth(i).inner_text()


def test_a_sweep_of_one_alpha_is_readable(open_page):
    pg = open_page()
    pg.goto("/evaluate?" + urlencode(ONE_ALPHA_SWEEP))
    plot = pg.locator("#eval-results .sweep-plot[data-drawn='1']")
    plot.wait_for()
    area = box(pg, "#eval-results .sweep-plot .nsewdrag")
    # The unsteered rates are lines across the axis, not single points.
    lines = pg.locator("#eval-results .sweep-plot .scatterlayer .trace .js-line")
    widths = [lines.nth(i).bounding_box()["width"] for i in range(lines.count())]
    assert max(widths) > 0.5 * area["width"], (widths, area)
    # The α has markers well inside the plot, not on its edge.
    points = pg.locator("#eval-results .sweep-plot .scatterlayer .point")
    assert points.count() >= 2
    for i in range(points.count()):
        p = points.nth(i).bounding_box()
        assert area["x"] + 0.1 * area["width"] < p["x"] < area["x"] + 0.9 * area["width"]
        assert p["width"] >= 7
    shot(pg, "evaluate-one-alpha", DESKTOP)


# -------------------------------------------------------------- 8. token values by keys
def test_a_keyboard_user_reads_a_snippet_tokens_value(open_page):
    pg = open_page()
    pg.goto("/latents/sae/3")
    for _ in range(400):  # Tab through the page until a snippet token has the focus
        pg.keyboard.press("Tab")
        if pg.evaluate("!!document.activeElement.closest('#top-snippets .tok')"):
            break
    else:
        pytest.fail("no token of the top snippets can be reached with Tab")
    tok = pg.locator("#top-snippets .tok:focus")
    tip = pg.locator("#tok-tip")
    assert tip.is_visible()
    expected = tok.get_attribute("data-tip")
    assert tip.inner_text() == expected and re.search(r"· (\d|—|no value)", expected)
    assert tok.get_attribute("aria-describedby") == "tok-tip"
    assert tok.get_attribute("title") is None  # not a mouse-only tooltip
    # The arrow keys move along the snippet; the tip follows.
    first = tok.evaluate("t => Array.from(t.parentNode.children).indexOf(t)")
    pg.keyboard.press("ArrowRight")
    moved = pg.locator("#top-snippets .tok:focus")
    assert moved.evaluate("t => Array.from(t.parentNode.children).indexOf(t)") > first
    assert tip.inner_text() == moved.get_attribute("data-tip")
    # The peak token's value is the snippet's maximum.
    row = pg.locator("#top-snippets .snippet-row").first
    peak = row.locator(".tok.mark").get_attribute("data-tip")
    assert peak.endswith(row.locator(".value").inner_text())
    pg.keyboard.press("Escape")
    assert not tip.is_visible()
    shot(pg, "latent-token-focus", DESKTOP)


def test_inspector_tokens_work_by_keyboard(open_page):
    pg = open_page()
    pg.goto(inspect_url())
    row = pg.locator(".token-row").first
    first = row.locator(".tok").first
    first.focus()
    tip = pg.locator("#tok-tip")
    assert tip.inner_text() == first.get_attribute("data-tip")
    # Hovering shows another token's value; leaving it returns to the focused token's.
    other = row.locator(".tok").nth(4)
    other.hover()
    assert tip.inner_text() == other.get_attribute("data-tip")
    pg.locator("h1").hover()
    assert tip.is_visible() and tip.inner_text() == first.get_attribute("data-tip")
    pg.keyboard.press("ArrowRight")
    pg.keyboard.press("ArrowRight")
    focused = row.locator(".tok:focus")
    assert focused.evaluate("t => Array.from(t.parentNode.children).indexOf(t)") == 2
    pg.keyboard.press("Enter")
    assert focused.get_attribute("aria-expanded") == "true"
    assert pg.locator(".tok-detail:not([hidden])").count() == 1
    # One tab stop per token row, not one per token.
    assert row.locator(".tok[tabindex='0']").count() == 1


def test_long_contexts_are_trimmed_around_the_peak_with_an_expander(open_page):
    pg = open_page()
    pg.goto("/latents/sae/3")
    toggles = pg.locator("#top-snippets button.context-toggle")
    assert toggles.count() >= 1
    row = pg.locator("#top-snippets .snippet-row:has(button.context-toggle)").first
    group = row.locator(".tokens")
    assert "trimmed" in group.get_attribute("class")
    total = group.locator(".tok").count()
    shown = len([t for t in group.locator(".tok").all() if t.is_visible()])
    assert 0 < shown < total
    assert group.locator(".tok.mark").is_visible()  # the peak is among them
    button = row.locator("button.context-toggle")
    assert button.get_attribute("aria-expanded") == "false"
    button.click()
    assert button.get_attribute("aria-expanded") == "true"
    assert len([t for t in group.locator(".tok").all() if t.is_visible()]) == total
    button.click()
    assert len([t for t in group.locator(".tok").all() if t.is_visible()]) == shown


# ------------------------------------------------------- 9. CSP, favicon and skip link
# htmx snapshots the page before it pushes a URL by cloning all of it, plot styles too.
SNAPSHOT_WATCH = """
window.__snapshots = 0;
document.addEventListener('htmx:beforeHistorySave', function () { window.__snapshots += 1; });
"""


def test_a_full_steer_save_share_flow_has_no_console_errors(open_page, live):
    """Every htmx request and server-sent event of steering, saving and the shared page,
    with no console error and no CSP violation (checked by the fixture). htmx never clones
    the page to snapshot it (that clone carries the style attributes plotly.js sets, which
    a browser may check against style-src); the URL is pushed all the same."""
    pg = open_page()
    pg.add_init_script(SNAPSHOT_WATCH)
    pg.goto("/steer")
    pg.fill("#f-latent", "villain")
    pg.fill("#f-alphas", "0, 6")
    pg.fill("#f-max_new_tokens", "8")
    pg.click("#steer-form button[type=submit]")
    pg.locator(".live-state", has_text="Finished").wait_for()
    pg.locator(".steer-model.done [data-plot][data-drawn='1']").wait_for()
    pg.locator(".steer-model.done .tok").first.hover()
    pg.locator(".steer-model.done .js-plotly-plot .nsewdrag").first.hover()
    pg.click("#steer-form button[type=submit]")  # again, over the drawn plot
    pg.locator(".steer-model.done [data-plot][data-drawn='1']").wait_for()
    assert "latent=villain" in pg.url  # pushed
    assert pg.evaluate("window.__snapshots") == 0
    pg.click("#save-run")
    link = pg.locator("#saved-result .share-link")
    link.wait_for()
    pg.click("#saved-result button[data-copy]")
    pg.locator("#saved-result .copy-status", has_text="Cop").wait_for()
    pg.goto(link.get_attribute("href"))
    pg.locator(".steer-model.done [data-plot][data-drawn='1']").first.wait_for()
    pg.click("#rerun")
    pg.locator("[data-identical]").first.wait_for()
    assert pg.evaluate("window.__csp") == []


def test_favicon_is_served(open_page, live):
    pg = open_page()
    pg.goto("/")
    response = pg.request.get("/favicon.ico")  # what a browser asks for on any page
    assert response.status == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert response.body()[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert pg.locator("link[rel=icon][href='/favicon.ico']").count() == 1


def test_skip_link_moves_to_the_content(open_page):
    pg = open_page()
    pg.goto("/latents/sae/3")
    pg.keyboard.press("Tab")
    skip = pg.locator(":focus")
    assert skip.inner_text() == "Skip to content"
    b = skip.bounding_box()
    assert b is not None and b["y"] >= 0 and b["height"] > 0  # shown when focused
    pg.keyboard.press("Enter")
    assert pg.evaluate("document.activeElement.id") == "content"
    pg.keyboard.press("Tab")  # the next stop is inside the content, past the navigation
    assert pg.evaluate("!!document.activeElement.closest('main')")


# ------------------------------------------------------------- 10. listing is a choice
def test_saving_lists_a_run_only_when_asked(open_page, live):
    pg = open_page()
    pg.goto(steer_url())
    pg.locator(".live-state", has_text="Finished").wait_for()
    box_ = pg.locator("#steer-results form.save-form input[name=listed]")
    assert box_.count() == 1 and not box_.is_checked()
    label = pg.locator("#steer-results form.save-form label.listed").inner_text()
    assert "home page" in label
    pg.fill("#steer-results #f-title", "an unlisted steering run")
    pg.click("#save-run")
    pg.locator("#saved-result .share-link").wait_for()
    message = pg.locator("#saved-result").inner_text()
    assert "unlisted" in message.lower() and "not listed" in message
    unlisted = pg.get_attribute("#saved-result .share-link", "href")
    pg.goto(steer_url())
    pg.locator(".live-state", has_text="Finished").wait_for()
    pg.fill("#steer-results #f-title", "a listed steering run")
    pg.check("#steer-results form.save-form input[name=listed]")
    pg.click("#save-run")
    pg.locator("#saved-result .share-link").wait_for()
    assert "listed publicly" in pg.locator("#saved-result").inner_text()
    listed = pg.get_attribute("#saved-result .share-link", "href")
    pg.goto("/")
    recent = pg.locator("#recent").inner_text()
    assert "a listed steering run" in recent and "an unlisted steering run" not in recent
    assert unlisted.rsplit("/", 1)[-1] not in pg.content()
    assert listed.rsplit("/", 1)[-1] in pg.content()

    # The diff and evaluation save forms offer the same choice, off by default.
    pg.goto("/diff?run=1&top_n=3&chat=1")
    assert not pg.locator("form.save-form input[name=listed]").is_checked()
    pg.goto("/evaluate?" + urlencode({**ONE_ALPHA_SWEEP, "baseline": "0"}))
    assert not pg.locator("form.save-form input[name=listed]").is_checked()
    pg.locator("#eval-results table.eval-summary").wait_for()
    pg.click("form.save-form button[type=submit]")
    pg.locator("#saved-result .share-link").wait_for()
    assert "unlisted" in pg.locator("#saved-result").inner_text().lower()
    run_id = pg.get_attribute("#saved-result .share-link", "href").rsplit("/", 1)[-1]
    assert run_id not in [r["id"] for r in live.http.get("/api/runs?limit=100").json()["data"]]


# ----------------------------------------------------------------------------- 11. docs
def test_benchmarks_describe_machines_by_hardware_and_software():
    text = (REPO_ROOT / "docs" / "benchmarks.md").read_text()
    for wording in ("lent", "device tool", "device time", "$OUT", "this session", "workplace"):
        assert wording not in text, wording
    assert "NVIDIA H200" in text and "torch 2.11.0+cu130" in text
