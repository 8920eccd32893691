"""An answer that is not the JSON an API documents: what the sources raise instead of a bare decode error.

A proxy's or load balancer's HTML error page, a maintenance page served with 200, a body cut short or
not UTF-8: the client libraries fail on these with `Expecting value: line 1 column 1 (char 0)`, or (the
Facebook SDK) a `TypeError` from deep inside, which says nothing of what came back. `BadResponse` says
which API, which call, the status, the content type, the size and the start of the body. The sources'
policies retry it like a 5xx (such answers are usually a passing fault between us and the API), so a
run that keeps getting them fails with `RetriesExhausted` quoting this message.

The message names the URL's path only, never its query string: Graph takes the access token there.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import requests

_SNIPPET = 160  # characters of the body quoted in the message


class BadResponse(RuntimeError):
    """The API answered with a body that is not JSON (see the module docstring)."""

    def __init__(self, api: str, method: str, url: str, status: int, content_type: str, body: bytes) -> None:
        self.api = api
        self.status = status
        path = urlsplit(url).path or "/"
        text = " ".join(body[: _SNIPPET * 4].decode("utf-8", "replace").split())
        quoted = repr(text[:_SNIPPET]) + ("..." if len(text) > _SNIPPET else "")
        super().__init__(
            f"{api} answered {method} {path} with HTTP {status} and a body that is not JSON "
            f"({content_type or 'no content type'}, {len(body)} bytes): {quoted}"
        )


def bad_response(api: str, response: requests.Response) -> BadResponse:
    request = response.request
    return BadResponse(
        api,
        (request.method if request is not None else None) or "GET",
        response.url or (request.url if request is not None else "") or "",
        response.status_code,
        response.headers.get("Content-Type", ""),
        response.content or b"",
    )


def parse_json(api: str, response: requests.Response) -> Any:
    """The response's JSON, or `BadResponse` (an empty, HTML, truncated or non-UTF-8 body)."""
    try:
        # From the bytes: json detects UTF-8/16/32 itself, and invalid UTF-8 fails here rather than
        # being decoded with requests' guess of the charset.
        return json.loads(response.content)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise bad_response(api, response) from exc
