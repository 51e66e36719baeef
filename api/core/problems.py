"""RFC 9457 problem details with a stable machine ``code`` for every failure.

Clients branch on ``code``, never on ``title``/``detail`` wording, so every error
path (our own, FastAPI's validation, Starlette's 404/405, database constraint
races, crashes) is funnelled through the handlers installed here.
"""

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"

STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class Problem(Exception):
    """Raise anywhere (services included) to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str | None = None,
        detail: str | None = None,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(f"{status} {self.code}: {self.detail}")


def not_found(what: str = "resource") -> Problem:
    return Problem(404, "not_found", f"{what} not found")


def conflict(detail: str, code: str = "conflict") -> Problem:
    return Problem(409, code, detail)


def unauthorized(detail: str = "authentication required", code: str = "unauthorized") -> Problem:
    return Problem(401, code, detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(detail: str = "not allowed", code: str = "forbidden") -> Problem:
    return Problem(403, code, detail)


def validation_error(detail: str, errors: list[dict[str, Any]] | None = None) -> Problem:
    return Problem(422, "validation_error", detail, extra={"errors": errors or []})


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:ece:problem:{problem.code}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if instance:
        body["instance"] = instance
    body.update(problem.extra)
    return JSONResponse(
        body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON
    )


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Keep where and why; drop ``input``/``ctx`` which can echo passwords back."""
    cleaned = []
    for err in errors:
        cleaned.append(
            {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
        )
    return cleaned


async def _problem_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc, request.url.path)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _clean_validation_errors(exc.errors())
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", []))
    detail = f"{where}: {first.get('msg')}" if first else "invalid request"
    return problem_response(validation_error(detail, errors), request.url.path)


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    problem = Problem(exc.status_code, detail=detail, headers=dict(exc.headers or {}))
    return problem_response(problem, request.url.path)


async def _integrity_handler(request: Request, exc: Exception) -> JSONResponse:
    """A constraint race a service did not anticipate: the DB refused, nothing was written."""
    log.warning("integrity_error", path=request.url.path, error=str(getattr(exc, "orig", exc)))
    return problem_response(
        conflict("the request conflicts with the current state"), request.url.path
    )


async def _unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path)
    return problem_response(Problem(500, "internal_error", "internal error"), request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _problem_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(IntegrityError, _integrity_handler)
    app.add_exception_handler(Exception, _unhandled_handler)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem+json answers."""
    return {
        status: {
            "description": f"{HTTPStatus(status).phrase} (problem+json)",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
