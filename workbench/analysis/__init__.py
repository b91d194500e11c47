"""Analysis: statistics, the evidence read from run folders, scenarios and the decision,
comparisons, grading and hallucination summaries, cost and capacity projections, plots.
Reads records; sends nothing. May import `measure` and below."""
