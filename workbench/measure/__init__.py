"""Measuring: one timed request (`probe`), the HTTP transports under it, token counts, retries,
the spend budget, capability probes, annotation coalescing primitives, and the load profiles
(`load/`). May import the providers and the top-level core (types, config, results, ...)."""
