"""plotly.js figures as plain dicts ({data, layout}), embedded in pages as JSON with Jinja's
`tojson` and drawn by frontend/static/app.js.

plotly.js reads a small HTML-like markup in every text it draws (tick labels, hover labels,
legend names): `<b>`, `<br>`, `<a href=...>`, and entities. Model text can be `<script>` or
`<a href="javascript:...">`, so every piece of text from a model, a user or the database
goes through `text()`, which escapes it to entities that plotly.js shows literally.
"""

import math
from collections.abc import Sequence
from typing import Any

FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12}
COLORS = ["#4063d8", "#d9480f", "#2b8a3e", "#ae3ec9", "#1098ad", "#e67700", "#c2255c", "#495057"]
BASELINE_COLOR = "#868e96"
MAX_TICK_LABELS = 60


def text(value: Any) -> str:
    """Escape text for plotly.js's label markup (it decodes &amp; &lt; &gt; back)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def visible(token: str) -> str:
    """A token as people read it: line breaks and tabs as symbols, other invisible
    characters escaped, never empty (the one mapping of snippets and plot labels)."""
    shown = token.replace("\n", "↵").replace("\r", "⏎").replace("\t", "⇥")
    return shown if shown.strip() else repr(token)[1:-1] or "∅"


def token_label(token: str) -> str:
    """A token as a plot label."""
    return text(visible(token))


# The plot toolbar (modebar) floats over the top-right corner of a figure: every figure
# keeps at least this much top margin so it never covers data.
TOOLBAR_MARGIN = 36
# A title and a legend share the top margin in two rows: the title at the top of the
# figure, the legend just above the plotting area (side by side they collide on a phone).
TITLED_MARGIN = 64


def layout(height: int = 260, **over: Any) -> dict:
    out = {
        "height": height,
        "margin": {"l": 56, "r": 16, "t": TOOLBAR_MARGIN, "b": 44},
        "font": FONT,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "closest",
        "hoverlabel": {"namelength": -1},
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
    }
    out.update(over)
    return out


def title(value: str) -> dict:
    """A figure title in the top row, left-aligned (the legend is the row under it)."""
    return {
        "text": value,
        "font": {"size": 13},
        "x": 0,
        "xref": "paper",
        "xanchor": "left",
        "y": 1,
        "yref": "container",
        "yanchor": "top",
        "pad": {"t": 8},
    }


def _figure(data: list[dict], lay: dict, **extra: Any) -> dict:
    return {"data": data, "layout": lay, **extra}


def _finite(values: Sequence[float | None]) -> list[float | None]:
    return [v if v is not None and math.isfinite(v) else None for v in values]


def _token_axis(tokens: Sequence[str], title: str) -> dict:
    axis: dict = {"title": {"text": title}, "zeroline": False}
    if 0 < len(tokens) <= MAX_TICK_LABELS:
        axis.update(
            tickmode="array",
            tickvals=list(range(len(tokens))),
            ticktext=[token_label(t) for t in tokens],
            tickangle=-60 if len(tokens) > 12 else 0,
        )
    return axis


# ---------------------------------------------------------------------------- latent page
def histogram(hist: dict) -> dict:
    """Activation histogram on its log2 grid, as a filled step line (log x axis)."""
    lows, highs, counts = hist.get("low", []), hist.get("high", []), hist.get("counts", [])
    xs: list[float] = []
    ys: list[int] = []
    hover: list[str] = []
    prev_high = None
    for low, high, count in zip(lows, highs, counts, strict=False):
        if prev_high is not None and not math.isclose(prev_high, low):
            xs.append(prev_high)
            ys.append(0)
            hover.append("")
        xs.append(low)
        ys.append(count)
        hover.append(f"{low:.3g} – {high:.3g}: {count} activations")
        prev_high = high
    if prev_high is not None:
        xs.append(prev_high)
        ys.append(counts[-1])
        hover.append("")
    trace = {
        "type": "scatter",
        "mode": "lines",
        "x": xs,
        "y": ys,
        "line": {"shape": "hv", "color": COLORS[1], "width": 1.5},
        "fill": "tozeroy",
        "customdata": hover,
        "hovertemplate": "%{customdata}<extra></extra>",
        "name": "activations",
    }
    return _figure(
        [trace],
        layout(
            220,
            xaxis={
                "type": "log",
                "title": {"text": "activation (log scale)"},
                **pow2_ticks(xs[0] if xs else 0.0, xs[-1] if xs else 0.0),
            },
            yaxis={"title": {"text": "count"}, "rangemode": "tozero"},
            showlegend=False,
        ),
    )


MAX_LOG_TICKS = 8


def pow2_label(value: float) -> str:
    """A power of two as its value: 8, 1, 0.25, 0.031 (plotly's own log ticks read
    "2 3 4 … 9 1", which look like activations of 2 to 9)."""
    return f"{value:g}" if value >= 0.1 else f"{value:.2g}"


def pow2_ticks(low: float, high: float) -> dict:
    """Tick marks of a log axis at powers of two between low and high, each labelled with
    its value; every second or fourth power when the range is wide."""
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 or high <= low:
        return {}
    first, last = math.floor(math.log2(low)), math.ceil(math.log2(high))
    step = 1
    while (last - first) // step + 1 > MAX_LOG_TICKS:
        step *= 2
    powers = [2.0**e for e in range(last - (last - first) // step * step, last + 1, step)]
    return {
        "tickmode": "array",
        "tickvals": powers,
        "ticktext": [pow2_label(v) for v in powers],
    }


def logit_effects(logits: dict, n: int = 10) -> dict:
    """The tokens whose logits the latent's decoder direction raises most and least."""
    pos = logits.get("positive", [])[:n]
    neg = logits.get("negative", [])[:n]
    rows = [*reversed(neg), *pos[::-1]]
    # Negative bars at the bottom, positive at the top; y is a position, so tokens that
    # print alike stay separate bars.
    y = list(range(len(rows)))
    return _figure(
        [
            {
                "type": "bar",
                "orientation": "h",
                "x": [r["value"] for r in rows],
                "y": y,
                "marker": {"color": [COLORS[2] if r["value"] >= 0 else COLORS[6] for r in rows]},
                "customdata": [token_label(r["token"]) for r in rows],
                "hovertemplate": "%{customdata}: %{x:.3f}<extra></extra>",
            }
        ],
        layout(
            max(220, 18 * len(rows) + 60),
            margin={"l": 110, "r": 16, "t": TOOLBAR_MARGIN, "b": 40},
            xaxis={"title": {"text": "logit effect"}, "zeroline": True},
            yaxis={
                "tickmode": "array",
                "tickvals": y,
                "ticktext": [token_label(r["token"]) for r in rows],
                "automargin": True,
            },
            showlegend=False,
        ),
    )


