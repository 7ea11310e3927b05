"""Security headers on every response: a strict Content-Security-Policy (scripts, styles,
fetches and images only from this server; no inline script, no inline style, no eval, no
framing), nosniff and no referrer (share links are the only key to unlisted runs).

The pages hold no inline scripts or style attributes: data reaches scripts as JSON in
`<script type="application/json">` blocks, which the policy never executes.
"""

from urllib.parse import urlsplit

from app.errors import Forbidden

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

# The API docs page (app/web/api_docs.py) starts Swagger UI with an inline
# script; it is left without the policy (not part of the UI, and it holds no user data).
DOCS_PATHS = ("/docs",)


class SecurityHeaders:
    """Pure ASGI middleware (it must not buffer streamed responses such as SSE)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        with_csp = not path.startswith(DOCS_PATHS)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {b"content-security-policy", *(h for h, _ in HEADERS)}
                ]
                headers.extend(HEADERS)
                if with_csp:
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def check_same_origin(request) -> None:
    """Refuse a state-changing form post sent from another site (CSRF): browsers mark
    every request with Sec-Fetch-Site, and posts with Origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("This form only accepts posts from PersonaScope's own pages.")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        hosts = {request.headers.get("host")}
        public = request.app.state.settings.public_base_url
        if public:
            hosts.add(urlsplit(public).netloc)
        if urlsplit(origin).netloc not in hosts:
            raise Forbidden("This form only accepts posts from PersonaScope's own pages.")
