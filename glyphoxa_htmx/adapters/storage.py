"""Object storage for voice samples: S3/MinIO through boto3, or a local directory (the default).

Configuration (read at each call, like the TTS adapters, so tests can point it elsewhere):

S3_BUCKET               (empty)        set: store in this S3/MinIO bucket; empty: local directory
S3_ENDPOINT_URL         (empty)        MinIO or another S3-compatible endpoint (empty: AWS)
S3_REGION               us-east-1      region for signing
S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY   credentials (empty: boto3's default chain)
VOICE_SAMPLES_DIR       <instance>/voice-samples   the local directory

Keys are ``voice-samples/{tenant_id}/{sample_id}.{ext}``. Playback URLs expire after an hour:
S3 presigned GETs, or for the local directory a URL of this app signed with the secret key over
(tenant, sample, expiry) and checked again against the signed-in user's tenant when served."""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

URL_TTL = 3600


class StorageError(Exception):
    """The object store failed (unreachable, refused, missing bucket); ``details`` is for the log."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


def object_key(tenant_id: str, sample_id: str, ext: str) -> str:
    return f"voice-samples/{tenant_id}/{sample_id}.{ext}"


class Storage(Protocol):
    kind: str

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


class S3Storage:
    kind = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str = "",
        region: str = "us-east-1",
        access_key: str = "",
        secret_key: str = "",
    ) -> None:
        self.bucket = bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=Config(
                signature_version="s3v4",
                connect_timeout=5,
                read_timeout=20,
                retries={"max_attempts": 2},
                s3={"addressing_style": "path"},
            ),
        )

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, endpoint={self.client.meta.endpoint_url!r})"

    def _call(self, fn: Callable[..., Any], **kw: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kw)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"{type(exc).__name__}: {exc}") from exc

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._call(self.client.put_object, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        body: bytes = self._call(self.client.get_object, Key=key)["Body"].read()
        return body

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Key=key)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise StorageError(f"ClientError: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{type(exc).__name__}: {exc}") from exc

    def presigned_url(self, key: str, ttl: int = URL_TTL) -> str:
        try:
            url: str = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl
            )
            return url
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"{type(exc).__name__}: {exc}") from exc


class LocalStorage:
    kind = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage(root={str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise StorageError(f"key outside the storage directory: {key!r}")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"{type(exc).__name__}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise StorageError(f"{type(exc).__name__}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"{type(exc).__name__}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def get_storage(instance_path: str) -> S3Storage | LocalStorage:
    bucket = _env("S3_BUCKET")
    if bucket:
        return S3Storage(
            bucket,
            endpoint_url=_env("S3_ENDPOINT_URL"),
            region=_env("S3_REGION", "us-east-1"),
            access_key=_env("S3_ACCESS_KEY_ID"),
            secret_key=_env("S3_SECRET_ACCESS_KEY"),
        )
    return LocalStorage(_env("VOICE_SAMPLES_DIR") or Path(instance_path) / "voice-samples")


# ---- signed URLs for the local directory --------------------------------------------------------


def _signature(secret: str, tenant_id: str, sample_id: str, expires: int) -> str:
    msg = f"voice-sample\n{tenant_id}\n{sample_id}\n{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def sign(secret: str, tenant_id: str, sample_id: str, ttl: int = URL_TTL, now: float | None = None) -> tuple[int, str]:
    expires = int((now if now is not None else time.time()) + ttl)
    return expires, _signature(secret, tenant_id, sample_id, expires)


def verify(secret: str, tenant_id: str, sample_id: str, expires: str, sig: str) -> bool:
    try:
        exp = int(expires)
    except (TypeError, ValueError):
        return False
    if exp < time.time():
        return False
    return hmac.compare_digest(_signature(secret, tenant_id, sample_id, exp), sig or "")
