"""HTTP/1.1 messages as the exporter's server (pytools.httpd) reads and
writes them: a request head parsed, a response rendered, Accept-Encoding."""

from __future__ import annotations

import http.client
import io
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

MAX_HEAD = 16 * 1024
ALLOWED = ("GET", "HEAD")
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 429: "Too Many Requests",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           503: "Service Unavailable", 505: "HTTP Version Not Supported"}


@dataclass
class Request:
    method: str
    path: str           # without the query string
    version: str        # "HTTP/1.1"
    headers: http.client.HTTPMessage
    # Called with True while the request waits on something that may be
    # refused anyway (a password check): its connection may then be closed
    # to make room, as an idle one is. The server sets it.
    evictable: Callable[[bool], None] = lambda _: None

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @property
    def has_body(self) -> bool:
        return bool(self.headers.get("Transfer-Encoding")) or \
            self.headers.get("Content-Length", "0").strip() not in ("", "0")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Dict[str, str] = field(default_factory=dict)
    close: bool = False         # close the connection after this answer


class BadRequest(Exception):
    pass


def parse_head(head: bytes) -> Request:
    """A request head (request line and headers, up to the blank line)."""
    line, _, rest = head.partition(b"\r\n")
    try:
        method, target, version = line.decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("malformed request line") from None
    if not version.startswith("HTTP/1.") or not method.isalpha() or not target:
        raise BadRequest("not an HTTP/1.x request")
    try:
        headers = http.client.parse_headers(io.BytesIO(rest))
    except (http.client.HTTPException, UnicodeDecodeError):
        raise BadRequest("malformed headers") from None
    if version == "HTTP/1.1" and "Host" not in headers:
        raise BadRequest("HTTP/1.1 without Host")
    return Request(method.upper(), target.split("?", 1)[0], version, headers)


def render_response(response: Response, head_only: bool, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
             f"Content-Type: {response.content_type}",
             f"Content-Length: {len(response.body)}",
             "Connection: " + ("keep-alive" if keep_alive else "close")]
    lines += [f"{k}: {v}" for k, v in response.headers.items()]
    # UTF-8, as Go writes a header value's bytes: a configured value outside
    # latin-1 must not make every answer fail.
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return head if head_only else head + response.body


def accepts_gzip(accept_encoding: Optional[str]) -> bool:
    """Whether an Accept-Encoding header takes gzip: `gzip` or `*` with a
    q above 0 (RFC 9110; Prometheus sends `gzip`)."""
    for part in (accept_encoding or "").split(","):
        coding, *params = [p.strip() for p in part.split(";")]
        if coding.lower() not in ("gzip", "*"):
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def plain(status: int, text: str, **headers: str) -> Response:
    return Response(status, (text + "\n").encode(), headers=dict(headers))
