"""A spend budget for a run: refuse the next request before it could push the spend past the cap.

One budget for the whole run (`budget_for` counts what the run folder's records already cost)
and one admission step for every request (`workbench.measure.probe.probe`; the load runs reserve
through the same object), so `budget_usd` caps latency, concurrency, hallucination, coalescing
and capability probes alike.

Hosted APIs bill per token, and a mistyped `n_requests` or a long prompt set can cost real money
before anyone looks at the numbers. A `Budget` is given the cap and each contender's price
(`workbench.pricing.price_for`); before each request the experiment asks `allow()` with the
request's input estimate and its *worst-case* output (`max_tokens`), and after it `charge()`s
the record's real usage. The projection is `spent so far + this request at worst`, so the cap
holds even if the request uses all of its output allowance.

Contenders without a per-token price (the embedded models, or a hosted model with no known
price) cost 0 here: the budget cannot protect what it cannot price, and `unpriced` lists them so
a notebook can say so. A refused request becomes a record with `error_class="cancelled"` and the
message `budget exhausted: spent $X of $Y` (see `refusal_record`), never a silent gap.

Under concurrency several requests are in flight before any is charged, so the load runs
`reserve()` each request's worst case before sending it and `release()` the reservation when
it ends (then `charge()` the real cost): the projection is spent + every in-flight worst case +
this one.

A sharded run (`workbench.measure.load.pool`) cannot share one object across processes, so it
`split()`s the budget in proportion to each shard's share of the work (its closed-loop workers,
its open-loop arrivals): shard k gets that fraction of the cap and of what is already spent or
held, and enforces its share on its own; no shard can overspend, so together they cannot pass
the cap, and no shard stops early because another, idle one holds half of it. When the run ends,
`absorb()` adds what the shards spent (a shard that died counts its whole share).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import Contender
from workbench.errors import WorkbenchError
from workbench.image_tokens import contender_image_tokens
from workbench.pricing import Price, request_cost
from workbench.types import ErrorClass, Prompt, Record

__all__ = ["Budget", "BudgetExhausted", "budget_for", "estimate_input_tokens"]


class BudgetExhausted(WorkbenchError):
    """The next request would have taken the spend past the budget."""

    def __init__(self, spent_usd: float, max_usd: float) -> None:
        self.spent_usd = spent_usd
        self.max_usd = max_usd
        super().__init__(f"budget exhausted: spent ${_usd(spent_usd)} of ${_usd(max_usd)}")


def _usd(x: float) -> str:
    """Dollars to the micro-dollar, without trailing zeros: small test budgets stay readable."""
    return f"{x:.6f}".rstrip("0").rstrip(".") or "0"


@dataclass
class Budget:
    """Spend cap in USD across every contender of one experiment."""

    max_usd: float
    prices: Mapping[str, Price | None]  # contender name → its price (None: unpriced)
    spent_usd: float = 0.0
    reserved_usd: float = 0.0  # worst cases of requests in flight (see reserve)
    charged: int = 0
    refused: int = 0
    unpriced: set[str] = field(default_factory=set)
    scope: str = ""  # whose budget this is when it is a share of another ("shard 1 of 2's share of $1")

    def __post_init__(self) -> None:
        if self.max_usd < 0 or (self.max_usd == 0 and not self.scope):
            # a share (`split`) of a shard with no work may be 0
            raise ValueError("max_usd must be > 0 (no budget: do not create one)")
        for name, price in self.prices.items():
            if not _per_token(price):
                self.unpriced.add(name)

    def estimate(self, contender: str, input_tokens: float, output_tokens: float) -> float:
        """USD of one request of that size; 0 for an unpriced contender."""
        price = self.prices.get(contender)
        if price is None or not _per_token(price):
            return 0.0
        return request_cost(price, max(0.0, input_tokens), max(0.0, output_tokens))

    def allow(self, contender: str, est_input_tokens: float, est_output_tokens: float) -> bool:
        """True when this request, at the given size, keeps the projected spend within the cap."""
        return self._admit(self.estimate(contender, est_input_tokens, est_output_tokens))

    def _admit(self, usd: float) -> bool:
        """Spent + every in-flight worst case + this one within the cap? Counts a refusal."""
        ok = self.spent_usd + self.reserved_usd + usd <= self.max_usd
        if not ok:
            self.refused += 1
        return ok

    def reserve(self, contender: str, est_input_tokens: float, est_output_tokens: float) -> float | None:
        """Hold this request's worst case while it is in flight: the USD held, or None (refused)."""
        held = self.estimate(contender, est_input_tokens, est_output_tokens)
        if not self._admit(held):
            return None
        self.reserved_usd += held
        return held

    def release(self, held: float) -> None:
        """The request ended: drop its reservation (then `charge` what it really cost)."""
        self.reserved_usd = max(0.0, self.reserved_usd - held)

    def charge(self, record: Record | Mapping[str, Any]) -> float:
        """Add a finished request's cost (from its token counts); returns what it cost. A record
        read back from a run folder (a dict) is charged the same way.

        A failed request with no counts costs 0: providers do not bill requests they reject."""
        get = record.get if isinstance(record, Mapping) else functools.partial(getattr, record)
        if get("input_tokens") is None and get("output_tokens") is None:
            return 0.0
        price = self.prices.get(str(get("contender")))
        if price is None or not _per_token(price):
            return 0.0
        inp = int(get("input_tokens") or 0)
        cached = min(int(get("cached_input_tokens") or 0), inp)
        written = min(int(get("cache_creation_input_tokens") or 0), inp - cached)
        usd = request_cost(price, inp, int(get("output_tokens") or 0), cached, cache_write_input_tokens=written)
        self.spent_usd += usd
        self.charged += 1
        return usd

    def charge_usd(self, usd: float) -> None:
        """Count a cost known only as an amount (a request cut off in flight: its worst case)."""
        self.spent_usd += max(0.0, usd)
        self.charged += 1

    def message(self) -> str:
        return str(BudgetExhausted(self.spent_usd, self.max_usd)) + (f" ({self.scope})" if self.scope else "")

    def split(self, weights: list[int]) -> list[Budget]:
        """One share per shard, in proportion to `weights` (its part of the work), that together
        hold exactly this budget's room (see the module docstring)."""
        total = sum(weights)
        if not weights or total <= 0:
            raise ValueError(f"a budget splits over positive weights, got {weights}")
        held = self.spent_usd + self.reserved_usd
        n = len(weights)
        return [Budget(self.max_usd * w / total, self.prices, spent_usd=held * w / total,
                       scope=f"shard {k + 1} of {n}'s share of ${_usd(self.max_usd)}")
                for k, w in enumerate(weights)]

    def absorb(self, shares: list[Budget], reported: list[Budget | None]) -> None:
        """Count what the shares spent: `reported[k]` is share k as its shard ended it, None when
        the shard died (then its whole share counts as spent)."""
        for share, got in zip(shares, reported, strict=True):
            if got is None:
                self.spent_usd += max(0.0, share.max_usd - share.spent_usd)
                continue
            self.spent_usd += max(0.0, got.spent_usd - share.spent_usd)
            self.charged += got.charged
            self.refused += got.refused

    def refusal_record(self, *, run_id: str, experiment: str, contender: Contender, request_id: str,
                       extra: Mapping[str, object] | None = None) -> Record:
        """The record of a request the budget refused: `cancelled`, saying how much was spent."""
        return Record(
            run_id=run_id, experiment=experiment, contender=contender.name, model=contender.model,
            request_id=request_id, t_start_unix=time.time(), status="error",
            error_class=ErrorClass.CANCELLED.value, error_message=self.message(),
            api_kind=contender.api, extra=dict(extra or {}),
        )


