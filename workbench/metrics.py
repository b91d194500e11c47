"""Metric definitions: the single place where a latency number is computed from timestamps.

All timestamps are `time.perf_counter_ns()` readings taken by `workbench.measure.probe` and
`workbench.measure.netbackend`:

- Request start: the request's first byte handed to the socket — or, when a connection was
  opened for it, the start of that connect (TCP + TLS count). The client's own Python before
  that is `send_delay_s` on the record, outside every latency (and inside `*_from_schedule_s`).
- A chunk's time: when the bytes that completed it reached the process (stamped as the event
  loop received them), not when the client got round to parsing them.
- TTFT: request start → first streamed chunk that carries non-empty output text (a role-only
  or empty chunk does not count). Undefined (None) for non-streamed requests.
- E2E: request start → arrival of the last byte of the response (stream end, or full body).
- TPOT: (E2E − TTFT) / (visible output tokens − 1), defined for ≥ 2 visible tokens. Visible =
  output_tokens − reasoning_tokens: a reasoning model's thinking is generated *before* the first
  visible token, so it belongs to TTFT, not to the time per visible token (`visible_tokens`).
- ITL: the gaps between successive content chunks (a chunk may carry several tokens; chunks
  that arrive in one network read have a gap of ~0).
- Throughput: completed requests/s and (visible) output tokens/s over the measured window
  (first send → last completion).
- Goodput: requests/s over the same window that succeeded and met every SLO given.
- SLO (`SLO`): a latency objective — the p-th percentile of TTFT or E2E at most a bound, e.g.
  "E2E p95 ≤ 100 ms" (routing) or "TTFT p95 ≤ 300 ms" (a chat that streams). A request meets it
  when its own TTFT or E2E is within the bound; a level meets it when that percentile is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = ["NS", "SLO", "e2e_s", "goodput", "itl_s", "throughput", "tpot_s", "ttft_s", "visible_tokens"]

NS = 1e-9

#: The percentiles an SLO may name (those the latency tables carry).
SLO_PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class SLO:
    """A latency objective: the `percentile`-th percentile of `metric` (`ttft` or `e2e`) ≤ `max_s`."""

    max_s: float
    metric: str = "e2e"
    percentile: int = 95

    def __post_init__(self) -> None:
        if self.metric not in ("ttft", "e2e"):
            raise ValueError(f"SLO metric {self.metric!r}: valid: ttft, e2e")
        if self.percentile not in SLO_PERCENTILES:
            raise ValueError(f"SLO percentile {self.percentile!r}: valid: {', '.join(map(str, SLO_PERCENTILES))}")
        if not self.max_s > 0:
            raise ValueError("SLO max_s must be > 0")

    @classmethod
    def of(cls, slo: SLO | float) -> SLO:
        """An SLO, or a number of seconds as the classic p95 E2E bound."""
        return slo if isinstance(slo, SLO) else cls(float(slo))

    @property
    def field(self) -> str:
        """The record field a request is judged on (`ttft_s`, `e2e_s`)."""
        return f"{self.metric}_s"

    @property
    def name(self) -> str:
        """The metric the constraint reads (`e2e_p95`, `ttft_p90`, ...)."""
        return f"{self.metric}_p{self.percentile}"

    @property
    def text(self) -> str:
        return f"{self.metric.upper()} p{self.percentile} ≤ {self.max_s * 1000:g} ms"


def ttft_s(t0_ns: int, first_content_ns: int | None) -> float | None:
    return None if first_content_ns is None else (first_content_ns - t0_ns) * NS


def e2e_s(t0_ns: int, end_ns: int) -> float:
    return (end_ns - t0_ns) * NS


def visible_tokens(output_tokens: int | None, reasoning_tokens: int | None) -> int | None:
    """Output tokens the caller saw: all output minus reasoning (never below 0); None if unknown."""
    if output_tokens is None:
        return None
    return max(0, output_tokens - (reasoning_tokens or 0))


def tpot_s(e2e: float | None, ttft: float | None, output_tokens: int | None) -> float | None:
    if e2e is None or ttft is None or output_tokens is None or output_tokens < 2:
        return None
    return (e2e - ttft) / (output_tokens - 1)


def itl_s(content_chunk_ns: Sequence[int]) -> list[float]:
    return [(b - a) * NS for a, b in itertools.pairwise(content_chunk_ns)]


def window_s(starts: Collection[float], ends: Collection[float]) -> float:
    """The measured window: first send → last response end (seconds on one clock)."""
    if len(starts) == 0:
        return math.nan
    return float(max(ends) - min(starts))


def throughput(n_completed: int, output_tokens: float, window: float) -> tuple[float, float]:
    """(completed requests/s, output tokens/s) over the measured window."""
    if not window > 0:
        return math.nan, math.nan
    return n_completed / window, output_tokens / window


def goodput(n_met_slo: int, window: float) -> float:
    """Requests/s that succeeded and met every SLO, over the measured window."""
    return n_met_slo / window if window > 0 else math.nan
