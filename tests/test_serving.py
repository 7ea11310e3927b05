"""The served configuration (app/serving.py): slow request headers are cut off, huge ones
refused, and ordinary keep-alive requests still work."""

import socket
import threading
import time

import pytest
import uvicorn

from app import serving
from tests.fixtures_db import free_port


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(serving, "HEADER_TIMEOUT_S", 1.0)
    port = free_port()
    config = uvicorn.Config(
        hello, host="127.0.0.1", port=port, log_level="warning", **serving.OPTIONS
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not srv.started and time.time() < deadline:
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    thread.join(10)


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_headers_are_cut_off(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        started = time.time()
        closed = False
        while time.time() - started < 5:  # a header byte now and then, never the end
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
            if closed_by_server(sock, 0.3):
                closed = True
                break
        assert closed and time.time() - started < 3


def test_huge_headers_are_refused(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n")
        sock.settimeout(5)
        answer = sock.recv(1024)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:80]


def test_keep_alive_requests_still_work(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.settimeout(5)
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
            time.sleep(0.3)
