"""Pairwise statistical comparisons between contenders, for the significance table.

- Latency (warm E2E): the bootstrap 95% CI of the p95 difference (independent resamples) and
  the two-sided Mann–Whitney U p-value (a shift in the whole distribution).
- Hallucination: McNemar's exact test on the items both contenders answered (incorrect vs
  not), with the paired difference in hallucination rate and its Newcombe interval.
Holm's correction is applied across the pairs of each test family, so that with many
contenders a "significant" difference is not a product of how many pairs were looked at.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from workbench.analysis import stats
from workbench.analysis.evidence import Evidence

__all__ = ["pairwise_tests"]


def pairwise_tests(ev: Evidence, alpha: float = 0.05) -> pd.DataFrame:
    """One row per (axis, pair): effect with its 95% CI, raw and Holm-adjusted p, verdict."""
    rows: list[dict[str, Any]] = []
    lat = ev.frames.get("latency")
    if lat is not None:
        warm = lat[(lat["phase"] == "warm") & (lat["status"] == "ok")]
        groups = {k: g["e2e_s"].dropna().to_numpy(float) for k, g in warm.groupby("label")}
        fam = []
        for a, b in itertools.combinations(sorted(groups), 2):
            d = stats.bootstrap_diff_percentile(groups[a], groups[b], 95)
            fam.append({"axis": "latency", "test": "p95 E2E difference (bootstrap) / Mann-Whitney U",
                        "a": a, "b": b, "effect": d.value, "effect_low": d.low, "effect_high": d.high,
                        "effect_unit": "s (a − b)", "n_a": len(groups[a]), "n_b": len(groups[b]),
                        "p": stats.mann_whitney(groups[a], groups[b])})
        rows += _holm(fam)
    hal = ev.frames.get("hallucination")
    if hal is not None and "grade" in hal and "item_id" in hal:
        h = hal[hal["grade"].notna()]
        if "sample_index" in h:
            h = h[h["sample_index"].fillna(0) == 0]
        per = {k: g.drop_duplicates("item_id").set_index("item_id")["grade"] for k, g in h.groupby("label")}
        fam = []
        for a, b in itertools.combinations(sorted(per), 2):
            shared = per[a].index.intersection(per[b].index)
            if len(shared) == 0:
                continue
            xa = (per[a].loc[shared] == "incorrect").to_numpy()
            xb = (per[b].loc[shared] == "incorrect").to_numpy()
            b_only = int((xa & ~xb).sum())
            c_only = int((~xa & xb).sum())
            d = stats.paired_proportion_diff(xa.astype(float), xb.astype(float))
            fam.append({"axis": "hallucination", "test": "hallucination rate difference (paired) / McNemar exact",
                        "a": a, "b": b, "effect": d.value, "effect_low": d.low, "effect_high": d.high,
                        "effect_unit": "rate (a − b)", "n_a": len(shared), "n_b": len(shared),
                        "p": stats.mcnemar_exact(b_only, c_only)})
        rows += _holm(fam)
    df = pd.DataFrame(rows)
    if not df.empty:
        df["significant"] = df["p_holm"] < alpha
    return df


def _holm(family: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not family:
        return family
    adjusted = stats.holm([float(r["p"]) for r in family])
    for r, p in zip(family, adjusted, strict=True):
        r["p_holm"] = p if not np.isnan(p) else np.nan
    return family
