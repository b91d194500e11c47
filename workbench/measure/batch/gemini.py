"""Gemini Batch Mode: `POST {base}/models/{model}:batchGenerateContent` with the requests inline,
polled at `{base}/batches/{id}`, the answers inline in the finished batch.

Wire format (python-genai `batches.py`: `_CreateBatchJobParameters_to_mldev`,
`_InlinedRequest_to_mldev`, `_BatchJob_from_mldev`, `_InlinedResponse_from_mldev`,
`_transformers.t_job_state`; the Batch Mode guide, read 2026-12-02):

- body: `{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request":
  GenerateContentRequest, "metadata": {"key": ...}}]}}}}`; the answer is an operation whose
  `name` is the batch (`batches/...`).
- poll `GET {base}/batches/{id}`: `metadata.state` one of `BATCH_STATE_PENDING`, `_RUNNING`,
  `_SUCCEEDED`, `_FAILED`, `_CANCELLED`, `_EXPIRED`; the answers at
  `metadata.output.inlinedResponses.inlinedResponses[]` (also `response.inlinedResponses...`),
  each `{"response": GenerateContentResponse | "error": google.rpc.Status, "metadata"}`.
- cancel: `POST {base}/batches/{id}:cancel`.
- limits: inline requests up to 20 MB per batch (larger inputs go through the File API, not
  used here); the target turnaround is 24 hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from workbench.measure.batch.base import BatchItem, BatchStatus, ItemResult, call
from workbench.providers.gemini import classify_body
from workbench.types import ErrorClass, ErrorInfo

if TYPE_CHECKING:
    from workbench.measure.target import Target

__all__ = ["GeminiBatch"]

_ENDED = frozenset({"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"})


class GeminiBatch:
    name = "gemini-batch"
    max_requests = 100_000  # no documented count for inline requests; the 20 MB bound binds first
    max_bytes = 20 * 1024 * 1024
    completion_window_h = 24.0
    window_source = "Gemini Batch Mode: 'a target turnaround time of 24 hours'"

    def wire_item(self, cid: str, body: dict[str, Any], url: str, base_url: str) -> dict[str, Any]:
        return {"request": body, "metadata": {"key": cid}}

    def _root(self, target: Target) -> str:
        return target.base_url.rstrip("/")

    def _batch_url(self, target: Target, batch_id: str) -> str:
        name = batch_id if batch_id.startswith("batches/") else f"batches/{batch_id}"
        return f"{self._root(target)}/{name}"

    async def submit(self, client: httpx.AsyncClient, target: Target, items: Sequence[BatchItem],
                     api_key: str | None) -> str:
        model = target.contender.model
        model = model if model.startswith("models/") else f"models/{model}"
        body = {"batch": {"displayName": f"workbench-{target.run_id}-{target.contender.name}"[:128],
                          "inputConfig": {"requests": {"requests": [it.wire for it in items]}}}}
        r = await call(client, target, api_key, "POST", f"{self._root(target)}/{model}:batchGenerateContent",
                       "creating the batch", json=body)
        return str(r.json()["name"])

    async def status(self, client: httpx.AsyncClient, target: Target, batch_id: str,
                     api_key: str | None) -> BatchStatus:
        r = await call(client, target, api_key, "GET", self._batch_url(target, batch_id), f"polling batch {batch_id}")
        obj = r.json()
        meta = obj.get("metadata") or {}
        state = str(meta.get("state") or obj.get("state"))
        return BatchStatus(batch_id, state, state in _ENDED or bool(obj.get("done") and state not in (
            "BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")), {}, obj)

    async def cancel(self, client: httpx.AsyncClient, target: Target, batch_id: str, api_key: str | None) -> None:
        await call(client, target, api_key, "POST", self._batch_url(target,
                   batch_id) + ":cancel", f"cancelling batch {batch_id}")

    async def results(self, client: httpx.AsyncClient, target: Target, status: BatchStatus,
                      items: Sequence[BatchItem], api_key: str | None) -> list[ItemResult]:
        raw = status.raw
        output = (raw.get("metadata") or {}).get("output") or raw.get("response") or {}
        answers = (output.get("inlinedResponses") or {}).get("inlinedResponses") or []
        out = []
        for i, a in enumerate(answers):
            key = (a.get("metadata") or {}).get("key")
            cid = str(key) if key is not None else (items[i].custom_id if i < len(items) else str(i))
            if a.get("error") is not None:
                out.append(ItemResult(cid, error=classify_body(None, {"error": a["error"]}), outcome="errored"))
            else:
                out.append(ItemResult(cid, body=a.get("response")))
        seen = {r.custom_id for r in out}
        missing = [it for it in items if it.custom_id not in seen]
        if status.state == "BATCH_STATE_EXPIRED":
            out += [ItemResult(it.custom_id, error=ErrorInfo(ErrorClass.EXPIRED, "the batch expired before this "
                                                             "request ran"), outcome="expired") for it in missing]
        elif status.state == "BATCH_STATE_FAILED":
            err = raw.get("error") or {}
            info = ErrorInfo(ErrorClass.SERVER_ERROR, f"batch {status.batch_id} failed: {err.get('message', err)}")
            out += [ItemResult(it.custom_id, error=info, outcome="errored") for it in missing]
        return out
