"""A small client of the Argo Server REST API: create, get and stop a workflow.

Plain ``requests`` rather than Hera's service, so that retries, status codes and the
messages a person sees are ours: connection errors, timeouts, 429 and 5xx are retried
with exponential backoff; 401/403 raise :class:`AuthError` saying which token and RBAC
to check; other 4xx raise :class:`RejectedError` with the server's message; a server
certificate that does not verify raises :class:`TLSConfigError` at once (no retry can fix
it) naming the trust option that is missing. A token file is read again for every request
(the kubelet rotates projected ServiceAccount tokens about hourly), and a 401 reads it once
more and retries once. The bearer token never appears in a log line, an exception or a ``repr``.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "SA_TOKEN_FILE",
    "SA_NAMESPACE_FILE",
    "ArgoError",
    "AuthError",
    "RejectedError",
    "UnreachableError",
    "TLSConfigError",
    "ServerConfig",
    "ArgoClient",
]

log = logging.getLogger(__name__)

SA_TOKEN_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_TRUE = {"1", "true", "yes", "on"}


class ArgoError(Exception):
    """Base of the submitter's errors talking to the Argo Server."""


class AuthError(ArgoError):
    """401/403: the token is missing, expired, or lacks RBAC for the request."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RejectedError(ArgoError):
    """A 4xx other than auth: the server refused the request (invalid spec, not found, conflict)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UnreachableError(ArgoError):
    """Connection failures, timeouts or 5xx that outlasted the retries."""


class TLSConfigError(ArgoError):
    """The server's certificate failed verification: a trust configuration problem, never retried."""


# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH = {62, 64}


@dataclass(frozen=True)
class ServerConfig:
    """Where the Argo Server is and how to authenticate; built from flags and the environment."""

    url: str
    """Base URL, e.g. ``https://argo-server.argo.svc:2746`` (a path prefix is kept)."""
    namespace: str
    token: str | None = field(default=None, repr=False)
    """The ``Authorization`` value from ``ARGO_TOKEN``; None when it comes from ``token_file`` or is absent."""
    token_file: Path | None = None
    """A token file to read on every request (the pod's ServiceAccount token, which rotates)."""
    token_source: str = "none"
    """Where the token comes from (``ARGO_TOKEN``, a file path, none) — safe to log."""
    verify: bool | str = True
    """TLS verification: True (system trust), False (insecure) or a CA bundle path."""
    ca_file: str | None = None
    """The CA bundle asked for (``ARGO_CA_FILE``/``--ca-file``), even when missing: for the TLS hint."""
    request_timeout: float = 30.0

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        server: str | None = None,
        namespace: str | None = None,
        token_file: Path = SA_TOKEN_FILE,
        namespace_file: Path = SA_NAMESPACE_FILE,
        ca_file: str | None = None,
        insecure: bool | None = None,
    ) -> ServerConfig:
        """Flags win over ``ARGO_SERVER``/``ARGO_NAMESPACE``/``ARGO_TOKEN``, then the pod's ServiceAccount files.

        Raises ValueError with what to set when the server or namespace is unknown, or the CA file holds no certificate.
        """
        e = os.environ if env is None else env
        raw = (server or e.get("ARGO_SERVER", "")).strip()
        if not raw:
            raise ValueError("no Argo Server: set ARGO_SERVER (e.g. https://argo-server.argo.svc:2746) or --server")
        if "://" not in raw:
            secure = e.get("ARGO_SECURE", "true").strip().lower() in _TRUE
            raw = ("https://" if secure else "http://") + raw
        base_href = e.get("ARGO_BASE_HREF", "").strip().strip("/")
        url = raw.rstrip("/") + (f"/{base_href}" if base_href else "")
        ns = (namespace or e.get("ARGO_NAMESPACE", "")).strip()
        if not ns and namespace_file.is_file():
            ns = namespace_file.read_text().strip()
        if not ns:
            raise ValueError(f"no namespace: set ARGO_NAMESPACE or --namespace (no {namespace_file} either)")
        token = _bearer(e.get("ARGO_TOKEN", ""))
        file = token_file if token is None and token_file.is_file() else None
        source = "ARGO_TOKEN" if token else str(file) if file else "none"
        if insecure is None:
            insecure = e.get("ARGO_INSECURE_SKIP_VERIFY", "false").strip().lower() in _TRUE
        ca = ca_file or e.get("ARGO_CA_FILE", "").strip() or None
        # The Job mounts the CA from an optional ConfigMap: a missing file means "not
        # configured", so fall back to the system trust (a publicly trusted certificate).
        verify: bool | str = False if insecure else (ca if ca and Path(ca).is_file() else True)
        if isinstance(verify, str):
            try:
                ssl.create_default_context(cafile=verify)
            except ssl.SSLError as exc:
                raise ValueError(f"ARGO_CA_FILE={verify} holds no usable PEM certificate ({exc})") from None
        return cls(url=url, namespace=ns, token=token, token_file=file, token_source=source, verify=verify, ca_file=ca)

    def authorization(self) -> str | None:
        """The ``Authorization`` header value now: the token file is read on every call, as client-go does."""
        if self.token_file is None:
            return self.token
        try:
            return _bearer(self.token_file.read_text())
        except OSError:
            return None  # the server answers 401, which names the token source


