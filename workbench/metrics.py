"""Metric definitions: the single place where a latency number is computed from timestamps.

All timestamps are `time.perf_counter_ns()` readings taken by `workbench.probe`.

- TTFT: request start → first streamed chunk that carries non-empty output text (a role-only
  or empty chunk does not count). Undefined (None) for non-streamed requests.
- E2E: request start → last byte of the response (stream end, or full body read).
- TPOT: (E2E − TTFT) / (output_tokens − 1), defined for output_tokens ≥ 2.
- ITL: the gaps between successive content chunks (a chunk may carry several tokens; chunks
  that arrive in one network read have a gap of ~0).
- Throughput: completed requests/s and output tokens/s over the measured window
  (first send → last completion).
- Goodput: requests/s over the same window that succeeded and met every SLO given.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

__all__ = ["NS", "e2e_s", "goodput", "itl_s", "throughput", "tpot_s", "ttft_s"]

NS = 1e-9


def ttft_s(t0_ns: int, first_content_ns: int | None) -> float | None:
    return None if first_content_ns is None else (first_content_ns - t0_ns) * NS


def e2e_s(t0_ns: int, end_ns: int) -> float:
    return (end_ns - t0_ns) * NS


def tpot_s(e2e: float | None, ttft: float | None, output_tokens: int | None) -> float | None:
    if e2e is None or ttft is None or output_tokens is None or output_tokens < 2:
        return None
    return (e2e - ttft) / (output_tokens - 1)


def itl_s(content_chunk_ns: Sequence[int]) -> list[float]:
    return [(b - a) * NS for a, b in itertools.pairwise(content_chunk_ns)]


def throughput(
    starts: Sequence[float], ends: Sequence[float], output_tokens: Sequence[int | None]
) -> tuple[float, float, float]:
    """(requests/s, output tokens/s, window seconds) for completed requests.

    `starts`/`ends` are seconds on one clock (e.g. t_start_unix and t_start_unix + e2e_s).
    """
    if not starts:
        return 0.0, 0.0, 0.0
    window = max(ends) - min(starts)
    if window <= 0:
        return 0.0, 0.0, 0.0
    toks = sum(t for t in output_tokens if t)
    return len(ends) / window, toks / window, window


def goodput(
    starts: Sequence[float],
    ends: Sequence[float],
    meets_slo: Sequence[bool],
    window: float | None = None,
) -> float:
    """Requests/s that met every SLO, over the measured window (or the one given)."""
    if not starts:
        return 0.0
    w = window if window is not None else max(ends) - min(starts)
    return sum(1 for ok in meets_slo if ok) / w if w > 0 else 0.0


SLOCheck = Callable[[float | None, float | None], bool]
