"""/docs works on a node with no internet: Swagger UI's files come from the node itself."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from starlette.testclient import TestClient


def test_docs_load_only_the_nodes_own_files_and_each_is_served(api: TestClient) -> None:
    own = str(api.base_url).rstrip("/")  # the node's own URL
    docs = api.get("/docs")
    assert docs.status_code == 200 and "SwaggerUIBundle" in docs.text
    loaded = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", docs.text)
    loaded += re.findall(r"""url:\s*["']([^"']+)["']""", docs.text)  # the OpenAPI document
    assert len(loaded) >= 4, loaded
    for url in loaded:
        absolute = urljoin(own + "/docs", url)
        assert urlsplit(absolute).netloc == urlsplit(own).netloc, url  # no CDN
        reply = api.get(absolute)
        assert reply.status_code == 200, url
    kinds = {
        "/static/swagger/swagger-ui-bundle.js": "javascript",
        "/static/swagger/swagger-ui.css": "text/css",
        "/openapi.json": "application/json",
    }
    for path, kind in kinds.items():
        assert path in loaded
        reply = api.get(path)
        assert kind in reply.headers["content-type"] and len(reply.content) > 1000, path
    assert api.get("/openapi.json").json()["info"]["title"] == "Cairn node"
    assert api.get("/redoc").status_code == 404  # ReDoc would need a CDN: not served
