"""Receipts, records, proofs and bundles checked locally with auditex_verify: what the real server
signed verifies, and one changed byte anywhere does not."""

import json
import time

import pytest
from test_retries import decision

from auditex import Event, KeyRing, NotFound, VerificationError
from auditex import verify as v


def flip_hex(text: str, at: int = 0) -> str:
    return text[:at] + ("1" if text[at] == "0" else "0") + text[at + 1:]


@pytest.fixture
def appended(ingest):
    event = Event("decision", dict(decision(42).payload, subject_ref="subj-verify"),
                  erasable={"applicant_name": "Jane Q. Doe", "birth_date": {"y": 1980}})
    return event, ingest.append(event)


def wait_for_proof(reader, receipt):
    deadline = time.monotonic() + 30
    while True:
        try:
            return reader.verify_inclusion(receipt)
        except NotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_receipt_verifies_against_the_key_history_and_its_record_hashes_to_it(appended, ingest, reader):
    event, receipt = appended
    ingest.verify_receipt(receipt, fetch_record=False)
    record = reader.verify_receipt(receipt, event)
    assert record["hash"] == receipt["hash"]
    assert set(record["erasable"]) == {"applicant_name", "birth_date"}


def test_a_tampered_receipt_hash_fails_verification(appended, ingest):
    _, receipt = appended
    with pytest.raises(VerificationError, match="signature does not verify"):
        ingest.verify_receipt(dict(receipt, hash=flip_hex(receipt["hash"], 10)), fetch_record=False)


def test_a_tampered_receipt_signature_fails_verification(appended, ingest):
    _, receipt = appended
    with pytest.raises(VerificationError, match="signature does not verify"):
        ingest.verify_receipt(dict(receipt, sig=flip_hex(receipt["sig"], 5)), fetch_record=False)


def test_a_receipt_naming_another_sequence_number_fails_against_its_record(appended, reader):
    _, receipt = appended
    with pytest.raises(VerificationError, match="its seq is"):
        reader.verify_receipt(dict(receipt, seq=receipt["seq"] + 1))


def test_a_record_is_not_accepted_for_an_event_with_another_payload(appended, reader):
    event, receipt = appended
    other = Event(event.event_type, dict(event.payload, outcome="declined"), event.erasable, event.event_id)
    with pytest.raises(VerificationError, match="payload differs"):
        reader.verify_receipt(receipt, other)


def test_a_record_with_a_changed_payload_no_longer_hashes_to_its_hash(appended, reader):
    _, receipt = appended
    record = reader.get_record_by_event(receipt["event_id"])
    changed = dict(record, payload=dict(record["payload"], score=0.99))
    with pytest.raises(VerificationError, match="hashes to"):
        v.verify_record_of_receipt(changed, receipt, reader.key_ring())


def test_a_key_of_another_tenant_does_not_verify_a_receipt(appended):
    _, receipt = appended
    other = {"origin": "auditex.local/ledger/other", "keys": []}
    with pytest.raises(VerificationError):
        KeyRing.from_document(other)
    stranger = KeyRing("auditex.local/ledger/other", ())
    with pytest.raises(VerificationError, match="not in the key history"):
        v.verify_receipt_signature(receipt, stranger)


def test_an_inclusion_proof_verifies_and_a_changed_proof_hash_does_not(appended, reader):
    _, receipt = appended
    proof = wait_for_proof(reader, receipt)
    assert proof["leaf_index"] == receipt["seq"]
    ring = reader.key_ring()
    if proof["proof"]:
        bad = dict(proof, proof=[flip_hex(proof["proof"][0])] + proof["proof"][1:])
        with pytest.raises(VerificationError, match="not proven"):
            v.verify_inclusion_proof(bad, receipt, ring)
    with pytest.raises(VerificationError, match="not proven"):
        v.verify_inclusion_proof(proof, dict(receipt, hash=flip_hex(receipt["hash"])), ring)


def test_a_bundle_verifies_with_its_erasable_values_and_one_changed_value_does_not(appended, ingest, reader):
    event, receipt = appended
    ingest.append(Event.human_review(event.event_id, "analyst-17", "confirmed"))
    wait_for_proof(reader, receipt)
    bundle, proven = reader.fetch_verified_bundle(event.event_id)
    assert bundle["decision_event_id"] == event.event_id
    assert proven and "2 erasable value(s) matched" in proven[0]
    raw = json.dumps(bundle)
    assert "Jane Q. Doe" in raw
    with pytest.raises(VerificationError):
        v.verify_bundle(raw.replace("Jane Q. Doe", "Jane Q. Roe"), reader.key_ring())


def test_a_tlog_proof_file_verifies_with_the_independent_verifier(appended, reader):
    _, receipt = appended
    wait_for_proof(reader, receipt)
    text, proven = reader.fetch_verified_tlog_proof(receipt["seq"])
    assert text.startswith("c2sp.org/tlog-proof@v1\n")
    assert f"record {receipt['seq']}" in proven[0]


def test_the_export_verifies_and_a_dropped_line_does_not(appended, reader):
    wait_for_proof(reader, appended[1])
    export = reader.export()
    proven = v.verify_export(export, reader.key_ring())
    assert proven
    lines = export.split("\n")
    with pytest.raises(VerificationError):
        v.verify_export("\n".join(lines[:2] + lines[3:]), reader.key_ring())


def test_a_carriage_return_inside_an_export_line_is_named_as_a_control_character(appended, reader):
    # As `auditex verify` and the Python verifier read it: lines end at \n alone, so a bare \r
    # is a control character in a line, not the end of one.
    wait_for_proof(reader, appended[1])
    lines = reader.export().split("\n")
    lines[1] = lines[1][:20] + "\r" + lines[1][20:]
    with pytest.raises(VerificationError, match="control character 0x0d"):
        v.verify_export("\n".join(lines), reader.key_ring())


def test_a_refetched_key_history_that_dropped_or_changed_a_key_or_its_origin_is_refused(reader):
    import dataclasses

    ring = reader.key_ring()
    key = ring.keys[0]
    moved = dataclasses.replace(key, from_seq=key.from_seq + 1)
    with pytest.raises(VerificationError, match="changed or vanished"):
        ring.check_extended_by(KeyRing(ring.origin, ()))
    with pytest.raises(VerificationError, match="changed or vanished"):
        ring.check_extended_by(KeyRing(ring.origin, (moved,) + ring.keys[1:]))
    with pytest.raises(VerificationError, match="origin changed"):
        ring.check_extended_by(KeyRing(ring.origin + "-x", ring.keys))
    ring.check_extended_by(ring)
