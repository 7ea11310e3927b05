"""How the server is served: uvicorn's h11 protocol with a deadline and a size limit for
request headers.

uvicorn gives an idle keep-alive connection a timeout, but none to a client that sends its
headers slowly (a byte every few seconds keeps a connection, and a socket, forever), and
it takes a header block of any size when it arrives whole. `HeaderTimeoutProtocol` is
uvicorn's h11 protocol that closes a connection whose request headers are not complete
`HEADER_TIMEOUT_S` after it opened or after its last response, and answers 431 to a header
block over `MAX_HEADER_BYTES`. `python -m app serve` and the container image use it;
OPTIONS below are the settings both pass.

A public deployment still belongs behind a reverse proxy (docs/deployment.md).
"""

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
MAX_HEADER_BYTES = 32 * 1024
KEEP_ALIVE_S = 5

OPTIONS = {
    "http": "app.serving:HeaderTimeoutProtocol",
    "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    "timeout_keep_alive": KEEP_ALIVE_S,
}


TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
    b"connection: close\r\ncontent-length: 30\r\n\r\nrequest headers are too large\n"
)


class HeaderTimeoutProtocol(H11Protocol):
    _deadline: asyncio.TimerHandle | None = None
    _waiting_since_cycle: object = None
    _head = b""  # the request's bytes so far, while its headers are incomplete

    def _arm(self) -> None:
        self._disarm()
        self._waiting_since_cycle = self.cycle
        self._head = b""
        self._deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None:  # headers incomplete: measure the header block
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if (end if end >= 0 else len(self._head)) > MAX_HEADER_BYTES:
                self._disarm()
                self.transport.write(TOO_LARGE)
                self.transport.close()
                return
            if end >= 0:
                self._head = b""
        super().data_received(data)
        if self._deadline is not None and self.cycle is not self._waiting_since_cycle:
            self._disarm()  # a new request's headers are complete

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
