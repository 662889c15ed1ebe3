"""The API's errors: one ``ErrorResponse`` shape for every 4xx, with readable messages per field."""

# No ``from __future__ import annotations``, like the rest of the serve package's FastAPI modules.

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sitetune.serve.schemas import MAX_K, ErrorResponse, FieldError


class InvalidInput(Exception):
    """A request that passed the schema but names something that does not exist (an unknown page)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_FRIENDLY: dict[str, Callable[[dict[str, Any]], str]] = {
    "missing": lambda ctx: "is required",
    "string_too_short": lambda ctx: "must not be empty",
    "string_too_long": lambda ctx: f"must be at most {ctx.get('max_length')} characters",
    "string_pattern_mismatch": lambda ctx: "must not be empty or only whitespace",
    "greater_than_equal": lambda ctx: f"must be between 1 and {MAX_K}",
    "less_than_equal": lambda ctx: f"must be between 1 and {MAX_K}",
    "int_parsing": lambda ctx: "must be a whole number",
    "int_type": lambda ctx: "must be a whole number",
    "int_from_float": lambda ctx: "must be a whole number",
    "string_type": lambda ctx: "must be a string",
    "extra_forbidden": lambda ctx: "is not a known field",
    "json_invalid": lambda ctx: "is not valid JSON",
    "model_attributes_type": lambda ctx: "must be a JSON object",
    "dict_type": lambda ctx: "must be a JSON object",
}


def field_errors(exc: RequestValidationError) -> list[FieldError]:
    """One readable message per invalid field of a request."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("query", "path", "header"):
            loc = loc[1:]
        field = ".".join(loc) or "request"
        if loc[:1] == ["body"] and (len(loc) == 1 or err.get("type") == "json_invalid"):
            field = "body"  # json_invalid's location ends in a character offset, not a field
        friendly = _FRIENDLY.get(str(err.get("type")))
        message = friendly(err.get("ctx") or {}) if friendly else str(err.get("msg", "is invalid"))
        out.append(FieldError(field=field, message=message))
    return out


def error_response(status: int, detail: str, errors: Sequence[FieldError] = ()) -> JSONResponse:
    """The JSON error every 4xx and 5xx answer carries."""
    return JSONResponse(ErrorResponse(detail=detail, errors=list(errors)).model_dump(), status_code=status)


_FASTAPI_BODY_ERROR = "There was an error parsing the body"


async def on_invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A request the schema refuses: 422 naming each invalid field."""
    errors = field_errors(exc)
    return error_response(422, "; ".join(f"{e.field}: {e.message}" for e in errors), errors)


async def on_invalid_input(request: Request, exc: InvalidInput) -> JSONResponse:
    """A request naming something that does not exist: 422 naming the field."""
    return error_response(422, str(exc), [FieldError(field=exc.field, message=exc.message)])


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Any other refusal (404, 429, 503...) in the same shape, with the exception's headers."""
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 400 and detail == _FASTAPI_BODY_ERROR:
        # FastAPI's answer to a body it cannot decode (bytes that are not UTF-8): a malformed
        # request like any other, so the same 422 shape with the field named.
        message = "is not valid JSON text (UTF-8 expected)"
        return error_response(422, f"body: {message}", [FieldError(field="body", message=message)])
    response = error_response(exc.status_code, detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


#: The app's exception handlers (``FastAPI(exception_handlers=...)``): every error in one JSON shape.
EXCEPTION_HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    RequestValidationError: on_invalid_request,
    InvalidInput: on_invalid_input,
    StarletteHTTPException: on_http_error,
}
