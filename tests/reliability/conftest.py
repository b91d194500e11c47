"""Fixtures for the reliability tests: one fault server per module, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import CANARY, KEY_ENV
from workbench.config import Contender
from workbench.serve.faults import FaultPlan, FaultServer


@pytest.fixture(scope="module")
def _fault_module() -> Iterator[FaultServer]:
    with FaultServer(FaultPlan()) as srv:
        yield srv


@pytest.fixture
def fault_server(_fault_module: FaultServer, monkeypatch: pytest.MonkeyPatch) -> FaultServer:
    """The shared fault server, its log cleared; the canary key is in the environment."""
    _fault_module.reset(FaultPlan())
    monkeypatch.setenv(KEY_ENV, CANARY)
    return _fault_module


def fault_contender(srv: FaultServer, timeout_s: float = 1.0, name: str = "faulty") -> Contender:
    return Contender.model_validate({
        "name": name, "api": "openai-chat", "model": "fault-model", "base_url": srv.base_url,
        "api_key_env": KEY_ENV, "timeout_s": timeout_s,
    })
