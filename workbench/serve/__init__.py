"""Serving: every server the workbench starts — the embedded models (`llama`), the known-truth
synthetic server, the fault server, the rate-limit proxy, the imitation of each hosted wire
format — and the child-process handling they share. May import `measure` and below."""