# ------------------------------------------------------------------------------ inspector
def activation_lines(
    series: Sequence[tuple[str, Sequence[str], Sequence[float]]], latent: int, label: str = ""
) -> dict:
    """One line per model: the latent's activation at each prompt token."""
    data = []
    for k, (name, tokens, values) in enumerate(series):
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": text(name),
                "x": list(range(len(values))),
                "y": _finite(values),
                "customdata": [token_label(t) for t in tokens],
                "hovertemplate": "%{customdata}<br>position %{x}: %{y:.3f}<extra>%{fullData.name}"
                "</extra>",
                "line": {"color": COLORS[k % len(COLORS)]},
                "marker": {"size": 5},
            }
        )
    tokens = series[0][1] if series else []
    name = f"latent {latent}" + (f" · {text(label)}" if label else "")
    return _figure(
        data,
        layout(
            300,
            title=title(name),
            xaxis=_token_axis(tokens, "token"),
            yaxis={"title": {"text": "activation"}, "rangemode": "tozero"},
            margin={"l": 56, "r": 16, "t": TITLED_MARGIN, "b": 90},
        ),
    )


# ------------------------------------------------------------------------------- steering
def alpha_name(alpha: float | None) -> str:
    return "baseline" if alpha is None else f"α = {alpha:g}"


def _traced(result: dict) -> str:
    """The latent whose activations a steering result follows (with several edits, the
    first latent edit's: its `trace`)."""
    trace = result.get("trace") or {}
    if result.get("latent") is not None:
        return f"latent {result['latent']}"
    if trace.get("latent") is not None:
        return text(f"latent {trace['latent']} of {trace.get('sae')}")
    return "no latent"


def steer_lines(result: dict) -> dict:
    """The steered latent's activation on each generated token, one line per α."""
    rows = [(None, result["baseline"]), *((s["alpha"], s) for s in result["steered"])]
    data = []
    longest: list[str] = []
    for k, (alpha, row) in enumerate(rows):
        values = row.get("latent_activations") or []
        tokens = row.get("tokens") or []
        longest = tokens if len(tokens) > len(longest) else longest
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": alpha_name(alpha),
                "x": list(range(len(values))),
                "y": _finite(values),
                "customdata": [token_label(t) for t in tokens[: len(values)]],
                "hovertemplate": "%{customdata}<br>token %{x}: %{y:.3f}<extra>%{fullData.name}"
                "</extra>",
                "line": {
                    "color": BASELINE_COLOR if alpha is None else COLORS[(k - 1) % len(COLORS)],
                    "dash": "dot" if alpha is None else "solid",
                },
                "marker": {"size": 4},
            }
        )
    return _figure(
        data,
        layout(
            280,
            title=title(f"{_traced(result)} on the generated tokens · " + text(result["model"])),
            xaxis={"title": {"text": "generated token"}, "zeroline": False},
            yaxis={"title": {"text": "activation"}, "rangemode": "tozero"},
            margin={"l": 56, "r": 16, "t": TITLED_MARGIN, "b": 44},
        ),
    )


