"""A scripted stand-in for the Argo Server REST API on 127.0.0.1, for the submitter tests.

Routes map (method, path regex) to a queue of responses; the last response repeats. A
response is ``(status, body)`` (bytes are sent as they are, anything else as JSON) or a function of the request giving one. Every request is
recorded (method, path, headers, JSON body) so tests can assert what the client sent.
``start(tls=...)`` serves HTTPS with a certificate from :func:`issue_certificate`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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

    scheme: str = "http"

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def calls(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method]

    def respond(self, request: Request) -> Response:
        self.requests.append(request)
        for method, pattern, queue in self.routes:
            if method == request.method and pattern.match(request.path):
                responder = queue.pop(0) if len(queue) > 1 else queue[0]
                return responder(request) if callable(responder) else responder
        return 404, {"code": 5, "message": f"no route for {request.method} {request.path}"}

    def start(self, tls: tuple[Path, Path] | None = None) -> FakeArgo:
        """Serve on a free port; ``tls=(cert_file, key_file)`` serves HTTPS."""
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
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def issue_certificate(directory: Path, hosts: list[str]) -> tuple[Path, Path, Path]:
    """A fresh CA and a server certificate it signs for ``hosts``: (ca.crt, server.crt, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("test CA", ca_key, "test CA", ca_key, ca=True)
    server_cert = build(hosts[0], server_key, "test CA", ca_key, ca=False)
    paths = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


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
    node_id: str | None = None,
    children: list[str] | None = None,
) -> dict[str, Any]:
    """One entry of status.nodes as the Argo Server reports it (a Retry node lists its attempts in ``children``)."""
    entry: dict[str, Any] = {
        "id": node_id or f"wf-{name}-{node_type}",
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
    if children:
        entry["children"] = children
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
