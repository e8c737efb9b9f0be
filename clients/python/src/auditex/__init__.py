"""Auditex for Python pipelines: a typed client of the `/v1` API (sync `Client`, async
`AsyncClient`), appends that are safe to retry (client-side UUIDv7 event ids, retries on 429,
503 and network errors honouring `Retry-After`), batching with back-pressure
(`BatchAppender`, `AsyncBatchAppender`), and local verification of receipts, proofs and bundles
with the independent verifier `auditex_verify`.
"""

from ._async_client import AsyncClient
from ._retry import NO_RETRIES, RetryPolicy
from ._sync_client import Client
from ._uuid7 import new_event_id, uuid7
from .batch import AsyncBatchAppender, BatchAppender
from .errors import (
    AuditexError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    ProblemField,
    RateLimited,
    TransportError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
    VerificationError,
)
from .events import BATCH_RECORDS_MAX, Event
from .verify import KeyRing

__version__ = "0.1.0"

__all__ = [
    "BATCH_RECORDS_MAX",
    "NO_RETRIES",
    "AsyncBatchAppender",
    "AsyncClient",
    "AuditexError",
    "BadRequest",
    "BatchAppender",
    "Client",
    "Conflict",
    "Event",
    "Forbidden",
    "Gone",
    "KeyRing",
    "NotFound",
    "PayloadTooLarge",
    "ProblemError",
    "ProblemField",
    "RateLimited",
    "RetryPolicy",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "VerificationError",
    "new_event_id",
    "uuid7",
]
