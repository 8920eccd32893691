"""`requests` adapters the sources mount on the sessions of API client libraries they do not control.

`SandboxRewriteAdapter` is how a library that insists on `https://` hosts (simple-salesforce, the
Customer.io Track client) reaches its local stand-in: a session built for the sandbox sends every
request to `http://<stand-in>` instead. It lives here, with the sources, rather than in
`cdp_assets.sandbox`: it is the client's half of the sandbox, and the sources load the stand-ins
themselves only when asked for a sandbox config.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter


class TimeoutAdapter(HTTPAdapter):
    """Gives every request that has none a timeout (None: leaves it as the library sent it).

    simple-salesforce sets none, and a hung socket would hang the run.
    """

    def __init__(self, timeout: float | None = None, **kwargs: Any):
        self.timeout = timeout
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, *args, **kwargs)


class SandboxRewriteAdapter(TimeoutAdapter):
    """Sends every request to http://<netloc> (path and query kept): the client library insists on https.

    Mounted on both schemes, it leaves the session no way to reach any other host. The host the library
    meant is passed on in `X-Forwarded-Host` for the stand-in's request log.
    """

    def __init__(self, netloc: str, timeout: float | None = None, **kwargs: Any):
        self.netloc = netloc
        super().__init__(timeout, **kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        request.headers["X-Forwarded-Host"] = parts.netloc
        request.url = urlunsplit(("http", self.netloc, parts.path, parts.query, parts.fragment))
        return super().send(request, *args, **kwargs)
