"""Shared error taxonomy: HTTP status + provider code → `ErrorClass`, and rate-limit headers.

Providers pass what they extracted from their own error shape (code, type, message); the
mapping from there to a class is one table, here, so that a 429 means the same thing whatever
the provider.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from workbench.types import ErrorClass, ErrorInfo

__all__ = ["classify", "parse_duration", "parse_retry_after", "rate_limit_headers"]

# Provider codes, lower-cased, from OpenAI (`error.code`/`error.type`), Anthropic (`error.type`),
# Gemini (`error.status`, a google.rpc code name) and the OpenAI-like gateways seen in the wild.
# Quota/billing: retrying will not fix it.
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "quota_exceeded"}
# Gemini uses RESOURCE_EXHAUSTED for per-minute limits *and* daily/project quotas, with the same
# "You exceeded your current quota" message; it sends a RetryInfo delay for both, so it is
# treated as rate_limited (retryable after the delay), never guessed from the message.
_RATE_CODES = {"rate_limit_exceeded", "rate_limit_error", "resource_exhausted", "rate_limited"}
_OVERLOAD_CODES = {"overloaded_error", "overloaded", "unavailable", "server_overloaded"}
_AUTH_CODES = {"authentication_error", "permission_error", "invalid_api_key", "unauthenticated",
               "permission_denied"}
_TIMEOUT_CODES = {"deadline_exceeded", "timeout_error"}
_BAD_REQUEST_CODES = {"invalid_request_error", "not_found_error", "request_too_large",
                      "invalid_argument", "not_found", "failed_precondition", "out_of_range",
                      "context_length_exceeded"}
_SERVER_CODES = {"api_error", "internal", "unknown", "data_loss"}


def _quota_message(msg_l: str) -> bool:
    return "insufficient_quota" in msg_l or "exceeded your current quota" in msg_l


def classify(
    status: int | None,
    code: str | None,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> ErrorInfo:
    """Map an HTTP status and the provider's own error code to a typed error.

    The provider's code wins over the HTTP status when it is one we know, because it is more
    specific (a 400 can be Anthropic's "credit balance" or a bad parameter; an error object
    inside a 200 stream has no status at all). The quota *message* heuristic only applies to a
    429 whose code is unknown (gateways that drop OpenAI's `insufficient_quota` code).
    """
    c = (code or "").lower()
    msg_l = message.lower()
    retry_after = parse_retry_after(headers or {})
    cls: ErrorClass
    if c in _QUOTA_CODES or ("quota" in c and c not in _RATE_CODES):
        cls, retryable = ErrorClass.QUOTA_EXHAUSTED, False
    elif c in _RATE_CODES:
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
    elif c in _BAD_REQUEST_CODES or (status is not None and 400 <= status < 500):
        cls, retryable = ErrorClass.BAD_REQUEST, False
    else:  # other 5xx, a known server code, or an error object in a 200 stream with no code
        cls, retryable = ErrorClass.SERVER_ERROR, True
    return ErrorInfo(
        error_class=cls,
        message=message,
        http_status=status,
        provider_code=code,
        retry_after_s=retry_after,
        retryable=retryable,
    )


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


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The rate-limit headers a response carried (`x-ratelimit-*`, `anthropic-ratelimit-*`,
    `retry-after*`), kept verbatim on the record for later analysis."""
    out = {
        k.lower(): v
        for k, v in headers.items()
        if k.lower().startswith(("x-ratelimit-", "anthropic-ratelimit-", "retry-after", "ratelimit"))
    }
    return out or None
