"""URI-based storage: local paths, ``file://`` and ``s3://bucket/key`` (MinIO).

Reads hand back a local file (downloaded for S3); writes go to a temporary file that
is published only when complete (``os.replace`` locally, a finished upload on S3), so
a killed stage never leaves a half-written artifact where the next stage would read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .config import Settings
from .errors import InputError, TransientError

__all__ = ["Location", "Storage", "sha256_file"]

log = logging.getLogger(__name__)
# S3 answers meaning "these credentials are not (or no longer) valid": a rotation in progress.
_CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)


@dataclass(frozen=True)
class Location:
    """A parsed URI: ``scheme`` is ``file`` or ``s3``."""

    scheme: str
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> Location:
        parsed = urlparse(uri)
        if parsed.scheme == "s3":
            key = parsed.path.lstrip("/")
            if not parsed.netloc or not key:
                raise InputError(f"{uri}: an S3 URI needs a bucket and a key (s3://bucket/key)")
            return cls("s3", parsed.netloc, key)
        if parsed.scheme == "file":
            return cls("file", "", unquote(parsed.path))
        if parsed.scheme and len(parsed.scheme) > 1:  # one letter is a Windows drive
            raise InputError(f"{uri}: unsupported URI scheme {parsed.scheme!r} (use a path, file:// or s3://)")
        return cls("file", "", uri)

    @property
    def path(self) -> Path:
        return Path(self.key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.scheme == "s3" else self.key


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Storage:
    """Reads and writes artifacts by URI. One instance per stage run."""

    def __init__(self, settings: Settings, workdir: Path | None = None) -> None:
        self.settings = settings
        self._workdir = workdir
        self._owns_workdir = workdir is None
        self._s3: Any = None

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="stage-"))
        return self._workdir

    def s3(self) -> Any:
        """A boto3 S3 client for MinIO: path-style addressing, standard retries with backoff."""
        if self._s3 is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            endpoint = s.minio_endpoint
            if endpoint and "://" not in endpoint:
                endpoint = ("https://" if s.minio_secure else "http://") + endpoint
            self._s3 = boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id=s.minio_access_key,
                aws_secret_access_key=s.minio_secret_key,
                region_name=s.minio_region,
                config=Config(
                    s3={"addressing_style": "path"},
                    retries={"mode": "standard", "max_attempts": s.minio_max_attempts},
                    connect_timeout=s.minio_connect_timeout,
                    read_timeout=s.minio_read_timeout,
                ),
            )
        return self._s3

    def fetch(self, uri: str) -> Path:
        """Return a local path holding the artifact at ``uri`` (downloaded for S3)."""
        loc = Location.parse(uri)
        if loc.scheme == "file":
            try:
                mode = loc.path.stat().st_mode
            except FileNotFoundError as exc:
                raise InputError(f"{uri}: no such file") from exc
            except OSError as exc:  # a symlink loop, a permission: say which
                raise InputError(f"{uri}: cannot open ({exc.strerror})") from exc
            if not stat.S_ISREG(mode):
                raise InputError(f"{uri}: not a regular file")
            return loc.path
        dest = self.workdir / "in" / loc.bucket / loc.key
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        with self._s3_errors(uri):
            self.s3().download_file(loc.bucket, loc.key, str(tmp))
        os.replace(tmp, dest)
        return dest

    def exists(self, uri: str) -> bool:
        loc = Location.parse(uri)
        if loc.scheme == "file":
            return loc.path.exists()
        from botocore.exceptions import ClientError

        try:
            with self._s3_errors(uri):
                self.s3().head_object(Bucket=loc.bucket, Key=loc.key)
        except InputError:
            return False
        except ClientError:
            return False
        return True

    def staging(self, uri: str, suffix: str = "") -> Path:
        """A new empty temporary file to write ``uri``'s content into before ``publish``.

        Locally it sits beside the target (so publishing is one rename); for S3 it sits in
        the stage's workdir. A target whose folder cannot be created is an InputError.
        """
        loc = Location.parse(uri)
        if loc.scheme == "file":
            try:
                loc.path.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix=f".{loc.path.name}.", suffix=suffix + ".part", dir=loc.path.parent)
            except (FileExistsError, NotADirectoryError) as exc:
                raise InputError(f"{uri}: cannot write here, a parent of it is a file ({exc.filename})") from exc
        else:
            staging = self.workdir / "out"
            staging.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"{Path(loc.key).name}.", suffix=suffix + ".part", dir=staging)
        os.close(fd)
        return Path(name)

    @contextlib.contextmanager
    def writing(self, uri: str, suffix: str = "") -> Iterator[Path]:
        """Yield a temporary local path; publish it to ``uri`` only if the block succeeds.

        Locally the temp file sits beside the target and is renamed over it; on S3 the
        object appears only when the upload completes. On error the temp file is removed.
        """
        tmp = self.staging(uri, suffix)
        try:
            yield tmp
            self.publish(tmp, uri)
        finally:
            tmp.unlink(missing_ok=True)

    def publish(self, local: Path, uri: str) -> None:
        """Copy a finished local file to ``uri`` atomically."""
        loc = Location.parse(uri)
        if loc.scheme == "file":
            loc.path.parent.mkdir(parents=True, exist_ok=True)
            if local.parent.resolve() == loc.path.parent.resolve():
                os.chmod(local, 0o644)  # mkstemp creates 0600; artifacts are read by other users/containers
                os.replace(local, loc.path)
                return
            fd, name = tempfile.mkstemp(prefix=f".{loc.path.name}.", suffix=".part", dir=loc.path.parent)
            os.close(fd)
            try:
                shutil.copyfile(local, name)
                os.chmod(name, 0o644)
                os.replace(name, loc.path)
            finally:
                Path(name).unlink(missing_ok=True)
            return
        try:
            with self._s3_errors(uri):
                self.s3().upload_file(str(local), loc.bucket, loc.key)
        except BaseException:
            self._abort_multipart(loc)
            raise
        log.debug("uploaded %s", uri)

    def remove(self, uri: str) -> None:
        """Delete the object at ``uri`` if it exists (rolling back a partly published set)."""
        loc = Location.parse(uri)
        if loc.scheme == "file":
            loc.path.unlink(missing_ok=True)
            return
        with self._s3_errors(uri):
            self.s3().delete_object(Bucket=loc.bucket, Key=loc.key)

    def list_objects(self, bucket: str, prefix: str) -> list[tuple[str, int, str]]:
        """(key, bytes, ETag) of every object in ``bucket`` whose key starts with ``prefix``, in key order."""
        uri = f"s3://{bucket}/{prefix}"
        found: list[tuple[str, int, str]] = []
        with self._s3_errors(uri):
            for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                found += [
                    (o["Key"], int(o["Size"]), str(o.get("ETag", "")).strip('"')) for o in page.get("Contents", [])
                ]
        return sorted(found)

    def _abort_multipart(self, loc: Location) -> None:
        """Best effort: abort unfinished multipart uploads of ``loc`` so no orphan parts stay billed and listed."""
        try:
            client = self.s3()
            found = client.list_multipart_uploads(Bucket=loc.bucket, Prefix=loc.key).get("Uploads", [])
            for upload in (u for u in found if u.get("Key") == loc.key):
                client.abort_multipart_upload(Bucket=loc.bucket, Key=loc.key, UploadId=upload["UploadId"])
                log.warning("aborted the unfinished multipart upload of s3://%s/%s", loc.bucket, loc.key)
        except Exception as exc:  # noqa: BLE001 - the upload's own error is the one to report
            log.warning("could not abort multipart uploads of s3://%s/%s: %s", loc.bucket, loc.key, type(exc).__name__)

    @staticmethod
    def same_place(a: str, b: str) -> bool:
        """Whether two URIs name the same object (local paths compared absolute, symlinks resolved)."""
        la, lb = Location.parse(a), Location.parse(b)
        if la.scheme == "file" and lb.scheme == "file":
            return os.path.realpath(la.path) == os.path.realpath(lb.path)
        return (la.scheme, la.bucket, la.key) == (lb.scheme, lb.bucket, lb.key)

    def cleanup(self) -> None:
        """Remove downloaded inputs and staged outputs (only a workdir this instance created)."""
        if self._workdir is not None and self._owns_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    @contextlib.contextmanager
    def _s3_errors(self, uri: str) -> Iterator[None]:
        """Map S3 errors: missing key/bucket → InputError, unreachable/5xx/rejected credentials → TransientError.

        boto3's transfer manager wraps the last error of ``upload_file`` in
        ``S3UploadFailedError`` and a repeatedly cut download in ``RetriesExceededError``;
        both are unwrapped here so a lasting fault still ends in exit 75, not exit 1.
        """
        from boto3.exceptions import RetriesExceededError, S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        endpoint = self.settings.minio_endpoint or "AWS default"
        try:
            yield
        except S3UploadFailedError as exc:
            cause = exc.__context__
            if isinstance(cause, ClientError):
                raise self._client_error(uri, endpoint, cause) from exc
            raise TransientError(
                f"{uri}: upload to S3 at {endpoint} failed after retries ({exc}); check MINIO_ENDPOINT"
            ) from exc
        except RetriesExceededError as exc:
            raise TransientError(
                f"{uri}: download from S3 at {endpoint} kept failing after retries; check MINIO_ENDPOINT"
            ) from exc
        except ClientError as exc:
            raise self._client_error(uri, endpoint, exc) from exc
        except NoCredentialsError as exc:
            raise InputError(f"{uri}: no S3 credentials; set MINIO_ACCESS_KEY and MINIO_SECRET_KEY") from exc
        except BotoCoreError as exc:
            raise TransientError(
                f"{uri}: S3 at {endpoint} unreachable after retries ({type(exc).__name__}); check MINIO_ENDPOINT"
            ) from exc

    @staticmethod
    def _client_error(uri: str, endpoint: str, exc: Any) -> Exception:
        """Which S3 answers are worth retrying (exit 75) and which are bad input or config (exit 2).

        Rejected credentials are transient: while a MinIO key is rotated (SECURITY.md), a pod
        that started with the old key gets InvalidAccessKeyId/SignatureDoesNotMatch once the
        old key is deleted, and Argo's retry starts a pod with the new Secret. Argo's retry
        limit bounds the cost when the Secret is simply wrong. AccessDenied is an authenticated
        key that the bucket policy refuses: retrying cannot change that, so it is exit 2.
        """
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}:
            return InputError(f"{uri}: not found in S3 ({code})")
        if code in _CREDENTIAL_CODES:
            return TransientError(
                f"{uri}: S3 at {endpoint} rejected the credentials ({code}); a retry picks up a rotated "
                "Secret — if it persists, check MINIO_ACCESS_KEY/MINIO_SECRET_KEY"
            )
        if code in {"403", "AccessDenied", "AllAccessDisabled"}:
            return InputError(f"{uri}: access denied ({code}); the bucket policy refuses this MINIO_ACCESS_KEY")
        if status >= 500 or code in {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"}:
            return TransientError(f"{uri}: S3 at {endpoint} failed after retries ({code}); check MINIO_ENDPOINT")
        return InputError(f"{uri}: S3 refused the request ({code or status}: {err.get('Message', '')})")
