"""Batching helpers: many `append()` calls become few `POST /v1/records/batch` requests.

A pipeline hands events one at a time; the helper packs them into batches of up to the service's
limit (1000 events, and a body well under its 8 MiB limit) or whatever arrived within
`linger_s` of a batch's first event, and sends up to `concurrency` batches at once through the
client (so with its retries and the events' fixed ids: a retried batch is appended once).

Back-pressure, not buffering: the helper holds at most `max_pending` events — queued, being
packed or in flight together — and `append()` blocks (awaits, for the asynchronous helper) while
it is full, so a producer faster than the service slows down to the service's pace instead of
growing memory. `flush()` returns once every event appended before it has a receipt; `close()`
flushes and stops. A batch that fails for good (a 422, a 409, retries used up) fails the helper:
the error is raised from the next `append()`, `flush()` or `close()`, and the events it carried —
and those of every batch not sent after it — are handed to `on_error` when given.

With `concurrency` above 1, batches may be appended out of order (each batch is in order within
itself); use `concurrency=1` when the sequence must follow the order of `append()` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self

from . import models
from ._async_client import AsyncClient
from ._sync_client import Client
from .events import BATCH_RECORDS_MAX, REQUEST_BODY_BYTES_MAX, Event

# Room for the `{"records":[…]}` wrapping and separators below the service's body limit.
BATCH_BODY_BYTES_MAX = REQUEST_BODY_BYTES_MAX - 64 * 1024

ReceiptsCallback = Callable[[list[Event], list[models.ReceiptBody]], None]
ErrorCallback = Callable[[list[Event], BaseException], None]

_FLUSH = object()  # queued by the async flush(): send what is packed without waiting for the linger window
_STOP = object()


class _Packer:
    """Packs encoded events into one batch; says when the batch is full. No I/O, no clock."""

    def __init__(self, max_records: int, max_bytes: int):
        self.max_records, self.max_bytes = max_records, max_bytes
        self.events: list[Event] = []
        self.encoded: list[bytes] = []
        self.bytes = 0

    def fits(self, encoded: bytes) -> bool:
        return not self.events or self.bytes + len(encoded) + 1 <= self.max_bytes

    def add(self, event: Event, encoded: bytes) -> None:
        self.events.append(event)
        self.encoded.append(encoded)
        self.bytes += len(encoded) + 1

    @property
    def full(self) -> bool:
        return len(self.events) >= self.max_records

    def take(self) -> tuple[list[Event], list[bytes]]:
        batch = (self.events, self.encoded)
        self.events, self.encoded, self.bytes = [], [], 0
        return batch


def _check_limits(max_records: int, max_pending: int, concurrency: int, linger_s: float) -> None:
    if not 1 <= max_records <= BATCH_RECORDS_MAX:
        raise ValueError(f"max_records must be 1 to {BATCH_RECORDS_MAX}")
    if max_pending < max_records:
        raise ValueError("max_pending must hold at least one full batch (max_records)")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if linger_s < 0:
        raise ValueError("linger_s cannot be negative")


def _encode(event: Event) -> bytes:
    encoded = event.encode()
    if len(encoded) > BATCH_BODY_BYTES_MAX:
        raise ValueError(f"event {event.event_id} is {len(encoded)} bytes, more than a batch may carry")
    return encoded


class BatchAppender:
    """Batches events for a `Client` from any number of threads (see the module's description).

        with BatchAppender(client, on_receipts=keep) as batcher:
            for row in rows:
                batcher.append(Event("decision", payload(row), erasable=personal(row)))
        # every event has a receipt here (or the with-block raised)

    `on_receipts(events, receipts)` and `on_error(events, error)` run on a sender thread."""

    def __init__(
        self,
        client: Client,
        *,
        max_records: int = BATCH_RECORDS_MAX,
        linger_s: float = 0.05,
        max_pending: int = 6 * BATCH_RECORDS_MAX,
        concurrency: int = 4,
        on_receipts: ReceiptsCallback | None = None,
        on_error: ErrorCallback | None = None,
    ):
        _check_limits(max_records, max_pending, concurrency, linger_s)
        self._client = client
        self._max_records, self._linger_s = max_records, linger_s
        self.max_pending = max_pending
        self._on_receipts, self._on_error = on_receipts, on_error
        self._slots = threading.Semaphore(max_pending)
        self._lock = threading.Condition()  # pending, appended, error
        self._pending = 0
        self._appended = 0
        self._error: BaseException | None = None
        self._closed = False
        # Events are packed on the producer's thread (no hand-over per event); a batch leaves when
        # it is full, when flushed, or when the linger thread finds its window over.
        self._packing = threading.Condition()  # the packer and the linger deadline
        self._packer = _Packer(max_records, BATCH_BODY_BYTES_MAX)
        self._deadline: float | None = None
        self._stopping = False
        # Unbounded in type only: the slots bound the events, so at most max_pending / max_records
        # batches wait here, and appending never blocks on a full hand-over with room left.
        self._batches: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._senders = [threading.Thread(target=self._send_loop, name=f"auditex-batch-sender-{i}", daemon=True)
                         for i in range(concurrency)]
        self._linger_thread = threading.Thread(target=self._linger_loop, name="auditex-batch-linger", daemon=True)
        for t in (*self._senders, self._linger_thread):
            t.start()

    @property
    def pending(self) -> int:
        """Events appended that have no receipt yet (never more than `max_pending`)."""
        return self._pending

    @property
    def appended(self) -> int:
        """Events that have a receipt."""
        return self._appended

    def append(self, event: Event, timeout_s: float | None = None) -> None:
        """Queues an event; blocks while `max_pending` events are pending.

        Raises the helper's failure if a batch failed for good, TimeoutError when no room came
        within `timeout_s`, ValueError for an event JSON cannot carry, RuntimeError after close."""
        self._raise_failure()
        if self._closed:
            raise RuntimeError("the batch appender is closed")
        encoded = _encode(event)
        if not self._slots.acquire(timeout=timeout_s):
            raise TimeoutError(f"no room for the event within {timeout_s} s ({self.max_pending} pending)")
        with self._lock:
            self._pending += 1
        with self._packing:
            if not self._packer.fits(encoded):
                self._batches.put(self._packer.take())
            if not self._packer.events:
                self._deadline = time.monotonic() + self._linger_s
                self._packing.notify()
            self._packer.add(event, encoded)
            if self._packer.full:
                self._send_packed()

    def flush(self, timeout_s: float | None = None) -> None:
        """Sends what is packed and waits until every event appended so far has a receipt.

        Raises the helper's failure, or TimeoutError."""
        with self._packing:
            self._send_packed()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            while self._pending and self._error is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"{self._pending} events still pending after {timeout_s} s")
                self._lock.wait(left)
        self._raise_failure()

    def close(self, timeout_s: float | None = None) -> None:
        """Flushes, then stops the helper's threads. Raises as `flush`."""
        if self._closed:
            return
        try:
            self.flush(timeout_s)
        finally:
            self._closed = True
            with self._packing:
                self._send_packed()
                self._stopping = True
                self._packing.notify()
            for _ in self._senders:
                self._batches.put(_STOP)
            for t in (self._linger_thread, *self._senders):
                t.join(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            # The caller's own exception wins; the pending events are still sent.
            with contextlib.suppress(Exception):
                self.close()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _send_packed(self) -> None:
        """Hands what is packed to the senders. Call with `_packing` held."""
        if self._packer.events:
            self._batches.put(self._packer.take())
        self._deadline = None

    def _linger_loop(self) -> None:
        with self._packing:
            while not self._stopping:
                if self._deadline is None:
                    self._packing.wait()
                elif (left := self._deadline - time.monotonic()) > 0:
                    self._packing.wait(left)
                else:
                    self._send_packed()

    def _send_loop(self) -> None:
        while True:
            item = self._batches.get()
            if item is _STOP:
                return
            events, encoded = item
            try:
                if self._error is not None:
                    raise self._error  # fail fast: the helper has failed, send nothing more
                receipts = self._client.append_encoded(encoded)
                if self._on_receipts is not None:
                    self._on_receipts(events, receipts)
                self._done(len(events), None)
            except BaseException as e:  # noqa: BLE001 - handed to the caller, never lost
                if self._on_error is not None:
                    try:
                        self._on_error(events, e)
                    except BaseException as callback_error:  # noqa: BLE001
                        e = callback_error
                self._done(len(events), e)

    def _done(self, count: int, error: BaseException | None) -> None:
        with self._lock:
            self._pending -= count
            if error is None:
                self._appended += count
            elif self._error is None:
                self._error = error
            self._lock.notify_all()
        self._slots.release(count)


class AsyncBatchAppender:
    """Batches events for an `AsyncClient` in one event loop (see the module's description).

        async with AsyncBatchAppender(client) as batcher:
            for row in rows:
                await batcher.append(Event("decision", payload(row)))

    `on_receipts(events, receipts)` and `on_error(events, error)` may be plain functions or
    coroutine functions."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        max_records: int = BATCH_RECORDS_MAX,
        linger_s: float = 0.05,
        max_pending: int = 6 * BATCH_RECORDS_MAX,
        concurrency: int = 4,
        on_receipts: Callable[[list[Event], list[models.ReceiptBody]], Any] | None = None,
        on_error: Callable[[list[Event], BaseException], Any] | None = None,
    ):
        _check_limits(max_records, max_pending, concurrency, linger_s)
        self._client = client
        self._max_records, self._linger_s = max_records, linger_s
        self.max_pending = max_pending
        self._on_receipts, self._on_error = on_receipts, on_error
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(max_pending)
        self._pending = 0
        self._appended = 0
        self._error: BaseException | None = None
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        # Never more entries than max_pending events plus flush and stop markers: the semaphore
        # bounds the events, so the queue needs no bound of its own.
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._batches: asyncio.Queue[Any] = asyncio.Queue(maxsize=concurrency)
        self._tasks: list[asyncio.Task[None]] = []

    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.ensure_future(self._pack_loop())]
            self._tasks += [asyncio.ensure_future(self._send_loop()) for _ in range(self._concurrency)]

    @property
    def pending(self) -> int:
        """Events appended that have no receipt yet (never more than `max_pending`)."""
        return self._pending

    @property
    def appended(self) -> int:
        """Events that have a receipt."""
        return self._appended

    async def append(self, event: Event) -> None:
        """Queues an event; waits while `max_pending` events are pending. Raises as
        `BatchAppender.append` (use `asyncio.timeout` to bound the wait)."""
        self._raise_failure()
        if self._closed:
            raise RuntimeError("the batch appender is closed")
        self._start()
        encoded = _encode(event)
        await self._slots.acquire()
        self._pending += 1
        self._idle.clear()
        self._queue.put_nowait((event, encoded))

    async def flush(self) -> None:
        """Sends what is packed and waits until every event appended so far has a receipt."""
        self._start()
        self._queue.put_nowait(_FLUSH)
        while self._pending and self._error is None:
            await self._idle.wait()
        self._raise_failure()

    async def aclose(self) -> None:
        """Flushes, then stops the helper's tasks."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            self._queue.put_nowait(_STOP)
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            await self.aclose()
        else:
            with contextlib.suppress(Exception):
                await self.aclose()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    async def _pack_loop(self) -> None:
        packer = _Packer(self._max_records, BATCH_BODY_BYTES_MAX)
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            try:
                if deadline is None:
                    item = await self._queue.get()
                else:
                    item = await asyncio.wait_for(self._queue.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                item = _FLUSH
            if item is _FLUSH or item is _STOP:
                if packer.events:
                    await self._batches.put(packer.take())
                deadline = None
                if item is _STOP:
                    for _ in range(self._concurrency):
                        await self._batches.put(_STOP)
                    return
                continue
            event, encoded = item
            if not packer.fits(encoded):
                await self._batches.put(packer.take())
            if not packer.events:
                deadline = loop.time() + self._linger_s
            packer.add(event, encoded)
            if packer.full:
                await self._batches.put(packer.take())
                deadline = None

    async def _send_loop(self) -> None:
        while True:
            item = await self._batches.get()
            if item is _STOP:
                return
            events, encoded = item
            error: BaseException | None = None
            try:
                if self._error is not None:
                    raise self._error
                receipts = await self._client.append_encoded(encoded)
                if self._on_receipts is not None:
                    await _maybe_await(self._on_receipts(events, receipts))
            except Exception as e:  # noqa: BLE001 - handed to the caller, never lost
                error = e
                if self._on_error is not None:
                    try:
                        await _maybe_await(self._on_error(events, e))
                    except Exception as callback_error:  # noqa: BLE001
                        error = callback_error
            self._pending -= len(events)
            if error is None:
                self._appended += len(events)
            elif self._error is None:
                self._error = error
            for _ in events:
                self._slots.release()
            if not self._pending or self._error is not None:
                self._idle.set()


async def _maybe_await(value: Any) -> None:
    if isinstance(value, Awaitable):
        await value
