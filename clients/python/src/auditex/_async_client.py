"""The asynchronous client: one method per `/v1` operation of docs/openapi.json.

This file is the source of both clients: tools/unasync.py writes `_sync_client.py` from it
(`async`/`await` removed, `httpx.AsyncClient` → `httpx.Client`, `asyncio.sleep` → `time.sleep`),
and a test fails when the two disagree, so the retry and verification logic exists once.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, Self, cast

import httpx

from . import models, verify
from ._retry import RETRY_STATUSES, RetryPolicy
from .errors import TransportError, problem_from_response
from .events import BATCH_RECORDS_MAX, Event, batch_body, encode_json
from .verify import KeyRing

USER_AGENT = "auditex-python/0.1.0"


def _segment(value: str | int) -> str:
    """A path segment, percent-encoded (a subject reference may hold `/` or spaces)."""
    return urllib.parse.quote(str(value), safe="")


def _query(**params: Any) -> dict[str, Any]:
    """Query parameters without the ones not given; booleans and numbers as the API spells them."""
    return {k.rstrip("_"): v for k, v in params.items() if v is not None}


def _tls(verify_tls: bool | str | ssl.SSLContext) -> bool | ssl.SSLContext:
    """`True` (the system's authorities), `False` (no verification; never in production), a
    PEM file of authorities (or the service's self-signed certificate) or a ready context."""
    if isinstance(verify_tls, str):
        return ssl.create_default_context(cafile=verify_tls)
    return verify_tls


def _certificate_refused(error: BaseException) -> bool:
    """The server's certificate was not trusted: trying again cannot help, so it is raised at
    once rather than retried for minutes."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class AsyncClient:
    """A client of one tenant's API, authenticated by one API key (its role decides what it may
    do: `ingest` appends, `read` reads and proves, `verify` proves, `privacy` erases and holds).

    `verify_tls` is True (system authorities), a PEM file to trust (a private authority, or the
    service's self-signed certificate) or an `ssl.SSLContext`. `retry` says how requests are
    retried (see `RetryPolicy`); `transport` replaces the network (tests)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        verify_tls: bool | str | ssl.SSLContext = True,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        key_ring: KeyRing | None = None,
    ):
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"authorization": f"Bearer {api_key}", "user-agent": USER_AGENT},
            verify=_tls(verify_tls),
            timeout=timeout_s,
            transport=transport,
            follow_redirects=False,
        )
        # The tenant's key history, fetched once and refreshed when a receipt names a key it does
        # not hold yet (after a rotation); a history pinned by the caller is never replaced.
        self._key_ring = key_ring
        self._key_ring_pinned = key_ring is not None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    # --- Transport ------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        repeatable: bool = True,
        accept: str = "application/json",
    ) -> httpx.Response:
        """Sends a request, retrying as `self.retry` says: on 429 and 503 always (nothing was
        written), on connection failures only when `repeatable` (a read, or an append whose event
        ids make a repeat harmless). The same body bytes go out on every attempt.

        Raises ProblemError (a subclass per status) for an error answer, TransportError when the
        connection failed on every attempt."""
        headers = {"accept": accept}
        if body is not None:
            headers["content-type"] = "application/json"
        started = time.monotonic()
        retry = 0
        while True:
            retry += 1
            try:
                response = await self._http.request(method, path, params=params, content=body, headers=headers)
            except httpx.TransportError as e:
                again = repeatable and not _certificate_refused(e)
                delay = self.retry.delay_s(retry, None, time.monotonic() - started) if again else None
                if delay is None:
                    raise TransportError(f"{method} {path}: {e!r} (attempt {retry})") from e
                await asyncio.sleep(delay)
                continue
            if response.status_code < 400:
                return response
            problem = problem_from_response(response)
            if response.status_code in RETRY_STATUSES:
                delay = self.retry.delay_s(retry, problem.retry_after_s, time.monotonic() - started)
                if delay is not None:
                    await asyncio.sleep(delay)
                    continue
            raise problem

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._send(method, path, **kwargs)).json()

    async def _text(self, path: str, params: dict[str, Any] | None = None, accept: str = "text/plain") -> str:
        return (await self._send("GET", path, params=params, accept=accept)).text

    # --- Ingest ---------------------------------------------------------------------------------

    async def append(self, event: Event) -> models.ReceiptBody:
        """`POST /v1/records` (append_one): appends one event and returns its receipt (201, or
        200 with `duplicate: true` when the event id was appended before, e.g. by a retry).

        Raises ValidationFailed (422, `errors` name the fields), Conflict (409: the event id
        exists with other content), and the other ProblemError subclasses."""
        return cast(models.ReceiptBody, await self._json("POST", "/v1/records", body=event.encode()))

    async def append_batch(self, events: Sequence[Event]) -> list[models.ReceiptBody]:
        """`POST /v1/records/batch` (append_batch): appends up to 1000 events, all or nothing,
        and returns their receipts in the same order.

        Raises ValueError for an empty batch or one of more than BATCH_RECORDS_MAX events."""
        if not 1 <= len(events) <= BATCH_RECORDS_MAX:
            raise ValueError(f"a batch holds 1 to {BATCH_RECORDS_MAX} events, not {len(events)}")
        return await self.append_encoded([e.encode() for e in events])

    async def append_encoded(self, encoded_events: list[bytes]) -> list[models.ReceiptBody]:
        """`POST /v1/records/batch` with events already encoded (`Event.encode()`); what the
        batching helpers send. Raises as `append_batch`."""
        answer = await self._json("POST", "/v1/records/batch", body=batch_body(encoded_events))
        receipts = cast(models.BatchReceipts, answer)["receipts"]
        if len(receipts) != len(encoded_events):
            raise TransportError(f"the service answered {len(receipts)} receipts for {len(encoded_events)} events")
        return receipts

    async def get_receipt(self, event_id: str) -> models.ReceiptBody:
        """`GET /v1/receipts/{event_id}` (get_receipt): the receipt of an appended event."""
        return cast(models.ReceiptBody, await self._json("GET", f"/v1/receipts/{_segment(event_id)}"))

    # --- Records --------------------------------------------------------------------------------

    async def get_record(self, seq: int) -> models.RecordBody:
        """`GET /v1/records/{seq}` (get_record): the sealed record at a sequence number."""
        return cast(models.RecordBody, await self._json("GET", f"/v1/records/{_segment(seq)}"))

    async def get_record_by_event(self, event_id: str) -> models.RecordBody:
        """`GET /v1/events/{event_id}` (get_record_by_event): the sealed record of an event."""
        return cast(models.RecordBody, await self._json("GET", f"/v1/events/{_segment(event_id)}"))

    async def list_records(
        self, *, from_seq: int | None = None, cursor: str | None = None, limit: int | None = None
    ) -> models.RecordPage:
        """`GET /v1/records` (list_records): a page of records in sequence order."""
        params = _query(from_seq=from_seq, cursor=cursor, limit=limit)
        return cast(models.RecordPage, await self._json("GET", "/v1/records", params=params))

    async def export(self, *, from_seq: int | None = None, min_tree_size: int | None = None) -> str:
        """`GET /v1/export` (export): the ledger (or from `from_seq` on) as the export of
        FORMAT.md section 12, JSON Lines; `verify.verify_export` checks it. `min_tree_size`:
        end at a checkpoint at least that large (read-your-writes; 409 while none is)."""
        params = _query(from_seq=from_seq, min_tree_size=min_tree_size)
        return await self._text("/v1/export", params, accept="application/x-ndjson")

    # --- Decisions and oversight ----------------------------------------------------------------

    async def search_decisions(
        self,
        *,
        model_id: str | None = None,
        model_version: str | None = None,
        outcome: str | None = None,
        model_outcome: str | None = None,
        status: str | None = None,
        subject_ref: str | None = None,
        decided_from: str | None = None,
        decided_until: str | None = None,
        captured_from: str | None = None,
        captured_until: str | None = None,
        score_min: float | None = None,
        score_max: float | None = None,
        order: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> models.DecisionPage:
        """`GET /v1/decisions` (search_decisions): decisions matching every filter given."""
        params = _query(
            model_id=model_id, model_version=model_version, outcome=outcome, model_outcome=model_outcome,
            status=status, subject_ref=subject_ref, decided_from=decided_from, decided_until=decided_until,
            captured_from=captured_from, captured_until=captured_until, score_min=score_min,
            score_max=score_max, order=order, cursor=cursor, limit=limit,
        )
        return cast(models.DecisionPage, await self._json("GET", "/v1/decisions", params=params))

    async def get_decision(self, event_id: str) -> models.DecisionDetail:
        """`GET /v1/decisions/{event_id}` (get_decision): a decision with its follow-ups."""
        return cast(models.DecisionDetail, await self._json("GET", f"/v1/decisions/{_segment(event_id)}"))

    async def get_bundle(self, event_id: str) -> dict[str, Any]:
        """`GET /v1/decisions/{event_id}/bundle` (custody_bundle): the decision's chain-of-custody
        bundle (FORMAT.md section 11), unverified; `fetch_verified_bundle` checks it too."""
        return cast(dict[str, Any], await self._json("GET", f"/v1/decisions/{_segment(event_id)}/bundle"))

    async def oversight_actions(
        self,
        *,
        decision_id: str | None = None,
        actor: str | None = None,
        event_type: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> models.OversightPage:
        """`GET /v1/oversight/actions` (oversight_actions): reviews, overrides, contests and
        explanation requests, newest first."""
        params = _query(decision_id=decision_id, actor=actor, event_type=event_type, cursor=cursor, limit=limit)
        return cast(models.OversightPage, await self._json("GET", "/v1/oversight/actions", params=params))

    async def oversight_queue(
        self, *, status: str | None = None, cursor: str | None = None, limit: int | None = None
    ) -> models.DecisionPage:
        """`GET /v1/oversight/queue` (oversight_queue): decisions awaiting oversight."""
        params = _query(status=status, cursor=cursor, limit=limit)
        return cast(models.DecisionPage, await self._json("GET", "/v1/oversight/queue", params=params))

    async def model_inventory(self, *, model_id: str | None = None) -> models.ModelInventory:
        """`GET /v1/models` (model_inventory): every model version seen, with counts."""
        return cast(models.ModelInventory, await self._json("GET", "/v1/models", params=_query(model_id=model_id)))

    async def daily_volumes(
        self, *, from_: str | None = None, until: str | None = None, model_id: str | None = None
    ) -> models.DailyVolumes:
        """`GET /v1/volumes/daily` (daily_volumes): decisions per day (`from_` is the API's `from`)."""
        params = _query(from_=from_, until=until, model_id=model_id)
        return cast(models.DailyVolumes, await self._json("GET", "/v1/volumes/daily", params=params))

    async def projection_status(self) -> models.ProjectionsBody:
        """`GET /v1/projections` (projection_status): each read view's position and lag."""
        return cast(models.ProjectionsBody, await self._json("GET", "/v1/projections"))

    # --- Proofs, checkpoints, keys --------------------------------------------------------------

    async def inclusion_proof(
        self, seq: int, *, tree_size: int | None = None, min_tree_size: int | None = None
    ) -> models.InclusionProofBody:
        """`GET /v1/proofs/inclusion` (inclusion_proof): an RFC 9162 inclusion proof of record
        `seq` against a signed checkpoint, unverified; `verify_inclusion` checks it too. Without
        `tree_size`, against the latest checkpoint, which must be at least `min_tree_size`."""
        params = _query(seq=seq, tree_size=tree_size, min_tree_size=min_tree_size)
        return cast(models.InclusionProofBody, await self._json("GET", "/v1/proofs/inclusion", params=params))

    async def tlog_proof(self, seq: int, *, tree_size: int | None = None, min_tree_size: int | None = None) -> str:
        """`GET /v1/proofs/inclusion/{seq}/tlog-proof` (tlog_proof): the C2SP tlog-proof file of
        record `seq` (FORMAT.md section 10), against the latest checkpoint (at least
        `min_tree_size`) unless `tree_size` is given."""
        params = _query(tree_size=tree_size, min_tree_size=min_tree_size)
        return await self._text(f"/v1/proofs/inclusion/{_segment(seq)}/tlog-proof", params)

    async def consistency_proof(
        self, from_size: int, *, to_size: int | None = None, min_tree_size: int | None = None
    ) -> models.ConsistencyProofBody:
        """`GET /v1/proofs/consistency` (consistency_proof): the proof that the tree of
        `to_size` (default: the latest checkpoint, at least `min_tree_size`) extends the tree of
        `from_size`."""
        params = _query(from_=from_size, to=to_size, min_tree_size=min_tree_size)
        return cast(models.ConsistencyProofBody, await self._json("GET", "/v1/proofs/consistency", params=params))

    async def latest_checkpoint(self, *, min_tree_size: int | None = None) -> str:
        """`GET /v1/checkpoints/latest` (latest_checkpoint): the latest signed checkpoint (C2SP
        signed note). `min_tree_size`: read-your-writes, never one smaller than a size already
        seen (answered 409, `Conflict`, while no published checkpoint has reached it)."""
        return await self._text("/v1/checkpoints/latest", _query(min_tree_size=min_tree_size))

    async def list_checkpoints(self, *, after: int | None = None, limit: int | None = None) -> models.CheckpointPage:
        """`GET /v1/checkpoints` (list_checkpoints): published checkpoints, oldest first."""
        params = _query(after=after, limit=limit)
        return cast(models.CheckpointPage, await self._json("GET", "/v1/checkpoints", params=params))

    async def key_history(self) -> models.KeyHistory:
        """`GET /v1/keys` (key_history): the tenant's public-key history."""
        return cast(models.KeyHistory, await self._json("GET", "/v1/keys"))

    # --- Integrity checks -----------------------------------------------------------------------

    async def start_check(self, *, seen_checkpoints: list[str] | None = None) -> models.IntegrityCheckBody:
        """`POST /v1/integrity-checks` (start_check): starts a whole-ledger integrity check (202).
        Not repeated after a connection failure: a second check would be started."""
        body = None if seen_checkpoints is None else encode_json({"seen_checkpoints": seen_checkpoints})
        answer = await self._json("POST", "/v1/integrity-checks", body=body, repeatable=False)
        return cast(models.IntegrityCheckBody, answer)

    async def get_check(self, check_id: str) -> models.IntegrityCheckBody:
        """`GET /v1/integrity-checks/{id}` (get_check): one check's state and report."""
        return cast(models.IntegrityCheckBody, await self._json("GET", f"/v1/integrity-checks/{_segment(check_id)}"))

    async def list_checks(self, *, cursor: str | None = None, limit: int | None = None) -> models.CheckPage:
        """`GET /v1/integrity-checks` (list_checks): checks, newest first."""
        params = _query(cursor=cursor, limit=limit)
        return cast(models.CheckPage, await self._json("GET", "/v1/integrity-checks", params=params))

    async def cancel_check(self, check_id: str) -> models.IntegrityCheckBody:
        """`POST /v1/integrity-checks/{id}/cancel` (cancel_check): asks a running check to stop."""
        path = f"/v1/integrity-checks/{_segment(check_id)}/cancel"
        return cast(models.IntegrityCheckBody, await self._json("POST", path))

    # --- Subjects (privacy role) ----------------------------------------------------------------

    async def erase_subject(
        self,
        subject_ref: str,
        *,
        reason: str,
        legal_basis: str,
        event_ids: list[str] | None = None,
        fields: list[str] | None = None,
    ) -> models.ErasureReceipt:
        """`POST /v1/subjects/{subject_ref}/erasure` (erase_subject): erases the subject's
        erasable values (only those of `event_ids`, only `fields`, when given) by appending an
        `erasure` record. Not repeated after a connection failure (it has no event id)."""
        request: dict[str, Any] = {"reason": reason, "legal_basis": legal_basis}
        if event_ids is not None:
            request["event_ids"] = event_ids
        if fields is not None:
            request["fields"] = fields
        path = f"/v1/subjects/{_segment(subject_ref)}/erasure"
        return cast(models.ErasureReceipt, await self._json("POST", path, body=encode_json(request), repeatable=False))

    async def place_hold(
        self, subject_ref: str, *, reason: str, decision_id: str | None = None, reference: str | None = None
    ) -> models.ReceiptBody:
        """`POST /v1/subjects/{subject_ref}/holds` (place_hold): a legal hold on the subject (or
        one decision); its `seq` names the hold."""
        request: dict[str, Any] = {"reason": reason}
        if decision_id is not None:
            request["decision_id"] = decision_id
        if reference is not None:
            request["reference"] = reference
        path = f"/v1/subjects/{_segment(subject_ref)}/holds"
        return cast(models.ReceiptBody, await self._json("POST", path, body=encode_json(request), repeatable=False))

    async def list_holds(self, subject_ref: str) -> models.HoldList:
        """`GET /v1/subjects/{subject_ref}/holds` (list_holds): the subject's active holds."""
        return cast(models.HoldList, await self._json("GET", f"/v1/subjects/{_segment(subject_ref)}/holds"))

    async def lift_hold(self, subject_ref: str, hold_seq: int, *, reason: str) -> models.ReceiptBody:
        """`DELETE /v1/subjects/{subject_ref}/holds/{hold_seq}` (lift_hold): ends a hold."""
        path = f"/v1/subjects/{_segment(subject_ref)}/holds/{_segment(hold_seq)}"
        body = encode_json({"reason": reason})
        return cast(models.ReceiptBody, await self._json("DELETE", path, body=body, repeatable=False))

    async def subject_records(
        self, subject_ref: str, *, cursor: str | None = None, limit: int | None = None
    ) -> models.SubjectPage:
        """`GET /v1/subjects/{subject_ref}/records` (subject_records): the records concerning a
        subject."""
        path = f"/v1/subjects/{_segment(subject_ref)}/records"
        return cast(models.SubjectPage, await self._json("GET", path, params=_query(cursor=cursor, limit=limit)))

    async def subject_package(self, subject_ref: str, *, format: str | None = None) -> str:
        """`GET /v1/subjects/{subject_ref}/package` (subject_package): the subject access package
        (FORMAT.md section 12b, JSON Lines; `format="html"` for the readable page)."""
        accept = "text/html" if format == "html" else "application/x-ndjson"
        path = f"/v1/subjects/{_segment(subject_ref)}/package"
        return await self._text(path, _query(format=format), accept=accept)

    # --- Verification (local: nothing here trusts the service's word) ---------------------------

    async def key_ring(self, *, refresh: bool = False) -> KeyRing:
        """The tenant's key history as trusted keys: the one pinned at construction, else fetched
        once (`GET /v1/keys`) and refetched with `refresh`. A refetched history must extend the
        one held: a key that changed or vanished raises VerificationError."""
        if self._key_ring is None or (refresh and not self._key_ring_pinned):
            fetched = KeyRing.from_document(await self.key_history())
            if self._key_ring is not None:
                self._key_ring.check_extended_by(fetched)
            self._key_ring = fetched
        return self._key_ring

    async def _ring_for(self, key_id: str) -> KeyRing:
        ring = await self.key_ring()
        if not ring.knows(key_id):
            ring = await self.key_ring(refresh=True)
        return ring

    async def verify_receipt(
        self, receipt: models.ReceiptBody, event: Event | None = None, *, fetch_record: bool = True
    ) -> models.RecordBody | None:
        """Checks a receipt locally: its signature over its record hash, by the tenant's key that
        was valid at its sequence number. With `fetch_record` (needs a `read` key) it also
        fetches the record, recomputes its hash from its members (RFC 8785, FORMAT.md section 4),
        checks it is the receipt's record and, given the `event` that was sent, that it says what
        was sent. Returns the record when fetched.

        Raises VerificationError naming what failed."""
        ring = await self._ring_for(receipt["key_id"])
        verify.verify_receipt_signature(receipt, ring)
        if not fetch_record:
            return None
        record = await self.get_record_by_event(receipt["event_id"])
        verify.verify_record_of_receipt(record, receipt, ring, event)
        return record

    async def verify_inclusion(self, receipt: models.ReceiptBody, *, tree_size: int | None = None) -> models.InclusionProofBody:
        """Fetches the inclusion proof of a receipt's record and verifies it locally: the
        checkpoint's signature by the tenant's key, and the RFC 9162 path from the receipt's
        record hash to the checkpoint's root. Returns the proof.

        Raises VerificationError; NotFound while no signed checkpoint covers the record yet."""
        ring = await self._ring_for(receipt["key_id"])
        proof = await self.inclusion_proof(receipt["seq"], tree_size=tree_size)
        try:
            verify.verify_inclusion_proof(proof, receipt, ring)
        except verify.VerificationError:
            # A checkpoint signed after a rotation this ring has not seen yet: refetch once.
            ring = await self.key_ring(refresh=True)
            verify.verify_inclusion_proof(proof, receipt, ring)
        return proof

    async def fetch_verified_tlog_proof(self, seq: int, *, tree_size: int | None = None) -> tuple[str, list[str]]:
        """Fetches record `seq`'s tlog-proof file and verifies it with `auditex_verify`; returns
        the file and what it proves. Raises VerificationError."""
        text = await self.tlog_proof(seq, tree_size=tree_size)
        return text, verify.verify_tlog_proof(text, await self.key_ring(refresh=True))

    async def fetch_verified_bundle(self, event_id: str) -> tuple[dict[str, Any], list[str]]:
        """Fetches a decision's chain-of-custody bundle and verifies it with `auditex_verify`
        (checkpoint, every record and inclusion proof, erasable values against their
        commitments, follow-ups linked to the decision); returns the bundle and what it proves.

        Raises VerificationError."""
        raw = (await self._send("GET", f"/v1/decisions/{_segment(event_id)}/bundle")).content
        return verify.verify_bundle(raw, await self.key_ring(refresh=True))
