"""The artifact repository: a local directory (default) or an S3 bucket, plus Argo's archiving.

Locally, ``artifactRepositoryRef`` (a ConfigMap on the cluster) maps to ``--artifacts``:
a key ``raw/<run>/flows.parquet`` is ``<DIR>/raw/<run>/flows.parquet`` or
``s3://<bucket>/raw/<run>/flows.parquet``. Staging happens outside the container, as
Argo's executor does: inputs are downloaded to the sandbox before the task runs and
outputs are uploaded after it exits (also after a failure, when the file exists).

Archiving follows Argo: ``archive: {none: {}}`` stores the plain file; without it an
output is stored as a gzipped tar holding the file or directory under its base name
(key ``<name>.tgz`` by default), and unpacked again when it is staged as an input.

An input key may name a directory, as in Argo's S3 driver (``loadS3Artifact``): an object
with exactly that key wins; otherwise the objects under ``<key>/`` are staged, recursively,
as a directory whose files keep their paths below the prefix (the fan-in of a loop whose
children each wrote ``<key>/part=<k>/...``). Neither: :class:`ArtifactNotFound`. A
directory is never unpacked, as Argo's tarball detection says no to it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from .errors import ExecutorError

__all__ = [
    "ArtifactNotFound",
    "Repository",
    "LocalRepository",
    "S3Repository",
    "open_repository",
    "pack",
    "unpack_or_copy",
]

log = logging.getLogger(__name__)


class ArtifactNotFound(ExecutorError):
    """The key is not in the repository."""


class Repository(Protocol):
    """Where artifacts live. Keys are relative (``raw/<run>/flows.parquet``)."""

    def uri(self, key: str, bucket: str | None = None) -> str: ...

    def put(self, local: Path, key: str, bucket: str | None = None) -> None: ...

    def get(self, key: str, dest: Path, bucket: str | None = None) -> None:
        """Place the object ``key`` at ``dest`` as a file, or the objects under ``key/`` as a directory."""
        ...


def _safe_key(key: str) -> str:
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ExecutorError(f"artifact key {key!r} is empty or leaves the repository ('..')")
    return "/".join(parts)


def _below(prefix: str, key: str) -> str:
    """The path of object ``key`` relative to the directory ``prefix``; refuses one that would leave it."""
    rel = key[len(prefix) :].strip("/")
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts):
        raise ExecutorError(f"illegal object key {key!r}: it does not name a file below {prefix!r}")
    return rel


def _is_partial(path: Path) -> bool:
    """A temp file of a :meth:`LocalRepository.put` still being written (not an object yet)."""
    return path.name.startswith(".") and path.name.endswith(".part")


class LocalRepository:
    """A directory standing in for the bucket; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def __str__(self) -> str:
        return str(self.root)

    def _path(self, key: str, bucket: str | None) -> Path:
        if bucket:
            log.debug("bucket %s of key %s maps to the local directory %s", bucket, key, self.root)
        return self.root / _safe_key(key)

    def uri(self, key: str, bucket: str | None = None) -> str:
        return str(self._path(key, bucket))

    def put(self, local: Path, key: str, bucket: str | None = None) -> None:
        dest = self._path(key, bucket)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        try:
            shutil.copyfile(local, tmp)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def get(self, key: str, dest: Path, bucket: str | None = None) -> None:
        src = self._path(key, bucket)
        if src.is_file():
            shutil.copyfile(src, dest)
            return
        files = self._files_under(src)
        if not files:
            raise ArtifactNotFound(f"{src}: no such artifact in the local repository (no file, no files under it)")
        for rel in files:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, target)

    @staticmethod
    def _files_under(src: Path) -> list[Path]:
        """Files below ``src`` as relative paths, sorted; symlinks are not objects (Argo's upload skips them)."""
        if not src.is_dir() or src.is_symlink():
            return []
        found = []
        for top, dirs, names in os.walk(src):
            dirs[:] = [d for d in dirs if not (Path(top) / d).is_symlink()]
            for name in names:
                path = Path(top) / name
                if path.is_file() and not path.is_symlink() and not _is_partial(path):
                    found.append(path.relative_to(src))
        return sorted(found)


