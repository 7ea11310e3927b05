"""Page weight and time to DOMContentLoaded of the form pages, in Chromium on loopback.

    python bench/pages.py                  # the organism, a fresh data directory, port 8766

Starts `python -m app serve --no-index` on the organism, asks for each page once (so the
server has compiled its templates), then opens each page in a fresh browser context (empty
cache) and reads the Navigation and Resource Timing entries: bytes
transferred before the page is interactive (everything loaded by the `load` event, gzip
included) and DOMContentLoaded. Then opens the steering page again in the same context
(warm cache: fingerprinted static files are not fetched again).

Targets (issue 14): < 1 MB before interaction, DOMContentLoaded <= 500 ms.
"""

import argparse
import json
import sys
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from served import organism_server  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PAGES = ["/", "/latents", "/steer", "/inspect", "/diff", "/evaluate"]
MEASURE = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const bytes = nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0);
  return {bytes, dom_content_loaded_ms: nav.domContentLoadedEventEnd,
          load_ms: nav.loadEventEnd, resources: res.map(r => r.name.split('?')[0])};
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with organism_server(args.port) as base:
        for path in PAGES:  # the server warm (templates compiled); each browser starts cold
            httpx.get(base + path, timeout=60)
        rows = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            for path in PAGES:
                context = browser.new_context()
                page = context.new_page()
                page.goto(base + path, wait_until="load")
                page.wait_for_timeout(300)
                rows[path] = page.evaluate(MEASURE)
                if path == "/steer":  # the same page again, cache warm
                    page.goto(base + path, wait_until="load")
                    rows["/steer (warm cache)"] = page.evaluate(MEASURE)
                context.close()
            browser.close()
    out = {
        "pages": {
            k: {
                "kB": round(v["bytes"] / 1000, 1),
                "dom_content_loaded_ms": round(v["dom_content_loaded_ms"]),
                "load_ms": round(v["load_ms"]),
                "plotly_loaded": any("plotly.min.js" in r for r in v["resources"]),
            }
            for k, v in rows.items()
        }
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
