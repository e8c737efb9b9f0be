"""When to try a request again, and how long to wait first.

A request is retried when the service says nothing was written and asks to be asked again (429
rate limited, 503 overloaded or unavailable) and, for requests that are safe to repeat, when the
connection failed (refused, reset, timed out). An append is safe to repeat because its body, with
its client-chosen event id, is built once and sent unchanged on every attempt: the service
answers a repeat of an event it has with the original receipt (`duplicate: true`).

The wait honours `Retry-After` when the service sends one and otherwise backs off exponentially
with full jitter, capped; a `Retry-After` longer than the policy accepts ends the retries at
once, as does the policy's total time budget.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a request gets and how long to wait between them.

    - `attempts`: attempts in all, the first one included (1 turns retries off);
    - `backoff_base_s`, `backoff_max_s`: without `Retry-After`, the n-th retry waits a random
      time up to `min(backoff_max_s, backoff_base_s * 2**n)`;
    - `retry_after_max_s`: the longest `Retry-After` honoured; a longer one is raised at once;
    - `total_s`: no retry starts after this long since the first attempt.
    """

    attempts: int = 10
    backoff_base_s: float = 0.05
    backoff_max_s: float = 5.0
    retry_after_max_s: float = 120.0
    total_s: float = 300.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0 or self.retry_after_max_s < 0:
            raise ValueError("delays cannot be negative")

    def delay_s(self, retry: int, retry_after_s: float | None, elapsed_s: float) -> float | None:
        """The wait before retry number `retry` (1 for the first retry), or None when the request
        should not be tried again."""
        if retry >= self.attempts:
            return None
        if retry_after_s is not None:
            if retry_after_s > self.retry_after_max_s:
                return None
            delay = retry_after_s
        else:
            delay = random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * (2 ** retry)))
        if elapsed_s + delay > self.total_s:
            return None
        return delay


NO_RETRIES = RetryPolicy(attempts=1)
