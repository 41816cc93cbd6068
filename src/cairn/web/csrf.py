"""Cross-site request forgery: a page post acts for the signed-in account only when it was sent
from one of this node's own pages, rendered for that same session.

Every post to a page (the web app's routes; the JSON API under /api and /v1 authenticates with
bearer tokens and API keys, which a browser never attaches on its own) passes two checks:

- Where it came from. `Origin` must be this node's origin; a browser that sends no Origin must
  send a `Referer` on this node. `Origin: null` is refused: browsers send it after a redirect
  from another origin, which is how carol's browser, holding its SameSite=Strict cookie (a
  "site" is scheme and host, so another port of the same host is the same site), bought a
  licence for a page she never saw. A post that names neither is refused too.
- Which session made the form. A post that carries the session cookie must carry the form
  token: the hidden `csrf_token` field every post form renders, or the `X-CSRF-Token` header
  for the pages' scripts. The token is an HMAC keyed by the session token, which only this
  node and the browser's HttpOnly cookie hold: no other site can learn or compute it, and it
  changes with every sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from fastapi import Request
from markupsafe import Markup, escape

from cairn.core.errors import Forbidden

SESSION_COOKIE = "cairn_session"
FIELD = "csrf_token"  # the hidden form field
HEADER = "X-CSRF-Token"  # what scripts send instead
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LABEL = b"cairn form token v1"


def form_token(session_token: str) -> str:
    """The form token of the session whose cookie holds `session_token`."""
    return hmac.new(session_token.encode("utf-8"), _LABEL, hashlib.sha256).hexdigest()


def token_of(request: Request) -> str | None:
    """The form token the pages of this request carry, or None when there is no session."""
    session = request.cookies.get(SESSION_COOKIE)
    return form_token(session) if session else None


def hidden_field(request: Request) -> Markup:
    """The hidden input every post form renders (nothing when there is no session)."""
    token = token_of(request)
    if token is None:
        return Markup("")
    return Markup('<input type="hidden" name="{}" value="{}">').format(FIELD, escape(token))


def check_origin(request: Request) -> None:
    """Refuse a post that does not say it came from one of this node's pages."""
    host = request.headers.get("host")
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == "null":
            raise Forbidden(
                "the form was sent from a page with no origin (Origin: null, as after a "
                "redirect from another site); open the node's own page and send it from there"
            )
        if urlsplit(origin).netloc != host:
            raise Forbidden(
                f"a form from {origin} may not act on this node; use the node's own pages"
            )
        return
    referer = request.headers.get("referer")
    if referer is None:
        raise Forbidden(
            "the form was sent with neither Origin nor Referer, so the node cannot tell that it "
            "came from its own page; send it from the node's page in a current browser"
        )
    if urlsplit(referer).netloc != host:
        raise Forbidden(
            f"a form from {urlsplit(referer).netloc or 'an unknown page'} may not act on this "
            "node; use the node's own pages"
        )


async def refuse_forgery(request: Request) -> None:
    """Check a page post's origin and, when it carries a session cookie, its form token."""
    if request.method in SAFE_METHODS:
        return
    check_origin(request)
    expected = token_of(request)
    if expected is None:
        return  # no session: the post cannot act for anyone
    sent = request.headers.get(HEADER)
    if sent is None:
        # FastAPI has already parsed a form route's body; this reads the cached form
        sent_field = (await request.form()).get(FIELD)
        sent = sent_field if isinstance(sent_field, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(
            "the form does not carry this session's form token (it is from a page opened "
            "before you last signed in, or from another site); reload the page and send it again"
        )
