"""Fixtures for every test that talks to a stand-in; the conftests of `sandbox/` and `sources/` register them."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from cdp_assets.sandbox.http import SandboxApp, SandboxServer

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
def server(app: SandboxApp) -> Iterator[SandboxServer]:
    """The test module's `app` fixture, served on 127.0.0.1 for the length of the test."""
    with SandboxServer(app) as running:
        yield running
