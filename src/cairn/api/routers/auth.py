"""Sign-In with Ethereum (EIP-4361): nonce, sign in, sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cairn.api.deps import AccountsDep, AuthDep, SessionAddress
from cairn.api.node_schemas import SessionAccount
from cairn.api.schemas import NonceOut, SessionOut, SignIn

router = APIRouter(prefix="/auth", tags=["auth"])
_bearer = HTTPBearer()


@router.post("/nonce", response_model=NonceOut)
def nonce(auth: AuthDep) -> NonceOut:
    """A fresh single-use nonce to put in an EIP-4361 message."""
    return NonceOut(nonce=auth.issue_nonce())


@router.post("/signin", response_model=SessionOut)
def signin(auth: AuthDep, body: SignIn) -> SessionOut:
    """Verify a signed EIP-4361 message and open a session; the token goes in `Authorization`."""
    session = auth.sign_in(body.message, body.signature)
    return SessionOut(token=session.token, address=session.address, expires_at=session.expires_at)


@router.post("/signout", status_code=204)
def signout(
    auth: AuthDep, credentials: Annotated[HTTPAuthorizationCredentials, Depends(_bearer)]
) -> None:
    """End the session of the bearer token."""
    auth.sign_out(credentials.credentials)


@router.get("/me", response_model=SessionAccount)
def me(accounts: AccountsDep, address: SessionAddress) -> SessionAccount:
    """Who the session belongs to, and whether this node holds that account's key."""
    return SessionAccount(address=address, key_on_node=accounts.can_sign(address))
