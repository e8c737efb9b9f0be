#!/usr/bin/env python3
"""Human oversight after the fact (EU AI Act Art. 14): a reviewer confirms one decision and
overrides another, each a signed record linked to its decision; both receipts verified.

    AUDITEX_URL=… AUDITEX_INGEST_KEY=atx_… AUDITEX_READ_KEY=atx_… [AUDITEX_CA_CERT=ca.pem] \\
    python oversight.py [DECISION_EVENT_ID]

Without an id it takes the two latest decisions of the credit-limit model.
"""

from __future__ import annotations

import os
import sys
import time

from auditex import Client, Event


def client(role: str) -> Client:
    return Client(os.environ["AUDITEX_URL"], os.environ[f"AUDITEX_{role.upper()}_KEY"],
                  verify_tls=os.environ.get("AUDITEX_CA_CERT") or True)


def main() -> int:
    with client("ingest") as ingest, client("read") as reader:
        page = reader.search_decisions(model_id="credit-limit", limit=2)
        latest = [d["event_id"] for d in page["decisions"]]
        reviewed = sys.argv[1] if len(sys.argv) > 1 else latest[0]
        overridden = next(d for d in latest if d != reviewed)

        review = Event.human_review(reviewed, reviewer="analyst-17", action="confirmed",
                                    reason="income evidence checked against payslips")
        override = Event.override(overridden, reviewer="analyst-17", new_outcome="approved",
                                  reason="tenure at the previous employer counts", new_score=0.61)
        for event in (review, override):
            receipt = ingest.append(event)  # retried with the same event id if the network fails
            reader.verify_receipt(receipt, event)
            print(f"{event.event_type} of {event.payload['decision_id']}: record {receipt['seq']}, verified")

        # The oversight view lists both once it has caught up (it trails the ledger slightly).
        deadline = time.monotonic() + 30
        while True:
            actions = reader.oversight_actions(actor="analyst-17")["actions"]
            ids = {a["event_id"] for a in actions}
            if {review.event_id, override.event_id} <= ids:
                break
            if time.monotonic() > deadline:
                print("the oversight view did not list both actions within 30 s", file=sys.stderr)
                return 1
            time.sleep(0.2)
        print(f"the oversight view lists both actions of analyst-17 ({len(actions)} in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
