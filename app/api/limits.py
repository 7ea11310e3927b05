"""Pure ASGI middleware that refuses hostile requests before any route runs, and keeps
every error a well-formed response:

- `BodySizeLimit`: a body over the limit is a 413, whether it announces its length or
  arrives chunked (the body is read, up to the limit, before the app sees it);
- `NoNulInUrl`: a NUL character in the path or query string is a 422 (PostgreSQL refuses
  NUL in text, so it must never reach a query; refused alike on every database);
- `ServerErrors`: an unexpected exception becomes the app's own 500 response (JSON, or an
  HTML page for pages) without the connection being reset, so keep-alive clients and the
  security headers (added outside this) see an ordinary response.
"""

import json
import logging

from starlette.requests import Request

log = logging.getLogger(__name__)

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


async def _send_json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail, "field": None}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send) -> None:
        await _send_json(send, 413, f"request body is over the limit of {self.max_bytes} bytes")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(send)
        # Read the whole body first (it is small: at most max_bytes), then replay it.
        buffered = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                return await self._refuse(send)
            buffered.append(message)
            if not message.get("more_body", False):
                break

        async def replay():
            if buffered:
                return buffered.pop(0)
            return await receive()  # after the body: disconnect notices (SSE)

        await self.app(scope, replay, send)


class NoNulInUrl:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            query = scope.get("query_string", b"").lower()
            if "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query:
                return await _send_json(
                    send, 422, "the URL holds a NUL character (%00), which no field accepts"
                )
        await self.app(scope, receive, send)


class ServerErrors:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # mid-response: nothing whole can be sent any more
                raise
            handler = scope["app"].exception_handlers.get(Exception)
            if handler is None:
                log.exception("unhandled error")
                return await _send_json(send, 500, f"internal error: {type(exc).__name__}")
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