# ---------------------------------------------------------------------------- model diff
def diff_bars(latents: list[dict], labels: dict[int, str], links: list[str]) -> dict:
    """Latents ranked by the increase of their mean activation; a click opens the latent."""
    rows = list(reversed(latents))  # plotly draws the first category at the bottom
    names = [
        f"#{r['latent']}" + (f" · {text(labels[r['latent']])}" if labels.get(r["latent"]) else "")
        for r in rows
    ]
    y = list(range(len(rows)))
    return _figure(
        [
            {
                "type": "bar",
                "orientation": "h",
                "x": [r["delta"] for r in rows],
                "y": y,
                "customdata": list(reversed(links)),
                "text": names,
                "hovertemplate": "%{text}<br>increase %{x:.4f}<extra>click to open</extra>",
                "marker": {"color": [COLORS[1] if r["delta"] >= 0 else COLORS[0] for r in rows]},
                "textposition": "none",
            }
        ],
        layout(
            max(240, 22 * len(rows) + 70),
            margin={"l": 60, "r": 16, "t": TOOLBAR_MARGIN, "b": 60},
            xaxis={"title": {"text": "mean activation increase<br>(fine-tuned − base)"}},
            yaxis={"tickmode": "array", "tickvals": y, "ticktext": names, "automargin": True},
            showlegend=False,
        ),
        click="link",
    )


# ----------------------------------------------------------------------------- evaluation
def sweep_range(alphas: Sequence[float]) -> list[float]:
    """The α axis's range, padded so that points at its ends (or one α alone) stand clear
    of the frame."""
    lo, hi = min(alphas), max(alphas)
    pad = max(abs(lo), abs(hi), 1.0) * 0.5 if hi == lo else (hi - lo) * 0.08
    return [lo - pad, hi + pad]


def eval_sweep(conditions: list[dict]) -> dict:
    """Misaligned and coherent rates (95% intervals) against α; an unsteered condition is a
    dotted horizontal line across the whole axis."""
    steered = sorted((c for c in conditions if c["alpha"] is not None), key=lambda c: c["alpha"])
    plain = next((c for c in conditions if c["alpha"] is None), None)
    alphas = [c["alpha"] for c in steered]
    span = sweep_range(alphas) if alphas else None
    data = []
    for k, (metric, name) in enumerate((("misaligned", "misaligned"), ("coherent", "coherent"))):
        color = COLORS[1] if k == 0 else COLORS[0]
        rates = [c["result"][metric]["rate"] for c in steered]
        lows = [c["result"][metric]["ci95"][0] for c in steered]
        highs = [c["result"][metric]["ci95"][1] for c in steered]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "x": alphas,
                "y": rates,
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [h - r for h, r in zip(highs, rates, strict=True)],
                    "arrayminus": [r - lo for r, lo in zip(rates, lows, strict=True)],
                    "color": color,
                    "width": 6,
                },
                "line": {"color": color},
                "marker": {"color": color, "size": 9},
                "cliponaxis": False,  # a rate of 0 or 1 shows its whole marker
                "hovertemplate": "α = %{x:g}<br>" + name + " %{y:.1%}<extra></extra>",
            }
        )
        if plain is not None and span is not None:
            base = plain["result"][metric]["rate"]
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{name} (not steered)",
                    "x": span,
                    "y": [base, base],
                    "line": {"color": color, "dash": "dot", "width": 1.5},
                    "hovertemplate": f"not steered: {name} %{{y:.1%}}<extra></extra>",
                }
            )
    xaxis: dict = {
        "title": {"text": "α"},
        "zeroline": False,
        "tickmode": "array",
        "tickvals": alphas,
        "ticktext": [f"{a:g}" for a in alphas],
    }
    if span is not None:
        xaxis["range"] = span
    return _figure(
        data,
        layout(
            300,
            xaxis=xaxis,
            yaxis={
                "title": {"text": "rate"},
                "range": [-0.04, 1.04],
                "tickformat": ".0%",
                "zeroline": False,
            },
        ),
    )
