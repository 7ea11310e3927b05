"""The figure and link helpers behind the pages (no browser): log-axis ticks at powers of
two, the α axis of a sweep, and the α that "evaluate steered" links carry."""

import json
import math
from types import SimpleNamespace

from app.web import plots, views


def test_histogram_ticks_are_powers_of_two_labelled_with_their_values():
    ticks = plots.pow2_ticks(0.3, 1.5)
    assert ticks["tickvals"] == [0.25, 0.5, 1.0, 2.0]
    assert ticks["ticktext"] == ["0.25", "0.5", "1", "2"]
    wide = plots.pow2_ticks(1e-5, 100.0)
    assert len(wide["tickvals"]) <= plots.MAX_LOG_TICKS
    for v in wide["tickvals"]:
        assert math.log2(v) == round(math.log2(v))
    assert wide["tickvals"][-1] == 128.0  # the top of the range is always marked
    assert plots.pow2_ticks(0.0, 1.0) == {} and plots.pow2_ticks(2.0, 1.0) == {}


def test_histogram_figure_uses_those_ticks():
    fig = plots.histogram({"low": [0.5, 1.0], "high": [1.0, 2.0], "counts": [3, 4]})
    axis = fig["layout"]["xaxis"]
    assert axis["type"] == "log" and axis["ticktext"] == ["0.5", "1", "2"]


def condition(alpha, rate):
    r = {"rate": rate, "ci95": [max(0.0, rate - 0.1), min(1.0, rate + 0.1)]}
    return {"alpha": alpha, "result": {"misaligned": r, "coherent": r}}


def test_a_sweep_of_one_alpha_gets_a_padded_axis_and_full_width_baselines():
    fig = plots.eval_sweep([condition(None, 0.2), condition(4.0, 0.5)])
    lo, hi = fig["layout"]["xaxis"]["range"]
    assert lo < 4.0 < hi and hi - lo >= 2.0
    baselines = [t for t in fig["data"] if t["name"].endswith("(not steered)")]
    assert len(baselines) == 2
    assert all(t["x"] == [lo, hi] for t in baselines)
    assert all(t["marker"]["size"] >= 8 for t in fig["data"] if t["mode"] != "lines")


def test_titled_figures_keep_room_for_the_legend_and_toolbar():
    fig = plots.activation_lines([("a", ["x", "y"], [0.0, 1.0]), ("b", ["x", "y"], [1, 2])], 3)
    layout = fig["layout"]
    assert layout["title"]["yref"] == "container" and layout["legend"]["yanchor"] == "bottom"
    assert layout["margin"]["t"] == plots.TITLED_MARGIN
    bars = plots.diff_bars([{"latent": 1, "delta": 0.5}], {}, ["/l/1"])
    assert bars["layout"]["margin"]["t"] >= plots.TOOLBAR_MARGIN


def context_with_report(tmp_path, report):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "REPORT.json"
    if report is not None:
        path.write_text(json.dumps(report))
    config = SimpleNamespace(spec=SimpleNamespace(report=str(path)), resolve=lambda p: path)
    return SimpleNamespace(registry=SimpleNamespace(config=config))


def test_evaluate_links_take_the_reports_chosen_alpha(tmp_path):
    ctx = context_with_report(tmp_path, {"steering": {"amplify": {"alpha": 1.5}}})
    assert views.suggested_alpha(ctx) == 1.5


def test_evaluate_links_default_to_alpha_one(tmp_path):
    assert views.suggested_alpha(context_with_report(tmp_path, None)) == 1.0  # no file
    assert views.suggested_alpha(context_with_report(tmp_path / "x", {})) == 1.0
    bad = {"steering": {"amplify": {"alpha": "big"}}}
    assert views.suggested_alpha(context_with_report(tmp_path / "y", bad)) == 1.0
    no_report = SimpleNamespace(spec=SimpleNamespace(report=None))
    ctx = SimpleNamespace(registry=SimpleNamespace(config=no_report))
    assert views.suggested_alpha(ctx) == views.DEFAULT_ALPHA == 1.0
