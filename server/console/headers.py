"""Security headers on every answer of the server: pages, API answers, errors (a 404 included) and static files.

The Content-Security-Policy runs only scripts served by this server (``script-src 'self'``): the console's
pages keep no inline script and no inline event handler (``onclick=...``); the data a script needs travels
in ``<script type="application/json">`` blocks, which the browser never executes. The API docs page
(``/schema``) follows the same policy: its start-up script is a static file too (see ``server/console/apidocs.py``).

Styles allow ``'unsafe-inline'``: Swagger UI and the jobs pages set inline styles, and an inline style
cannot run script; the protection that matters here (no injected script, no framing, no plugins, no
foreign ``<base>``, forms posting only to this server) is kept whole.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",  # camera previews and Swagger UI's icons
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)
SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",  # frame-ancestors for browsers that predate CSP 2
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # a page's address (an enterprise's code in a query) never leaves it
}


async def add_security_headers(message: Message, scope: Scope) -> None:
    """Litestar ``before_send`` hook: the security headers on every HTTP answer (a route's own value wins)."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in SECURITY_HEADERS.items():
        if name not in headers:
            headers[name] = value
