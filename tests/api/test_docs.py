"""/docs works on a node with no internet: Swagger UI's files come from the node itself."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx

from tests.conftest import LiveServer


def test_docs_load_only_the_nodes_own_files_and_each_is_served(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as http:
        docs = http.get("/docs")
        assert docs.status_code == 200 and "SwaggerUIBundle" in docs.text
        loaded = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", docs.text)
        loaded += re.findall(r"""url:\s*["']([^"']+)["']""", docs.text)  # the OpenAPI document
        assert len(loaded) >= 4, loaded
        for url in loaded:
            absolute = urljoin(live.url + "/docs", url)
            assert urlsplit(absolute).netloc == urlsplit(live.url).netloc, url  # no CDN
            reply = http.get(absolute)
            assert reply.status_code == 200, url
        kinds = {
            "/static/swagger/swagger-ui-bundle.js": "javascript",
            "/static/swagger/swagger-ui.css": "text/css",
            "/openapi.json": "application/json",
        }
        for path, kind in kinds.items():
            assert path in loaded
            reply = http.get(path)
            assert kind in reply.headers["content-type"] and len(reply.content) > 1000, path
        assert http.get("/openapi.json").json()["info"]["title"] == "Cairn node"
        assert http.get("/redoc").status_code == 404  # ReDoc would need a CDN: not served
