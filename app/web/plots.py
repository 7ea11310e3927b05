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


def layout(height: int = 260, **over: Any) -> dict:
    out = {
        "height": height,
        "margin": {"l": 56, "r": 16, "t": 28, "b": 44},
        "font": FONT,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "closest",
        "hoverlabel": {"namelength": -1},
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
    }
    out.update(over)
    return out


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
            xaxis={"type": "log", "title": {"text": "activation (log scale)"}},
            yaxis={"title": {"text": "count"}, "rangemode": "tozero"},
            showlegend=False,
        ),
    )


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
            margin={"l": 110, "r": 16, "t": 16, "b": 40},
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
    title = f"latent {latent}" + (f" · {text(label)}" if label else "")
    return _figure(
        data,
        layout(
            300,
            title={"text": title, "font": {"size": 13}, "x": 0.01},
            xaxis=_token_axis(tokens, "token"),
            yaxis={"title": {"text": "activation"}, "rangemode": "tozero"},
            margin={"l": 56, "r": 16, "t": 36, "b": 90},
        ),
    )


# ------------------------------------------------------------------------------- steering
def alpha_name(alpha: float | None) -> str:
    return "baseline" if alpha is None else f"α = {alpha:g}"


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
            title={
                "text": f"latent {result['latent']} on the generated tokens · "
                + text(result["model"]),
                "font": {"size": 13},
                "x": 0.01,
            },
            xaxis={"title": {"text": "generated token"}, "zeroline": False},
            yaxis={"title": {"text": "activation"}, "rangemode": "tozero"},
            margin={"l": 56, "r": 16, "t": 36, "b": 44},
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
            margin={"l": 150, "r": 16, "t": 16, "b": 44},
            xaxis={"title": {"text": "mean activation increase (fine-tuned − base)"}},
            yaxis={"tickmode": "array", "tickvals": y, "ticktext": names, "automargin": True},
            showlegend=False,
        ),
        click="link",
    )


# ----------------------------------------------------------------------------- evaluation
def eval_sweep(conditions: list[dict]) -> dict:
    """Misaligned and coherent rates (95% intervals) against α; an unsteered condition is a
    dotted horizontal line."""
    steered = sorted((c for c in conditions if c["alpha"] is not None), key=lambda c: c["alpha"])
    plain = next((c for c in conditions if c["alpha"] is None), None)
    alphas = [c["alpha"] for c in steered]
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
                },
                "line": {"color": color},
                "hovertemplate": "α = %{x:g}<br>" + name + " %{y:.1%}<extra></extra>",
            }
        )
        if plain is not None and alphas:
            base = plain["result"][metric]["rate"]
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{name} (not steered)",
                    "x": [min(alphas), max(alphas)],
                    "y": [base, base],
                    "line": {"color": color, "dash": "dot", "width": 1.5},
                    "hovertemplate": f"not steered: {name} %{{y:.1%}}<extra></extra>",
                }
            )
    return _figure(
        data,
        layout(
            300,
            xaxis={
                "title": {"text": "α"},
                "zeroline": False,
                "tickmode": "array",
                "tickvals": alphas,
                "ticktext": [f"{a:g}" for a in alphas],
            },
            yaxis={"title": {"text": "rate"}, "range": [0, 1.02], "tickformat": ".0%"},
        ),
    )
