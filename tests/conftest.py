"""Shared fixtures: one wire server per session (reset before each test), contenders per format."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from tests.servers.wire import WireServer
from workbench.config import Contender

T = TypeVar("T")
KEY_ENV = "WB_TEST_KEY"
CANARY = "canary-7f3a9c1e-do-not-log-0123456789"


@pytest.fixture(scope="session")
def _wire_session() -> Iterator[WireServer]:
    with WireServer() as srv:
        yield srv


@pytest.fixture
def wire(_wire_session: WireServer, monkeypatch: pytest.MonkeyPatch) -> WireServer:
    _wire_session.reset()
    monkeypatch.setenv(KEY_ENV, CANARY)
    return _wire_session


def contender_for(fmt: str, srv: WireServer, **kw: Any) -> Contender:
    """A contender of wire format `fmt` pointed at the test server (generic declares SSE)."""
    spec: dict[str, Any] = {
        "name": f"t-{fmt}",
        "api": fmt,
        "model": {"anthropic": "claude-test", "gemini": "gemini-test"}.get(fmt, "test-model"),
        "base_url": srv.base_url(fmt),
        "api_key_env": KEY_ENV,
        "timeout_s": 5.0,
        "system_prompt": "Be brief.",
    }
    if fmt == "openai-completions":
        spec["prompt_template"] = "Q: {prompt}\nA:"
    if fmt == "generic":
        spec["options"] = {"stream": "sse"}
    for k, v in kw.items():
        if k == "options":
            spec["options"] = {**spec.get("options", {}), **v}
        else:
            spec[k] = v
    return Contender.model_validate(spec)


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    """Run a coroutine with a hard deadline (every test is bounded in time)."""

    async def _bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(_bounded())
