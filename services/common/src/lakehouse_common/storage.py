"""One storage interface over two backends: a local lake directory or S3-compatible buckets.

Each layer (bronze, silver, gold) is a :class:`LayerStore`. Readers and writers use the same
calls on both backends: pyarrow filesystems carry the data (fast, native streams) and, on S3,
boto3 carries the control plane (listing with ETags, small conditional puts, deletes).

Writes are atomic on both backends: a reader sees either the whole object or nothing.
Locally that is a temporary file in the same directory plus ``os.replace``; on S3 the object
is spooled to local disk and uploaded, and S3 exposes it only once the upload completes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
from botocore.config import Config

from lakehouse_common.exceptions import ObjectNotFoundError, StorageError
from lakehouse_common.settings import LAYERS, Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

TMP_SUFFIX = ".tmp"


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

    # -- reading -----------------------------------------------------------------------------
    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under ``prefix``, sorted by key; temporary files are never listed."""

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
            return bytes(stream.read())

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    # -- writing -----------------------------------------------------------------------------
    @abstractmethod
    def open_output(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A writable stream whose content becomes visible at ``key`` only on clean exit."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write ``data`` atomically. With ``if_absent`` return False instead of overwriting."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete the objects; missing ones are ignored."""


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
        clean = key.strip("/")
        if not clean or ".." in Path(clean).parts:
            raise StorageError(f"invalid object key {key!r}: keys are relative paths without '..'")
        return self.root / clean

    def fs_path(self, key: str) -> str:
        return str(self.path(key))

    def uri(self, key: str = "") -> str:
        return str(self.root / key.strip("/")) if key.strip("/") else str(self.root)

    def _info(self, path: Path, stat: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=path.relative_to(self.root).as_posix(),
            size=stat.st_size,
            etag=f"{stat.st_size:x}-{stat.st_mtime_ns:x}",
            modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / prefix.strip("/") if prefix.strip("/") else self.root
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return
        found: list[ObjectInfo] = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for name in filenames:
                if name.endswith(TMP_SUFFIX):
                    continue
                path = Path(dirpath) / name
                rel = path.relative_to(self.root).as_posix()
                if rel.startswith(prefix.strip("/")):
                    with contextlib.suppress(FileNotFoundError):
                        found.append(self._info(path, path.stat()))
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
        return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")

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

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
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
            else:
                os.replace(tmp, final)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)


class S3LayerStore(LayerStore):
    """A layer stored in one bucket of an S3-compatible endpoint."""

    def __init__(self, layer: str, bucket: str, client: S3Client, fs: pafs.S3FileSystem, spool_dir: Path) -> None:
        super().__init__(layer)
        self.bucket = bucket
        self.client = client
        self._fs = fs
        self.spool_dir = spool_dir

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self._fs

    def fs_path(self, key: str) -> str:
        return f"{self.bucket}/{key.lstrip('/')}"

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key.lstrip('/')}" if key else f"s3://{self.bucket}"

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix.lstrip("/")):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"],
                        size=int(item["Size"]),
                        etag=str(item["ETag"]).strip('"'),
                        modified=item["LastModified"],
                    )
        except self.client.exceptions.NoSuchBucket as exc:
            raise StorageError(f"bucket {self.bucket!r} for the {self.layer} layer does not exist") from exc

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
        return tuple(sorted(found))

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise StorageError(f"cannot stat {self.uri(key)}: {exc}") from exc
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
                raise StorageError(f"cannot write {self.uri(key)}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if if_absent else {}
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        except self.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if if_absent and code in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                return False
            raise StorageError(f"cannot write {self.uri(key)}: {exc}") from exc
        return True

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
        self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})


def s3_client(
    *,
    endpoint_url: str | None,
    region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    path_style: bool = True,
) -> S3Client:
    config = Config(
        s3={"addressing_style": "path" if path_style else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
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
            )
            fs_kwargs: dict[str, Any] = {"region": settings.s3_region, "request_timeout": 60, "connect_timeout": 10}
            if key and secret:
                fs_kwargs.update(access_key=key, secret_key=secret)
            if settings.s3_endpoint_url:
                scheme, _, host = settings.s3_endpoint_url.partition("://")
                fs_kwargs.update(endpoint_override=host.rstrip("/"), scheme=scheme)
            fs_kwargs["force_virtual_addressing"] = not settings.s3_path_style
            s3fs = pafs.S3FileSystem(**fs_kwargs)
            spool = settings.scratch_dir.resolve() / "spool"
            for layer in LAYERS:
                self._layers[layer] = S3LayerStore(layer, settings.bucket(layer), self.s3, s3fs, spool)
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
    "copy_stream",
    "s3_client",
]
