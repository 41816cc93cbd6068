"""Security headers on every response: what a page may load, who may frame it, what it leaks.

Everything the pages load is the node's own (/static): no CDN, no inline <script>, no <style>
element, no inline event handler. So scripts and stylesheets come from 'self' only; the `style`
attributes the pages do use (a chart line's colour, a few layout tweaks) are allowed and nothing
else inline is. `frame-ancestors 'none'` with `X-Frame-Options: DENY` (for older browsers) stops
clickjacking; `nosniff` stops a stored blob being run as a script or a page.

/docs is Swagger UI (`cairn.api.docs`): its files are the node's own too, but its page starts it
with an inline script, so it gets every header but the CSP. A route that sets its own CSP keeps
it.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),  # other sites learn nothing of the page a link was on
)
WITHOUT_CSP = ("/docs",)  # the API documentation page (see above)


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response (streams included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = not str(scope.get("path", "")).startswith(WITHOUT_CSP)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS:
                    headers.setdefault(name, value)
                if policy:
                    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
