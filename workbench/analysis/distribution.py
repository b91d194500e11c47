"""One distribution summary: the same columns in every table, CSV and report.

A latency distribution (TTFT, E2E, TPOT, per contender or per concurrency level) is summarised
as `{key}_n` and, for each percentile q in `QS`, `{key}_p{q}` with its 95% interval
`{key}_p{q}_low` / `{key}_p{q}_high` — GuideLLM's one `DistributionSummary` idea, named the same
in `latency_summary.csv`, `concurrency_levels.csv` and the decision matrix's metrics (e.g.
`e2e_p95`). Keys drop the `_s`: every value is in seconds.

Percentiles and intervals are order statistics (`workbench.analysis.quantiles`): the point is
the observed value X_(ceil(n·q/100)), the interval is distribution-free, and where the sample
is too small for a bound (p95 needs n >= 72, p99 n >= 368 for both bounds at 95%) that bound is
NaN — an empty cell in a CSV, "—" and "insufficient n" in a table — never a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench.analysis.catalog import format_interval
from workbench.analysis.quantiles import Values, min_n_for_bounds, quantile_ci

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["KEYS", "QS", "columns", "format_cell", "format_table", "key_of", "summarize"]

QS: tuple[int, ...] = (50, 95, 99)
#: Record field → distribution key.
KEYS: dict[str, str] = {"ttft_s": "ttft", "e2e_s": "e2e", "tpot_s": "tpot"}
LABELS: dict[str, str] = {"ttft": "TTFT", "e2e": "E2E", "tpot": "TPOT", "overhead": "TTFT − server prompt time"}


def key_of(field: str) -> str:
    """`e2e_s` → `e2e` (a key passes through unchanged)."""
    return KEYS.get(field, field)


def columns(key: str, qs: Sequence[int] = QS) -> list[str]:
    """The columns `summarize(..., key)` writes, in order."""
    out = [f"{key}_n"]
    for q in qs:
        out += [f"{key}_p{q}", f"{key}_p{q}_low", f"{key}_p{q}_high"]
    return out


def summarize(values: Values, key: str, qs: Sequence[int] = QS, ci: float = 0.95) -> dict[str, Any]:
    """`{key}_n` and each percentile with its order-statistic interval (NaN bound: not supported)."""
    if not qs:
        raise ValueError("give at least one percentile")
    out: dict[str, Any] = {}
    for q in qs:
        est = quantile_ci(values, q, ci)
        out[f"{key}_n"] = est.n
        out[f"{key}_p{q}"], out[f"{key}_p{q}_low"], out[f"{key}_p{q}_high"] = est.value, est.low, est.high
    return out


def format_cell(row: Any, key: str, q: int, scale: float = 1000.0) -> str:
    """`"212 [180, 260]"` (`catalog.format_interval`), or `"412 [380, —] insufficient n (needs
    368)"` when a bound is missing."""
    value = float(row[f"{key}_p{q}"])
    low, high = float(row[f"{key}_p{q}_low"]), float(row[f"{key}_p{q}_high"])
    text = format_interval(value, low, high, scale=scale)
    if not math.isnan(value) and (math.isnan(low) or math.isnan(high)):
        text += f" insufficient n (needs {min_n_for_bounds(q)})"
    return text


def format_table(df: pd.DataFrame, keys: Sequence[str], id_cols: Sequence[str], qs: Sequence[int] = QS,
                 scale: float = 1000.0, unit: str = "ms") -> pd.DataFrame:
    """A summary frame as text: id columns, then per key its n and `p{q} {unit} [95% CI]` cells."""
    import pandas as pd

    rows = []
    for _, r in df.iterrows():
        row: dict[str, Any] = {c: r[c] for c in id_cols}
        for key in keys:
            row[f"{LABELS.get(key, key)} n"] = int(r[f"{key}_n"])
            for q in qs:
                row[f"{LABELS.get(key, key)} p{q} {unit} [95% CI]"] = format_cell(r, key, q, scale)
        rows.append(row)
    return pd.DataFrame(rows)
