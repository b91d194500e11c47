"""What a failed call to a provider was, in the workbench's error vocabulary: one mapping from
transport exceptions to typed errors, and one reading of an error response's body, shared by the
probe (`workbench.measure.probe`) and the batch calls (`workbench.measure.batch`).

A timeout is `timeout`, a refused or lost connection `connection` (both retryable); a server that
broke HTTP — a malformed head, a body cut short (`httpx.RemoteProtocolError`) — is `protocol`,
retryable too; anything else is `protocol` and not retried.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from workbench.types import ErrorClass, ErrorInfo

__all__ = ["decode_body", "error_from_exception"]


def error_from_exception(exc: BaseException, url: str, timeout_s: float | None) -> ErrorInfo:
    """The typed error of a request to `url` that raised `exc` (`timeout_s`: the client's, named in
    a timeout's message; None when unknown)."""
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        within = f" within {timeout_s:g}s" if timeout_s is not None else ""
        return ErrorInfo(ErrorClass.TIMEOUT, f"no complete response from {url}{within} ({type(exc).__name__})",
                         retryable=True)
    if isinstance(exc, httpx.ConnectError):
        return ErrorInfo(ErrorClass.CONNECTION, f"cannot connect to {url}: {exc}", retryable=True)
    if isinstance(exc, httpx.RemoteProtocolError):
        return ErrorInfo(ErrorClass.PROTOCOL, f"{url}: {exc}", retryable=True)
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.NetworkError)):
        return ErrorInfo(ErrorClass.CONNECTION, f"{url}: connection lost: {exc!r}", retryable=True)
    if isinstance(exc, asyncio.CancelledError):
        return ErrorInfo(ErrorClass.CANCELLED, "cancelled by the workbench")
    return ErrorInfo(ErrorClass.PROTOCOL, f"{url}: {type(exc).__name__}: {exc}")


def decode_body(raw: bytes) -> Any:
    """An error response's body: its JSON, or (not JSON) its first 2,000 bytes as text."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw[:2000].decode("utf-8", "replace")
