"""The one formatting layer: numbers in their unit with interval and n, p-values as people read them."""

from __future__ import annotations

import math

from workbench.analysis.catalog import format_p, format_value


def test_p_values_never_in_scientific_notation() -> None:
    assert [format_p(p) for p in (2.61e-11, 0.0009, 0.0041, 0.032, 0.5, 0.999, math.nan)] == [
        "< 0.001", "< 0.001", "0.0041", "0.03", "0.50", "1", "—"]


def test_values_carry_unit_interval_and_n_and_a_missing_bound_shows_as_such() -> None:
    assert format_value("e2e_p95", 0.778, 0.516, math.nan, 12) == "778 ms [516, —] n=12"
    assert format_value("e2e_p95", math.nan) == "n/a"
