"""The fault proxy itself, against a real TCP echo server and a real HTTP server.

The service-fault tests trust the proxy to inject exactly the fault they ask for; these
tests prove each mode does what it says before it is pointed at PostgreSQL, S3 or MLflow.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.faults.proxy import FaultProxy


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[str, int]]:
    """A TCP server that echoes every byte back, one thread per connection."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:  # the proxy resets connections on purpose
                pass

    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    yield server.getsockname()
    server.close()


@pytest.fixture(scope="module")
def web() -> Iterator[tuple[str, int]]:
    """A real HTTP server answering 200 'ok' to GET and echoing the length of a PUT body."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._reply(b"ok")

        def do_PUT(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self._reply(str(len(body)).encode())

        def _reply(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[:2]
    server.shutdown()


def _roundtrip(port: int, payload: bytes = b"hello", timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_forward_relays_both_ways(echo: tuple[str, int]) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB: several relay chunks
    with FaultProxy(echo) as proxy:
        assert _roundtrip(proxy.port, payload) == payload
        assert proxy.stats["forwarded"] == 1


def test_refuse_then_forward_on_the_same_port(echo: tuple[str, int]) -> None:
    with FaultProxy(echo, mode="refuse") as proxy:
        with pytest.raises(ConnectionRefusedError):
            _roundtrip(proxy.port)
        proxy.forward()
        assert _roundtrip(proxy.port) == b"hello"
        proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            _roundtrip(proxy.port)


def test_reset_resets_every_connection(echo: tuple[str, int]) -> None:
    with FaultProxy(echo, mode="reset") as proxy:
        with pytest.raises(ConnectionResetError):
            _roundtrip(proxy.port)
        assert proxy.stats["reset"] == 1 and proxy.stats["forwarded"] == 0


def test_reset_next_resets_then_forwards(echo: tuple[str, int]) -> None:
    with FaultProxy(echo) as proxy:
        proxy.reset_next(2)
        for _ in range(2):
            with pytest.raises(ConnectionResetError):
                _roundtrip(proxy.port)
        assert _roundtrip(proxy.port) == b"hello"
        assert (proxy.stats["reset"], proxy.stats["forwarded"]) == (2, 1)


def test_cut_after_resets_mid_stream(echo: tuple[str, int]) -> None:
    with FaultProxy(echo) as proxy:
        proxy.cut_after(1000, times=1)
        with pytest.raises(ConnectionResetError):
            assert len(_roundtrip(proxy.port, b"x" * 5000)) < 5000
            raise ConnectionResetError("closed cleanly")  # a short read ending in EOF is a cut too
        assert _roundtrip(proxy.port, b"x" * 5000) == b"x" * 5000  # only the next connection was cut
        assert proxy.stats["cut"] == 1


def test_blackhole_never_answers(echo: tuple[str, int]) -> None:
    with FaultProxy(echo, mode="blackhole") as proxy:
        with pytest.raises(TimeoutError):
            _roundtrip(proxy.port, timeout=0.3)
        assert proxy.stats["blackholed"] == 1


def test_delay_slows_every_answer(echo: tuple[str, int]) -> None:
    with FaultProxy(echo, delay=0.3) as proxy:
        started = time.monotonic()
        assert _roundtrip(proxy.port) == b"hello"
        assert time.monotonic() - started >= 0.3
        assert proxy.stats["delayed"] == 1


def test_drop_connections_cuts_an_open_stream(echo: tuple[str, int]) -> None:
    with FaultProxy(echo) as proxy, socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as s:
        s.sendall(b"first")
        assert s.recv(100) == b"first"
        assert proxy.drop_connections() == 1
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            s.sendall(b"second")
            if not s.recv(100):  # a clean end of stream would also be a lost connection
                raise ConnectionResetError("closed")
        assert proxy.stats["dropped"] == 1
        assert _roundtrip(proxy.port) == b"hello"  # new connections still work


def test_fail_http_answers_status_then_forwards(web: tuple[str, int]) -> None:
    with FaultProxy(web) as proxy:
        proxy.fail_http(2, status=503)
        for _ in range(2):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(proxy.url() + "/x", timeout=5)
            assert err.value.code == 503
        with urllib.request.urlopen(proxy.url() + "/x", timeout=5) as resp:
            assert resp.read() == b"ok"
        assert proxy.stats["http_failed"] == 2 and proxy.stats["forwarded"] == 1


def test_fail_http_reads_the_request_body(web: tuple[str, int]) -> None:
    """A PUT with a body gets a clean 503 (not a reset mid-upload), and the retry reaches the server."""
    body = b"x" * 300_000
    with FaultProxy(web) as proxy:
        proxy.fail_http(1, status=500)
        request = urllib.request.Request(proxy.url() + "/obj", data=body, method="PUT")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        assert err.value.code == 500 and b"injected fault" in err.value.read()
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.read() == str(len(body)).encode()


def test_after_switches_mode_later(echo: tuple[str, int]) -> None:
    with FaultProxy(echo, mode="refuse") as proxy:
        proxy.after(0.3, proxy.forward)
        with pytest.raises(ConnectionRefusedError):
            _roundtrip(proxy.port)
        deadline = time.monotonic() + 5
        while proxy.mode != "forward" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _roundtrip(proxy.port) == b"hello"
