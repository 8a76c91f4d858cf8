"""The API docs page (``/schema``): Swagger UI served by this server, never from a CDN (government networks
are often offline), and under the same Content-Security-Policy as every other page.

Swagger UI's files come from the ``swagger-ui-py`` package (Swagger UI 5, which reads the OpenAPI 3.1
documents Litestar writes; Swagger UI 4 refuses them). They are served under ``/schema/assets/``. Litestar's
own Swagger page starts Swagger UI with an inline script holding the whole OpenAPI document; here the page
loads a static start-up script (``server/console/static/swagger-init.js``), which reads the document's address from
a ``data-`` attribute and fetches it, so the page needs no inline script, no nonce and no special CSP.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router


#: Where Swagger UI's files are served, under the OpenAPI path (``/schema``).
ASSETS = "/assets"
#: The start-up script, one of the console's static files.
INIT_SCRIPT = "/static/swagger-init.js"


def swagger_ui_dir() -> Path:
    """The folder of Swagger UI's files inside the installed ``swagger-ui-py`` package (Swagger UI 5, which
    reads the OpenAPI 3.1 document Litestar writes; the older swagger-ui-bundle's Swagger UI 4 cannot)."""
    return Path(str(resources.files("swagger_ui") / "static"))


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI from this server's own files, started by a static script (no inline script)."""

    def __init__(self, schema_path: str = "/schema") -> None:
        base = schema_path.rstrip("/") + ASSETS
        super().__init__(
            js_url=f"{base}/swagger-ui-bundle.js",
            css_url=f"{base}/swagger-ui.css",
            standalone_preset_js_url=f"{base}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{base}/favicon-32x32.png'>",
            style="",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The docs page: Swagger UI's files and the start-up script, all from this server."""
        title = html.escape(str(openapi_schema["info"]["title"]))
        spec_url = html.escape(self.get_openapi_json_route(request))
        return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{self.favicon}
<link rel="stylesheet" href="{self.css_url}">
</head>
<body>
<div id="swagger-container" data-spec-url="{spec_url}"></div>
<script src="{self.js_url}"></script>
<script src="{self.standalone_preset_js_url}"></script>
<script src="{INIT_SCRIPT}"></script>
</body>
</html>
""".encode()

    def receive_router(self, router: Router) -> None:
        """Serve Swagger UI's files beside the docs page. (Litestar's OAuth2 redirect page is left out: the
        API signs in with a session, not OAuth2, and that page's inline script would not run under the CSP.)"""
        router.register(create_static_files_router(ASSETS, directories=[swagger_ui_dir()], name="swagger-ui-assets"))
