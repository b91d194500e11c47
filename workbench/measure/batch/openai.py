"""OpenAI Batch: a JSONL file uploaded to `/v1/files` (purpose `batch`), a batch made of it at
`/v1/batches`, results as output and error files.

Wire format (openai-python `types/batch*.py`, `resources/batches.py` and `resources/files.py`;
the API reference's BatchRequestInput / BatchRequestOutput, read 2026-12-02):

- input line: `{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {...}}` —
  every line of one batch names the same endpoint (`/v1/chat/completions`, `/v1/completions`,
  `/v1/responses`, ...); `POST /v1/batches {"input_file_id", "endpoint", "completion_window":
  "24h"}` (only 24h is offered).
- status: `validating`, `in_progress`, `finalizing`, `completed`, `failed` (the input did not
  validate: `errors.data`), `expired`, `cancelling`, `cancelled`; `request_counts {total,
  completed, failed}`; `output_file_id` (successful requests) and `error_file_id`.
- output line: `{"id", "custom_id", "response": {"status_code", "request_id", "body"} | null,
  "error": {"code", "message"} | null}`; a request the provider could not run has `error.code`
  `batch_expired` (the window ended first), `batch_cancelled` or `request_timeout`.
- limits: 50,000 requests and 200 MB per input file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from workbench.measure.batch.base import BatchItem, BatchStatus, ItemResult, call
from workbench.providers.openai import classify_body
from workbench.types import ErrorClass, ErrorInfo

if TYPE_CHECKING:
    from workbench.measure.target import Target

__all__ = ["OpenAIBatch", "item_error"]

_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


def item_error(err: Any) -> tuple[ErrorInfo, str]:
    """(typed error, outcome) of an output line's `error` object."""
    code = str(err.get("code") or "") if isinstance(err, dict) else ""
    message = str(err.get("message") or err) if isinstance(err, dict) else str(err)
    if code == "batch_expired":
        return ErrorInfo(ErrorClass.EXPIRED, message, provider_code=code), "expired"
    if code == "batch_cancelled":
        return ErrorInfo(ErrorClass.CANCELLED, message, provider_code=code), "cancelled"
    if code == "request_timeout":
        return ErrorInfo(ErrorClass.TIMEOUT, message, provider_code=code), "errored"
    return classify_body(None, {"error": err}), "errored"


class OpenAIBatch:
    name = "openai-batch"
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024
    completion_window_h = 24.0
    window_source = "OpenAI Batch API: completion_window '24h' (the only value offered)"

    def wire_item(self, cid: str, body: dict[str, Any], url: str, base_url: str) -> dict[str, Any]:
        # The endpoint as the batch names it: the request's path under the API root, /v1 first.
        rel = url[len(base_url.rstrip("/")):] if url.startswith(base_url.rstrip("/")) else urlsplit(url).path
        return {"custom_id": cid, "method": "POST", "url": "/v1" + rel if not rel.startswith("/v1/") else rel,
                "body": body}

    def _root(self, target: Target) -> str:
        return target.base_url.rstrip("/")

    async def submit(self, client: httpx.AsyncClient, target: Target, items: Sequence[BatchItem],
                     api_key: str | None) -> str:
        data = "".join(json.dumps(it.wire, separators=(",", ":"), ensure_ascii=False) + "\n" for it in items).encode()
        r = await call(client, target, api_key, "POST", f"{self._root(target)}/files",
                       "uploading the batch input file", data={"purpose": "batch"},
                       files={"file": ("batch.jsonl", data, "application/jsonl")})
        file_id = str(r.json()["id"])
        endpoint = str(items[0].wire["url"])
        r = await call(client, target, api_key, "POST", f"{self._root(target)}/batches",
                       "creating the batch", json={"input_file_id": file_id, "endpoint": endpoint,
                                           "completion_window": "24h"})
        return str(r.json()["id"])

    async def status(self, client: httpx.AsyncClient, target: Target, batch_id: str,
                     api_key: str | None) -> BatchStatus:
        r = await call(client, target, api_key, "GET", f"{self._root(target)}/batches/{batch_id}",
                       f"polling batch {batch_id}")
        return BatchStatus.from_object(batch_id, r.json(), "status", _ENDED)

    async def cancel(self, client: httpx.AsyncClient, target: Target, batch_id: str, api_key: str | None) -> None:
        await call(client, target, api_key, "POST", f"{self._root(target)}/batches/{batch_id}/cancel",
                   f"cancelling batch {batch_id}")

    async def _lines(self, client: httpx.AsyncClient, target: Target, file_id: str,
                     api_key: str | None) -> list[dict[str, Any]]:
        r = await call(client, target, api_key, "GET", f"{self._root(target)}/files/{file_id}/content",
                       f"reading batch file {file_id}")
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]

    async def results(self, client: httpx.AsyncClient, target: Target, status: BatchStatus,
                      items: Sequence[BatchItem], api_key: str | None) -> list[ItemResult]:
        raw = status.raw
        if status.state == "failed":  # the input never validated: every document errored with why
            errors = (raw.get("errors") or {}).get("data") or []
            message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict)) or "batch failed"
            info = ErrorInfo(ErrorClass.BAD_REQUEST, f"batch {status.batch_id} failed validation: {message}")
            return [ItemResult(it.custom_id, error=info, outcome="errored") for it in items]
        lines: list[dict[str, Any]] = []
        for key in ("output_file_id", "error_file_id"):
            if raw.get(key):
                lines += await self._lines(client, target, str(raw[key]), api_key)
        out = []
        for line in lines:
            cid = str(line.get("custom_id"))
            resp = line.get("response")
            if line.get("error"):
                info, outcome = item_error(line["error"])
                out.append(ItemResult(cid, error=info, outcome=outcome))
            elif isinstance(resp, dict) and int(resp.get("status_code") or 0) >= 400:
                out.append(ItemResult(cid, error=classify_body(int(resp["status_code"]), resp.get("body")),
                                      outcome="errored"))
            elif isinstance(resp, dict):
                out.append(ItemResult(cid, body=resp.get("body")))
        if status.state == "expired":  # documents the file does not mention never ran
            seen = {r.custom_id for r in out}
            out += [ItemResult(it.custom_id, error=ErrorInfo(ErrorClass.EXPIRED, "the batch expired before this "
                                                             "request ran"), outcome="expired")
                    for it in items if it.custom_id not in seen]
        return out