def _bearer(raw: str) -> str | None:
    raw = raw.strip()
    if not raw:
        return None
    return raw if raw.lower().startswith("bearer ") else f"Bearer {raw}"


def _cert_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error wrapped inside a requests/urllib3 error, if any."""
    stack, seen = [exc], set()
    while stack:
        error = stack.pop()
        if isinstance(error, ssl.SSLCertVerificationError):
            return error
        if id(error) in seen:
            continue
        seen.add(id(error))
        linked = (error.__cause__, error.__context__, getattr(error, "reason", None), *error.args)
        stack.extend(e for e in linked if isinstance(e, BaseException))
    return None


def _tls_hint(config: ServerConfig, failure: ssl.SSLCertVerificationError) -> str:
    """What to configure so that the server's certificate verifies; the missing option comes first."""
    host = urlsplit(config.url).hostname or config.url
    reason = failure.verify_message or str(failure)
    insecure = "or set ARGO_INSECURE_SKIP_VERIFY=true (test clusters only)"
    server_cert = (
        f"give the Argo Server a certificate for {host} (Secret argo-server-tls; its default self-signed "
        "one names only localhost)"
    )
    if failure.verify_code in _NAME_MISMATCH:
        return f"the Argo Server's certificate is not valid for {host} ({reason}): {server_cert}, {insecure}"
    if config.ca_file and not Path(config.ca_file).is_file():
        first = (
            f"ARGO_CA_FILE={config.ca_file} does not exist: create ConfigMap argo-server-ca (key ca.crt) "
            "with the CA of the Argo Server's certificate"
        )
    elif config.ca_file:
        first = (
            f"the Argo Server's certificate does not chain to the CA in ARGO_CA_FILE={config.ca_file} "
            f"({reason}): put the CA that signed it in ConfigMap argo-server-ca (key ca.crt)"
        )
    else:
        first = (
            f"ARGO_CA_FILE is not set and the system trust does not know the server's CA ({reason}): "
            "set ARGO_CA_FILE to the CA of the Argo Server's certificate"
        )
    return f"{first}, or {server_cert} from a CA the image trusts, {insecure}"


def _server_message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return (response.text or "").strip()[:500]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:500]
    return str(body)[:500]


def _json(response: Any, method: str, path: str) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        raise UnreachableError(
            f"{method} {path}: HTTP {response.status_code} but not JSON ({response.text[:80]!r}); is ARGO_SERVER "
            "the Argo Server API (not a login page or another service)?"
        ) from None


