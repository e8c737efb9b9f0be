"""Event ids: UUIDv7 as RFC 9562 lays them out, generated without the standard library's help."""

import itertools
import time
import uuid

import pytest

from auditex import new_event_id, uuid7
from auditex._uuid7 import uuid7_from, uuid7_unix_ms


def test_the_rfc_9562_example_fields_give_the_rfc_9562_example_uuid():
    # RFC 9562 appendix A.6: unix_ts_ms 0x017F22E279B0, rand_a 0xCC3, rand_b 0x18C4DC0C0C07398F.
    u = uuid7_from(0x017F22E279B0, 0xCC3, bytes.fromhex("18C4DC0C0C07398F"))
    assert str(u) == "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"


def test_a_new_id_has_version_7_the_rfc_variant_and_the_current_millisecond():
    before = time.time_ns() // 1_000_000
    u = uuid7()
    after = time.time_ns() // 1_000_000
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert before <= uuid7_unix_ms(u) <= after + 1


def test_an_event_id_is_lowercase_hyphenated_and_36_characters():
    text = new_event_id()
    assert len(text) == 36
    assert text == text.lower()
    assert [len(p) for p in text.split("-")] == [8, 4, 4, 4, 12]
    assert text[14] == "7" and text[19] in "89ab"


def test_ten_thousand_ids_from_one_process_strictly_increase_and_are_distinct():
    ids = [uuid7() for _ in range(10_000)]
    assert all(a.int < b.int for a, b in itertools.pairwise(ids))
    assert len({u.int for u in ids}) == 10_000


def test_ids_keep_increasing_when_the_clock_goes_back(monkeypatch):
    first = uuid7()
    monkeypatch.setattr(time, "time_ns", lambda: (uuid7_unix_ms(first) - 5000) * 1_000_000)
    later = [uuid7() for _ in range(100)]
    assert all(first.int < u.int for u in later)
    assert uuid7_unix_ms(later[-1]) >= uuid7_unix_ms(first)


def test_fields_out_of_range_are_refused():
    with pytest.raises(ValueError):
        uuid7_from(1 << 48, 0, bytes(8))
    with pytest.raises(ValueError):
        uuid7_from(0, 1 << 12, bytes(8))
    with pytest.raises(ValueError):
        uuid7_from(0, 0, bytes(7))


def test_a_version_4_uuid_is_not_read_as_a_uuidv7():
    with pytest.raises(ValueError):
        uuid7_unix_ms(uuid.uuid4())
