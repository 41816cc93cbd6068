"""/docs: the API's OpenAPI documentation (Swagger UI), served whole by the node itself.

FastAPI's own page loads Swagger UI from a CDN, so it is blank on a node that cannot reach the
internet. The files come from the `swagger-ui-bundle-v2` package (Swagger UI 5, which reads the
OpenAPI 3.1 FastAPI writes) and are served under /static/swagger; /docs is FastAPI's page
pointed at them. It starts Swagger UI with an inline script, so it is the one page served
without the Content-Security-Policy (`cairn.web.headers`). ReDoc, which has no such package, is
not served.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS = "/docs"
ASSETS = "/static/swagger"  # mounted before the pages' own /static


def install(app: FastAPI) -> None:
    """Serve Swagger UI's files and the /docs page on `app` (made with docs_url=None)."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger")
    openapi = app.openapi_url or "/openapi.json"

    @app.get(DOCS, include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI over this node's OpenAPI document."""
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{app.title}: API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