class ArgoClient:
    """The three calls the submitter makes, with retries on transient failures."""

    def __init__(
        self,
        config: ServerConfig,
        attempts: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import requests

        self.config = config
        self.attempts, self.backoff, self.max_backoff, self.sleep = attempts, backoff, max_backoff, sleep
        self.session = requests.Session()
        if config.verify is False:
            import urllib3

            # One warning for the whole run instead of urllib3's on every request.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning("TLS verification of %s is off (ARGO_INSECURE_SKIP_VERIFY)", config.url)
        self.session.headers["Accept"] = "application/json"

    def _auth_message(self, method: str, path: str, status: int, detail: str) -> str:
        verb = {"POST": "create", "GET": "get", "PUT": "update"}.get(method, method)
        if status == 401:
            hint = (
                f"the token from {self.config.token_source} was not accepted; check ARGO_TOKEN or the "
                "ServiceAccount token, and that the Argo Server runs with --auth-mode=client"
            )
        else:
            hint = (
                f"the token from {self.config.token_source} lacks RBAC to {verb} workflows in namespace "
                f"{self.config.namespace!r}; check the Role/RoleBinding of the ServiceAccount "
                "(k8s/job-submitter.yaml)"
            )
        return f"{method} {path}: HTTP {status} {detail}: {hint}"

    def _send(self, method: str, url: str, body: Any) -> Any:
        authorization = self.config.authorization()
        return self.session.request(
            method,
            url,
            json=body,
            headers={"Authorization": authorization} if authorization else None,
            timeout=self.config.request_timeout,
            verify=self.config.verify,  # per request: requests lets REQUESTS_CA_BUNDLE override session.verify
        )

    def request(
        self, method: str, path: str, body: Any = None, retry_conflict: bool = False, attempts: int | None = None
    ) -> Any:
        """Send one API call; return the decoded JSON. ``retry_conflict``: see :meth:`create`;
        ``attempts`` overrides the client's number of tries."""
        import requests

        url = self.config.url + path
        last = ""
        attempts = attempts or self.attempts
        for attempt in range(1, attempts + 1):
            try:
                response = self._send(method, url, body)
                if response.status_code == 401 and self.config.token_file is not None:
                    # The kubelet may have rotated the token since it was read: read it again, once.
                    log.warning(
                        "%s %s: HTTP 401; reading %s again and retrying once", method, path, self.config.token_source
                    )
                    response = self._send(method, url, body)
            except (requests.ConnectionError, requests.Timeout) as exc:
                failure = _cert_failure(exc)
                if failure is not None:
                    raise TLSConfigError(
                        f"{method} {path}: TLS verification of {self.config.url} failed: "
                        + _tls_hint(self.config, failure)
                    ) from None
                last = f"cannot reach {self.config.url}: {type(exc).__name__}"
            else:
                status = response.status_code
                if status < 300:
                    return _json(response, method, path)
                detail = _server_message(response)
                if status in (401, 403):
                    raise AuthError(self._auth_message(method, path, status, detail), status)
                if status == 409 and retry_conflict and attempt > 1:
                    return None
                if status < 500 and status != 429:
                    raise RejectedError(f"{method} {path}: HTTP {status}: {detail}", status)
                last = f"HTTP {status}: {detail}"
            if attempt < attempts:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                log.warning("%s %s failed (%s); retry %d/%d in %.1fs", method, path, last, attempt, attempts - 1, delay)
                self.sleep(delay)
        raise UnreachableError(
            f"{method} {path}: giving up after {attempts} attempts: {last}; "
            f"check ARGO_SERVER ({self.config.url}) and that the Argo Server is running"
        )

    def create(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """POST the workflow. It carries a fixed name, so a retried create that meets 409 adopts it."""
        ns = self.config.namespace
        created = self.request(
            "POST", f"/api/v1/workflows/{ns}", {"namespace": ns, "workflow": workflow}, retry_conflict=True
        )
        if created is None:
            return self.get(workflow["metadata"]["name"])
        return dict(created)

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v1/workflows/{self.config.namespace}/{name}"))

    def stop(self, name: str, message: str, attempts: int | None = None) -> dict[str, Any]:
        ns = self.config.namespace
        body = {"name": name, "namespace": ns, "message": message}
        return dict(self.request("PUT", f"/api/v1/workflows/{ns}/{name}/stop", body, attempts=attempts))
