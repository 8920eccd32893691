"""The common machinery of the local API stand-ins: an HTTP server on 127.0.0.1, a request log, faults.

Each stand-in (Salesforce, Stripe, Facebook Graph, Customer.io) is a `SandboxApp`: a list of routes
(method, path regex, handler) over its own seeded data. `SandboxServer` serves an app on a free port of
127.0.0.1 in a background thread (tests) or in the foreground (`cdp sandbox`), records every request,
and lets a test queue faults that the next matching requests get instead of their normal answer.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

Headers = dict[str, str]


@dataclass
class Request:
    """One request as the stand-in saw it (also what the request log keeps)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    at: float = field(default_factory=time.time)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass
class Response:
    status: int = 200
    body: bytes | str | Any = b""
    headers: Headers = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Headers | None = None) -> Response:
        return cls(
            status, json.dumps(data, default=str).encode(), {"Content-Type": "application/json", **(headers or {})}
        )

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, default=str).encode()


Handler = Callable[..., Response]


@dataclass
class Fault:
    """What the next `times` matching requests get instead of their answer (status 0: a stall)."""

    response: Response
    times: int = 1
    method: str | None = None
    path: str | None = None  # a regex searched in the path
    delay: float = 0.0  # seconds to wait before answering (a timeout, if longer than the client waits)
    # Query arguments the request must carry with these values (e.g. {"after": <cursor>}: only the page
    # after that cursor gets the fault); an empty string matches a request without the argument.
    args: dict[str, str] = field(default_factory=dict)

    def matches(self, request: Request) -> bool:
        return (
            (self.method is None or self.method == request.method)
            and (self.path is None or re.search(self.path, request.path) is not None)
            and all((request.arg(name) or "") == value for name, value in self.args.items())
        )


class _Matching(Protocol):
    times: int

    def matches(self, request: Any) -> bool: ...


_F = TypeVar("_F", bound=_Matching)


class FaultQueue(Generic[_F]):
    """Faults waiting for their requests: the first queued that matches answers, `times` times over.

    Shared by the HTTP stand-ins (`Fault`) and the gRPC one (its own fault type, the same rules).
    """

    def __init__(self) -> None:
        self._faults: list[_F] = []
        self._lock = threading.Lock()

    def add(self, fault: _F) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, request: Any) -> _F | None:
        """The fault this request gets, used up once (None: it gets its normal answer)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(request):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None


class SandboxApp:
    """Routes over an API's data. Subclasses call `route()` in `__init__` and keep their own state."""

    name = "sandbox"

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.log: list[Request] = []
        self._faults: FaultQueue[Fault] = FaultQueue()
        self.lock = threading.RLock()

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve `method` on paths matching `pattern` (a full-match regex; named groups become kwargs)."""
        self._routes.append((method, re.compile(pattern), handler))

    # -- faults ----------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- dispatch --------------------------------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """The request log, optionally filtered (path: a regex searched in the path)."""
        with self.lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and (path is None or re.search(path, r.path))
            ]

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.log.append(request)
        fault = self._faults.take(request)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            return fault.response
        for method, pattern, handler in self._routes:
            if method != request.method:
                continue
            match = pattern.fullmatch(request.path.rstrip("/") or "/")
            if match:
                try:
                    return handler(request, **match.groupdict())
                except Exception as exc:  # a bug in a stand-in is a 500, as a real API's would be
                    return self.error(500, f"sandbox error: {type(exc).__name__}: {exc}")
        return self.error(404, f"no route for {request.method} {request.path}")

    def error(self, status: int, message: str) -> Response:
        """An error in the API's own shape; stand-ins override this."""
        return Response.json({"error": {"message": message}}, status)


class SandboxServer:
    """Serves one app on 127.0.0.1 (a free port unless given), in a daemon thread."""

    def __init__(self, app: SandboxApp, port: int = 0, host: str = "127.0.0.1"):
        self.app = app
        handler = _handler_for(app)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> SandboxServer:
        # A short poll interval: stop() waits for the serve loop to notice, once per test.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.app.name}",
            daemon=True,
        )
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread:
            self.thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _handler_for(app: SandboxApp) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the second waits ~40 ms for an ACK.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.headers.get("Content-Encoding") == "gzip" and body:
                import gzip

                body = gzip.decompress(body)
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k: v for k, v in self.headers.items()},
                body=body,
            )
            response = app.handle(request)
            payload = response.encoded()
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, *_args: object) -> None:  # the request log replaces stderr noise
            return

    return _Handler
