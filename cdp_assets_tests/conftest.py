"""Shared fixtures: an isolated data folder per test, landing-file writers, an S3-compatible server."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdp_assets.event_stream.landing import LocalLandingStore, dump_key

SOURCE_ID = "2Gsrc0000000000000000000001"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data folder, warehouse and landing location, and no proxy for 127.0.0.1."""
    data = tmp_path / "data"
    monkeypatch.setenv("CDP_DATA_DIR", str(data))
    monkeypatch.setenv("CDP_DUCKDB_PATH", str(data / "warehouse.duckdb"))
    monkeypatch.setenv("CDP_LANDING_URL", str(data / "landing"))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.setenv("DLT_DATA_DIR", str(data / "dlt"))
    for name in ("CDP_ENV", "CDP_WAREHOUSE", "CDP_WAREHOUSE_TRANSFORMATIONS", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    return data


LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@pytest.fixture(autouse=True)
def only_local_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Refuse any name lookup or connection to a host but this machine, and fail the test if one was tried.

    Refused rather than only failed at once: a client that retries connection errors gets an OSError, as
    from a real network failure, and the test still fails at teardown. Python-level sockets only: gRPC's
    are C-level, so for Google Ads the stand-in's request log matching the calls the source counted is
    what shows that they reach only the stand-in.
    """
    outside: list[Any] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOCAL_HOSTS:
            outside.append(address)
            raise OSError(f"test guard: connection to {address} refused")
        return real_connect(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in LOCAL_HOSTS:
            outside.append(name)
            raise OSError(f"test guard: lookup of {name} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield outside
    assert outside == [], f"something contacted a host other than 127.0.0.1: {outside}"


@pytest.fixture
def landing(isolated_env: Path) -> LocalLandingStore:
    return LocalLandingStore(isolated_env / "landing")


@pytest.fixture
def warehouse_path(isolated_env: Path) -> Path:
    return isolated_env / "warehouse.duckdb"


def event(type_: str = "track", **fields: object) -> dict:
    """A minimal valid event; fields override (use None to drop a key)."""
    base: dict = {
        "type": type_,
        "messageId": str(uuid.uuid4()),
        "anonymousId": "anon-1",
        "channel": "web",
        "receivedAt": "2026-11-01T10:00:00.500Z",
        "sentAt": "2026-11-01T10:00:00.200Z",
        "originalTimestamp": "2026-11-01T10:00:00.000Z",
        "context": {"library": {"name": "RudderLabs JavaScript SDK", "version": "3.0.0"}},
    }
    if type_ == "track":
        base["event"] = "Order Completed"
        base["properties"] = {}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def write_dump(
    store: LocalLandingStore,
    lines: list[dict | str],
    uploaded_at: datetime | None = None,
    source_id: str = SOURCE_ID,
    legacy_date: bool = False,
) -> str:
    """Write one gzip dump file of these lines (dicts become compact JSON; strings are written as is)."""
    uploaded_at = uploaded_at or datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
    text = "\n".join(json.dumps(line, separators=(",", ":")) if isinstance(line, dict) else line for line in lines)
    key = dump_key(source_id, uploaded_at, str(uuid.uuid4()), legacy_date=legacy_date)
    store.put(key, gzip.compress((text + "\n").encode("utf-8"), mtime=0))
    return key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3-compatible server on 127.0.0.1, in its own process; yields its endpoint URL.

    moto 5's server serves every service on one port (it takes no service argument).
    """
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    # Ready when it answers HTTP (a listening socket can come before the app), not merely alive.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited: {proc.stderr.read().decode(errors='replace')[-2000:]}")
        try:
            opener.open(endpoint, timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start within 30 s") from None
            time.sleep(0.1)
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_landing(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on the S3 server, with credentials and endpoint in the environment; yields its URL."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    bucket = f"landing-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/events"
    monkeypatch.setenv("CDP_LANDING_URL", url)
    yield url


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
