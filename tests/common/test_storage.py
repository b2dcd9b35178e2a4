"""URI storage against local files and moto's S3 server over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.common.config import Settings
from stages.common.errors import InputError, TransientError
from stages.common.storage import Location, Storage, sha256_file
from workflows.local.services import free_port


@pytest.mark.parametrize(
    ("uri", "scheme", "bucket", "key"),
    [
        ("/data/flows.parquet", "file", "", "/data/flows.parquet"),
        ("relative/x.json", "file", "", "relative/x.json"),
        ("file:///data/a%20b.log", "file", "", "/data/a b.log"),
        ("s3://cybersec-mlops/raw/r1/flows.parquet", "s3", "cybersec-mlops", "raw/r1/flows.parquet"),
    ],
)
def test_location_parse(uri: str, scheme: str, bucket: str, key: str) -> None:
    loc = Location.parse(uri)
    assert (loc.scheme, loc.bucket, loc.key) == (scheme, bucket, key)


@pytest.mark.parametrize("uri", ["s3://bucket-only", "s3:///key-only", "gs://bucket/key"])
def test_location_rejects_bad_uris(uri: str) -> None:
    with pytest.raises(InputError, match=uri.split("/")[0]):
        Location.parse(uri)


def test_local_write_is_atomic(tmp_path: Path) -> None:
    storage = Storage(Settings())
    target = tmp_path / "out" / "flows.parquet"
    with storage.writing(str(target)) as tmp:
        tmp.write_bytes(b"complete")
        assert not target.exists(), "the target must not appear before the block ends"
    assert target.read_bytes() == b"complete"

    with pytest.raises(RuntimeError), storage.writing(str(target)) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"complete"
    assert sorted(p.name for p in target.parent.iterdir()) == ["flows.parquet"], "no temp file left behind"


def test_missing_local_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.parquet: no such file"):
        Storage(Settings()).fetch(str(tmp_path / "nope.parquet"))


def test_s3_round_trip(s3_server: dict[str, str], tmp_path: Path) -> None:
    storage = Storage(Settings.from_env(s3_server), workdir=tmp_path / "work")
    uri = "s3://cybersec-mlops/raw/test-run/flows.parquet"
    with storage.writing(uri) as tmp:
        tmp.write_bytes(b"x" * 10_000)
        assert not storage.exists(uri)
    assert storage.exists(uri)
    local = storage.fetch(uri)
    assert local.read_bytes() == b"x" * 10_000
    assert sha256_file(local) == sha256_file(tmp_path / "work" / "in" / "cybersec-mlops" / "raw/test-run/flows.parquet")


def test_s3_failed_write_publishes_nothing(s3_server: dict[str, str], tmp_path: Path) -> None:
    storage = Storage(Settings.from_env(s3_server), workdir=tmp_path)
    uri = "s3://cybersec-mlops/raw/failed-run/flows.parquet"
    with pytest.raises(RuntimeError), storage.writing(uri) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert not storage.exists(uri)


def test_s3_missing_key_is_input_error(s3_server: dict[str, str], tmp_path: Path) -> None:
    storage = Storage(Settings.from_env(s3_server), workdir=tmp_path)
    with pytest.raises(InputError, match=r"s3://cybersec-mlops/raw/none/flows.parquet: not found"):
        storage.fetch("s3://cybersec-mlops/raw/none/flows.parquet")


def test_s3_unreachable_is_transient_and_names_the_setting(tmp_path: Path) -> None:
    env = {
        "MINIO_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "MINIO_MAX_ATTEMPTS": "2",
        "MINIO_ACCESS_KEY": "k",
        "MINIO_SECRET_KEY": "s",
    }
    storage = Storage(Settings.from_env(env), workdir=tmp_path)
    with pytest.raises(TransientError, match="unreachable after retries.*check MINIO_ENDPOINT"):
        storage.fetch("s3://cybersec-mlops/raw/x/flows.parquet")


def test_settings_never_show_secrets() -> None:
    s = Settings.from_env({"MINIO_SECRET_KEY": "hunter2-secret", "PG_PASSWORD": "pg-pass-123"})
    assert "hunter2-secret" not in repr(s) and "pg-pass-123" not in repr(s)
    assert s.minio_secret_key == "hunter2-secret"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://user:secret@mlflow:5000/path?x=1", "http://mlflow:5000/path?x=1"),
        ("https://token@mlflow.example", "https://mlflow.example"),
        ("http://mlflow:5000", "http://mlflow:5000"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ],
)
def test_redact_uri_drops_credentials(uri: str, shown: str) -> None:
    from stages.common.config import redact_uri

    assert redact_uri(uri) == shown


def test_s3_failed_upload_aborts_its_multipart_upload(
    s3_server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload that dies after starting a multipart upload leaves no unfinished upload behind."""
    from botocore.exceptions import ClientError

    storage = Storage(Settings.from_env(s3_server), workdir=tmp_path)
    client = storage.s3()
    key = "raw/multipart-run/flows.parquet"

    def dies_midway(filename: str, bucket: str, key: str, **_: object) -> None:
        client.create_multipart_upload(Bucket=bucket, Key=key)
        raise ClientError({"Error": {"Code": "ServiceUnavailable"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "Put")

    monkeypatch.setattr(client, "upload_file", dies_midway)
    local = tmp_path / "flows.parquet"
    local.write_bytes(b"x" * 100)
    with pytest.raises(TransientError):
        storage.publish(local, f"s3://cybersec-mlops/{key}")
    assert client.list_multipart_uploads(Bucket="cybersec-mlops", Prefix=key).get("Uploads", []) == []
    assert not storage.exists(f"s3://cybersec-mlops/{key}")


def test_output_under_a_file_is_input_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("a file, not a folder")
    with pytest.raises(InputError, match="a parent of it is a file"):
        Storage(Settings()).staging(str(tmp_path / "plain" / "flows.parquet"))


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Get")


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("InvalidAccessKeyId", 403, TransientError),  # the old key was deleted mid-rotation: the retry has the new one
        ("SignatureDoesNotMatch", 403, TransientError),  # a secret rotated under a running pod
        ("ExpiredToken", 400, TransientError),
        ("AccessDenied", 403, InputError),  # a valid key the bucket policy refuses: retrying cannot help
        ("NoSuchKey", 404, InputError),
        ("SlowDown", 503, TransientError),
        ("InternalError", 500, TransientError),
    ],
)
def test_s3_error_classes(code: str, status: int, kind: type[Exception]) -> None:
    """SECURITY.md's rotation section relies on rejected credentials being retried (exit 75)."""
    storage = Storage(Settings())
    with pytest.raises(kind, match=code), storage._s3_errors("s3://b/k"):
        raise _client_error(code, status)


def test_missing_s3_credentials_are_a_configuration_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = Settings.from_env({"MINIO_ENDPOINT": "http://127.0.0.1:9", "MINIO_MAX_ATTEMPTS": "1"})
    with pytest.raises(InputError, match="no S3 credentials"):
        Storage(settings, workdir=tmp_path).fetch("s3://b/k")


def test_symlink_loop_and_directory_are_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    storage = Storage(Settings())
    with pytest.raises(InputError, match=r"a: cannot open \(Too many levels of symbolic links\)"):
        storage.fetch(str(tmp_path / "a"))
    with pytest.raises(InputError, match="not a regular file"):
        storage.fetch(str(tmp_path))
