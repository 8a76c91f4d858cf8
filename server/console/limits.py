"""Request body limits: 1 MiB for the API in general, more for the routes that take a photo, and a
Chinese-first 413 answer that states the limit; and ``PerUserRate``, a per-user limit of requests per minute for
costly routes (evidence-bundle exports), answered 429 with Retry-After.

Phones take photos of 2-6 MB (up to 15 MB for a 50 MP camera). The console's pages shrink a photo to
about 2 megapixels before uploading it, but the API also serves phone apps and scripts that send the
camera's file as it is, so the photo routes accept up to ``MAX_PHOTO_BYTES``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from litestar import Request, Response
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from server.errors import ErrorBody, TooLarge, TooManyRequests, error_response

MIB = 1024 * 1024
#: Largest request body of any route that takes no photo.
MAX_REQUEST_BODY = 1 * MIB
#: Largest photo accepted (bytes of the image file).
MAX_PHOTO_BYTES = 15 * MIB
#: Room for a request's other fields and framing (multipart headers, JSON keys, the scan's text fields).
_FIELDS_MARGIN = 64 * 1024
#: A photo in JSON travels as base64: 4 characters for every 3 bytes.
PHOTO_JSON_MAX_BODY = MAX_PHOTO_BYTES * 4 // 3 + _FIELDS_MARGIN
#: A photo as a multipart form's file.
PHOTO_FORM_MAX_BODY = MAX_PHOTO_BYTES + _FIELDS_MARGIN
#: Route ``opt`` marking a route that takes a photo: its 413 answer speaks of the photo's limit.
PHOTO_ROUTE = "photo_upload"


def _mb(n: int) -> str:
    return f"{n / MIB:g}"


def photo_too_large(size: int | None = None) -> str:
    """The Chinese-first message for a photo over ``MAX_PHOTO_BYTES``."""
    got = f"（{_mb(size)} MB）" if size is not None else ""
    got_en = f" ({size:,} bytes)" if size is not None else ""
    return (
        f"照片太大{got}，上限为 {_mb(MAX_PHOTO_BYTES)} MB：请靠近企业码重新拍摄，或选择较小的照片"
        f" / the photo is too large{got_en}; the limit is {_mb(MAX_PHOTO_BYTES)} MiB ({MAX_PHOTO_BYTES:,} bytes)"
    )


def too_large_handler(request: Request[Any, Any, Any], exc: RequestEntityTooLarge) -> Response[ErrorBody]:
    """Litestar's own 413 ("Request Entity Too Large") as a Chinese-first answer stating the route's limit."""
    handler = request.scope.get("route_handler")
    if handler is not None and handler.opt.get(PHOTO_ROUTE):
        detail = photo_too_large()
    else:
        limit = (handler.resolve_request_max_body_size() if handler is not None else None) or MAX_REQUEST_BODY
        detail = f"请求内容太大，上限为 {_mb(limit)} MB / the request body is too large; the limit is {limit:,} bytes"
    return error_response(request, TooLarge(detail))


#: The answer to a path holding a NUL character (the request line decoded), JSON like every error of the API.
_NUL_PATH_BODY = (
    b'{"status_code":400,"detail":"\\u8def\\u5f84\\u4e2d\\u542b\\u6709\\u7a7a\\u5b57\\u7b26 / the path holds a NUL character (%00)"}'
)


def refuse_nul_in_path(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: a path with a NUL character is a 400 before any route sees it. No id, name or file holds one,
    and the static file router and PostgreSQL would otherwise fail on it with a 500."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "\x00" in scope.get("path", ""):
            await send({"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_NUL_PATH_BODY)).encode())]})
            await send({"type": "http.response.body", "body": _NUL_PATH_BODY})
            return
        await app(scope, receive, send)

    return middleware


class PerUserRate:
    """At most ``per_minute`` requests per user in any 60 seconds (a sliding window), counted when asked, refused or
    not afterwards, so that neither a double click's second request nor a script's hundredth costs more than a
    count. Kept in this server process: with several HTTP processes each counts its own share (the limit is there to
    keep one user from occupying the server with costly work, not to meter exactly). ``what`` names the work in the
    429's message: (Chinese, English)."""

    WINDOW_MS = 60_000

    def __init__(self, per_minute: int, what: tuple[str, str]) -> None:
        self.per_minute = per_minute
        self.what = what
        self._lock = threading.Lock()
        self._seen: dict[str, deque[int]] = {}

    def check(self, user: str, now_ms: int | None = None) -> None:
        """Count a request of ``user``, or raise TooManyRequests (429, Retry-After in whole seconds) when the user
        made ``per_minute`` of them in the last minute (the refused one is not counted)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            if len(self._seen) > 10_000:  # forget users idle for a minute, so the table stays small
                self._seen = {u: q for u, q in self._seen.items() if q and q[-1] > now - self.WINDOW_MS}
            times = self._seen.setdefault(user, deque())
            while times and times[0] <= now - self.WINDOW_MS:
                times.popleft()
            if len(times) >= self.per_minute:
                wait_s = max(1, (times[0] + self.WINDOW_MS - now + 999) // 1000)
                zh, en = self.what
                raise TooManyRequests(
                    f"{zh}过于频繁，每人每分钟最多 {self.per_minute} 次，请 {wait_s} 秒后再试 / too many {en}: at most"
                    f" {self.per_minute} a minute per user, try again in {wait_s} s",
                    retry_after_s=wait_s,
                )
            times.append(now)
