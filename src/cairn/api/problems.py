"""Errors as JSON problem details (RFC 9457): every failure has a status, title and detail."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from cairn.core.errors import CairnError, ChainError
from cairn.core.licensing import LicenceRequired
from cairn.web.render import page, redirect
from cairn.web.session import signin_redirect
from cairn.web.viewer import SignInRequired

PROBLEM_JSON = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """A problem-details response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


# OpenAI's error types and codes by status, for the OpenAI-compatible routes under /v1.
OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("insufficient_quota", "insufficient_quota"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", None),
    503: ("server_error", "service_unavailable"),
}


def openai_error(status: int, message: str) -> JSONResponse:
    """An error in the shape OpenAI clients parse; invalid input is a 400 there."""
    status = 400 if status == 422 else status
    kind, code = OPENAI_ERRORS.get(status, ("server_error", None))
    if status == 404 and message.startswith("model "):
        code = "model_not_found"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


def _is_openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def _is_page(request: Request) -> bool:
    """A web page (or a form posted from one): errors are shown as a page, not as JSON."""
    return _is_page_path(request.url.path)


def _is_page_path(path: str) -> bool:
    return not path.startswith(("/api/", "/v1/", "/docs", "/openapi", "/static/"))


def _page_error(request: Request, status: int, title: str, detail: str) -> Response:
    if isinstance(getattr(request.state, "error", None), SignInRequired):
        return signin_redirect(request.state.error)
    return page(request, "error.html", status=status, title=title, detail=detail)


def _form_refused(request: Request, detail: str) -> Response:
    """A form posted with a value its route cannot take: back to the page whose form sent it,
    with the message shown there (nothing was done). The error page when no page of this node
    that can be opened again sent it (a page that was itself the answer to a post cannot)."""
    back = urlsplit(request.headers.get("referer", ""))
    same_node = back.scheme in ("http", "https") and back.netloc == request.url.netloc
    if request.method != "POST" or not same_node or not _opens(request, back.path):
        return _page_error(request, 422, "Invalid input", detail)
    return redirect(back.path + (f"?{back.query}" if back.query else ""), f"Not done: {detail}")


def _opens(request: Request, path: str) -> bool:
    """Whether a GET of `path` reaches a page of this app."""
    scope = {"type": "http", "path": path, "method": "GET"}
    return _is_page_path(path) and any(
        route.matches(scope)[0] == Match.FULL for route in request.app.router.routes
    )


def validation_detail(error: dict[str, Any]) -> str:
    """One of FastAPI's validation errors as a sentence that names the field (or the body)."""
    if error.get("type") == "json_invalid":
        why = (error.get("ctx") or {}).get("error", "it does not parse")
        at = error.get("loc", ("body", 0))[-1]
        return f"the body is not valid JSON: {why} (at character {at})"
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    message = str(error.get("msg", "invalid request"))
    return f"{where}: {message}" if where else message


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into problem details (OpenAI errors on /v1)."""

    @app.exception_handler(CairnError)
    async def cairn_error(request: Request, exc: CairnError) -> Response:
        if _is_page(request):
            request.state.error = exc
            if exc.status == 422:  # a value typed in a form: shown on the form that sent it
                return _form_refused(request, exc.message)
            return _page_error(request, exc.status, exc.title, exc.message)
        if _is_openai(request):
            return openai_error(exc.status, exc.message)
        extra: dict[str, Any] = (
            {"reason": exc.reason} if isinstance(exc, ChainError) and exc.reason else {}
        )
        if isinstance(exc, LicenceRequired):
            extra = {"asset_id": exc.asset_id, "use": exc.use.value}
            extra["offers"] = [o.to_dict() for o in exc.offers]
        return problem(exc.status, exc.title, exc.message, **extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        detail = validation_detail(exc.errors()[0]) if exc.errors() else "invalid request"
        if _is_page(request):
            return _form_refused(request, detail)
        if _is_openai(request):
            return openai_error(400, detail)
        return problem(422, "Invalid input", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_page(request):
            return _page_error(request, exc.status_code, _title(exc.status_code), str(exc.detail))
        if _is_openai(request):
            return openai_error(exc.status_code, str(exc.detail))
        return problem(exc.status_code, _title(exc.status_code), str(exc.detail))


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
