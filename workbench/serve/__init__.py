"""Serving: every server the workbench starts — the embedded models (`llama`), the mock server
that speaks every hosted wire format with known timing and faults (`mock`, with `wire` and
`faults`), the rate-limit proxy, the local batch endpoint (`batch`: the providers' batch APIs
over the embedded models) — on one raw-asyncio base hosted in a thread or a child process
(`http`, `child`). May import `measure` and below."""
