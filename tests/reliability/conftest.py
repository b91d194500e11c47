"""Fixtures for the reliability tests: the session's mock server (tests/conftest.py `wire`),
reset per test, is the fault server; the canary key is in the environment."""

from __future__ import annotations

import pytest

from tests.conftest import KEY_ENV
from workbench.config import Contender
from workbench.serve.mock import MockServer


@pytest.fixture
def fault_server(wire: MockServer) -> MockServer:
    """The shared mock server, reset (no faults queued or planned, nothing logged)."""
    return wire


def fault_contender(srv: MockServer, timeout_s: float = 1.0, name: str = "faulty") -> Contender:
    return Contender.model_validate({
        "name": name, "api": "openai-chat", "model": "fault-model", "base_url": srv.base_url,
        "api_key_env": KEY_ENV, "timeout_s": timeout_s,
    })
