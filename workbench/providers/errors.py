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

__all__ = ["classify", "parse_retry_after", "rate_limit_headers"]

# Provider codes that say "you are out of money/quota", which retrying will not fix.
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "quota_exceeded"}
_RATE_CODES = {"rate_limit_exceeded", "rate_limit_error", "resource_exhausted", "rate_limited"}
_OVERLOAD_CODES = {"overloaded_error", "overloaded", "unavailable", "server_overloaded"}
_AUTH_CODES = {"authentication_error", "permission_error", "invalid_api_key", "unauthenticated",
               "permission_denied"}


def classify(
    status: int | None,
    code: str | None,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> ErrorInfo:
    """Map an HTTP status and the provider's own error code to a typed error."""
    c = (code or "").lower()
    msg_l = message.lower()
    retry_after = parse_retry_after(headers or {})
    if c in _QUOTA_CODES or "quota" in c or (
        status == 429 and ("insufficient_quota" in msg_l or "exceeded your current quota" in msg_l)
    ):
        cls, retryable = ErrorClass.QUOTA_EXHAUSTED, False
    elif status == 429 or c in _RATE_CODES:
        cls, retryable = ErrorClass.RATE_LIMITED, True
    elif status in (503, 529) or c in _OVERLOAD_CODES:
        cls, retryable = ErrorClass.OVERLOADED, True
    elif status in (401, 403) or c in _AUTH_CODES:
        cls, retryable = ErrorClass.AUTH, False
    elif status == 408 or status == 504:
        cls, retryable = ErrorClass.TIMEOUT, True
    elif status is not None and 400 <= status < 500:
        cls, retryable = ErrorClass.BAD_REQUEST, False
    elif status is not None and status >= 500:
        cls, retryable = ErrorClass.SERVER_ERROR, True
    else:  # an error object inside a 200 stream, with no recognised code
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


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The rate-limit headers a response carried (`x-ratelimit-*`, `anthropic-ratelimit-*`,
    `retry-after*`), kept verbatim on the record for later analysis."""
    out = {
        k.lower(): v
        for k, v in headers.items()
        if k.lower().startswith(("x-ratelimit-", "anthropic-ratelimit-", "retry-after", "ratelimit"))
    }
    return out or None
