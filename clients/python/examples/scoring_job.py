#!/usr/bin/env python3
"""A batch scoring job: 10,000 credit decisions appended through the batching helper, personal
data as erasable fields, every receipt's signature checked locally against the tenant's keys.

    AUDITEX_URL=https://ledger.example AUDITEX_INGEST_KEY=atx_… [AUDITEX_READ_KEY=atx_…] \\
    [AUDITEX_CA_CERT=ca.pem] python scoring_job.py [--count 10000] [--decision-file FILE]

With a read key it also fetches a few records and recomputes their hashes. The first decision's
event id is written to --decision-file, for oversight.py and verify_bundle.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from datetime import UTC, datetime

from auditex import BatchAppender, Client, Event


def client(role: str) -> Client:
    return Client(os.environ["AUDITEX_URL"], os.environ[f"AUDITEX_{role.upper()}_KEY"],
                  verify_tls=os.environ.get("AUDITEX_CA_CERT") or True)


def score(applicant: dict) -> tuple[float, str, list[str]]:
    """A stand-in for the model: a score, an outcome and reason codes."""
    ratio = applicant["debt"] / max(applicant["income"], 1)
    s = max(0.0, min(1.0, 0.9 - ratio + random.uniform(-0.1, 0.1)))
    reasons = [code for code, hit in (("R12", ratio > 0.4), ("R40", applicant["tenure_months"] < 12)) if hit]
    return round(s, 4), "approved" if s >= 0.5 else "declined", reasons


def decision(n: int) -> Event:
    applicant = {"id": f"A-{n:06d}", "income": random.randint(20_000, 150_000),
                 "debt": random.randint(0, 60_000), "tenure_months": random.randint(0, 240)}
    s, outcome, reasons = score(applicant)
    inputs = json.dumps(applicant, sort_keys=True).encode()
    return Event(
        "decision",
        {
            "model_id": "credit-limit", "model_version": "4.2.0",
            # The inputs stay with the bank; the ledger holds their digest.
            "input_commitment": hashlib.sha256(inputs).hexdigest(),
            "outcome": outcome, "score": s, "reason_codes": reasons,
            "subject_ref": "subj-" + hashlib.sha256(applicant["id"].encode()).hexdigest()[:16],
            "decided_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "oversight_mode": "human_on_the_loop",
        },
        # Personal data: committed in the record with a salt, stored beside it, erasable.
        erasable={"applicant_name": f"Applicant {n}", "birth_date": f"19{60 + n % 40}-0{1 + n % 9}-15"},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--decision-file", help="write the first decision's event id here")
    args = parser.parse_args()

    receipts: list[tuple[Event, dict]] = []
    started = time.monotonic()
    with client("ingest") as ingest:
        with BatchAppender(ingest, on_receipts=lambda events, got: receipts.extend(zip(events, got))) as batcher:
            for n in range(args.count):
                batcher.append(decision(n))  # blocks while the helper is full: back-pressure
        elapsed = time.monotonic() - started
        print(f"appended {len(receipts)} decisions in {elapsed:.1f} s ({len(receipts) / elapsed:.0f}/s)")
        assert len(receipts) == args.count, "every decision has a receipt"

        # Every receipt: the signature over its record hash by the tenant's key valid at its seq.
        for _, receipt in receipts:
            ingest.verify_receipt(receipt, fetch_record=False)
        print(f"verified {len(receipts)} receipt signatures against the tenant's key history")

    if os.environ.get("AUDITEX_READ_KEY"):
        with client("read") as reader:
            for event, receipt in random.sample(receipts, 5):
                reader.verify_receipt(receipt, event)  # the record hashes to the receipt, and says what was sent
            print("recomputed the record hash of 5 sampled decisions and matched them to what was sent")

    first = min(receipts, key=lambda pair: pair[1]["seq"])[0]
    print(f"first decision: {first.event_id}")
    if args.decision_file:
        with open(args.decision_file, "w") as f:
            f.write(first.event_id + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
