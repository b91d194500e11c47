"""Coverage of the workbench's interval procedures, the larger seeded study (bench/README.md).

    PYTHONPATH=. .venv/bin/python bench/coverage_study.py [reps] [seed]

Prints a Markdown table: for lognormal and heavy-tailed-mixture latencies at n in 12..400, the
share of samples whose 95% interval holds the true p50/p95/p99 — order statistics (what the
workbench reports) beside the percentile bootstrap (what it used to) — and the Wilson interval's
exact coverage for proportions. The small check in `make test` is tests/analysis/test_quantiles.py.
"""

from __future__ import annotations

import sys
import time

from bench.calibration import CI, markdown, run_study


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    reps = int(args[0]) if args else 2000
    seed = int(args[1]) if len(args) > 1 else 0
    t0 = time.perf_counter()
    rows = run_study(reps, seed)
    print(markdown(rows))
    print(f"\nreps={reps} seed={seed} n_boot=1000 ci={CI}; {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
