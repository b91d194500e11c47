"""Retries that never hide latency: every attempt is its own record.

A client library that retries inside one call reports one long latency; the workbench instead
returns one `Record` per attempt (`attempt` = 1..n, one shared `logical_request_id`), and the
backoff sleep happens *between* probes, so no attempt's E2E contains it. What a user waited in
total is recoverable from the records (`t_start_unix` of the last attempt + its `e2e_s` −
`t_start_unix` of the first); the wait before an attempt is in its `extra["retry_wait_s"]`.

While measuring, the default is one attempt (no retries): retries change the load a provider
sees and the latency users see, so they are something an experiment asks for explicitly.

The `sdk` preset (`RetryPolicy.preset("sdk", api_kind)`) retries as the official SDK of that API
does by default, so that error rates can be shown raw (every attempt) and as an SDK user sees
them (the final attempt of each logical request, `error_rates`). Each provider holds its SDK's
rules, read from the SDK's sources (`Provider.sdk_retry`: `OPENAI_SDK_RETRY` in
`workbench.providers.openai`, `ANTHROPIC_SDK_RETRY`, `GENAI_SDK_RETRY`); an api kind with none
(no official SDK to imitate, e.g. `generic`) has no `sdk` preset, and asking for one is an error.

An error inside a 200 stream is never retried by these SDKs (the response had begun); neither is
it here under the preset.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from workbench.measure.probe import new_request_id, probe
from workbench.measure.target import Target
from workbench.providers import get_provider
from workbench.providers.errors import parse_retry_after
from workbench.types import ErrorClass, Prompt, Record

__all__ = ["DEFAULT_RETRY_ON", "PRESETS", "RetryPolicy", "error_rates", "probe_with_retries"]

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
    # --- what the SDK presets add (defaults keep the policy above unchanged) ---
    #: retry by HTTP status instead of by class (plus timeouts and connection errors, which have
    #: none); `retry_5xx` adds every status >= 500
    retry_statuses: frozenset[int] | None = None
    retry_5xx: bool = False
    #: obey `x-should-retry: true|false` (kept with the record's rate-limit headers)
    honour_should_retry: bool = False
    #: a hint longer than `max_retry_after_s`: True ends the retries, False falls back to the backoff
    long_hint_stops: bool = True
    #: ignore hints <= 0 (a date in the past, "0"): back off instead, as the SDKs do
    ignore_zero_hint: bool = False
    #: seconds added to each backoff, uniform in [0, this] (tenacity's wait_exponential_jitter)
    additive_jitter_s: float = 0.0
    #: take the hint from the response headers only (`retry-after-ms`, `retry-after`), as the SDKs
    #: do — not from a message ("Please try again in 26.6s") or a body's RetryInfo
    hint_from_headers_only: bool = False
    name: str = "custom"

    @classmethod
    def preset(cls, name: str, api: str = "openai-chat", *, seed: int | None = 0) -> RetryPolicy:
        """A named policy: "none" (one attempt, the measuring default) or "sdk" (what the official
        SDK of `api` does by default; see the module docstring)."""
        if name == "none":
            return cls(seed=seed, name="none")
        if name != "sdk":
            raise ValueError(f"unknown retry preset {name!r}; valid: {', '.join(PRESETS)}")
        rules = get_provider(api).sdk_retry
        if rules is None:
            raise ValueError(f"api kind {api!r} has no official SDK retry rules to imitate (Provider.sdk_retry); "
                             "use the 'none' preset or a RetryPolicy of your own")
        fields = {f.name: getattr(rules, f.name) for f in dataclasses.fields(rules) if f.name != "sdk"}
        return cls(**fields, seed=seed, name=f"sdk:{rules.sdk}")

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
        if self.retry_statuses is None:
            return cls in self.retry_on
        status = rec.http_status
        if status is None:  # never got a response: the SDKs retry timeouts and connection errors
            return cls in (ErrorClass.TIMEOUT, ErrorClass.CONNECTION)
        if status < 400:  # an error inside a 200 stream: the SDKs do not retry it
            return False
        hint = self._hint(rec)
        if self.long_hint_stops and hint is not None and hint > self.max_retry_after_s:
            return False
        should = (rec.rate_limit or {}).get("x-should-retry")
        if self.honour_should_retry and should in ("true", "false"):
            return should == "true"
        return status in self.retry_statuses or (self.retry_5xx and status >= 500)

    def _hint(self, rec: Record) -> float | None:
        if not self.honour_retry_after:
            return None
        hint = parse_retry_after(rec.rate_limit or {}) if self.hint_from_headers_only else rec.retry_after_s
        if hint is not None and self.ignore_zero_hint and hint <= 0:
            return None
        return hint

    def backoff_s(self, failed_attempt: int, rng: random.Random) -> float:
        """The jittered exponential backoff after attempt number `failed_attempt` (1-based)."""
        if self.additive_jitter_s:
            raw = self.backoff_base_s * (2.0 ** (failed_attempt - 1)) + self.additive_jitter_s * rng.random()
            return min(self.backoff_cap_s, raw)
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
        hint = self._hint(rec)
        if hint is not None:
            if hint <= self.max_retry_after_s:
                return hint
            if self.long_hint_stops:
                return None
        return self.backoff_s(rec.attempt, rng)


#: The named presets (`RetryPolicy.preset`).
PRESETS = ("none", "sdk")


def error_rates(records: Sequence[Record]) -> dict[str, float | int]:
    """Error rates raw (every attempt) and as a caller of a retrying client sees them (only the
    final attempt of each logical request; records without a logical id stand alone)."""
    final: dict[str, Record] = {}
    for rec in records:
        key = rec.logical_request_id or rec.request_id
        if key not in final or rec.attempt >= final[key].attempt:
            final[key] = rec
    n_att, n_req = len(records), len(final)
    return {"attempts": n_att, "requests": n_req,
            "raw_error_rate": sum(not r.ok for r in records) / n_att if n_att else float("nan"),
            "sdk_error_rate": sum(not r.ok for r in final.values()) / n_req if n_req else float("nan")}


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
