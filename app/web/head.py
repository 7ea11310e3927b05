"""HEAD for the pages: answered as a GET without its body (FastAPI routes take only the
methods they declare, so a `curl -I` or an uptime check would get 405). The JSON API is
left alone: a HEAD there must not start model work."""


class HeadAsGet:
    """Pure ASGI middleware (no buffering)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope["method"] != "HEAD"
            or scope.get("path", "").startswith("/api/")
        ):
            return await self.app(scope, receive, send)

        async def send_headers_only(message):
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
