"""One storage interface over two backends: a local lake directory or S3-compatible buckets.

Each layer (bronze, silver, gold) is a :class:`LayerStore`. Readers and writers use the same
calls on both backends: pyarrow filesystems carry the data (fast, native streams) and, on S3,
boto3 carries the control plane (listing with ETags, small conditional puts, deletes).

Writes are atomic on both backends: a reader sees either the whole object or nothing.
Locally that is a temporary file in the same directory plus ``os.replace``; on S3 the object
is spooled to local disk and uploaded, and S3 exposes it only once the upload completes.
A process killed mid-write leaves a temporary file (local) or an incomplete multipart upload
(S3): neither is ever listed or read, and :meth:`LayerStore.clean_leftovers` removes old ones.

Small control objects can be written conditionally: ``if_absent`` (S3 ``If-None-Match: *``,
locally a hard link that fails when the name exists) and ``if_match`` (S3 ``If-Match``, locally
a compare-and-replace under an exclusive lock on the directory), which is what claims build on.

On S3 every request is retried (``LAKEHOUSE_S3_MAX_ATTEMPTS``, throttling and 5xx answers, dropped
connections) within the connect and read timeouts of the settings; an error that remains is a
:class:`StorageError` naming the bucket, the key and the endpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from stat import S_ISDIR, S_ISLNK
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lakehouse_common.exceptions import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    InvalidKeyError,
    ObjectNotFoundError,
    StorageError,
)
from lakehouse_common.settings import LAYERS, Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

TMP_SUFFIX = ".tmp"
_Paths = list[Path]
_Uploads = list[tuple[str, str]]
_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


@dataclass(frozen=True)
class ObjectInfo:
    """An object in a layer. ``etag`` changes whenever the content may have changed."""

    key: str
    size: int
    etag: str
    modified: datetime


class LayerStore(ABC):
    """A bucket (S3) or a directory (local) holding one layer of the lake."""

    def __init__(self, layer: str) -> None:
        self.layer = layer

    # -- addressing --------------------------------------------------------------------------
    @property
    @abstractmethod
    def filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem that reads this layer's objects."""

    @abstractmethod
    def fs_path(self, key: str) -> str:
        """Path of ``key`` inside :attr:`filesystem`."""

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """``key`` as DuckDB and dbt address it (absolute path or ``s3://bucket/key``)."""

    def table_uri(self, name: str) -> str:
        """Where the Delta table ``name`` of this layer lives, as ``deltalake`` and DuckDB's
        ``delta_scan`` address it."""
        check_key(self.layer, name)
        return self.uri(name)

    @property
    def delta_options(self) -> dict[str, str]:
        """``storage_options`` that tell ``deltalake`` how to reach this layer (none locally)."""
        return {}

    # -- reading -----------------------------------------------------------------------------
    @abstractmethod
    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under ``prefix``, sorted by key; temporary files are never listed.

        With ``start_after``, only keys sorting after it (S3's ``StartAfter``): an incremental
        listing that costs what it finds, not what the prefix holds (locally, directories that
        sort wholly before it are not read, and skipped files are not stat'ed).
        """

    @abstractmethod
    def folders(self) -> tuple[str, ...]:
        """The top-level "folders" (key prefixes up to the first '/'), sorted, without listing objects."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """The object's info, or None when it does not exist."""

    def open_input(self, key: str) -> pa.NativeFile:
        """A sequential stream, decompressed by extension (.gz, .bz2, .zst, .lz4)."""
        return self._open(self.filesystem.open_input_stream, key)

    def open_random(self, key: str) -> pa.NativeFile:
        """A random-access file (``read_at``): local reads, or ranged GETs on S3. No decompression."""
        return self._open(self.filesystem.open_input_file, key)

    def _open(self, opener: Callable[[str], pa.NativeFile], key: str) -> pa.NativeFile:
        try:
            return opener(self.fs_path(key))
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(self.layer, key) from exc
        except OSError as exc:
            if self.stat(key) is None:
                raise ObjectNotFoundError(self.layer, key) from exc
            raise StorageError(f"cannot read {self.uri(key)}: {exc}") from exc

    def read_bytes(self, key: str) -> bytes:
        with self.open_input(key) as stream:
            try:
                return bytes(stream.read())
            except OSError as exc:  # deleted while being read, or the endpoint failed mid-stream
                if self.stat(key) is None:
                    raise ObjectNotFoundError(self.layer, key) from exc
                raise StorageError(f"cannot read {self.uri(key)}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    # -- writing -----------------------------------------------------------------------------
    @abstractmethod
    def open_output(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A writable stream whose content becomes visible at ``key`` only on clean exit."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None) -> bool:
        """Write ``data`` atomically. With ``if_absent`` return False instead of overwriting; with
        ``if_match`` return False unless the object exists with that ETag (compare-and-swap)."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete the objects; missing ones are ignored."""

    @abstractmethod
    def delete_if_match(self, key: str, etag: str) -> bool:
        """Delete the object only while its ETag is ``etag``; False when it changed or is gone."""

    @abstractmethod
    def leftovers(self, older_than: timedelta) -> Sequence[str]:
        """Unfinished writes started more than ``older_than`` ago: temporary files (local) or
        incomplete multipart uploads (S3), as ``<key> (<what>)`` descriptions."""

    @abstractmethod
    def clean_leftovers(self, older_than: timedelta) -> int:
        """Remove :meth:`leftovers` (a write that old is not in progress); returns how many."""


def _after(names: Iterable[str], rest: str) -> list[str]:
    """The names of one directory that may hold keys after ``rest`` (the listing's ``start_after``
    relative to the directory): a file ``n`` sorts after it when ``n > rest``, a directory's keys
    (``n/...``) when ``n/`` sorts after it or begins it (``n/`` > ``rest`` covers ``n`` > ``rest``,
    and ``abc/`` sorts after ``abc-x`` although ``abc`` does not). Types are not known yet, so a
    name is dropped only when it can be neither; files at or before ``rest`` are dropped later."""
    return [n for n in names if (d := f"{n}/") > rest or rest.startswith(d)]


class LocalLayerStore(LayerStore):
    """A layer stored as a directory tree, ``<data_dir>/<layer>/<key>``."""

    def __init__(self, layer: str, root: Path) -> None:
        super().__init__(layer)
        self.root = root.resolve()
        self._fs = pafs.LocalFileSystem()

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self._fs

    def path(self, key: str) -> Path:
        """The file of ``key``; keys that would not name a file strictly inside the root are refused."""
        check_key(self.layer, key)
        clean = key.strip("/")
        path = self.root / clean
        # A symbolic link inside the lake must not lead out of it either.
        real = Path(os.path.realpath(path))
        if real != self.root and self.root not in real.parents:
            raise InvalidKeyError(self.layer, key, f"it resolves to {real}, outside {self.root}")
        return path

    def fs_path(self, key: str) -> str:
        return str(self.path(key))

    def uri(self, key: str = "") -> str:
        return str(self.path(key)) if key.strip("/") else str(self.root)

    def _info(self, path: Path, stat: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=path.relative_to(self.root).as_posix(),
            size=stat.st_size,
            etag=f"{stat.st_size:x}-{stat.st_mtime_ns:x}",
            modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        if prefix.strip("/"):
            check_key(self.layer, prefix.strip("/"))
        base = self.root / prefix.strip("/") if prefix.strip("/") else self.root
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return
        # Plain strings, os.listdir and one stat per kept name, not pathlib: a listing of tens of
        # thousands of objects spent most of its time building Path objects (measured: 60 ms per
        # 1,000 files). Names are pruned against ``start_after`` before any stat.
        wanted = prefix.strip("/")
        after = start_after or ""
        found: list[ObjectInfo] = []
        rel_start = os.path.relpath(start, self.root).replace(os.sep, "/")
        pending_dirs = [(str(start), "" if rel_start == "." else f"{rel_start}/")]
        while pending_dirs:
            directory, rel_dir = pending_dirs.pop()
            try:
                names = os.listdir(directory)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if after and after.startswith(rel_dir):
                names = _after(names, after[len(rel_dir) :])
            for name in names:
                if name.endswith(TMP_SUFFIX):
                    continue
                path = os.path.join(directory, name)
                rel = rel_dir + name
                try:
                    stat = os.stat(path, follow_symlinks=False)
                    if S_ISDIR(stat.st_mode):
                        pending_dirs.append((path, f"{rel}/"))
                        continue
                    if S_ISLNK(stat.st_mode):
                        stat = os.stat(path)
                        if S_ISDIR(stat.st_mode):  # a linked directory is not walked
                            continue
                except FileNotFoundError:
                    continue
                if not rel.startswith(wanted) or (after and rel <= after):
                    continue
                found.append(
                    ObjectInfo(
                        key=rel,
                        size=stat.st_size,
                        etag=f"{stat.st_size:x}-{stat.st_mtime_ns:x}",
                        modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                    )
                )
        yield from sorted(found, key=lambda info: info.key)

    def folders(self) -> tuple[str, ...]:
        if not self.root.is_dir():
            return ()
        return tuple(sorted(p.name for p in self.root.iterdir() if p.is_dir()))

    def stat(self, key: str) -> ObjectInfo | None:
        path = self.path(key)
        try:
            return self._info(path, path.stat())
        except FileNotFoundError:
            return None

    def _tmp_path(self, final: Path) -> Path:
        # Keep the name within NAME_MAX however long the final one is (at most 255 bytes).
        stem = final.name.encode()[:200].decode(errors="ignore")
        return final.with_name(f".{stem}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")

    @contextlib.contextmanager
    def open_output(self, key: str) -> Iterator[BinaryIO]:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp_path(final)
        try:
            with open(tmp, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None) -> bool:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp_path(final)
        try:
            tmp.write_bytes(data)
            if if_absent:
                try:
                    os.link(tmp, final)  # atomic create-if-absent of a complete file
                except FileExistsError:
                    return False
            elif if_match is not None:
                with _locked_dir(final.parent):
                    current = self.stat(key)
                    if current is None or current.etag != if_match:
                        return False
                    os.replace(tmp, final)
                    _ensure_new_etag(final, current)
            else:
                os.replace(tmp, final)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def delete_if_match(self, key: str, etag: str) -> bool:
        final = self.path(key)
        if not final.parent.is_dir():
            return False
        with _locked_dir(final.parent):
            current = self.stat(key)
            if current is None or current.etag != etag:
                return False
            final.unlink()
            return True

    def _temporaries(self, older_than: timedelta) -> _Paths:
        if not self.root.is_dir():
            return []
        cutoff = datetime.now(tz=UTC).timestamp() - older_than.total_seconds()
        found: _Paths = []
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                path = Path(dirpath) / name
                if name.startswith(".") and name.endswith(TMP_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        if path.stat().st_mtime < cutoff:
                            found.append(path)
        return sorted(found)

    def leftovers(self, older_than: timedelta) -> Sequence[str]:
        return [f"{p.relative_to(self.root).as_posix()} (temporary file)" for p in self._temporaries(older_than)]

    def clean_leftovers(self, older_than: timedelta) -> int:
        found = self._temporaries(older_than)
        for path in found:
            path.unlink(missing_ok=True)
        return len(found)


class S3LayerStore(LayerStore):
    """A layer stored in one bucket of an S3-compatible endpoint."""

    def __init__(
        self,
        layer: str,
        bucket: str,
        client: S3Client,
        fs: pafs.S3FileSystem,
        spool_dir: Path,
        delta_options: dict[str, str] | None = None,
    ) -> None:
        super().__init__(layer)
        self.bucket = bucket
        self.client = client
        self._fs = fs
        self.spool_dir = spool_dir
        self._delta_options = dict(delta_options or {})

    @property
    def delta_options(self) -> dict[str, str]:
        return dict(self._delta_options)

    def _error(self, action: str, key: str | None, exc: Exception) -> StorageError:
        """A :class:`StorageError` that names the bucket, the key, the endpoint and the S3 answer."""
        where = self.uri(key) if key else f"s3://{self.bucket}"
        endpoint = self.client.meta.endpoint_url
        attempts = ""
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            meta = exc.response.get("ResponseMetadata", {})
            tries = int(meta.get("RetryAttempts", 0)) + 1
            attempts = f" after {tries} attempt(s)"
            detail = f"{meta.get('HTTPStatusCode', '?')} {error.get('Code', '?')}: {error.get('Message', exc)}"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        return StorageError(f"cannot {action} {where} ({self.layer} layer, endpoint {endpoint}){attempts}: {detail}")

    def _open(self, opener: Callable[[str], pa.NativeFile], key: str) -> pa.NativeFile:
        if pyarrow_addressable(key):
            return super()._open(opener, key)
        # pyarrow normalises paths ('a/../b' is 'b'): such keys, legal on S3, are fetched by boto3.
        return self._spooled(key, random=opener == self.filesystem.open_input_file)

    def _spooled(self, key: str, *, random: bool) -> pa.NativeFile:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        suffix = "" if random else Path(key).suffix  # the extension picks the decompression
        fd, name = tempfile.mkstemp(dir=self.spool_dir, prefix=".read-", suffix=suffix or ".bin")
        try:
            with os.fdopen(fd, "wb") as handle:
                try:
                    self.client.download_fileobj(self.bucket, key, handle)
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                        raise ObjectNotFoundError(self.layer, key) from exc
                    raise self._error("read", key, exc) from exc
                except BotoCoreError as exc:
                    raise self._error("read", key, exc) from exc
            local = pafs.LocalFileSystem()
            return local.open_input_file(name) if random else local.open_input_stream(name)
        finally:
            os.unlink(name)  # open handles keep the data; nothing is left behind

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self._fs

    def fs_path(self, key: str) -> str:
        return f"{self.bucket}/{key.lstrip('/')}"

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key.lstrip('/')}" if key else f"s3://{self.bucket}"

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = (
            paginator.paginate(Bucket=self.bucket, Prefix=prefix.lstrip("/"), StartAfter=start_after)
            if start_after
            else paginator.paginate(Bucket=self.bucket, Prefix=prefix.lstrip("/"))
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"],
                        size=int(item["Size"]),
                        etag=str(item["ETag"]).strip('"'),
                        modified=item["LastModified"],
                    )
        except self.client.exceptions.NoSuchBucket as exc:
            raise StorageError(f"bucket {self.bucket!r} for the {self.layer} layer does not exist") from exc
        except (BotoCoreError, ClientError) as exc:
            raise self._error("list", prefix or None, exc) from exc

    def folders(self) -> tuple[str, ...]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            found = {
                str(prefix["Prefix"]).rstrip("/")
                for page in paginator.paginate(Bucket=self.bucket, Delimiter="/")
                for prefix in page.get("CommonPrefixes", [])
            }
        except self.client.exceptions.NoSuchBucket as exc:
            raise StorageError(f"bucket {self.bucket!r} for the {self.layer} layer does not exist") from exc
        except (BotoCoreError, ClientError) as exc:
            raise self._error("list the folders of", None, exc) from exc
        return tuple(sorted(found))

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise self._error("stat", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("stat", key, exc) from exc
        return ObjectInfo(
            key=key, size=int(head["ContentLength"]), etag=str(head["ETag"]).strip('"'), modified=head["LastModified"]
        )

    @contextlib.contextmanager
    def open_output(self, key: str) -> Iterator[BinaryIO]:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.spool_dir, suffix=TMP_SUFFIX) as spool:
            yield spool  # type: ignore[misc]
            spool.flush()
            spool.seek(0)
            try:
                # upload_fileobj aborts a failed multipart upload: a partial object never appears.
                self.client.upload_fileobj(spool, self.bucket, key)
            except Exception as exc:
                raise self._error("write", key, exc) from exc

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None) -> bool:
        extra: dict[str, Any] = {}
        if if_absent:
            extra["IfNoneMatch"] = "*"
        elif if_match is not None:
            extra["IfMatch"] = f'"{if_match.strip(chr(34))}"'
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if extra and code in _PRECONDITION_CODES:
                return False
            if if_match is not None and code in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise self._error("write", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("write", key, exc) from exc
        return True

    def delete_if_match(self, key: str, etag: str) -> bool:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=f'"{etag.strip(chr(34))}"')
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {*_PRECONDITION_CODES, "404", "NoSuchKey", "NotFound"}:
                return False
            raise self._error("delete", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("delete", key, exc) from exc
        return True

    def _uploads(self, older_than: timedelta) -> _Uploads:
        cutoff = datetime.now(tz=UTC) - older_than
        found: _Uploads = []
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket):
                found += [
                    (str(u["Key"]), str(u["UploadId"])) for u in page.get("Uploads", []) if u["Initiated"] < cutoff
                ]
        except (BotoCoreError, ClientError) as exc:
            raise self._error("list the multipart uploads of", None, exc) from exc
        return sorted(found)

    def leftovers(self, older_than: timedelta) -> Sequence[str]:
        return [f"{key} (incomplete multipart upload {upload})" for key, upload in self._uploads(older_than)]

    def clean_leftovers(self, older_than: timedelta) -> int:
        found = self._uploads(older_than)
        for key, upload in found:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise self._error("abort the multipart upload of", key, exc) from exc
            except BotoCoreError as exc:
                raise self._error("abort the multipart upload of", key, exc) from exc
        return len(found)

    def delete(self, keys: Iterable[str]) -> None:
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == 1000:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, keys: Sequence[str]) -> None:
        try:
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._error("delete", keys[0], exc) from exc
        errors = answer.get("Errors", [])
        if errors:
            first = errors[0]
            raise StorageError(
                f"cannot delete {len(errors)} object(s) of s3://{self.bucket}, such as {first.get('Key')!r}: "
                f"{first.get('Code')}: {first.get('Message')}"
            )


def s3_client(
    *,
    endpoint_url: str | None,
    region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    path_style: bool = True,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 60.0,
    max_attempts: int = 5,
    retry_mode: Literal["standard", "adaptive"] = "standard",
) -> S3Client:
    """A boto3 S3 client that retries throttling, 5xx answers and dropped connections
    (``max_attempts`` counts the first attempt) with exponential backoff, within the timeouts."""
    config = Config(
        s3={"addressing_style": "path" if path_style else "auto"},
        retries={"max_attempts": max_attempts, "mode": retry_mode},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
    )
    session = boto3.session.Session(
        aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
    )
    return session.client("s3", endpoint_url=endpoint_url, config=config)


class Lake:
    """The three layers of the lake, on the backend the settings choose."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._layers: dict[str, LayerStore] = {}
        if settings.backend == "s3":
            key = settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None
            secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
            self.s3 = s3_client(
                endpoint_url=settings.s3_endpoint_url,
                region=settings.s3_region,
                access_key_id=key,
                secret_access_key=secret,
                path_style=settings.s3_path_style,
                connect_timeout_s=settings.s3_connect_timeout_s,
                read_timeout_s=settings.s3_read_timeout_s,
                max_attempts=settings.s3_max_attempts,
                retry_mode=settings.s3_retry_mode,
            )
            fs_kwargs: dict[str, Any] = {
                "region": settings.s3_region,
                "request_timeout": settings.s3_read_timeout_s,
                "connect_timeout": settings.s3_connect_timeout_s,
                # The C++ SDK's standard strategy: throttling, 5xx and network errors, with backoff.
                "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=settings.s3_max_attempts),
            }
            if key and secret:
                fs_kwargs.update(access_key=key, secret_key=secret)
            if settings.s3_endpoint_url:
                scheme, _, host = settings.s3_endpoint_url.partition("://")
                fs_kwargs.update(endpoint_override=host.rstrip("/"), scheme=scheme)
            fs_kwargs["force_virtual_addressing"] = not settings.s3_path_style
            s3fs = pafs.S3FileSystem(**fs_kwargs)
            spool = settings.scratch_dir.resolve() / "spool"
            delta = delta_storage_options(settings)
            for layer in LAYERS:
                self._layers[layer] = S3LayerStore(layer, settings.bucket(layer), self.s3, s3fs, spool, delta)
        else:
            for layer in LAYERS:
                self._layers[layer] = LocalLayerStore(layer, settings.data_dir / layer)

    def layer(self, name: str) -> LayerStore:
        try:
            return self._layers[name]
        except KeyError:
            raise StorageError(f"unknown layer {name!r}; valid layers are: {', '.join(LAYERS)}") from None

    @property
    def bronze(self) -> LayerStore:
        return self._layers["bronze"]

    @property
    def silver(self) -> LayerStore:
        return self._layers["silver"]

    @property
    def gold(self) -> LayerStore:
        return self._layers["gold"]

    def ensure(self, layers: Iterable[str] = LAYERS) -> None:
        """Create the local layer directories or check that the buckets exist.

        Name only the layers a service uses: least-privilege users cannot see the others.
        """
        for store in (self.layer(name) for name in layers):
            if isinstance(store, LocalLayerStore):
                store.root.mkdir(parents=True, exist_ok=True)
            elif isinstance(store, S3LayerStore):
                try:
                    store.client.head_bucket(Bucket=store.bucket)
                except Exception as exc:
                    raise StorageError(
                        f"bucket {store.bucket!r} ({store.layer} layer) is not reachable at "
                        f"{self.settings.s3_endpoint_url or 'AWS S3'}: {exc}"
                    ) from exc


def delta_storage_options(settings: Settings) -> dict[str, str]:
    """How ``deltalake`` (delta-rs) reaches the S3 layers: the same endpoint, credentials and
    retries as boto3 and pyarrow.

    Commits are made safe by S3's conditional writes (``If-None-Match: *`` on the next log
    entry), which AWS S3 and MinIO both support: ``conditional_put=etag``, no DynamoDB lock.
    Without keys, delta-rs uses the default AWS credential chain (environment, profile, instance role).
    """
    options = {
        "AWS_REGION": settings.s3_region,
        "conditional_put": "etag",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false" if settings.s3_path_style else "true",
        # milliseconds: a timeout under a second must not round down to none at all
        "timeout": f"{max(1, round(settings.s3_read_timeout_s * 1000))}ms",
        "connect_timeout": f"{max(1, round(settings.s3_connect_timeout_s * 1000))}ms",
        "max_retries": str(settings.s3_max_attempts - 1),
    }
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        options["AWS_ACCESS_KEY_ID"] = settings.s3_access_key_id.get_secret_value()
        options["AWS_SECRET_ACCESS_KEY"] = settings.s3_secret_access_key.get_secret_value()
    if settings.s3_endpoint_url:
        options["AWS_ENDPOINT_URL"] = settings.s3_endpoint_url.rstrip("/")
        if settings.s3_endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options


_EMPTY_OR_DOT = re.compile(r"(^|/)(\.{1,2})?(/|$)")


def check_key(layer: str, key: str) -> None:
    """Refuse keys that no layer stores: too long, NUL bytes, '.'/'..' or empty segments, huge segments.

    A leading '/' is tolerated (S3 clients strip it as well); what remains must be a relative path.
    """
    clean = key.strip("/")
    if not clean:
        raise InvalidKeyError(layer, key, "it is empty")
    if "\x00" in key:
        raise InvalidKeyError(layer, key, "it holds a NUL byte")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKeyError(layer, key, f"it is longer than {MAX_KEY_BYTES} bytes")
    for segment in clean.split("/"):
        if segment in {"", ".", ".."}:
            raise InvalidKeyError(layer, key, f"it has a {segment or 'empty'!r} segment")
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            raise InvalidKeyError(layer, key, f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")


def pyarrow_addressable(key: str) -> bool:
    """Whether pyarrow's S3 filesystem reads ``key`` as is (it normalises '.', '..' and '//')."""
    return _EMPTY_OR_DOT.search(key.lstrip("/")) is None and not key.endswith("/")


@contextlib.contextmanager
def _locked_dir(directory: Path) -> Iterator[None]:
    """An exclusive lock on a directory (flock on its descriptor), for compare-and-replace."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _ensure_new_etag(path: Path, previous: ObjectInfo) -> None:
    """The local ETag is size and mtime: make sure a replaced file never keeps its predecessor's."""
    stat = path.stat()
    if f"{stat.st_size:x}-{stat.st_mtime_ns:x}" == previous.etag:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))


def copy_stream(source: BinaryIO | pa.NativeFile, target: BinaryIO, chunk: int = 8 << 20) -> int:
    """Copy a stream in chunks; returns the number of bytes copied."""
    total = 0
    while True:
        data = source.read(chunk)
        if not data:
            return total
        target.write(data)
        total += len(data)


__all__ = [
    "Lake",
    "LayerStore",
    "LocalLayerStore",
    "ObjectInfo",
    "S3LayerStore",
    "check_key",
    "copy_stream",
    "s3_client",
]