def estimate_input_tokens(contender: Contender, prompt: Prompt) -> int:
    """Input tokens of a request, estimated before sending (chars/4 of the rendered prompt, plus its
    images by the provider's documented rule, `workbench.image_tokens`)."""
    text = contender.prompt_template.replace("{prompt}", prompt.text) if contender.prompt_template else (
        (prompt.system or contender.system_prompt or "") + prompt.text)
    images = contender_image_tokens(contender, prompt)
    return max(1, len(text) // 4) + (images.tokens if images is not None else 0)


def _per_token(price: Price | None) -> bool:
    return price is not None and price.input is not None and price.output is not None


def budget_for(max_usd: float | None, contenders: list[Contender], run_dir: Path | None = None) -> Budget | None:
    """A budget over these contenders' prices, or None when `max_usd` is None or 0 (no budget).

    The budget is the run's, not one experiment's: what the run folder's records already cost
    (every experiment before this one, and this one's own records when it resumes) counts as
    spent, so `budget_usd` caps the whole run whichever experiment reaches it."""
    if not max_usd:
        return None
    from workbench.pricing import price_for

    budget = Budget(max_usd, {c.name: price_for(c) for c in contenders})
    for path in sorted(run_dir.glob("*.jsonl")) if run_dir is not None else ():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut off by a crash: a request that ended unrecorded
            if isinstance(obj, dict):
                budget.charge(obj)
    budget.charged = 0  # requests charged by this session, from here on
    return budget
