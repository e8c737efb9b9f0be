#!/usr/bin/env python3
"""The SDK's batched appends against the server's batched HTTPS ingestion, in one run against one
server (scripts/python-sdk-bench starts it: the release `auditex serve`, TLS, embedded SQLite).

Alternating rounds of
  - **raw**: the server's batched ingestion rate as an external load generator drives it:
    request bodies of 1000 records built before the clock starts (fresh UUIDv7 event ids,
    payloads serialized once), posted over 4 keep-alive HTTPS connections (the standard
    library's `http.client`, one thread each), the answers read but not parsed — what
    benches/load.rs measures, from a process of its own;
  - **sdk**: the same number of records, built while the clock runs (an `Event` each, encoded
    by the SDK), appended through one `BatchAppender` from one process, every receipt parsed and
    matched to its event.
Prints each round, the ratio of the SDK's rate to the raw rate (over all rounds), the client's CPU
time per record in each mode (this process's threads together), and the machine's load average:
on a shared machine the ratio moves with what else runs.

    AUDITEX_URL=… AUDITEX_INGEST_KEY=… AUDITEX_CA_CERT=… bench_ingest.py [--records 100000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import sys
import threading
import time
import urllib.parse

from auditex import BATCH_RECORDS_MAX, BatchAppender, Client, Event
from auditex.events import batch_body

RAW_CONNECTIONS = 4


def payload(n: int) -> dict:
    return {
        "model_id": "credit-limit", "model_version": "4.2.0",
        "input_commitment": f"{n:064x}", "outcome": "approved" if n % 3 else "declined",
        "score": (n % 1000) / 1000, "reason_codes": ["R12", "R40"], "subject_ref": f"subj-{n % 100_000:08d}",
        "decided_at": "2026-12-05T08:49:27.123Z", "oversight_mode": "human_on_the_loop",
        "attributes": {"limit": 12000, "ratio": 0.31, "branch": "north"},
    }


def raw_round(url: str, key: str, ctx: ssl.SSLContext, records: int) -> float:
    payloads = [payload(n) for n in range(BATCH_RECORDS_MAX)]
    bodies = [
        batch_body([Event("decision", payloads[i]).encode() for i in range(min(BATCH_RECORDS_MAX, records - start))])
        for start in range(0, records, BATCH_RECORDS_MAX)
    ]
    parsed = urllib.parse.urlsplit(url)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    lock, failures = threading.Lock(), []

    def sender():
        conn = http.client.HTTPSConnection(parsed.hostname, parsed.port, context=ctx, timeout=120)
        while True:
            with lock:
                if not bodies:
                    break
                body = bodies.pop()
            while True:
                conn.request("POST", "/v1/records/batch", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status in (429, 503):  # as the load benchmark: pause and resend
                    time.sleep(0.02)
                    continue
                if response.status != 200:
                    failures.append(response.status)
                break
        conn.close()

    threads = [threading.Thread(target=sender) for _ in range(RAW_CONNECTIONS)]
    cpu = time.process_time()
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    cpu_us = (time.process_time() - cpu) * 1e6 / records
    if failures:
        raise SystemExit(f"raw sender: answers {sorted(set(failures))}")
    return records / elapsed, cpu_us


def sdk_round(url: str, key: str, ca: str, records: int, concurrency: int) -> float:
    payloads = [payload(n) for n in range(BATCH_RECORDS_MAX)]
    received = 0

    def count(events, receipts):
        nonlocal received
        for e, r in zip(events, receipts):
            if e.event_id != r["event_id"]:
                raise SystemExit("a receipt does not match its event")
        received += len(receipts)

    with Client(url, key, verify_tls=ca) as client:
        cpu = time.process_time()
        started = time.monotonic()
        with BatchAppender(client, concurrency=concurrency, max_pending=(concurrency + 2) * BATCH_RECORDS_MAX,
                           on_receipts=count) as batcher:
            for n in range(records):
                batcher.append(Event("decision", payloads[n % BATCH_RECORDS_MAX]))
        elapsed = time.monotonic() - started
        cpu_us = (time.process_time() - cpu) * 1e6 / records
    if received != records:
        raise SystemExit(f"sdk: {received} receipts for {records} records")
    return records / elapsed, cpu_us


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="records per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="the SDK helper's batches in flight")
    args = parser.parse_args()
    url, key, ca = os.environ["AUDITEX_URL"], os.environ["AUDITEX_INGEST_KEY"], os.environ["AUDITEX_CA_CERT"]
    ctx = ssl.create_default_context(cafile=ca)

    # Warm-up: the server's caches, the database file's first pages.
    sdk_round(url, key, ca, 5 * BATCH_RECORDS_MAX, args.concurrency)  # (rate, cpu) unused
    raw, sdk = [], []
    print("| round | raw batched HTTPS (4 connections) | SDK BatchAppender (one process) | ratio | client CPU per record, raw / SDK |")
    print("|---|---|---|---|---|")
    for r in range(1, args.rounds + 1):
        rate, raw_cpu = raw_round(url, key, ctx, args.records)
        raw.append(rate)
        rate, sdk_cpu = sdk_round(url, key, ca, args.records, args.concurrency)
        sdk.append(rate)
        print(f"| {r} | {raw[-1]:,.0f} rec/s | {sdk[-1]:,.0f} rec/s | {sdk[-1] / raw[-1]:.2f} "
              f"| {raw_cpu:.1f} / {sdk_cpu:.1f} µs |", flush=True)
    # Rates over equal record counts: the mean rate is the harmonic mean.
    raw_rate = len(raw) / sum(1 / x for x in raw)
    sdk_rate = len(sdk) / sum(1 / x for x in sdk)
    print(f"| all | {raw_rate:,.0f} rec/s | {sdk_rate:,.0f} rec/s | **{sdk_rate / raw_rate:.2f}** | |")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min), on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
