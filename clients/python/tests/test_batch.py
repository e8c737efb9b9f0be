"""The batching helpers: full batches up to the limit, the linger window, back-pressure with a
hard bound on what they hold, flush and close, failures surfaced to the producer."""

import asyncio
import json
import threading
import time

import httpx
import pytest
from conftest import client_of
from test_retries import RECEIPT, decision

from auditex import AsyncBatchAppender, AsyncClient, BatchAppender, Client, Conflict, ValidationFailed


def receipts_for(request):
    records = json.loads(request.content)["records"]
    return httpx.Response(200, json={"receipts": [dict(RECEIPT, event_id=r["event_id"]) for r in records]})


def mock_client(handler) -> Client:
    return Client("https://auditex.test", "atx_test", transport=httpx.MockTransport(handler))


def test_2500_events_go_out_as_batches_of_1000_1000_and_500():
    sizes = []

    def handler(request):
        sizes.append(len(json.loads(request.content)["records"]))
        return receipts_for(request)

    with BatchAppender(mock_client(handler), linger_s=5, concurrency=1) as b:
        for n in range(2500):
            b.append(decision(n))
    assert sizes == [1000, 1000, 500]
    assert b.appended == 2500 and b.pending == 0


def test_three_events_within_the_linger_window_go_out_as_one_batch_of_three():
    sizes = []

    def handler(request):
        sizes.append(len(json.loads(request.content)["records"]))
        return receipts_for(request)

    b = BatchAppender(mock_client(handler), linger_s=0.05)
    for n in range(3):
        b.append(decision(n))
    deadline = time.monotonic() + 5
    while b.appended < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sizes == [3]
    b.close()


def test_the_batch_helper_never_holds_more_than_its_bound_and_append_blocks_when_full():
    release = threading.Event()
    seen_pending = []
    helper = None

    def handler(request):
        seen_pending.append(helper.pending)
        release.wait(10)
        return receipts_for(request)

    helper = BatchAppender(mock_client(handler), max_records=100, max_pending=300, concurrency=2, linger_s=0.01)
    for n in range(300):
        helper.append(decision(n), timeout_s=1)
    assert helper.pending == 300
    with pytest.raises(TimeoutError):
        helper.append(decision(301), timeout_s=0.2)
    assert helper.pending == 300

    # A producer thread blocks on the full helper until the service answers.
    produced = []

    def producer():
        for n in range(500):
            helper.append(decision(1000 + n))
            produced.append(n)
            assert helper.pending <= 300

    t = threading.Thread(target=producer)
    t.start()
    time.sleep(0.2)
    assert produced == []
    release.set()
    t.join(20)
    helper.close()
    assert len(produced) == 500
    assert helper.appended == 800
    assert max(seen_pending) <= 300


def test_a_batch_rejected_for_good_fails_the_next_append_and_hands_its_events_to_on_error():
    failed = []

    def handler(request):
        return httpx.Response(422, json={"type": "urn:auditex:problem:validation", "title": "Invalid", "status": 422,
                                         "detail": "bad", "errors": [{"pointer": "/records/0/payload", "detail": "x"}]})

    b = BatchAppender(mock_client(handler), on_error=lambda events, e: failed.extend(events), linger_s=0.01)
    first = decision(1)
    b.append(first)
    with pytest.raises(ValidationFailed):
        b.flush(timeout_s=10)
    with pytest.raises(ValidationFailed):
        b.append(decision(2))
    assert [e.event_id for e in failed] == [first.event_id]
    assert b.pending == 0


def test_flush_returns_once_every_event_so_far_has_a_receipt_without_waiting_for_the_linger_window():
    got = []

    def handler(request):
        return receipts_for(request)

    b = BatchAppender(mock_client(handler), linger_s=60, on_receipts=lambda ev, rc: got.extend(rc))
    for n in range(5):
        b.append(decision(n))
    started = time.monotonic()
    b.flush(timeout_s=10)
    assert time.monotonic() - started < 5
    assert len(got) == 5
    b.close()
    with pytest.raises(RuntimeError):
        b.append(decision(9))


def test_limits_that_cannot_work_are_refused():
    c = mock_client(receipts_for)
    with pytest.raises(ValueError):
        BatchAppender(c, max_records=1001)
    with pytest.raises(ValueError):
        BatchAppender(c, max_records=100, max_pending=99)


def test_5000_events_appended_through_the_helper_to_a_real_server_get_5000_distinct_receipts(server):
    receipts = {}

    def keep(events, got):
        for e, r in zip(events, got):
            assert e.event_id == r["event_id"]
            receipts[e.event_id] = r

    with client_of(server, "ingest") as c, BatchAppender(c, on_receipts=keep) as b:
        events = [decision(n) for n in range(5000)]
        for e in events:
            b.append(e)
    assert len(receipts) == 5000
    assert len({r["seq"] for r in receipts.values()}) == 5000
    assert not any(r["duplicate"] for r in receipts.values())


async def test_the_async_helper_appends_3000_events_to_a_real_server_and_stays_within_its_bound(server):
    receipts = []
    c = AsyncClient(server.url, server.keys["ingest"], verify_tls=server.ca_cert)
    async with c, AsyncBatchAppender(c, max_pending=1000, on_receipts=lambda e, r: receipts.extend(r)) as b:
        for n in range(3000):
            await b.append(decision(n))
            assert b.pending <= 1000
    assert len(receipts) == 3000
    assert len({r["seq"] for r in receipts}) == 3000


async def test_the_async_helper_waits_while_full_until_the_service_answers():
    gate = asyncio.Event()

    async def handler(request):
        await gate.wait()
        return receipts_for(request)

    c = AsyncClient("https://auditex.test", "atx_test", transport=httpx.MockTransport(handler))
    b = AsyncBatchAppender(c, max_records=10, max_pending=20, linger_s=0.01)
    for n in range(20):
        await b.append(decision(n))
    blocked = asyncio.ensure_future(b.append(decision(99)))
    await asyncio.sleep(0.2)
    assert not blocked.done()
    assert b.pending == 20
    gate.set()
    await asyncio.wait_for(blocked, 10)
    await b.aclose()
    assert b.appended == 21


def test_after_a_failure_no_further_batch_is_sent_and_its_events_also_go_to_on_error():
    sent, failed = [], []
    gate = threading.Event()

    def handler(request):
        sent.append(request.content)
        gate.wait(10)
        return httpx.Response(409, json={"type": "urn:auditex:problem:conflict", "title": "Conflict",
                                         "status": 409, "detail": "event id exists with other content"})

    b = BatchAppender(mock_client(handler), max_records=10, max_pending=30, concurrency=1, linger_s=0.01,
                      on_error=lambda events, e: failed.extend(events))
    for n in range(30):
        b.append(decision(n))
    gate.set()
    with pytest.raises(Conflict):
        b.close(timeout_s=10)
    assert len(sent) == 1
    assert len(failed) == 30
