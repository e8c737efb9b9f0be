"""UUID version 7 event ids (RFC 9562, section 5.7), generated on the client.

An event id is also the idempotency key of an append (FORMAT.md section 2): the client chooses it
once, before the first attempt, and every retry sends the same one, so the server can answer a
retry with the original receipt. Python 3.11's `uuid` module has no version 7, so it is built
here from the RFC's layout:

    unix_ts_ms (48 bits) | ver = 0b0111 (4) | rand_a (12) | var = 0b10 (2) | rand_b (62)

`rand_a` carries a counter (RFC 9562 section 6.2, method 1) so that ids generated within one
millisecond by one process still sort in generation order, and `rand_b` is fresh randomness from
`os.urandom` for every id (read in blocks, each byte used once). The clock going backwards never makes ids go backwards: the last
timestamp is kept and reused until the clock catches up.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_RAND_A_MAX = (1 << 12) - 1
# Randomness is read from os.urandom in blocks and used once, 8 bytes per id: one system call per
# 512 ids instead of one or two per id, which made the call most of an append's client-side cost.
_RANDOM_BLOCK_BYTES = 4096
_lock = threading.Lock()
_last_ms = -1
_counter = 0
_random = b""
_random_at = 0


def _random_bytes(n: int) -> bytes:
    """`n` fresh bytes from os.urandom, never handed out twice. Call with `_lock` held."""
    global _random, _random_at
    if _random_at + n > len(_random):
        _random, _random_at = os.urandom(_RANDOM_BLOCK_BYTES), 0
    _random_at += n
    return _random[_random_at - n : _random_at]


def _next_fields(now_ms: int) -> tuple[int, int, bytes]:
    """The timestamp, counter and 8 random bytes of the next id: monotonic within this process."""
    global _last_ms, _counter
    with _lock:
        if now_ms > _last_ms:
            _last_ms = now_ms
            # A random start in the lower half leaves room for 2048 more ids in this millisecond.
            _counter = int.from_bytes(_random_bytes(2), "big") & 0x7FF
        else:
            _counter += 1
            if _counter > _RAND_A_MAX:
                # 4096 ids in one millisecond: borrow the next millisecond (RFC 9562 section 6.2).
                _last_ms += 1
                _counter = 0
        return _last_ms, _counter, _random_bytes(8)


def uuid7_from(unix_ms: int, rand_a: int, rand_b: bytes) -> uuid.UUID:
    """The UUIDv7 of these fields: a 48-bit Unix millisecond timestamp, 12 bits of `rand_a` and the
    low 62 bits of the 8 bytes `rand_b`.

    Raises ValueError when a field is out of range."""
    if not 0 <= unix_ms < 1 << 48:
        raise ValueError("unix_ms must fit in 48 bits")
    if not 0 <= rand_a <= _RAND_A_MAX:
        raise ValueError("rand_a must fit in 12 bits")
    if len(rand_b) != 8:
        raise ValueError("rand_b must be 8 bytes")
    value = unix_ms << 80
    value |= 0x7 << 76
    value |= rand_a << 64
    value |= 0b10 << 62
    value |= int.from_bytes(rand_b, "big") & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def uuid7() -> uuid.UUID:
    """A new UUIDv7: the current Unix time in milliseconds, a per-millisecond counter and 62
    random bits. Ids from one process increase strictly."""
    return uuid7_from(*_next_fields(time.time_ns() // 1_000_000))


def new_event_id() -> str:
    """A new event id in the form the service requires: a lowercase, hyphenated UUIDv7."""
    return str(uuid7())


def uuid7_unix_ms(value: uuid.UUID | str) -> int:
    """The Unix millisecond timestamp a UUIDv7 carries.

    Raises ValueError when `value` is not a UUID of version 7 and the RFC 9562 variant."""
    u = value if isinstance(value, uuid.UUID) else uuid.UUID(value)
    if u.version != 7 or u.variant != uuid.RFC_4122:
        raise ValueError(f"{u} is not a UUIDv7")
    return u.int >> 80
