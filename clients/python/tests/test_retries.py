"""Retries: 429 and 503 honouring Retry-After, network failures, and always the same event id.

The real server produces 429 (a one-request-per-second key), duplicates (a repeated event id)
and, through a transport that drops its first answer, a lost response after a write. A
MockTransport stands in only for 503 and refused connections, which a healthy server does not
produce on demand."""

import json

import httpx
import pytest
from conftest import client_of

import auditex._sync_client as sync_client
from auditex import (
    NO_RETRIES,
    Client,
    Event,
    RateLimited,
    RetryPolicy,
    TransportError,
    Unavailable,
    ValidationFailed,
)

RECEIPT = {
    "seq": 7, "event_id": "", "hash": "00" * 32, "sig": "00" * 64, "key_id": "00" * 8,
    "captured_at_us": 1, "captured_at": "1970-01-01T00:00:00.000001Z", "duplicate": False,
}


def decision(n: int = 0) -> Event:
    return Event("decision", {
        "model_id": "credit-limit", "model_version": "4.2.0", "input_commitment": "ab" * 32,
        "outcome": "approved", "score": n / 100, "subject_ref": f"subj-{n}",
        "decided_at": "2026-12-01T08:00:00Z", "oversight_mode": "human_on_the_loop",
    })


@pytest.fixture
def sleeps(monkeypatch):
    """The delays the sync client waited, instead of waiting them."""
    waited = []
    monkeypatch.setattr(sync_client.time, "sleep", waited.append)
    return waited


def mock_client(handler, **kwargs) -> Client:
    return Client("https://auditex.test", "atx_test", transport=httpx.MockTransport(handler), **kwargs)


def test_a_503_with_retry_after_then_200_is_retried_once_after_retry_after_with_the_same_event_id(sleeps):
    bodies = []

    def handler(request):
        bodies.append(request.content)
        if len(bodies) == 1:
            return httpx.Response(503, headers={"retry-after": "2"}, json={
                "type": "urn:auditex:problem:overloaded", "title": "Overloaded", "status": 503, "detail": "queue full"})
        return httpx.Response(201, json=dict(RECEIPT, event_id=json.loads(request.content)["event_id"]))

    event = decision()
    receipt = mock_client(handler).append(event)
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]
    assert json.loads(bodies[1])["event_id"] == event.event_id == receipt["event_id"]
    assert sleeps == [2.0]


def test_refused_connections_are_retried_with_capped_backoff_and_the_same_batch_body(sleeps):
    bodies = []

    def handler(request):
        bodies.append(request.content)
        if len(bodies) <= 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"receipts": [RECEIPT, RECEIPT]})

    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=1.5)
    mock_client(handler, retry=policy).append_batch([decision(1), decision(2)])
    assert len(bodies) == 4
    assert len(set(bodies)) == 1
    assert len(sleeps) == 3
    assert all(0 <= s <= 1.5 for s in sleeps)


def test_a_503_is_raised_with_its_problem_once_the_attempts_are_used_up(sleeps):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503, headers={"retry-after": "1"}, json={
            "type": "urn:auditex:problem:storage-full", "title": "Storage full", "status": 503, "detail": "full"})

    with pytest.raises(Unavailable) as e:
        mock_client(handler, retry=RetryPolicy(attempts=3)).append(decision())
    assert len(calls) == 3
    assert sleeps == [1.0, 1.0]
    assert e.value.status == 503
    assert e.value.type == "urn:auditex:problem:storage-full"
    assert e.value.retry_after_s == 1.0


def test_a_retry_after_longer_than_the_policy_accepts_is_raised_at_once(sleeps):
    def handler(request):
        return httpx.Response(429, headers={"retry-after": "3600"}, json={
            "type": "urn:auditex:problem:rate-limited", "title": "Too many requests", "status": 429, "detail": "slow down"})

    with pytest.raises(RateLimited) as e:
        mock_client(handler, retry=RetryPolicy(retry_after_max_s=60)).get_record(0)
    assert sleeps == []
    assert e.value.retry_after_s == 3600.0


def test_an_erasure_is_not_repeated_after_a_connection_failure(sleeps):
    calls = []

    def handler(request):
        calls.append(1)
        raise httpx.ReadError("connection reset", request=request)

    with pytest.raises(TransportError):
        mock_client(handler).erase_subject("subj-1", reason="asked", legal_basis="GDPR Art. 17(1)(a)")
    assert len(calls) == 1


