"""A minimal retry policy for load runs: exponential backoff that honours `retry-after`.

Stand-in for `workbench.retry.RetryPolicy` (branch `providers`), which was not on this branch
when the load generator was written; the semantics match it — one record per attempt, all
attempts of one logical request share `logical_request_id`, the backoff sleep happens between
attempts so no attempt's E2E contains it. The attempt loop itself lives in
`workbench.load.common`, because under load each attempt must also carry the schedule fields.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from workbench.types import ErrorClass, Record

__all__ = ["BackoffPolicy"]


@dataclass(frozen=True)
class BackoffPolicy:
    """When and how long to wait before another attempt.

    Wait after failed attempt n: the server's hint (`Record.retry_after_s`) when
    `honour_retry_after` and present, else `min(cap, base * 2**(n-1))` scaled by a random factor
    in `[1 - jitter, 1]` (seeded per logical request, so runs repeat). A hint longer than
    `max_retry_after_s` stops retrying: waiting minutes would distort the rest of a run.
    """

    max_attempts: int = 4
    backoff_base_s: float = 0.1
    backoff_cap_s: float = 2.0
    jitter: float = 0.5
    honour_retry_after: bool = True
    max_retry_after_s: float = 10.0
    retry_on: frozenset[str] = field(
        default_factory=lambda: frozenset({ErrorClass.RATE_LIMITED.value, ErrorClass.OVERLOADED.value})
    )

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 (1 = no retries)")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        if self.backoff_base_s < 0 or self.backoff_cap_s < 0:
            raise ValueError("backoff times must be >= 0")

    def wait_s(self, rec: Record, rng: random.Random) -> float | None:
        """Seconds to wait before retrying the failed `rec`; None = do not retry."""
        if rec.ok or rec.error_class not in self.retry_on or rec.attempt >= self.max_attempts:
            return None
        if self.honour_retry_after and rec.retry_after_s is not None:
            return None if rec.retry_after_s > self.max_retry_after_s else rec.retry_after_s
        raw = min(self.backoff_cap_s, self.backoff_base_s * (2.0 ** (rec.attempt - 1)))
        return raw * (1.0 - self.jitter * rng.random())
