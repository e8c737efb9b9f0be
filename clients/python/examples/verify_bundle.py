#!/usr/bin/env python3
"""Fetch a decision's chain-of-custody bundle and verify it locally with the independent
verifier: the signed checkpoint, every record and its inclusion proof, the erasable values
against their commitments, the follow-ups linked to the decision. Then change one byte and watch
it fail.

    AUDITEX_URL=… AUDITEX_READ_KEY=atx_… [AUDITEX_CA_CERT=ca.pem] python verify_bundle.py DECISION_EVENT_ID [OUT.json]

The bundle written to OUT.json verifies offline with `auditex-verify bundle OUT.json --key-history keys.json`.
"""

from __future__ import annotations

import json
import os
import sys
import time

from auditex import Client, NotFound, VerificationError, verify


def main() -> int:
    decision_id = sys.argv[1]
    with Client(os.environ["AUDITEX_URL"], os.environ["AUDITEX_READ_KEY"],
                verify_tls=os.environ.get("AUDITEX_CA_CERT") or True) as reader:
        # A bundle proves against the latest signed checkpoint, published every second or so.
        deadline = time.monotonic() + 30
        while True:
            try:
                bundle, proven = reader.fetch_verified_bundle(decision_id)
                break
            except NotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        print(f"VERIFIED the custody bundle of decision {decision_id}:")
        for line in proven:
            print(f"  - {line}")

        # One letter of the applicant's name (an erasable value, checked against its commitment).
        tampered = json.dumps(bundle).replace("Applicant", "Applicent", 1)
        try:
            verify.verify_bundle(tampered, reader.key_ring())
        except VerificationError as e:
            print(f"a one-character change fails, as it must: {e}")
        else:
            print("a tampered bundle verified", file=sys.stderr)
            return 1
        if len(sys.argv) > 2:
            with open(sys.argv[2], "w") as f:
                json.dump(bundle, f)
            with open(sys.argv[2] + ".keys.json", "w") as f:
                json.dump(reader.key_history(), f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
