"""Provider batch APIs as a lever: one module per batch dialect, one shared runner (`base`).

`dialect_for(contender)` finds the batch API its provider names (`Provider.batch_dialect`) —
OpenAI Batch for `openai-chat`, `openai-completions` and `openai-responses`, Anthropic Message
Batches for `anthropic`, Gemini Batch Mode for `gemini` — or None (`generic` has none). `run_batch` sends a
workload through it and writes one record per document. The local batch endpoint that speaks
the same three dialects over the embedded models is `workbench.serve.batch`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.errors import lookup
from workbench.measure.batch.anthropic import AnthropicBatch
from workbench.measure.batch.base import (
    BatchAPIError,
    BatchDialect,
    BatchItem,
    BatchJournal,
    BatchStatus,
    ItemResult,
    NoBatchAPI,
    run_batch,
    split_items,
)
from workbench.measure.batch.gemini import GeminiBatch
from workbench.measure.batch.openai import OpenAIBatch
from workbench.providers import provider_for

if TYPE_CHECKING:
    from workbench.config import Contender

__all__ = [
    "DIALECTS",
    "BatchAPIError",
    "BatchDialect",
    "BatchItem",
    "BatchJournal",
    "BatchStatus",
    "ItemResult",
    "NoBatchAPI",
    "dialect_for",
    "run_batch",
    "split_items",
]

#: batch dialect name (a provider's `batch_dialect`) → the dialect.
DIALECTS: dict[str, BatchDialect] = {"openai": OpenAIBatch(), "anthropic": AnthropicBatch(), "gemini": GeminiBatch()}


def dialect_for(contender: Contender) -> BatchDialect | None:
    """The batch API of the contender's wire format, or None when it has none."""
    name = provider_for(contender).batch_dialect
    return None if name is None else lookup("batch dialect", name, DIALECTS)
