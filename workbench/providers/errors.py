"""Shared error taxonomy: HTTP status + provider code → `ErrorClass`, and rate-limit headers.

Providers pass what they extracted from their own error shape (code, type, message); the
mapping from there to a class is one table, here, so that a 429 means the same thing whatever
the provider.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Mapping

from workbench.types import ErrorClass, ErrorInfo

__all__ = ["classify", "parse_duration", "parse_go_duration", "parse_retry_after", "rate_limit_headers"]

# Provider codes and types, lower-cased, from OpenAI (`error.code` and `error.type`), Anthropic
# (`error.type`, `error.details.error_code`), Gemini (`error.status`, a google.rpc code name) and
# the OpenAI-like gateways seen in the wild. Each provider module extracts them from its own body
# (and from the details only it knows: Gemini's QuotaFailure, Anthropic's spend cap); this table
# maps them to a class, so that a 429 means the same thing whatever the provider.
# Quota/billing: retrying will not fix it (until someone pays, or the day or month turns).
# Anthropic's spend caps travel as `error.details.error_code` (anthropic-sdk-python 2.x
# `types/shared/*_spend_limit_reached_error_details.py`): the tier cap, the contract's, and the
# linked organization's (its own cap, or no credit).
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "quota_exceeded", "billing_not_active",
                "billing_error", "enforced_spend_limit_reached", "contract_spend_limit_reached",
                "linked_organization_spend_limit_reached", "quota_exhausted"}
# Gemini uses RESOURCE_EXHAUSTED for per-minute limits *and* daily quotas; providers/gemini.py
# tells them apart by the QuotaFailure quota id and passes quota_exhausted for a daily one.
_RATE_CODES = {"rate_limit_exceeded", "rate_limit_error", "resource_exhausted", "rate_limited"}
_OVERLOAD_CODES = {"overloaded_error", "overloaded", "unavailable", "server_overloaded"}
# Anthropic's `organization_on_hold` (the organization disabled for trust and safety reasons;
# `types/shared/organization_on_hold_error.py`): no request of this key will run — not a bad request.
_AUTH_CODES = {"authentication_error", "permission_error", "invalid_api_key", "unauthenticated",
               "permission_denied", "organization_on_hold"}
_TIMEOUT_CODES = {"deadline_exceeded", "timeout_error"}
_NOT_FOUND_MODEL_CODES = {"model_not_found"}
_BAD_REQUEST_CODES = {"invalid_request_error", "not_found_error", "request_too_large",
                      "invalid_argument", "not_found", "failed_precondition", "out_of_range"}
# The prompt does not fit the context window: OpenAI's code, llama-server's error type; the
# others say it only in the message of a generic 400 (`_CONTEXT_MESSAGE`).
_CONTEXT_CODES = {"context_length_exceeded", "exceed_context_size_error"}
# Anthropic: "prompt is too long: 208310 tokens > 200000 maximum" (invalid_request_error);
# Gemini: "The input token count (1200293) exceeds the maximum number of tokens allowed
# (1048576)." (INVALID_ARGUMENT); OpenAI-like gateways: "maximum context length is N tokens";
# llama-server: "request (10024 tokens) exceeds the available context size (9216 tokens)".
_CONTEXT_MESSAGE = re.compile(r"prompt is too long: \d+ tokens > \d+|input token count \(\d+\) exceeds the maximum"
                              r"|maximum context length is \d+|exceeds the available context size", re.IGNORECASE)
_SERVER_CODES = {"api_error", "internal", "unknown", "data_loss"}
# "Please try again in 26.604s" / "in 644ms" (OpenAI 429 messages) and Gemini's "Please retry in 20.04s".
_TRY_AGAIN = re.compile(r"(?:try again|retry) in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", re.IGNORECASE)


def _quota_message(msg_l: str) -> bool:
    return "insufficient_quota" in msg_l or "exceeded your current quota" in msg_l


def classify(
    status: int | None,
    code: str | None,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    type_: str | None = None,
) -> ErrorInfo:
    """Map an HTTP status, the provider's own error code and its error type to a typed error.

    The provider's code wins over the HTTP status when it is one we know, because it is more
    specific (a 400 can be Anthropic's "credit balance" or a bad parameter; an error object
    inside a 200 stream has no status at all); the type is consulted next (OpenAI sends
    `type: insufficient_quota` beside billing codes). The quota *message* heuristic only applies
    to a 429 whose code and type say nothing (gateways that drop OpenAI's code).

    A rate limit's wait comes from `retry-after-ms` / `retry-after`, else from the message ("try
    again in 26.6s"), else from the `x-ratelimit-reset-*` header of an exhausted limit.
    `x-should-retry: true|false` (OpenAI, Anthropic) overrides whether it is worth retrying.
    """
    c = (code or "").lower()
    t = (type_ or "").lower()
    msg_l = message.lower()
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    retry_after = parse_retry_after(hdrs)
    cls: ErrorClass
    if c in _QUOTA_CODES or t in _QUOTA_CODES or status == 402 or ("quota" in c and c not in _RATE_CODES):
        cls, retryable = ErrorClass.QUOTA_EXHAUSTED, False
    elif c in _NOT_FOUND_MODEL_CODES:
        cls, retryable = ErrorClass.MODEL_NOT_FOUND, False
    elif c in _RATE_CODES or t in _RATE_CODES:
        cls, retryable = ErrorClass.RATE_LIMITED, True
    elif status == 429 and _quota_message(msg_l):
        cls, retryable = ErrorClass.QUOTA_EXHAUSTED, False
    elif status == 429:
        cls, retryable = ErrorClass.RATE_LIMITED, True
    elif c in _OVERLOAD_CODES or status in (503, 529):
        cls, retryable = ErrorClass.OVERLOADED, True
    elif c in _AUTH_CODES or status in (401, 403):
        cls, retryable = ErrorClass.AUTH, False
    elif c in _TIMEOUT_CODES or status in (408, 504):
        cls, retryable = ErrorClass.TIMEOUT, True
    elif status == 409:  # a lock timeout / conflict on the provider's side: both official SDKs retry it
        cls, retryable = ErrorClass.SERVER_ERROR, True
    elif c in _CONTEXT_CODES or t in _CONTEXT_CODES or (
            status in (400, 413, None) and _CONTEXT_MESSAGE.search(message)):
        cls, retryable = ErrorClass.CONTEXT_LENGTH_EXCEEDED, False
    elif c in _BAD_REQUEST_CODES or (status is not None and 400 <= status < 500):
        cls, retryable = ErrorClass.BAD_REQUEST, False
    else:  # other 5xx, a known server code, or an error object in a 200 stream with no code
        cls, retryable = ErrorClass.SERVER_ERROR, True
    if cls is ErrorClass.RATE_LIMITED and retry_after is None:
        retry_after = _hinted_wait(message, hdrs)
    should = hdrs.get("x-should-retry")
    if should in ("true", "false"):
        retryable = should == "true"
    return ErrorInfo(
        error_class=cls,
        message=message,
        http_status=status,
        provider_code=code,
        retry_after_s=retry_after,
        retryable=retryable,
        provider_type=type_ if type_ and type_ != code else None,
    )


def _hinted_wait(message: str, headers: Mapping[str, str]) -> float | None:
    """A rate limit's wait when no retry-after header gives one: the message's own "try again in
    Xs", else the reset time of whichever `x-ratelimit-remaining-*` is at 0 (OpenAI)."""
    m = _TRY_AGAIN.search(message)
    if m:
        return parse_go_duration(m.group(1))
    waits = [parse_go_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
             for kind in ("requests", "tokens") if headers.get(f"x-ratelimit-remaining-{kind}") == "0"]
    known = [w for w in waits if w is not None]
    return max(known) if known else None


def parse_go_duration(value: str) -> float | None:
    """"6m0s", "1.5s", "20ms", "1h2m" (OpenAI's reset headers and messages) → seconds; None if not one."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value.strip())
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI), `retry-after` (seconds or HTTP date)."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = lower.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_duration(value: object) -> float | None:
    """A protobuf Duration as JSON-encoded by Google APIs ("7s", "1.5s", "0.250s") or as an
    object ({"seconds": 7, "nanos": 5e8}) → seconds; None when it is neither."""
    if isinstance(value, str):
        v = value.strip()
        if v.endswith("s"):
            v = v[:-1]
        try:
            return max(0.0, float(v))
        except ValueError:
            return None
    if isinstance(value, Mapping):
        try:
            return max(0.0, float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9)
        except (TypeError, ValueError):
            return None
    return None


def rate_limit_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str] | None:
    """The rate-limit and retry headers among a response's (name, value) pairs (`x-ratelimit-*`,
    `anthropic-ratelimit-*`, `retry-after*`, `x-should-retry`), kept verbatim on the record for
    analysis and retry policies."""
    out = {
        k.lower(): v
        for k, v in headers
        if k.lower().startswith(("x-ratelimit-", "anthropic-ratelimit-", "retry-after", "ratelimit", "x-should-retry"))
    }
    return out or None
