"""Retries that never hide latency: every attempt is its own record.

A client library that retries inside one call reports one long latency; the workbench instead
returns one `Record` per attempt (`attempt` = 1..n, one shared `logical_request_id`), and the
backoff sleep happens *between* probes, so no attempt's E2E contains it. What a user waited in
total is recoverable from the records (`t_start_unix` of the last attempt + its `e2e_s` −
`t_start_unix` of the first); the wait before an attempt is in its `extra["retry_wait_s"]`.

While measuring, the default is one attempt (no retries): retries change the load a provider
sees and the latency users see, so they are something an experiment asks for explicitly.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from workbench.measure.probe import new_request_id, probe
from workbench.measure.target import Target
from workbench.types import ErrorClass, Prompt, Record

__all__ = ["DEFAULT_RETRY_ON", "RetryPolicy", "probe_with_retries"]

#: Classes where another attempt can succeed. Quota, auth, bad requests and protocol errors
#: (a malformed answer is a property of the server, not of the moment) are not retried.
DEFAULT_RETRY_ON: frozenset[ErrorClass] = frozenset({
    ErrorClass.RATE_LIMITED,
    ErrorClass.OVERLOADED,
    ErrorClass.SERVER_ERROR,
    ErrorClass.TIMEOUT,
    ErrorClass.CONNECTION,
})


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before another attempt.

    Backoff before attempt n+1 is `min(cap, base * 2**(n-1))`, scaled by a random factor in
    `[1 - jitter, 1]` from a generator seeded with `seed` (so a run's waits are repeatable).
    A server's own hint (`Record.retry_after_s`, from `retry-after`, `retry-after-ms` or
    Gemini's RetryInfo) replaces the backoff when `honour_retry_after`; a hint longer than
    `max_retry_after_s` ends the retries instead (waiting minutes inside a measurement would
    distort everything after it).
    """

    max_attempts: int = 1
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 20.0
    jitter: float = 0.5
    seed: int | None = 0
    honour_retry_after: bool = True
    max_retry_after_s: float = 60.0
    retry_on: frozenset[ErrorClass] = field(default_factory=lambda: DEFAULT_RETRY_ON)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 (1 = no retries)")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        if self.backoff_base_s < 0 or self.backoff_cap_s < 0:
            raise ValueError("backoff times must be >= 0")

    def should_retry(self, rec: Record) -> bool:
        """Whether the failure in `rec` is one another attempt could fix."""
        if rec.ok or rec.error_class is None:
            return False
        try:
            cls = ErrorClass(rec.error_class)
        except ValueError:
            return False
        return cls in self.retry_on

    def backoff_s(self, failed_attempt: int, rng: random.Random) -> float:
        """The jittered exponential backoff after attempt number `failed_attempt` (1-based)."""
        raw = min(self.backoff_cap_s, self.backoff_base_s * (2.0 ** (failed_attempt - 1)))
        return raw * (1.0 - self.jitter * rng.random())

    def next_wait_s(self, rec: Record, rng: random.Random) -> float | None:
        """Seconds to wait before another attempt after `rec`; None = no further attempt
        (success, a class not worth retrying, attempts used up, or a hint too long)."""
        if not self.should_retry(rec) or rec.attempt >= self.max_attempts:
            return None
        return self.wait_s(rec, rng)

    def wait_s(self, rec: Record, rng: random.Random) -> float | None:
        """Seconds to wait before the next attempt after the failed `rec`; None = stop."""
        if self.honour_retry_after and rec.retry_after_s is not None:
            if rec.retry_after_s > self.max_retry_after_s:
                return None
            return rec.retry_after_s
        return self.backoff_s(rec.attempt, rng)


async def probe_with_retries(
    client: httpx.AsyncClient,
    target: Target,
    prompt: Prompt,
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    **probe_kwargs: Any,
) -> list[Record]:
    """Probe until success, a non-retryable failure, or `policy.max_attempts`; one record each.

    `probe_kwargs` go to `workbench.measure.probe.probe` unchanged except `request_id`, which (if given)
    becomes the logical id; each attempt gets a fresh request id. `sleep` is injectable so that
    callers with their own clock (a load generator) can account for the wait.
    """
    logical = probe_kwargs.pop("request_id", None) or new_request_id()
    base_extra: dict[str, Any] = dict(probe_kwargs.pop("extra", None) or {})
    rng = random.Random(policy.seed)
    records: list[Record] = []
    wait = 0.0
    for attempt in range(1, policy.max_attempts + 1):
        extra = dict(base_extra)
        if attempt > 1:
            extra["retry_wait_s"] = wait
        rec = await probe(client, target, prompt, request_id=new_request_id(), extra=extra, **probe_kwargs)
        rec.attempt = attempt
        rec.logical_request_id = logical
        records.append(rec)
        if attempt == policy.max_attempts or not policy.should_retry(rec):
            break
        next_wait = policy.wait_s(rec, rng)
        if next_wait is None:
            break
        wait = next_wait
        if wait > 0:
            await sleep(wait)
    return records