class S3Repository:
    """An S3 bucket through boto3 (MinIO, moto or AWS): path-style, standard retries."""

    def __init__(self, bucket: str, client: Any, endpoint: str) -> None:
        self.bucket, self.client, self.endpoint = bucket, client, endpoint

    def __str__(self) -> str:
        return f"s3://{self.bucket} at {self.endpoint}"

    def uri(self, key: str, bucket: str | None = None) -> str:
        return f"s3://{bucket or self.bucket}/{_safe_key(key)}"

    def put(self, local: Path, key: str, bucket: str | None = None) -> None:
        self._call("upload", key, bucket, lambda b, k: self.client.upload_file(str(local), b, k))

    def get(self, key: str, dest: Path, bucket: str | None = None) -> None:
        try:
            self._call("download", key, bucket, lambda b, k: self.client.download_file(b, k, str(dest)))
            return
        except ArtifactNotFound:
            objects = self._list(key, bucket)  # NoSuchKey: the key may be a directory
            if not objects:
                raise
        prefix = _safe_key(key) + "/"
        for obj in objects:
            target = dest / _below(prefix, obj)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._call("download", obj, bucket, lambda b, k, t=target: self.client.download_file(b, k, str(t)))

    def _list(self, key: str, bucket: str | None) -> list[str]:
        """Keys of the objects under ``key/``, recursively; ``dir/`` placeholder objects are skipped, as Argo does."""
        found: list[str] = []

        def collect(b: str, k: str) -> None:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix=k + "/"):
                found.extend(o["Key"] for o in page.get("Contents") or [] if not o["Key"].endswith("/"))

        self._call("list", key, bucket, collect)
        return sorted(found)

    def _call(self, what: str, key: str, bucket: str | None, fn: Any) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        b, k = bucket or self.bucket, _safe_key(key)
        try:
            fn(b, k)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                raise ArtifactNotFound(f"s3://{b}/{k}: not found") from exc
            raise ExecutorError(
                f"s3://{b}/{k}: {what} failed ({code or exc}); check the bucket and MINIO_ACCESS_KEY/MINIO_SECRET_KEY"
            ) from exc
        except BotoCoreError as exc:
            raise ExecutorError(
                f"s3://{b}/{k}: {what} failed at {self.endpoint} ({type(exc).__name__}); check MINIO_ENDPOINT"
            ) from exc


def open_repository(spec: str, env: dict[str, str], endpoint: str | None = None) -> LocalRepository | S3Repository:
    """``DIR`` → :class:`LocalRepository`; ``s3://bucket`` → :class:`S3Repository` with the ``MINIO_*`` env.

    ``endpoint`` (``--s3-endpoint``) overrides ``MINIO_ENDPOINT``; without either, boto3's
    defaults (AWS) apply. Credentials come from ``MINIO_ACCESS_KEY``/``MINIO_SECRET_KEY``, else
    boto3's usual chain (``AWS_*`` variables, profiles).
    """
    parsed = urlparse(spec)
    if parsed.scheme != "s3":
        if parsed.scheme and len(parsed.scheme) > 1:
            raise ExecutorError(f"--artifacts {spec}: use a directory or s3://bucket")
        return LocalRepository(Path(spec))
    if not parsed.netloc or parsed.path.strip("/"):
        raise ExecutorError(f"--artifacts {spec}: give the bucket only (s3://bucket); keys come from the manifest")
    import boto3
    from botocore.config import Config

    url = endpoint or env.get("MINIO_ENDPOINT") or None
    if url and "://" not in url:
        secure = env.get("MINIO_SECURE", "false").lower() in {"1", "true", "yes", "on"}
        url = ("https://" if secure else "http://") + url
    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=env.get("MINIO_ACCESS_KEY") or None,
        aws_secret_access_key=env.get("MINIO_SECRET_KEY") or None,
        region_name=env.get("MINIO_REGION") or "us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=5,
            read_timeout=60,
        ),
    )
    return S3Repository(parsed.netloc, client, url or "AWS default endpoint")


def pack(path: Path, dest_dir: Path) -> Path:
    """Argo's default archive: a gzipped tar of ``path`` (file or directory) under its base name."""
    tgz = dest_dir / f"{path.name}.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(path, arcname=path.name)
    return tgz


def unpack_or_copy(src: Path, dest: Path, archived: bool | None) -> None:
    """Place a downloaded artifact at ``dest``: unpack a tarball (``archived`` or detected), else move it.

    As Argo's executor does, a tarball with one top-level entry becomes ``dest`` itself; one
    with several becomes a directory ``dest`` holding them. Extraction uses tarfile's
    ``data`` filter (no absolute paths, links out of the tree or devices). A directory (a
    key prefix) is moved as it is.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    is_tar = not src.is_dir() and (archived if archived is not None else _is_tarball(src))
    if not is_tar:
        shutil.move(str(src), dest)
        return
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.untar."))
    try:
        with tarfile.open(src) as tar:
            tar.extractall(tmp, filter="data")
        entries = list(tmp.iterdir())
        if len(entries) == 1:
            shutil.move(str(entries[0]), dest)
        else:
            shutil.move(str(tmp), dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        src.unlink(missing_ok=True)


def _is_tarball(path: Path) -> bool:
    try:
        with tarfile.open(path) as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False
