"""Every operation of the client against the real server: the paths, parameters and bodies the
methods send are the ones the service answers, with the members the OpenAPI document names."""

import time

import pytest
from conftest import client_of
from test_retries import decision

from auditex import Client, Conflict, Event


@pytest.fixture(scope="module")
def seeded(server):
    """Decisions of one subject with erasable values and a review, appended once."""
    with client_of(server, "ingest") as c:
        events = [Event("decision", dict(decision(n).payload, subject_ref="subj-ops"),
                        erasable={"applicant_name": f"Ops {n}"}) for n in range(3)]
        receipts = c.append_batch(events)
        c.append(Event.human_review(events[0].event_id, "analyst-9", "confirmed"))
    return events, receipts


def until(what, check, seconds=30):
    """Polls a view that trails the ledger until `check` holds for what it answers."""
    deadline = time.monotonic() + seconds
    while True:
        answer = what()
        if check(answer):
            return answer
        assert time.monotonic() < deadline, f"not caught up within {seconds} s: {answer}"
        time.sleep(0.1)


def test_records_receipts_and_checkpoints_are_read_with_the_members_the_document_names(server, seeded, ingest):
    events, receipts = seeded
    assert ingest.get_receipt(events[1].event_id)["seq"] == receipts[1]["seq"]
    with client_of(server, "read") as reader:
        page = reader.list_records(from_seq=receipts[0]["seq"], limit=2)
        assert [r["seq"] for r in page["records"]] == [receipts[0]["seq"], receipts[0]["seq"] + 1]
        assert reader.get_record(receipts[2]["seq"])["event_id"] == events[2].event_id
        note = until(reader.latest_checkpoint, lambda n: int(n.split("\n")[1]) > receipts[2]["seq"])
        assert note.startswith("auditex.local/ledger/sdk-tests\n")
        listed = reader.list_checkpoints(limit=5)["checkpoints"]
        assert listed and all("signed_note" in c for c in listed)
        latest, oldest = int(note.split("\n")[1]), listed[0]["tree_size"]
        proof = reader.consistency_proof(oldest, to_size=latest)
        assert (proof["from"], proof["to"]) == (oldest, latest)
        assert reader.key_history()["origin"] == "auditex.local/ledger/sdk-tests"


def test_the_views_answer_decisions_models_volumes_oversight_and_their_own_lag(server, seeded):
    events, _ = seeded
    with client_of(server, "read") as reader:
        found = until(lambda: reader.search_decisions(subject_ref="subj-ops", limit=10),
                      lambda p: len(p["decisions"]) == 3)
        assert {d["event_id"] for d in found["decisions"]} == {e.event_id for e in events}
        assert reader.get_decision(events[0].event_id)
        assert any(m["model_id"] == "credit-limit" for m in reader.model_inventory(model_id="credit-limit")["models"])
        assert "volumes" in reader.daily_volumes(model_id="credit-limit")
        assert "decisions" in reader.oversight_queue(limit=5)
        actions = until(lambda: reader.oversight_actions(decision_id=events[0].event_id),
                        lambda p: len(p["actions"]) == 1)
        assert actions["actions"][0]["event_type"] == "human_review"
        assert reader.projection_status()["projections"]


def test_a_hold_blocks_an_erasure_until_it_is_lifted_and_the_package_marks_what_was_erased(server, seeded):
    events, _ = seeded
    with client_of(server, "privacy") as privacy:
        until(lambda: privacy.subject_records("subj-ops"), lambda p: len(p["records"]) >= 3)
        hold = privacy.place_hold("subj-ops", reason="litigation", reference="case-1")
        assert [h["hold_seq"] for h in privacy.list_holds("subj-ops")["holds"]] == [hold["seq"]]
        with pytest.raises(Conflict):
            privacy.erase_subject("subj-ops", reason="asked by the subject", legal_basis="GDPR Art. 17(1)(a)")
        privacy.lift_hold("subj-ops", hold["seq"], reason="case closed")
        erased = privacy.erase_subject("subj-ops", reason="asked by the subject", legal_basis="GDPR Art. 17(1)(a)",
                                       event_ids=[events[0].event_id], fields=["applicant_name"])
        assert erased["erased"] == 1
        package = until(lambda: privacy.subject_package("subj-ops"), lambda text: '"erased":{"applicant_name"' in text)
        assert package.startswith('{"format":"auditex-subject-package/v1"')


def test_an_integrity_check_started_through_the_client_is_found_by_its_id(server, seeded):
    with client_of(server, "read") as reader:
        started = reader.start_check()
        assert reader.get_check(started["id"])["id"] == started["id"]
        assert started["id"] in {c["id"] for c in reader.list_checks(limit=10)["checks"]}
        try:
            reader.cancel_check(started["id"])
        except Conflict:
            pass  # it finished first: a finished check cannot be cancelled
        done = until(lambda: reader.get_check(started["id"]), lambda c: c["state"] != "running", seconds=60)
        assert done["state"] in ("passed", "cancelled")


def test_the_client_sends_its_key_only_to_the_url_it_was_given():
    c = Client("https://ledger.example/", "atx_secret")
    assert str(c._http.base_url) == "https://ledger.example"
    assert c._http.headers["authorization"] == "Bearer atx_secret"
    assert c._http.follow_redirects is False
