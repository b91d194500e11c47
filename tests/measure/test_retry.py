"""The `sdk` retry preset: the official SDKs' retry rules, and error rates raw vs as an SDK user sees them."""

from __future__ import annotations

import random

import pytest

from tests.conftest import contender_for, run
from workbench.errors import UnknownNameError
from workbench.measure.probe import make_client
from workbench.measure.retry import RetryPolicy, error_rates, probe_with_retries
from workbench.measure.target import Target
from workbench.serve.mock import Fault, MockServer
from workbench.types import Prompt, Record

pytestmark = pytest.mark.timeout(30)


def _rec(status: int | None, cls: str, *, retry_after: float | None = None, attempt: int = 1,
         headers: dict[str, str] | None = None) -> Record:
    return Record(run_id="r", experiment="e", contender="c", model="m", request_id=f"q{attempt}", t_start_unix=0.0,
                  status="error", error_class=cls, http_status=status, retry_after_s=retry_after, attempt=attempt,
                  rate_limit=headers)


OPENAI, ANTHROPIC, GEMINI = (RetryPolicy.preset("sdk", api) for api in ("openai-chat", "anthropic", "gemini"))


@pytest.mark.parametrize(("status", "cls", "headers", "openai", "gemini"), [
    (408, "timeout", None, True, True),
    (409, "server_error", None, True, False),   # lock timeout: the Stainless SDKs retry it, genai does not
    (429, "rate_limited", None, True, True),
    (429, "quota_exhausted", None, True, True),  # the SDKs go by status, not by what the body says
    (500, "server_error", None, True, True),
    (529, "overloaded", None, True, False),
    (400, "bad_request", None, False, False),
    (404, "model_not_found", None, False, False),
    (500, "server_error", {"x-should-retry": "false"}, False, True),
    (400, "bad_request", {"x-should-retry": "true"}, True, False),
    (None, "connection", None, True, True),      # no response at all
    (200, "overloaded", None, False, False),     # an error inside a 200 stream: never retried
])
def test_which_failures_each_sdk_retries(status: int | None, cls: str, headers: dict[str, str] | None,
                                         openai: bool, gemini: bool) -> None:
    rec = _rec(status, cls, headers=headers)
    assert OPENAI.should_retry(rec) is openai
    assert ANTHROPIC.should_retry(rec) is openai
    assert GEMINI.should_retry(rec) is gemini


def test_waits_follow_each_sdk() -> None:
    rng = random.Random(0)
    # Stainless: 0.5 · 2^n capped at 8, times [0.75, 1]; three attempts in all.
    waits = [OPENAI.backoff_s(n, rng) for n in (1, 2, 3, 4, 5)]
    for w, base in zip(waits, (0.5, 1.0, 2.0, 4.0, 8.0), strict=True):
        assert 0.75 * base <= w <= base
    assert OPENAI.max_attempts == ANTHROPIC.max_attempts == 3 and GEMINI.max_attempts == 5
    def hinted(seconds: float) -> Record:  # a retry-after header, as the SDKs read it
        return _rec(429, "rate_limited", retry_after=seconds, headers={"retry-after": f"{seconds:g}"})

    # A header hint in (0, limit] is used as is; <= 0 is ignored (backoff instead).
    assert OPENAI.wait_s(hinted(3.0), rng) == 3.0 and ANTHROPIC.wait_s(hinted(3.0), rng) == 3.0
    zero = OPENAI.wait_s(hinted(0.0), rng)
    assert zero is not None and 0.375 <= zero <= 0.5
    # A hint only in the message ("Please try again in 3s"): the SDKs read headers only, so back off.
    body_only = OPENAI.wait_s(_rec(429, "rate_limited", retry_after=3.0), rng)
    assert body_only is not None and body_only <= 0.5
    # A long hint: OpenAI's SDK gives up above 120 s; Anthropic's 2.x waits whatever it is told.
    assert OPENAI.wait_s(hinted(90.0), rng) == 90.0 and ANTHROPIC.wait_s(hinted(90.0), rng) == 90.0
    assert not OPENAI.should_retry(hinted(200.0))
    assert ANTHROPIC.should_retry(hinted(200.0)) and ANTHROPIC.wait_s(hinted(200.0), rng) == 200.0
    # google-genai: 1 · 2^n + U(0, 1), capped at 60; retry-after not consulted.
    assert 1.0 <= GEMINI.backoff_s(1, rng) <= 2.0 and GEMINI.backoff_s(9, rng) == 60.0
    assert GEMINI.wait_s(_rec(429, "rate_limited", retry_after=30.0), rng) <= 2.0  # type: ignore[operator]


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: none, sdk"):
        RetryPolicy.preset("stubborn")


def test_sdk_preset_is_the_providers_and_refused_where_there_is_no_sdk() -> None:
    """The rules are the provider's (`Provider.sdk_retry`); `generic` has no SDK to imitate, so it
    gets no silent OpenAI policy, and an unknown kind lists the valid ones."""
    assert RetryPolicy.preset("sdk", "openai-completions").name == "sdk:openai"
    with pytest.raises(ValueError, match="api kind 'generic' has no official SDK retry rules"):
        RetryPolicy.preset("sdk", "generic")
    with pytest.raises(UnknownNameError, match="unknown api kind 'telepathy'; valid: anthropic"):
        RetryPolicy.preset("sdk", "telepathy")


def test_sdk_preset_against_the_mock_and_error_rates(wire: MockServer) -> None:
    """409, then a 500 that says x-should-retry: false — the SDK stops there; the caller sees one error."""
    stop = Fault("http", 500, {"error": {"message": "no", "type": "server_error", "code": None}},
                 {"x-should-retry": "false"})
    conflict = Fault("http", 409, {"error": {"message": "lock timeout", "type": "invalid_request_error", "code": None}})
    wire.fail(conflict, stop)
    c = contender_for("openai-chat", wire)
    policy = RetryPolicy.preset("sdk", c.api, seed=1)
    waits: list[float] = []

    async def _sleep(s: float) -> None:
        waits.append(s)

    async def _go() -> list[Record]:
        async with make_client(2, c.timeout_s) as client:
            first = await probe_with_retries(client, Target.hosted(c), Prompt(id="p", text="a"), policy,
                                             sleep=_sleep, request_id="L1")
            second = await probe_with_retries(client, Target.hosted(c), Prompt(id="p", text="b"), policy,
                                              sleep=_sleep, request_id="L2")
            return first + second

    recs = run(_go())
    assert [(r.logical_request_id, r.http_status) for r in recs] == [("L1", 409), ("L1", 500), ("L2", 200)]
    assert len(waits) == 1 and 0.375 <= waits[0] <= 0.5
    rates = error_rates(recs)
    assert (rates["attempts"], rates["requests"]) == (3, 2)
    assert rates["raw_error_rate"] == pytest.approx(2 / 3) and rates["sdk_error_rate"] == pytest.approx(1 / 2)
