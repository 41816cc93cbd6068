"""Who is using the web app: a Sign-In with Ethereum session kept in a cookie.

A browser wallet (EIP-1193) signs an EIP-4361 message in the page (static/cairn.js) and trades
it for a session here; on a development node a dev account can be picked instead, and the node
signs the same message with the key it holds. The cookie is HttpOnly and SameSite=Strict, and
Secure when the page was served over HTTPS (or the node is told it is, `CAIRN_SECURE_COOKIES`);
every page post is checked by `cairn.web.csrf`, so another site cannot act for the signed-in user.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from eth_account.messages import encode_defunct
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from siwe import SiweMessage

from cairn.api.deps import AccountsDep, AuthDep, NetworkDep, SettingsDep
from cairn.api.services import NodeSettings
from cairn.core.errors import CairnError, Forbidden
from cairn.core.evm import checksum
from cairn.identity.keystore import GATEWAY, OPERATOR
from cairn.identity.siwe import SiweAuth
from cairn.web.csrf import SESSION_COOKIE
from cairn.web.render import page, redirect
from cairn.web.viewer import SignInRequired

STATEMENT = "Sign in to Cairn."

router = APIRouter(include_in_schema=False)


def siwe_text(request: Request, address: str, nonce: str, *, chain_id: int, node_host: str) -> str:
    """The EIP-4361 message that signs `address` in to this node from this page's host
    (`node_host`, the node's own address, when the request names none)."""
    host = request.headers.get("host") or node_host
    return str(
        SiweMessage(
            domain=host,
            address=address,
            statement=STATEMENT,
            uri=f"{request.url.scheme}://{host}",
            version="1",
            chain_id=chain_id,
            nonce=nonce,
            issued_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        ).prepare_message()
    )


def _node_siwe_text(
    request: Request, auth: SiweAuth, chain_id: int, settings: NodeSettings, address: str
) -> str:
    """`siwe_text` for this node, with a fresh nonce."""
    return siwe_text(
        request,
        address,
        auth.issue_nonce(),
        chain_id=chain_id,
        node_host=f"{settings.host}:{settings.port}",
    )


def _keep_session(
    request: Request, response: Response, token: str, expires_at: int, *, secure: bool
) -> None:
    """Set the session cookie: HttpOnly, SameSite=Strict, and Secure over HTTPS (or when the
    node is told it is served so, `secure`)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(60, expires_at - int(datetime.now(UTC).timestamp())),
        path="/",
        httponly=True,
        samesite="strict",
        # uvicorn reports https behind a proxy it trusts (X-Forwarded-Proto, FORWARDED_ALLOW_IPS)
        secure=request.url.scheme == "https" or secure,
    )


def _safe_next(next_url: str | None) -> str:
    """Only a path on this node: never send a signed-in user to another site."""
    if not next_url or not next_url.startswith("/") or next_url.startswith("//"):
        return "/"
    # Browsers read `/\host` as `//host` and drop tabs and line breaks (`/\t/host`): a path
    # with a backslash or any control or format character is not taken at all.
    if any(c == "\\" or unicodedata.category(c).startswith("C") for c in next_url):
        return "/"
    return next_url


@router.get("/signin", response_class=HTMLResponse)
def signin_page(
    request: Request,
    accounts: AccountsDep,
    network: NetworkDep,
    settings: SettingsDep,
    next: str | None = None,
) -> HTMLResponse:
    """Sign in with a browser wallet, or pick a dev account on a development node."""
    held = accounts.held()
    # people first; the operator (settles epochs) last; the gateway's treasury is not a user
    people = [a for a in held if a.dev and a.label not in (OPERATOR, GATEWAY)]
    operator = [a for a in held if a.label == OPERATOR and a.dev]
    dev_accounts = people + operator if settings.dev else []
    return page(
        request,
        "signin.html",
        title="Sign in",
        dev_accounts=dev_accounts,
        next_url=_safe_next(next),
        chain_id=network.chain_id,
    )


@router.post("/signin/dev")
def signin_dev(
    request: Request,
    auth: AuthDep,
    accounts: AccountsDep,
    network: NetworkDep,
    settings: SettingsDep,
    address: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> RedirectResponse:
    """Sign in as a dev account: the node signs the EIP-4361 message with the key it holds."""
    if not settings.dev:
        raise Forbidden("dev accounts are offered only by a node started with --dev")
    info = accounts.held_account(address)
    if not info.dev or info.label == GATEWAY:
        raise Forbidden(f"{address} is not a dev account; sign in with its wallet")
    account = accounts.signer(info.address)
    message = _node_siwe_text(request, auth, network.chain_id, settings, info.address)
    signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    session = auth.sign_in(message, signature)
    response = redirect(_safe_next(next), f"Signed in as {info.label} ({info.address}).")
    _keep_session(
        request, response, session.token, session.expires_at, secure=settings.secure_cookies
    )
    return response


class WalletSignIn(BaseModel):
    message: str = Field(..., max_length=4096)
    signature: str = Field(..., max_length=200)
    next: str | None = None


def _json_error(exc: CairnError) -> JSONResponse:
    """The wallet script reads errors as JSON, unlike the pages."""
    return JSONResponse({"title": exc.title, "detail": exc.message}, status_code=exc.status)


@router.post("/signin/message")
def signin_message(
    request: Request,
    auth: AuthDep,
    network: NetworkDep,
    settings: SettingsDep,
    address: Annotated[str, Form()],
) -> JSONResponse:
    """The EIP-4361 message a wallet signs for `address`, with a fresh nonce."""
    try:
        text = _node_siwe_text(request, auth, network.chain_id, settings, checksum(address))
    except CairnError as exc:
        return _json_error(exc)
    return JSONResponse({"message": text})


@router.post("/signin/wallet")
def signin_wallet(
    request: Request, auth: AuthDep, settings: SettingsDep, body: WalletSignIn
) -> JSONResponse:
    """Trade a wallet-signed EIP-4361 message for a session cookie."""
    try:
        session = auth.sign_in(body.message, body.signature)
    except CairnError as exc:
        return _json_error(exc)
    response = JSONResponse({"address": session.address, "next": _safe_next(body.next)})
    _keep_session(
        request, response, session.token, session.expires_at, secure=settings.secure_cookies
    )
    return response


@router.post("/signout")
def signout(request: Request, auth: AuthDep) -> RedirectResponse:
    """End the session and forget the cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        auth.sign_out(token)
    response = redirect("/", "Signed out.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def signin_redirect(exc: SignInRequired) -> RedirectResponse:
    """Where a page that needs an account sends a visitor who has none."""
    return RedirectResponse(f"/signin?next={quote(exc.next_url)}", status_code=303)
