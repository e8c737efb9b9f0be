"""Events to append: what a pipeline says happened, with the event id fixed at creation.

The event id (a UUIDv7) is chosen when the `Event` is made, never when it is sent, so every
retry, and a resend after a crash if the caller kept the event, carries the same id and the
service appends it at most once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ._uuid7 import new_event_id

BATCH_RECORDS_MAX = 1000
"""The most events `POST /v1/records/batch` takes (the service's `BATCH_RECORDS_MAX`, and "At most
1000 events" in docs/openapi.json; a test holds the two together)."""

REQUEST_BODY_BYTES_MAX = 8 * 1024 * 1024
"""The service's request body limit (`REQUEST_BODY_BYTES_MAX`); a batch body stays below it."""


@dataclass(frozen=True)
class Event:
    """One event: its type, payload (FORMAT.md section 7) and erasable fields (personal data,
    name → any JSON value but null; only salted commitments enter the hashed record).

    Raises ValueError when the payload or an erasable value is not JSON (NaN, infinities and
    non-string keys included)."""

    event_type: str
    payload: dict[str, Any]
    erasable: dict[str, Any] | None = None
    event_id: str = field(default_factory=new_event_id)

    def to_json(self) -> dict[str, Any]:
        """The event as the API's `AppendRequest`."""
        body: dict[str, Any] = {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "payload": self.payload,
        }
        if self.erasable:
            body["erasable"] = self.erasable
        return body

    def encode(self) -> bytes:
        """The event's JSON, compact, UTF-8. Raises ValueError for values JSON cannot carry."""
        return encode_json(self.to_json())

    @staticmethod
    def human_review(decision_id: str, reviewer: str, action: str, reason: str | None = None,
                     reviewed_at: str | None = None) -> Event:
        """A `human_review` of a decision (EU AI Act Art. 14): who reviewed it and what they did."""
        payload = {"decision_id": decision_id, "reviewer": reviewer, "action": action}
        if reason is not None:
            payload["reason"] = reason
        if reviewed_at is not None:
            payload["reviewed_at"] = reviewed_at
        return Event("human_review", payload)

    @staticmethod
    def override(decision_id: str, reviewer: str, new_outcome: str, reason: str,
                 new_score: float | None = None) -> Event:
        """An `override`: a reviewer replaces a decision's outcome (the decision stays as it was;
        the override is a new record linked to it)."""
        payload: dict[str, Any] = {
            "decision_id": decision_id, "reviewer": reviewer, "new_outcome": new_outcome, "reason": reason,
        }
        if new_score is not None:
            payload["new_score"] = new_score
        return Event("override", payload)


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused here rather than by the service."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def batch_body(encoded_events: list[bytes]) -> bytes:
    """The body of `POST /v1/records/batch` from events already encoded."""
    return b'{"records":[' + b",".join(encoded_events) + b"]}"
