"""Errors are exceptions carrying the service's RFC 9457 problem document."""

import httpx
import pytest

from auditex import Client, Event, Forbidden, NotFound, ProblemError, Unauthorized, ValidationFailed
from auditex.errors import problem_from_response


def test_a_decision_without_its_model_id_is_a_422_whose_problem_points_at_the_field(ingest):
    with pytest.raises(ValidationFailed) as e:
        ingest.append(Event("decision", {"outcome": "approved"}))
    problem = e.value
    assert problem.status == 422
    assert problem.type.startswith("urn:auditex:problem:")
    assert problem.title and problem.detail
    assert "/payload/model_id" in [f.pointer for f in problem.errors]


def test_a_batch_with_one_bad_record_names_that_record_by_pointer_and_writes_nothing(ingest, reader):
    from test_retries import decision

    good, bad = decision(20), Event("decision", {"model_id": "m"})
    with pytest.raises(ValidationFailed) as e:
        ingest.append_batch([good, bad])
    assert any(f.pointer.startswith("/records/1/") for f in e.value.errors)
    with pytest.raises(NotFound):
        reader.get_record_by_event(good.event_id)


def test_an_unknown_api_key_is_a_401(server):
    with Client(server.url, "atx_" + "0" * 40, verify_tls=server.ca_cert) as c, pytest.raises(Unauthorized) as e:
        c.key_history()
    assert e.value.status == 401


def test_an_ingest_key_may_not_read_records_403(ingest):
    with pytest.raises(Forbidden) as e:
        ingest.get_record(0)
    assert e.value.status == 403
    assert e.value.type.startswith("urn:auditex:problem:")


def test_a_record_beyond_the_ledger_is_a_404(reader):
    with pytest.raises(NotFound) as e:
        reader.get_record(10**12)
    assert e.value.status == 404


def test_an_answer_that_is_not_a_problem_document_still_gives_the_status_and_the_body():
    problem = problem_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert isinstance(problem, ProblemError)
    assert problem.status == 502
    assert problem.type == "about:blank"
    assert "bad gateway" in problem.detail


def test_an_http_date_retry_after_is_read_as_seconds_from_now():
    response = httpx.Response(503, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, json={})
    assert problem_from_response(response).retry_after_s == 0.0
