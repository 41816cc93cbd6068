"""Security headers through a real HTTP server: pages carry a CSP that allows only the node's
own scripts and stylesheets and no framing, every response says nosniff, and nothing a page
renders is something the policy would block. /docs still loads (it gets no CSP)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx

import cairn.web

TEMPLATES = Path(cairn.web.__file__).with_name("templates")
# what a `script-src 'self'; style-src 'self'` policy blocks in a page
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
BLOCKED = (
    INLINE_SCRIPT,
    re.compile(r"<style\b", re.I),
    re.compile(r"""\son[a-z]+\s*=\s*["']""", re.I),  # onclick="…"
    re.compile(r"javascript:", re.I),
)


def policy(reply: httpx.Response) -> dict[str, str]:
    """The response's CSP, directive by directive."""
    directives = [
        d.strip().split(" ", 1) for d in reply.headers["content-security-policy"].split(";")
    ]
    return {name: value for name, value in directives}


def test_pages_allow_only_their_own_scripts_and_cannot_be_framed(
    web: httpx.Client, signed_in: Callable[[str], httpx.Client]
) -> None:
    signed_in("alice")
    for path in ("/", "/signin", "/build", "/earnings", "/no-such-page"):
        reply = web.get(path)
        csp = policy(reply)
        assert csp["default-src"] == csp["script-src"] == csp["style-src"] == "'self'", path
        assert csp["style-src-attr"] == "'unsafe-inline'"  # style="…" and nothing else inline
        assert csp["frame-ancestors"] == csp["object-src"] == csp["base-uri"] == "'none'"
        assert csp["form-action"] == "'self'"
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "same-origin"
        for blocked in BLOCKED:
            assert not blocked.search(reply.text), f"{path}: {blocked.pattern}"


def test_no_template_holds_what_the_policy_blocks() -> None:
    for template in sorted(TEMPLATES.glob("*.html")):
        source = template.read_text()
        for blocked in BLOCKED:
            assert not blocked.search(source), f"{template.name}: {blocked.pattern}"


def test_api_and_static_files_say_nosniff_and_docs_still_load(web: httpx.Client) -> None:
    for path in ("/api/v1/health", "/static/cairn.js", "/openapi.json"):
        reply = web.get(path)
        assert reply.status_code == 200 and reply.headers["x-content-type-options"] == "nosniff"
    docs = web.get("/docs")
    # Swagger UI loads from its CDN and starts with an inline script: no CSP there, still unframable
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "content-security-policy" not in docs.headers
    assert docs.headers["x-frame-options"] == "DENY"
