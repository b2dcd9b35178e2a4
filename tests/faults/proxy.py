"""A fault-injecting TCP proxy on 127.0.0.1, run in background threads by the tests.

Put it between a stage and a real service (PostgreSQL, moto's S3 server, an MLflow
server) and point the stage's setting (PG_PORT, MINIO_ENDPOINT, MLFLOW_TRACKING_URI) at
``proxy.port`` / ``proxy.url``. Faults, switchable at any time from the test thread:

- ``forward()``: relay bytes both ways (optionally ``delay`` seconds before each chunk
  the service sends back: a slow service);
- ``refuse()``: stop listening, so connects fail with ECONNREFUSED (service down);
  ``forward()`` listens again on the same port (service back);
- ``reset()``: accept, then reset the connection at once (a crashing listener);
- ``blackhole()``: accept and never answer (a hung service; clients hit their timeouts);
- ``fail_http(n, status)``: answer the next ``n`` HTTP requests with ``status`` (503 by
  default, ``Connection: close``) without contacting the service, then forward;
- ``reset_next(n)``: reset the next ``n`` connections, then forward (a service restarting);
- ``cut_after(n_bytes, times)``: the next ``times`` connections that carry more than
  ``n_bytes`` back from the service are reset at that point (a download cut mid-stream);
- ``drop_connections()``: reset every open connection now (a restart or network cut mid-stream);
- ``after(seconds, fn)``: call ``fn`` later from a timer thread (e.g. ``after(2, proxy.forward)``
  recovers a service while the stage is retrying).

Counters in ``stats`` (accepted, forwarded, reset, blackholed, http_failed, cut, delayed,
dropped) let a test prove the fault was actually hit. Test-only code: it binds 127.0.0.1
and is not hardened against hostile clients.
"""

from __future__ import annotations

import collections
import select
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["FaultProxy"]

_CHUNK = 64 * 1024
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def _hard_close(sock: socket.socket) -> None:
    """Close with SO_LINGER 0 so the peer sees a reset (RST), not a clean end of stream."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Pair:
    """One accepted client connection and, when forwarding, its upstream connection."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.dropped = False

    def drop(self) -> None:
        self.dropped = True
        for sock in (self.client, self.upstream):
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the relay thread's select
                except OSError:
                    pass


