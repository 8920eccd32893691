"""Where the event stream dumps its files: RudderStack's key layout on a local folder or on S3.

Keys look like `[prefix/]rudder-logs/<source_id>/<date>/<unix>.<source_id>.<uuid>.json.gz`, the date
being the upload day as `YYYY-MM-DD` (current) or `MM-DD-YYYY` (legacy). Both stores list, read and
write through the same `LandingStore` interface, so the loader has one code path.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

LOGS_FOLDER = "rudder-logs"
_KEY = re.compile(r"(?:^|/)" + LOGS_FOLDER + r"/(?P<source>[^/]+)/(?P<date>[^/]+)/(?P<unix>\d+)\.[^/]*\.json\.gz$")


class LandingError(RuntimeError):
    """The landing location cannot be listed or read."""


class LandingFileGone(LandingError):
    """A listed file cannot be read now (deleted, replaced, unreadable since it was listed). The load
    skips it without recording it, so the next load tries it again if it is still there."""


@dataclass(frozen=True)
class LandingFile:
    """One dump file. `key` is relative to the store's root; size and etag identify its version."""

    key: str
    size: int
    etag: str
    modified: datetime

    @property
    def source_id(self) -> str | None:
        match = _KEY.search(self.key)
        return match.group("source") if match else None

    @property
    def upload_date(self) -> date:
        """The upload day its key names; for a key outside the layout (no date folder, or not a date),
        the day it was written, so a reload of a date range can still reach it."""
        match = _KEY.search(self.key)
        named = parse_key_date(match.group("date")) if match else None
        return named or self.modified.astimezone(UTC).date()


def parse_key_date(text: str) -> date | None:
    """The date folder of a key, in either of RudderStack's two formats."""
    for fmt in ("%Y-%m-%d", "%m-%d-%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def dump_key(source_id: str, uploaded_at: datetime, file_uuid: str, legacy_date: bool = False) -> str:
    """The key RudderStack's batch router gives a dump file uploaded at `uploaded_at`."""
    day = uploaded_at.strftime("%m-%d-%Y" if legacy_date else "%Y-%m-%d")
    unix = int(uploaded_at.timestamp())
    return f"{LOGS_FOLDER}/{source_id}/{day}/{unix}.{source_id}.{file_uuid}.json.gz"


def is_dump_key(key: str) -> bool:
    return key.endswith(".json.gz") and f"{LOGS_FOLDER}/" in key


class LandingStore(Protocol):
    url: str

    def list_files(self) -> Iterator[LandingFile]:
        """Every dump file under the root, in no particular order."""
        ...

    def local_copy(self, file: LandingFile) -> contextlib.AbstractContextManager[Path]:
        """A local path holding the file's bytes for the duration of the context."""
        ...

    def put(self, key: str, data: bytes) -> None: ...


class LocalLandingStore:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.url = str(self.root)

    def list_files(self) -> Iterator[LandingFile]:
        """Every dump file under the root, following folder links (each folder once). A missing root
        holds nothing yet; a root that is a file, or a folder that cannot be read, is an error rather
        than files silently left out."""
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise LandingError(f"the landing location {self.root} is not a folder")

        def unreadable(exc: OSError) -> None:
            raise LandingError(f"cannot list {exc.filename} in the landing location: {exc.strerror}") from exc

        seen: set[tuple[int, int]] = set()
        for dirpath, dirs, files in os.walk(self.root, onerror=unreadable, followlinks=True):
            try:
                folder = os.stat(dirpath)
            except FileNotFoundError:
                continue  # deleted while listing
            if (folder.st_dev, folder.st_ino) in seen:  # a link back to a folder already walked
                dirs.clear()
                continue
            seen.add((folder.st_dev, folder.st_ino))
            for name in files:
                path = Path(dirpath, name)
                key = path.relative_to(self.root).as_posix()
                if not is_dump_key(key):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # deleted while listing, or a link to nothing: no bytes to load
                except OSError as exc:
                    raise LandingError(f"cannot read {key} in the landing location: {exc.strerror}") from exc
                yield LandingFile(
                    key=key,
                    size=stat.st_size,
                    # A local file has no etag; size plus mtime in ns tells one version from another.
                    etag=f"{stat.st_size}-{stat.st_mtime_ns}",
                    modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                )

    @contextlib.contextmanager
    def local_copy(self, file: LandingFile) -> Iterator[Path]:
        path = self.root / file.key
        if not os.access(path, os.R_OK):
            reason = "it is no longer there" if not path.exists() else "it cannot be read (permissions)"
            raise LandingFileGone(f"{file.key} was listed but {reason}")
        yield path

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        # Write then rename, so a lister never sees half a file.
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:
            raise LandingError(f"cannot write {key} under {self.root}: {exc.strerror}") from exc


class S3LandingStore:
    def __init__(self, url: str, endpoint_url: str | None = None):
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise LandingError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
        self.url = url
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.endpoint_url = endpoint_url
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import boto3  # imported here: the local path never needs boto3 loaded

            self._client = boto3.client("s3", endpoint_url=self.endpoint_url)
        return self._client

    def _full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def list_files(self) -> Iterator[LandingFile]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        start = f"{self.prefix}/" if self.prefix else ""
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(start) :]
                    if is_dump_key(key):
                        yield LandingFile(
                            key=key,
                            size=int(obj["Size"]),
                            etag=str(obj.get("ETag", "")).strip('"'),
                            modified=obj["LastModified"].astimezone(UTC),
                        )
        except (BotoCoreError, ClientError) as exc:
            raise LandingError(f"cannot list {self.url}: {exc}") from exc

    @contextlib.contextmanager
    def local_copy(self, file: LandingFile) -> Iterator[Path]:
        from botocore.exceptions import BotoCoreError, ClientError

        # Streamed to a temporary file, never held in memory; removed when the caller is done.
        with tempfile.TemporaryDirectory(prefix="cdp-landing-") as tmp:
            path = Path(tmp, Path(file.key).name)
            try:
                # IfMatch: the version that was listed, or nothing (its etag is what the ledger records).
                request = {"Bucket": self.bucket, "Key": self._full_key(file.key)}
                if file.etag:
                    request["IfMatch"] = f'"{file.etag}"'
                body = self.client.get_object(**request)["Body"]
                with path.open("wb") as out:
                    shutil.copyfileobj(body, out, 1 << 20)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in ("NoSuchKey", "404", "PreconditionFailed", "412"):
                    raise LandingFileGone(f"{file.key} was listed but is gone or replaced since ({code})") from exc
                raise LandingError(f"cannot read {file.key} from {self.url}: {exc}") from exc
            except BotoCoreError as exc:
                raise LandingError(f"cannot read {file.key} from {self.url}: {exc}") from exc
            yield path

    def put(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._full_key(key), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise LandingError(f"cannot write {key} to {self.url}: {exc}") from exc


def landing_store(url: str, endpoint_url: str | None = None) -> LandingStore:
    """The store for a landing URL: `s3://bucket/prefix` or a local folder."""
    if url.startswith("s3://"):
        return S3LandingStore(url, endpoint_url)
    if "://" in url and not url.startswith("file://"):
        raise LandingError(f"unsupported landing URL {url!r}: use a folder or s3://bucket/prefix")
    return LocalLandingStore(url.removeprefix("file://"))
