"""Anthropic Message Batches: `POST /v1/messages/batches {"requests": [{"custom_id", "params"}]}`,
polled at `/v1/messages/batches/{id}`, results as JSONL at the batch's `results_url`.

Wire format (anthropic-sdk-python `types/messages/message_batch*.py`, `batch_create_params.py`
and `resources/messages/batches.py`; the API reference, read 2026-12-02):

- `params` is a Messages API request body (not streamed); `custom_id` must match
  `[A-Za-z0-9_-]{1,64}` and be unique in the batch.
- `processing_status`: `in_progress`, `canceling`, `ended`; `request_counts {processing,
  succeeded, errored, canceled, expired}`; `results_url` once ended; `expires_at` is 24 hours
  after creation ("Batches can take up to 24 hours to complete").
- result line: `{"custom_id", "result": {"type": "succeeded", "message"} | {"type": "errored",
  "error": {"type": "error", "error": {"type", "message"}}} | {"type": "canceled"} | {"type":
  "expired"}}`, in any order.
- limits: 100,000 requests or 256 MB per batch, whichever comes first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from workbench.measure.batch.base import BatchAPIError, BatchItem, BatchStatus, ItemResult, call
from workbench.providers.anthropic import classify_body
from workbench.types import ErrorClass, ErrorInfo

if TYPE_CHECKING:
    from workbench.measure.target import Target

__all__ = ["AnthropicBatch"]


class AnthropicBatch:
    name = "anthropic-batch"
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024
    completion_window_h = 24.0
    window_source = "Anthropic Message Batches: 'Batches can take up to 24 hours to complete' (expires_at)"

    def _root(self, target: Target) -> str:
        return target.base_url.rstrip("/") + "/messages/batches"

    def wire_item(self, cid: str, body: dict[str, Any], url: str, base_url: str) -> dict[str, Any]:
        return {"custom_id": cid, "params": body}

    async def submit(self, client: httpx.AsyncClient, target: Target, items: Sequence[BatchItem],
                     api_key: str | None) -> str:
        r = await call(client, target, api_key, "POST", self._root(target),
                       "creating the message batch", json={"requests": [it.wire for it in items]})
        return str(r.json()["id"])

    async def status(self, client: httpx.AsyncClient, target: Target, batch_id: str,
                     api_key: str | None) -> BatchStatus:
        r = await call(client, target, api_key, "GET", f"{self._root(target)}/{batch_id}",
                       f"polling message batch {batch_id}")
        return BatchStatus.from_object(batch_id, r.json(), "processing_status", ("ended",))

    async def cancel(self, client: httpx.AsyncClient, target: Target, batch_id: str, api_key: str | None) -> None:
        await call(client, target, api_key, "POST", f"{self._root(target)}/{batch_id}/cancel",
                   f"cancelling message batch {batch_id}")

    async def results(self, client: httpx.AsyncClient, target: Target, status: BatchStatus,
                      items: Sequence[BatchItem], api_key: str | None) -> list[ItemResult]:
        url = str(status.raw.get("results_url") or f"{self._root(target)}/{status.batch_id}/results")
        if urlsplit(url).netloc != urlsplit(target.base_url).netloc:
            raise BatchAPIError(ErrorInfo(ErrorClass.PROTOCOL, f"results_url {url} is not on {target.base_url}: "
                                          "not fetched (the key would go with it)"))
        r = await call(client, target, api_key, "GET", url, f"reading the results of message batch {status.batch_id}")
        out = []
        for line in r.text.splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            cid, result = str(obj.get("custom_id")), obj.get("result") or {}
            kind = result.get("type")
            if kind == "succeeded":
                out.append(ItemResult(cid, body=result.get("message")))
            elif kind == "errored":
                out.append(ItemResult(cid, error=classify_body(None, result.get("error")), outcome="errored"))
            elif kind == "expired":
                out.append(ItemResult(cid, error=ErrorInfo(ErrorClass.EXPIRED, "the message batch expired before "
                                                           "this request ran", provider_code="expired"),
                                      outcome="expired"))
            else:
                out.append(ItemResult(cid, error=ErrorInfo(ErrorClass.CANCELLED, "the message batch was canceled "
                                                           "before this request ran", provider_code=str(kind)),
                                      outcome="cancelled"))
        return out