class FaultProxy:
    """A TCP proxy from ``127.0.0.1:port`` to ``upstream`` with switchable faults (see the module doc)."""

    def __init__(self, upstream: tuple[str, int], *, port: int = 0, mode: str = "forward", delay: float = 0.0) -> None:
        self.upstream = upstream
        self.host = "127.0.0.1"
        self.delay = delay
        self.stats: collections.Counter[str] = collections.Counter()
        self._mode = mode
        self._http_failures = 0
        self._resets_pending = 0
        self._cuts_pending = 0
        self._cut_bytes = 0
        self._http_status = 503
        self._lock = threading.Lock()
        self._listen_lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._timers: list[threading.Timer] = []
        self._stopped = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._listener = self._bind(port)  # bound now, so ``port``/``url`` are known before start()
        self.port = int(self._listener.getsockname()[1])
        self._set_mode(mode)

    # -- public controls ------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._accept_loop, name=f"fault-proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        for timer in self._timers:
            timer.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.drop_connections(count=False)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def forward(self, delay: float | None = None) -> None:
        """Relay traffic (listening again if refusing); ``delay`` seconds before each chunk sent back."""
        if delay is not None:
            self.delay = delay
        self._set_mode("forward")

    def refuse(self) -> None:
        """Close the listening socket: new connections are refused until ``forward()``."""
        self._set_mode("refuse")

    def reset(self) -> None:
        """Accept connections and reset them immediately."""
        self._set_mode("reset")

    def blackhole(self) -> None:
        """Accept connections and never answer (reads are discarded)."""
        self._set_mode("blackhole")

    def fail_http(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` HTTP requests (one per new connection) with ``status``, then forward."""
        with self._lock:
            self._http_failures, self._http_status = count, status
        self._set_mode("forward")

    def reset_next(self, count: int) -> None:
        """Reset the next ``count`` new connections, then forward."""
        with self._lock:
            self._resets_pending = count
        self._set_mode("forward")

    def cut_after(self, n_bytes: int, times: int = 1) -> None:
        """Reset a connection once ``n_bytes`` came back from the service on it, ``times`` times.

        Connections that carry less (a HEAD, a small JSON answer) are not cut and do not count.
        """
        with self._lock:
            self._cuts_pending, self._cut_bytes = times, n_bytes
        self._set_mode("forward")

    def drop_connections(self, count: bool = True) -> int:
        """Reset every open connection (client and upstream side); returns how many were open."""
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.drop()
        if count:
            self.stats["dropped"] += len(pairs)
        return len(pairs)

    def after(self, seconds: float, fn: Callable[[], Any]) -> threading.Timer:
        """Call ``fn`` in ``seconds`` (cancelled by ``stop()``)."""
        timer = threading.Timer(seconds, fn)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
        return timer

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    # -- listening ------------------------------------------------------------------------
    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        sock.listen(64)
        return sock

    def _set_mode(self, mode: str) -> None:
        """Switch mode; the listening socket is opened or closed before this returns."""
        with self._listen_lock:
            with self._lock:
                self._mode = mode
            if mode == "refuse" and self._listener is not None:
                self._listener.close()
                self._listener = None
            elif mode != "refuse" and self._listener is None:
                self._listener = self._bind(self.port)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            with self._listen_lock:  # held briefly, so a mode switch never closes a socket mid-select
                listener = self._listener
                ready = listener is not None and select.select([listener], [], [], 0.05)[0]
                client = None
                if ready:
                    assert listener is not None
                    try:
                        client, _ = listener.accept()
                    except OSError:
                        client = None
            if listener is None:
                time.sleep(0.02)
            if client is None:
                continue
            self.stats["accepted"] += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    # -- one connection -------------------------------------------------------------------
    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            mode = self._mode
            http_fail = mode == "forward" and self._http_failures > 0
            if http_fail:
                self._http_failures -= 1
            status = self._http_status
            if mode == "forward" and self._resets_pending > 0:
                self._resets_pending -= 1
                mode = "reset"
        if mode in ("reset", "refuse"):  # "refuse": accepted in the instant before the listener closed
            self.stats["reset"] += 1
            _hard_close(client)
            return
        pair = _Pair(client)
        with self._lock:
            self._pairs.add(pair)
        try:
            if mode == "blackhole":
                self.stats["blackholed"] += 1
                self._discard(pair)
            elif http_fail:
                self.stats["http_failed"] += 1
                self._answer_http(client, status)
            else:
                self._relay(pair)
        finally:
            with self._lock:
                self._pairs.discard(pair)
            for sock in (pair.client, pair.upstream):
                if sock is not None:
                    _hard_close(sock) if pair.dropped else sock.close()

    def _discard(self, pair: _Pair) -> None:
        pair.client.settimeout(0.1)
        while not self._stopped.is_set() and not pair.dropped:
            try:
                if not pair.client.recv(_CHUNK):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _relay(self, pair: _Pair) -> None:
        """Relay until either side closes (or a pending ``cut_after`` fires on this connection)."""
        try:
            pair.upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self.stats["upstream_refused"] += 1
            pair.dropped = True
            return
        self.stats["forwarded"] += 1
        pair.upstream.settimeout(None)
        peer = {pair.client: pair.upstream, pair.upstream: pair.client}
        relayed = 0  # bytes sent back from the service on this connection
        with selectors.DefaultSelector() as sel:
            sel.register(pair.client, selectors.EVENT_READ)
            sel.register(pair.upstream, selectors.EVENT_READ)
            while not self._stopped.is_set() and not pair.dropped:
                for key, _ in sel.select(timeout=0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        data = sock.recv(_CHUNK)
                    except OSError:
                        return
                    if not data:
                        return
                    cut = False
                    if sock is pair.upstream:
                        if self.delay:
                            self.stats["delayed"] += 1
                            time.sleep(self.delay)
                        data, cut = self._maybe_cut(data, relayed)
                        relayed += len(data)
                    try:
                        peer[sock].sendall(data)
                    except OSError:
                        return
                    if cut:
                        pair.dropped = True
                        return

    def _maybe_cut(self, data: bytes, relayed: int) -> tuple[bytes, bool]:
        """Trim ``data`` and say "cut" when a pending ``cut_after`` is reached on this connection."""
        with self._lock:
            if self._cuts_pending <= 0 or relayed + len(data) < self._cut_bytes:
                return data, False
            self._cuts_pending -= 1
            self.stats["cut"] += 1
            return data[: max(0, self._cut_bytes - relayed)], True

    def _answer_http(self, client: socket.socket, status: int) -> None:
        """Read one request (headers, and the body unless the client waits for 100-continue), answer ``status``."""
        client.settimeout(5)
        try:
            head, rest = _read_head(client)
            headers = _parse_headers(head)
            if headers.get("expect", "").lower() != "100-continue":
                _drain_body(client, headers, rest)
            body = f"injected fault: HTTP {status}\n".encode()
            reason = _REASONS.get(status, "Error")
            client.sendall(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                f"Retry-After: 0\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(_CHUNK)
        if not data:
            raise ConnectionError("client closed before the end of the request headers")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _parse_headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines) if k}


def _drain_body(sock: socket.socket, headers: dict[str, str], rest: bytes) -> None:
    """Consume the request body so the client is not reset while still sending it."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        sock.settimeout(0.2)  # read until the client goes quiet: enough for a test's small bodies
        try:
            while sock.recv(_CHUNK):
                pass
        except OSError:
            pass
        return
    remaining = int(headers.get("content-length", "0") or 0) - len(rest)
    while remaining > 0:
        data = sock.recv(min(_CHUNK, remaining))
        if not data:
            return
        remaining -= len(data)
