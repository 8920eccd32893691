"""Starting the SaaS stand-ins, one or all, and finding the ones already running.

`cdp sandbox` starts every stand-in on 127.0.0.1 and writes their URLs to `<data>/sandbox.json`, so a
`dagster dev` next to it extracts from them (and sees state that survives between runs). When no
sandbox is running, an extract in the local environment starts its own stand-in for the length of
its run, seeded from the same world, so the main job needs nothing started by hand.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cdp_assets.sandbox.world import build_world

# The order `cdp sandbox` prints them in; also every source the ETL knows.
SANDBOX_NAMES = ("salesforce", "stripe", "google_ads", "facebook_ads", "customerio")


@dataclass
class Running:
    """A started stand-in: where it listens, its app (state, request log, faults) and how to stop it."""

    name: str
    url: str  # http://127.0.0.1:<port>, or grpc://127.0.0.1:<port> for Google Ads
    app: object
    stop: Callable[[], None]

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)


def start(name: str, seed: int = 7, port: int = 0) -> Running:
    """Start one stand-in on 127.0.0.1 (a free port unless given), in background threads."""
    # Imported here: each stand-in pulls in its API's client library for its message types.
    if name == "google_ads":
        from cdp_assets.sandbox.google_ads import serve as serve_google_ads

        grpc_server = serve_google_ads(seed=seed, port=port)
        return Running(name, f"grpc://127.0.0.1:{grpc_server.port}", grpc_server.app, grpc_server.stop)
    if name == "facebook_ads":
        from cdp_assets.sandbox.facebook import serve as serve_facebook

        server = serve_facebook(seed=seed, port=port)
        return Running(name, server.url, server.app, server.stop)

    from cdp_assets.sandbox.http import SandboxServer

    world = build_world(seed)
    if name == "salesforce":
        from cdp_assets.sandbox.salesforce import SalesforceSandbox

        app = SalesforceSandbox(world)
    elif name == "stripe":
        from cdp_assets.sandbox.stripe import StripeSandbox

        app = StripeSandbox(world)
    elif name == "customerio":
        from cdp_assets.sandbox.customerio import CustomerIOSandbox

        app = CustomerIOSandbox(world)
    else:
        raise ValueError(f"no stand-in named {name!r}; known: {', '.join(SANDBOX_NAMES)}")
    server = SandboxServer(app, port=port).start()
    return Running(name, server.url, app, server.stop)


@contextlib.contextmanager
def running(names: tuple[str, ...] = SANDBOX_NAMES, seed: int = 7) -> Iterator[dict[str, Running]]:
    """Every named stand-in started for the length of the block."""
    started: dict[str, Running] = {}
    try:
        for name in names:
            started[name] = start(name, seed=seed)
        yield started
    finally:
        for item in started.values():
            item.stop()


def write_urls(path: Path, started: dict[str, Running]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({name: item.url for name, item in started.items()}, indent=2))


def listening_url(path: Path, name: str) -> str | None:
    """The URL `cdp sandbox` recorded for a stand-in, if that stand-in still accepts connections."""
    try:
        url = json.loads(path.read_text()).get(name)
    except (OSError, ValueError):
        return None
    if not url:
        return None
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or not parts.port:
        return None  # only ever a local stand-in: a recorded remote host is not trusted
    try:
        with socket.create_connection(("127.0.0.1", parts.port), timeout=0.5):
            return url
    except OSError:
        return None
