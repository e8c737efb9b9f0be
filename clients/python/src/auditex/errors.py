"""Exceptions of the SDK.

Every error answer of the service is an RFC 9457 problem document (`application/problem+json`:
`type`, `title`, `status`, `detail`, and for validation problems `errors`, each a JSON Pointer
into the request body with what is wrong there). `ProblemError` carries it as it came, and a
subclass per status lets a pipeline catch what it can act on (`RateLimited`, `Unavailable` are
retried automatically before they are raised). Failures of the network after every retry are
`TransportError`; evidence that does not verify is `VerificationError`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class AuditexError(Exception):
    """Base class of every exception the SDK raises."""


@dataclass(frozen=True)
class ProblemField:
    """One failing field of a validation problem: a JSON Pointer from the request body's root
    (e.g. `/records/3/payload/score`) and what is wrong with it."""

    pointer: str
    detail: str


class ProblemError(AuditexError):
    """The service answered with an error status and an RFC 9457 problem document."""

    def __init__(
        self,
        status: int,
        type: str,
        title: str,
        detail: str,
        errors: list[ProblemField] | None = None,
        retry_after_s: float | None = None,
        document: dict[str, Any] | None = None,
    ):
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.retry_after_s = retry_after_s
        self.document = document or {}
        super().__init__(f"{status} {title}: {detail} ({type})")

    @property
    def pointer(self) -> str | None:
        """The JSON Pointer of the first failing field, when the problem names one."""
        return self.errors[0].pointer if self.errors else None


class BadRequest(ProblemError):
    """400: a malformed body or parameter."""


class Unauthorized(ProblemError):
    """401: no valid API key."""


class Forbidden(ProblemError):
    """403: the key's role may not do this."""


class NotFound(ProblemError):
    """404: no such thing in this tenant."""


class Conflict(ProblemError):
    """409: for an append, an event id that exists with other content (nothing was written); for
    a read with `min_tree_size`, no published checkpoint has reached that size yet."""


class Gone(ProblemError):
    """410: the thing existed and was removed (e.g. an erased receipt's values)."""


class PayloadTooLarge(ProblemError):
    """413: the request body is over the service's limit."""


class ValidationFailed(ProblemError):
    """422: invalid fields; `errors` names each one by JSON Pointer. Nothing was written."""


class RateLimited(ProblemError):
    """429: the key's rate limit; raised only once the retries are used up."""


class Unavailable(ProblemError):
    """503: overloaded, storage full, clock behind or database unavailable; nothing was written.
    Raised only once the retries are used up."""


_BY_STATUS: dict[int, type[ProblemError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: Unavailable,
}


class TransportError(AuditexError):
    """The service could not be reached, or the connection failed, on every attempt."""


class VerificationError(AuditexError):
    """Evidence (a receipt, record, proof or bundle) did not verify; the message says what failed
    first. `seq` and `event_id` name the record concerned when there is one."""

    def __init__(self, message: str, seq: int | None = None, event_id: str | None = None):
        super().__init__(message)
        self.seq = seq
        self.event_id = event_id


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The delay a `Retry-After` header asks for (RFC 9110 section 10.2.3: delay-seconds or an
    HTTP-date), None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def problem_from_response(response: httpx.Response) -> ProblemError:
    """The exception for an error answer. A body that is not a problem document (a proxy's page,
    say) still gives an exception with the status, its reason phrase as title and the start of
    the body as detail."""
    cls = _BY_STATUS.get(response.status_code, ProblemError)
    retry_after = retry_after_seconds(response)
    doc: Any = None
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return cls(
            response.status_code,
            "about:blank",
            response.reason_phrase or "HTTP error",
            response.text[:500],
            retry_after_s=retry_after,
        )
    fields = [
        ProblemField(str(e.get("pointer", "")), str(e.get("detail", "")))
        for e in doc.get("errors") or []
        if isinstance(e, dict)
    ]
    return cls(
        int(doc.get("status", response.status_code)),
        str(doc.get("type", "about:blank")),
        str(doc.get("title", response.reason_phrase or "")),
        str(doc.get("detail", "")),
        fields,
        retry_after,
        doc,
    )