def test_a_422_is_not_retried(sleeps):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(422, json={"type": "urn:auditex:problem:validation", "title": "Invalid", "status": 422,
                                         "detail": "bad", "errors": [{"pointer": "/payload/score", "detail": "not a number"}]})

    with pytest.raises(ValidationFailed) as e:
        mock_client(handler).append(decision())
    assert len(calls) == 1
    assert e.value.pointer == "/payload/score"


class LoseFirstAnswer(httpx.BaseTransport):
    """Forwards every request to the real server, but reports the first answer as lost (a read
    time-out after the server wrote the event)."""

    def __init__(self, inner: httpx.BaseTransport):
        self.inner, self.requests = inner, []

    def handle_request(self, request):
        if request.method == "POST":
            self.requests.append(request.content)
        response = self.inner.handle_request(request)
        if len(self.requests) == 1:
            response.read()
            response.close()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def test_an_append_whose_answer_was_lost_is_retried_and_the_real_server_returns_the_original_receipt(server, sleeps):
    import ssl

    transport = LoseFirstAnswer(httpx.HTTPTransport(verify=ssl.create_default_context(cafile=server.ca_cert)))
    event = decision(5)
    with Client(server.url, server.keys["ingest"], transport=transport) as c:
        receipt = c.append(event)
        first = c.get_receipt(event.event_id)
    assert len(transport.requests) == 2
    assert transport.requests[0] == transport.requests[1]
    assert receipt["duplicate"] is True
    assert receipt["event_id"] == event.event_id
    assert (receipt["seq"], receipt["hash"]) == (first["seq"], first["hash"])


def test_appending_the_same_event_twice_gives_the_same_receipt_marked_duplicate(ingest):
    event = decision(6)
    a = ingest.append(event)
    b = ingest.append(event)
    assert a["duplicate"] is False and b["duplicate"] is True
    assert (a["seq"], a["hash"], a["sig"]) == (b["seq"], b["hash"], b["sig"])


def test_a_real_429_is_raised_with_retry_after_without_retries_and_waited_out_with_them(slow_server):
    with client_of(slow_server, "ingest", retry=NO_RETRIES) as c:
        c.key_history()  # spends the burst of two (an ingest key's: twice its rate)
        c.key_history()
        with pytest.raises(RateLimited) as e:
            c.key_history()
    assert e.value.status == 429
    assert e.value.retry_after_s is not None and e.value.retry_after_s >= 1
    events = [decision(10 + n) for n in range(3)]
    with client_of(slow_server, "ingest") as c:
        receipts = [c.append(ev) for ev in events]
    assert [r["event_id"] for r in receipts] == [ev.event_id for ev in events]
    assert len({r["seq"] for r in receipts}) == 3


def test_an_untrusted_server_certificate_is_raised_after_one_attempt_without_retries(server, sleeps):
    with Client(server.url, server.keys["ingest"], verify_tls=True) as c, pytest.raises(TransportError, match="attempt 1"):
        c.key_history()
    assert sleeps == []


async def test_the_async_client_retries_a_503_after_retry_after_with_the_same_event_id(monkeypatch):
    import auditex._async_client as async_client
    from auditex import AsyncClient

    waited, bodies = [], []

    async def no_wait(seconds):
        waited.append(seconds)

    monkeypatch.setattr(async_client.asyncio, "sleep", no_wait)

    def handler(request):
        bodies.append(request.content)
        if len(bodies) == 1:
            return httpx.Response(503, headers={"retry-after": "1"}, json={
                "type": "urn:auditex:problem:overloaded", "title": "Overloaded", "status": 503, "detail": "busy"})
        return httpx.Response(200, json={"receipts": [dict(RECEIPT, event_id=json.loads(request.content)["records"][0]["event_id"])]})

    event = decision(7)
    async with AsyncClient("https://auditex.test", "atx_test", transport=httpx.MockTransport(handler)) as c:
        receipts = await c.append_batch([event])
    assert waited == [1.0]
    assert bodies[0] == bodies[1]
    assert receipts[0]["event_id"] == event.event_id
