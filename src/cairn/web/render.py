"""How pages are rendered: one Jinja2 environment, the filters pages share, flash messages,
and the context every page gets (the node's frame, the signed-in account and its balances)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from cairn import __version__
from cairn.api.deps import get_demo_status, get_network, get_settings
from cairn.core import amounts
from cairn.web import csrf
from cairn.web.viewer import viewer_of

FLASH_COOKIE = "cairn_flash"
NAV = (
    ("/", "Marketplace"),
    ("/contribute", "Contribute"),
    ("/review", "Review"),
    ("/build", "Build a model"),
    ("/jobs", "Jobs"),
    ("/apps", "Apps"),
    ("/playground", "Playground"),
    ("/earnings", "Earnings"),
)

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def units(amount: int | str | None, places: int = 4) -> str:
    """A token amount in the smallest unit as whole tokens for a page, rounded to at most
    `places` decimals, with thousands commas: 1234500000000000000000 -> '1,234.5'."""
    if amount is None or amount == "":
        return "-"
    return amounts.units(amount, places=places, grouped=True)


def short(address: str | None, keep: int = 6) -> str:
    """`0x1234…abcd`: an address or hash short enough for a table."""
    if not address:
        return "-"
    text = str(address)
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-4:]}"


def ago(timestamp: float | int | None) -> str:
    """'3 min ago' for a unix time."""
    if not timestamp:
        return "-"
    seconds = max(0, int(time.time() - float(timestamp)))
    for size, name in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {name} ago"
    return f"{seconds} s ago"


def count(n: int, thing: str) -> str:
    """'1 round', '2 rounds': a number and what it counts, in the singular when it is one."""
    return f"{n:,} {thing}" + ("" if n == 1 else "s")


def percent(share: float | int | None, places: int = 1) -> str:
    """0.25 -> '25.0 %'."""
    if share is None:
        return "-"
    return f"{float(share) * 100:.{places}f} %"


templates.env.filters.update(
    units=units,
    short=short,
    ago=ago,
    percent=percent,
    count=count,
    tojson_pretty=lambda v: json.dumps(v, indent=2),
)


@dataclass(frozen=True)
class Frame:
    """What every page's frame shows of the node (base.html's banners and footer)."""

    dev: bool  # a development node: its banner warns that dev keys are unencrypted
    chain_id: int
    demo_status: str | None  # what seeding the demo community is doing, while it is


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render `template` with the shared context; a flash message set before is shown once."""
    flash = unquote(request.cookies.get(FLASH_COOKIE, ""))
    frame = Frame(
        dev=get_settings(request).dev,
        chain_id=get_network(request).chain_id,
        demo_status=get_demo_status(request),
    )
    response = templates.TemplateResponse(
        request,
        template,
        {
            "frame": frame,
            "viewer": viewer_of(request),
            "cairn_version": __version__,  # not `version`: pages pass their own versions
            "nav": NAV,
            "path": request.url.path,
            "flash": flash,
            "csrf_field": csrf.hidden_field(request),  # every <form method="post"> renders it
            "csrf_token": csrf.token_of(request),  # for the pages' scripts, in a <meta>
            **context,
        },
        status_code=status,
    )
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(url: str, message: str | None = None) -> RedirectResponse:
    """303 to `url` (after a form post), with `message` shown once on the next page."""
    response = RedirectResponse(url, status_code=303)
    if message:
        response.set_cookie(
            FLASH_COOKIE, quote(message), max_age=60, path="/", samesite="strict", httponly=True
        )
    return response
