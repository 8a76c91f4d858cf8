"""The domain's errors, the HTTP answers they map to, and the answers every route documents in OpenAPI.

Modules below the HTTP layer (codes, stats, ...) raise these; ``create_app`` maps them to answers with
``exception_handlers`` (:func:`error_response`), so no handler picks a status code by reading a message.
Every error answer, Litestar's own included (:func:`http_error_response`), is JSON of one shape
(:class:`ErrorBody`), whatever the route's own media type (a PNG route's 403 is JSON, not "image/png").

:func:`document_answers` then adds to each route's OpenAPI operation the answers its signature implies,
so the document lists every answer a route gives without a hand-written list on each route:

* a route that needs a session (takes ``principal``, or has a role guard): 401 (not signed in) and 403 (role or agency);
* a route with path parameters: 404 (no such record);
* a route with parameters or a body: 400 (validation, or a value the domain refuses);
* a route with a body: 413 (larger than the app's body limit).

Answers a signature cannot show (409, 422, 429, 503, ...) are declared on the route itself with
``responses=answers(Conflict, ...)`` (or ``responses={code: ResponseSpec(...)}``); those win.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from litestar import Litestar, MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.routes import HTTPRoute


class DomainError(Exception):
    """A request the domain refuses; ``status_code`` is the HTTP answer it maps to."""

    status_code: ClassVar[int] = 400
    description: ClassVar[str] = "The request was refused."
    #: Headers the answer carries (e.g. Retry-After).
    headers: dict[str, str] | None = None


class Invalid(DomainError, ValueError):
    """A value that is malformed or out of range (400)."""

    status_code = 400
    description = "A parameter or the body is malformed or out of range (the detail says which and why)."


class Unauthenticated(DomainError):
    """No valid session (401)."""

    status_code = 401
    description = "Not signed in, or the session expired: sign in first."


class Forbidden(DomainError):
    """The principal may not do this (403)."""

    status_code = 403
    description = "Signed in, but this role or agency may not do this (the detail says why)."


class NotFound(DomainError):
    """No such record (404)."""

    status_code = 404
    description = "No record with this identifier."


class Conflict(DomainError):
    """The request contradicts the record's state (409)."""

    status_code = 409
    description = "The record's current state does not allow this (the detail says why)."


class TooLarge(DomainError):
    """The request body is larger than allowed (413)."""

    status_code = 413
    description = "The request body is larger than this route accepts."


class Unreadable(DomainError):
    """A well-formed request whose content cannot be used, e.g. a photo with no code in it (422)."""

    status_code = 422
    description = "The request is well-formed but its content cannot be used (e.g. no code could be read from the photo)."


class TooManyRequests(DomainError):
    """Too many attempts from this client or for this account (429)."""

    status_code = 429
    description = "Too many attempts: wait and try again."

    def __init__(self, detail: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.headers = None if retry_after_s is None else {"Retry-After": str(retry_after_s)}


class ErrorBody(msgspec.Struct, kw_only=True):
    """The body of every error answer."""

    status_code: int
    detail: str
    extra: dict[str, Any] | list[Any] | None = None


def error_response(request: Request[Any, Any, Any], exc: DomainError) -> Response[ErrorBody]:
    """The answer to a DomainError (registered in ``create_app``'s ``exception_handlers``)."""
    return Response(ErrorBody(status_code=exc.status_code, detail=str(exc)), status_code=exc.status_code, headers=exc.headers, media_type=MediaType.JSON)


def http_error_response(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    """Litestar's own HTTP errors (validation, 401, 403, 404, 413, 429, ...) as JSON, with their headers;
    Litestar would otherwise answer in the route's media type, e.g. a JSON body labelled text/csv."""
    detail = exc.detail if exc.status_code != 500 else "Internal Server Error"  # as Litestar: an internal error's text stays inside
    body = ErrorBody(status_code=exc.status_code, detail=detail, extra=exc.extra or None)
    return Response(body, status_code=exc.status_code, headers=exc.headers, media_type=MediaType.JSON)


#: The answer to a body nested deeper than the JSON decoder recurses (``{"a":`` x50,000 is 250 KB).
NESTED_TOO_DEEPLY = "请求内容嵌套过深 / the body is nested too deeply"


def too_deep_response(request: Request[Any, Any, Any], exc: RecursionError) -> Response[ErrorBody]:
    """A 400 for a RecursionError: msgspec raises it while decoding a hostile, deeply nested body, before any
    handler runs (no code of the server recurses on request data), so it is the client's error, not a 500."""
    return error_response(request, Invalid(NESTED_TOO_DEEPLY))


def bad_value_response(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """A 400 for a value the database cannot keep (server/storage/failures.py BAD_VALUE): it came with the request."""
    return error_response(request, Invalid("请求中含有无法保存的值（如空字符 U+0000 或超出范围的数字）/ the request holds a value that cannot be stored (e.g. a NUL character or a number out of range)"))


#: The error classes a route's signature implies, by status code (see the module docstring).
_DERIVED: dict[int, type[DomainError]] = {400: Invalid, 401: Unauthenticated, 403: Forbidden, 404: NotFound, 413: TooLarge}
#: Signature names that are not request parameters.
_NOT_PARAMETERS = frozenset({"state", "request", "scope", "headers", "cookies", "query", "body", "principal", "socket"})


def answers(*errors: type[DomainError]) -> dict[int, ResponseSpec]:
    """OpenAPI answers for a route's ``responses=``, one per error class."""
    return {e.status_code: ResponseSpec(data_container=ErrorBody, description=e.description, generate_examples=False) for e in errors}


def derived_statuses(params: set[str], path_params: set[str], *, guarded: bool = False) -> set[int]:
    """The error statuses a route gives by its signature: its parameter names, its path's parameters, and
    whether a guard stands before it (a role guard: 401 and 403)."""
    out: set[int] = set()
    if guarded or "principal" in params:
        out |= {401, 403}
    if path_params:
        out.add(404)
    if "data" in params:
        out |= {400, 413}
    if params - _NOT_PARAMETERS:
        out.add(400)
    return out


def document_answers(app: Litestar) -> None:
    """Add to every HTTP route's OpenAPI answers those its signature implies (declared answers win)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            params = set(handler.parsed_fn_signature.parameters)
            derived = derived_statuses(params, set(route.path_parameters), guarded=bool(handler.resolve_guards()))
            declared = dict(handler.responses or {})
            for status, spec in answers(*(_DERIVED[s] for s in sorted(derived))).items():
                declared.setdefault(status, spec)
            handler.responses = declared or None
