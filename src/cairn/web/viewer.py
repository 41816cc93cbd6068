"""Who a page is for: the signed-in account of a request, read from its session cookie.

A leaf of the web app: pages (`render.page` draws the header from it) and the sign-in routes
(`session`) both stand on it, so neither imports the other to know who is signed in.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from cairn.api.deps import get_accounts, get_auth, get_economy
from cairn.core.errors import CairnError, Unauthorized
from cairn.web.csrf import SESSION_COOKIE


class SignInRequired(Unauthorized):
    """A page that acts for an account was opened without a session: go to /signin."""

    def __init__(self, next_url: str) -> None:
        super().__init__("sign in to use this page")
        self.next_url = next_url


@dataclass(frozen=True)
class Viewer:
    """The signed-in account, as pages show it."""

    address: str
    label: str | None  # the node's name for it, when the node holds its key
    key_on_node: bool
    wallet: int  # CAIRN in the account, smallest unit
    prepaid: int  # prepaid balance available for API calls, smallest unit


def viewer_of(request: Request) -> Viewer | None:
    """The signed-in account of this request, or None (looked up once per request)."""
    if hasattr(request.state, "viewer"):
        viewer: Viewer | None = request.state.viewer
        return viewer
    request.state.viewer = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            address = get_auth(request).resolve(token)
        except Unauthorized:
            return None
        accounts = get_accounts(request)
        label = None
        with contextlib.suppress(CairnError):  # a key file the node cannot read: no label
            label = accounts.label(address)
        request.state.viewer = Viewer(
            address=address,
            label=label,
            key_on_node=accounts.can_sign(address),
            wallet=accounts.token_balance(address),
            prepaid=get_economy(request).balances.get(address).available,
        )
    viewer = request.state.viewer
    return viewer


def fresh_viewer(request: Request, viewer: Viewer | None) -> Viewer | None:
    """The viewer read again after this request's writes (a call spent prepaid tokens, a
    deposit added some), so the header shows the balances after them."""
    if request.method == "POST" and hasattr(request.state, "viewer"):
        del request.state.viewer
    return viewer_of(request) if viewer is not None else None


def require_viewer(request: Request) -> Viewer:
    """The signed-in account; a page without one sends the browser to sign in."""
    viewer = viewer_of(request)
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return viewer


def optional_viewer(request: Request) -> Viewer | None:
    """The signed-in account, if any."""
    return viewer_of(request)


ViewerDep = Annotated[Viewer, Depends(require_viewer)]
MaybeViewer = Annotated[Viewer | None, Depends(optional_viewer)]
