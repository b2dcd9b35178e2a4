"""A scripted stand-in for the Argo Server REST API on 127.0.0.1, for the submitter tests.

Routes map (method, path regex) to a queue of responses; the last response repeats. A
response is ``(status, body)`` (bytes are sent as they are, anything else as JSON) or a function of the request giving one. Every request is
recorded (method, path, headers, JSON body) so tests can assert what the client sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Response = tuple[int, Any]
Responder = Response | Callable[["Request"], Response]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeArgo:
    routes: list[tuple[str, re.Pattern[str], list[Responder]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def on(self, method: str, pattern: str, *responses: Responder) -> FakeArgo:
        self.routes.append((method, re.compile(pattern + "$"), list(responses)))
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def calls(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method]

    def respond(self, request: Request) -> Response:
        self.requests.append(request)
        for method, pattern, queue in self.routes:
            if method == request.method and pattern.match(request.path):
                responder = queue.pop(0) if len(queue) > 1 else queue[0]
                return responder(request) if callable(responder) else responder
        return 404, {"code": 5, "message": f"no route for {request.method} {request.path}"}

    def start(self) -> FakeArgo:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, dict(self.headers), json.loads(raw) if raw else None)
                status, body = fake.respond(request)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = handle_any

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def echo_created(request: Request) -> Response:
    """POST /api/v1/workflows/{ns}: the server returns the workflow it stored."""
    workflow = dict(request.body["workflow"])
    workflow["metadata"] = {**workflow["metadata"], "uid": "0000-1111"}
    return 200, workflow


def node(
    name: str,
    phase: str,
    template: str | None = None,
    node_type: str = "Pod",
    exit_code: str | None = None,
    message: str | None = None,
    params: dict[str, str] | None = None,
    started: str = "",
) -> dict[str, Any]:
    """One entry of status.nodes as the Argo Server reports it."""
    entry: dict[str, Any] = {
        "id": f"wf-{name}-{node_type}",
        "name": f"wf.{name}",
        "displayName": name,
        "type": node_type,
        "templateName": template or name,
        "phase": phase,
        "startedAt": started or name,
    }
    outputs: dict[str, Any] = {}
    if exit_code is not None:
        outputs["exitCode"] = exit_code
    if params:
        outputs["parameters"] = [{"name": k, "value": v} for k, v in params.items()]
    if outputs:
        entry["outputs"] = outputs
    if message:
        entry["message"] = message
    return entry


def workflow_status(phase: str, *nodes: dict[str, Any], message: str = "") -> Callable[[Request], Response]:
    """GET /api/v1/workflows/{ns}/{name} answering with ``phase`` and ``nodes`` for the requested name."""

    def respond(request: Request) -> Response:
        name = request.path.rstrip("/").rpartition("/")[2]
        status: dict[str, Any] = {"nodes": {n["id"]: n for n in nodes}}
        if phase:
            status["phase"] = phase
        if message:
            status["message"] = message
        return 200, {"metadata": {"name": name, "namespace": "mlops"}, "status": status}

    return respond
